"""What federated policies see and return: client views, selections, client fits, aggregation.

A selection policy gets a read-only ``ClientView`` of the whole population (arrays,
one entry per client) and returns a ``Selection``.

An aggregation policy is the server's strategy, both sides of it (Flower's
``configure_fit`` / ``aggregate_fit`` split):

- ``configure_fit`` says what each selected client does in its local fit: the
  optimiser phases every batch takes (which parameters, SGD or Adam, learning rate), an
  extra per-client loss term, and extra per-client state sent down with the model
  (e.g. SCAFFOLD's control variates). The batched path applies it to all clients at once.
- ``collect`` turns the trained clients into extra state sent up (e.g. control-variate
  changes); ``transfer_bytes`` says how large a download and an upload are.
- ``aggregate`` turns the clients' trained parameters (stacked along a leading client
  axis), their weights and uploads into the next global model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np
from pydantic import Field, PositiveFloat

from sim.config import StrictModel

if TYPE_CHECKING:  # torch is imported when a policy aggregates, not when the family is listed
    import torch

Params = dict[str, "torch.Tensor"]
# One client's (parameters, start parameters, state) -> a scalar added to each step's loss.
LossTerm = Callable[[Params, Params, Params], "torch.Tensor"]


@dataclass(frozen=True)
class ClientView:
    """The population as the server knows it when it selects (arrays of length N).

    ``expected_round_s`` is the server's estimate of download + local training +
    upload from each device's profile; ``last_loss`` is the mean training loss a client
    reported when it last took part (NaN if never), ``last_round`` that round (-1 if never).
    """

    now_s: float
    round: int
    available: np.ndarray
    expected_round_s: np.ndarray
    num_samples: np.ndarray
    last_loss: np.ndarray
    last_round: np.ndarray


@dataclass(frozen=True)
class Selection:
    """Clients to start, and when a synchronous round closes.

    ``keep_first``: close once this many updates arrived (over-commit drops the rest).
    ``deadline_s``: close at most this long after the round started (late ones dropped).
    Async mode starts the clients and ignores both.
    """

    clients: np.ndarray
    keep_first: int | None = None
    deadline_s: float | None = None


@dataclass(frozen=True)
class Phase:
    """One optimiser step per minibatch over ``params``: ``all``, the ``data`` side (every
    parameter not named ``label_*``) or the ``label`` side, with SGD or Adam at ``lr``.
    Phases of a fit run in order on every batch, each with its own optimiser state."""

    params: Literal["all", "data", "label"] = "all"
    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float = 0.1


@dataclass
class ClientFit:
    """What each of K selected clients does in its local fit.

    ``state``: per-client tensors stacked ``[K, ...]``, sent down with the model.
    ``loss_term(params, start, state)``: one client's extra loss (a scalar), added to
    every step's minibatch loss; the batched path ``vmap``s it over the clients."""

    phases: tuple[Phase, ...]
    state: Params = field(default_factory=dict)
    loss_term: LossTerm | None = None


class SelectionPolicy(Protocol):
    def select(self, view: ClientView, k: int, rng: np.random.Generator) -> Selection: ...


class AggregationPolicy(Protocol):
    head: Literal["linear", "anchored"]
    pseudo_label_percentile: float | None

    def setup(self, num_clients: int, params: Params) -> None: ...

    def transfer_bytes(self, model_bytes: int) -> tuple[int, int]: ...

    def phases(self, default: Phase) -> tuple[Phase, ...]: ...

    def configure_fit(self, clients: np.ndarray, global_params: Params, default: Phase) -> ClientFit: ...

    def collect(
        self, clients: np.ndarray, start: Params, trained: Params, fit: ClientFit, steps: np.ndarray
    ) -> Params: ...

    def aggregate(
        self,
        global_params: Params,
        stacked: Params,
        weights: np.ndarray,
        owned: np.ndarray | None,
        uploads: Params,
    ) -> Params: ...


def random_available(view: ClientView, n: int, rng: np.random.Generator) -> np.ndarray:
    """Up to ``n`` distinct available clients, uniformly at random (sorted ids)."""
    pool = np.flatnonzero(view.available)
    return np.sort(rng.choice(pool, size=min(n, len(pool)), replace=False))


