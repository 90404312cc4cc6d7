"""FedAvgM (Hsu et al., 2019, "Measuring the Effects of Non-Identical Data Distribution"):
FedAvg with server momentum.

With ``d = mean(client models) - global``: ``m = momentum * m + d``, ``w += lr * m``.
``momentum = 0`` and ``lr = 1`` is FedAvg. Defaults: lr 1, momentum 0.9 (the paper's
best region; Flower's ``FedAvgM`` defaults to momentum 0).
"""

import numpy as np
from pydantic import Field, PositiveFloat

from policies.federated.base import FedAvgBase, Params, weighted_average
from sim.config import StrictModel
from sim.registry import register


@register("aggregation", "fedavgm")
class FedAvgM(FedAvgBase):
    """Server momentum on the averaged client update."""

    class Params(StrictModel):
        lr: PositiveFloat = Field(
            1.0, description="server learning rate: w += lr * m (1 with momentum 0 is FedAvg)"
        )
        momentum: float = Field(
            0.9, ge=0.0, lt=1.0, description="server momentum: m = momentum * m + mean update, in [0, 1)"
        )

    def __init__(self, lr: float = 1.0, momentum: float = 0.9):
        self.lr, self.momentum = lr, momentum
        self.m: Params = {}

    def aggregate(
        self,
        global_params: Params,
        stacked: Params,
        weights: np.ndarray,
        owned: np.ndarray | None,
        uploads: Params,
    ) -> Params:
        import torch  # here: listing the family needs no torch

        mean = weighted_average(stacked, weights)
        out = {}
        for name, w in global_params.items():
            self.m[name] = self.momentum * self.m.get(name, torch.zeros_like(w)) + (mean[name] - w)
            out[name] = w + self.lr * self.m[name]
        return out
