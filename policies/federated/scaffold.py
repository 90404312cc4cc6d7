"""SCAFFOLD (Karimireddy et al., ICML 2020): control variates correct client drift.

Written as a plug-in on the client-side strategy API (:class:`~policies.federated.base.ClientFit`),
with no change to the core. The server keeps a control variate ``c`` and each client
``i`` its own ``c_i`` (zero until it first takes part). A selected client receives
``c - c_i`` with the model and trains with every step's gradient corrected by it: the
loss term ``<c - c_i, w>`` has exactly that gradient. After ``K_i`` local SGD steps at
rate ``lr`` from ``x`` to ``y_i`` it sets ``c_i+ = c_i - c + (x - y_i) / (K_i lr)`` (the
paper's option II) and uploads ``delta_c_i = c_i+ - c_i`` with its model. The server
steps ``x += lr_global * weighted mean(y_i - x)`` (weights as FedAvg's) and
``c += (|S| / N) * mean(delta_c_i)``. Downloads and uploads carry two model-sized
tensors each.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from pydantic import Field, PositiveFloat

from policies.federated.base import ClientFit, FedAvgBase, Params, Phase, weighted_average
from sim.config import StrictModel
from sim.errors import ConfigError
from sim.registry import register

if TYPE_CHECKING:  # torch is imported when the policy runs, not when the family is listed
    import torch


def correction(params: Params, start: Params, state: Params) -> torch.Tensor:
    """``<c - c_i, w>``: its gradient adds the control-variate correction to every step."""
    return sum((params[n] * state[n]).sum() for n in params)


@register("aggregation", "scaffold")
class Scaffold(FedAvgBase):
    """Stochastic controlled averaging: client and server control variates."""

    class Params(StrictModel):
        lr_global: PositiveFloat = Field(
            1.0, description="server learning rate: x += lr_global * weighted mean of client updates"
        )

    def __init__(self, lr_global: float = 1.0):
        self.lr_global = lr_global
        self.c: Params = {}
        self.c_client: dict[int, Params] = {}  # only clients that took part
        self.num_clients = 1

    def setup(self, num_clients: int, params: Params) -> None:
        import torch

        self.num_clients = num_clients
        self.c = {n: torch.zeros_like(p) for n, p in params.items()}

    def transfer_bytes(self, model_bytes: int) -> tuple[int, int]:
        return 2 * model_bytes, 2 * model_bytes

    def _own(self, client: int, name: str) -> torch.Tensor:
        own = self.c_client.get(client)
        return self.c[name].new_zeros(self.c[name].shape) if own is None else own[name]

    def configure_fit(self, clients: np.ndarray, global_params: Params, default: Phase) -> ClientFit:
        if default.optimizer != "sgd":
            raise ConfigError(
                f"local.optimizer: scaffold's control variates assume local SGD, got {default.optimizer!r}"
            )
        import torch

        state = {n: torch.stack([c - self._own(int(k), n) for k in clients]) for n, c in self.c.items()}
        return ClientFit(self.phases(default), state=state, loss_term=correction)

    def collect(
        self, clients: np.ndarray, start: Params, trained: Params, fit: ClientFit, steps: np.ndarray
    ) -> Params:
        import torch

        lr = fit.phases[0].lr
        deltas: Params = {n: torch.zeros_like(t) for n, t in trained.items()}
        for row, client in enumerate(clients.tolist()):
            if steps[row] == 0:
                continue
            new = {}
            for n, y in trained.items():
                x = start[n][row] if start[n].dim() == y.dim() else start[n]
                new[n] = self._own(client, n) - self.c[n] + (x - y[row]) / (steps[row] * lr)
                deltas[n][row] = new[n] - self._own(client, n)
            self.c_client[client] = new
        return {f"delta_c.{n}": d for n, d in deltas.items()}

    def aggregate(
        self,
        global_params: Params,
        stacked: Params,
        weights: np.ndarray,
        owned: np.ndarray | None,
        uploads: Params,
    ) -> Params:
        mean = weighted_average(stacked, weights)
        share = len(weights) / self.num_clients
        for n in self.c:
            self.c[n] = self.c[n] + share * uploads[f"delta_c.{n}"].mean(0)
        return {n: w + self.lr_global * (mean[n] - w) for n, w in global_params.items()}