def weighted_average(stacked: Params, weights: np.ndarray) -> Params:
    """FedAvg's core: ``sum_k w_k * params[k] / sum_k w_k`` for every stacked parameter,
    accumulated in float64 and returned in the parameters' dtype."""
    import torch

    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or (w < 0).any() or not w.sum() > 0:
        raise ValueError(f"weights must be [K] non-negative with a positive sum, got {weights}")
    share = torch.from_numpy(w / w.sum())
    out = {}
    for name, value in stacked.items():
        if len(value) != len(w):
            raise ValueError(f"{name} stacks {len(value)} clients, weights has {len(w)}")
        out[name] = torch.tensordot(share, value.double(), dims=1).to(value.dtype)
    return out


class FedAvgBase:
    """Clients take the default local fit (one phase over all parameters, no extra state);
    the server takes the sample-weighted mean. The base of every aggregation policy."""

    head: Literal["linear", "anchored"] = "linear"
    pseudo_label_percentile: float | None = None

    def setup(self, num_clients: int, params: Params) -> None:
        """Called once before the first round with the population size and the initial model."""

    def transfer_bytes(self, model_bytes: int) -> tuple[int, int]:
        """Bytes of one download and one upload: the model each way."""
        return model_bytes, model_bytes

    def phases(self, default: Phase) -> tuple[Phase, ...]:
        """The optimiser phases of every client's batches; ``default`` is ``local``'s own."""
        return (default,)

    def configure_fit(self, clients: np.ndarray, global_params: Params, default: Phase) -> ClientFit:
        return ClientFit(self.phases(default))

    def collect(
        self, clients: np.ndarray, start: Params, trained: Params, fit: ClientFit, steps: np.ndarray
    ) -> Params:
        return {}

    def aggregate(
        self,
        global_params: Params,
        stacked: Params,
        weights: np.ndarray,
        owned: np.ndarray | None,
        uploads: Params,
    ) -> Params:
        return weighted_average(stacked, weights)


class ServerOptimizer(FedAvgBase):
    """Adaptive federated optimisation (Reddi et al., ICLR 2021): the server treats
    ``d = mean(client models) - global`` as a pseudo-gradient, keeps a first moment
    ``m = b1 m + (1 - b1) d`` and a second moment ``v`` (its update is the subclass's
    :meth:`second_moment`), and steps ``w += lr * m / (sqrt(v) + tau)`` (no bias
    correction, as in the paper). Moments start at zero."""

    class Params(StrictModel):
        lr: PositiveFloat = Field(
            0.03, description="server learning rate of the step w += lr * m / (sqrt(v) + tau)"
        )
        beta1: float = Field(
            0.9, ge=0.0, lt=1.0, description="decay of the first moment m of the pseudo-gradient, in [0, 1)"
        )
        beta2: float = Field(0.99, ge=0.0, lt=1.0, description="decay of the second moment v, in [0, 1)")
        tau: PositiveFloat = Field(
            1e-3, description="adaptivity: added to sqrt(v) in the step's denominator (> 0)"
        )

    def __init__(self, lr: float, beta1: float, beta2: float, tau: float):
        self.lr, self.beta1, self.beta2, self.tau = lr, beta1, beta2, tau
        self.m: Params = {}
        self.v: Params = {}

    def second_moment(self, v: torch.Tensor, d2: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def aggregate(
        self,
        global_params: Params,
        stacked: Params,
        weights: np.ndarray,
        owned: np.ndarray | None,
        uploads: Params,
    ) -> Params:
        import torch

        mean = weighted_average(stacked, weights)
        out = {}
        for name, w in global_params.items():
            delta = mean[name] - w
            self.m[name] = self.beta1 * self.m.get(name, torch.zeros_like(w)) + (1 - self.beta1) * delta
            self.v[name] = self.second_moment(self.v.get(name, torch.zeros_like(w)), delta**2)
            out[name] = w + self.lr * self.m[name] / (self.v[name].sqrt() + self.tau)
        return out
