"""FedAdam (Reddi et al., ICLR 2021, "Adaptive Federated Optimization").

The server treats ``mean(client models) - global`` as a pseudo-gradient and applies
Adam to it: ``m = b1 m + (1 - b1) d``, ``v = b2 v + (1 - b2) d^2``,
``w += lr * m / (sqrt(v) + tau)`` (no bias correction, as in the paper).
"""

import numpy as np
import torch
from pydantic import Field, PositiveFloat

from policies.federated.base import FedAvgBase, Params
from sim.config import StrictModel
from sim.registry import register


@register("aggregation", "fedadam")
class FedAdam(FedAvgBase):
    """A server-side Adam step on the averaged client update."""

    class Params(StrictModel):
        lr: PositiveFloat = 0.03
        beta1: float = Field(0.9, ge=0.0, lt=1.0)
        beta2: float = Field(0.99, ge=0.0, lt=1.0)
        tau: PositiveFloat = 1e-3

    def __init__(self, lr: float = 0.03, beta1: float = 0.9, beta2: float = 0.99, tau: float = 1e-3):
        self.lr, self.beta1, self.beta2, self.tau = lr, beta1, beta2, tau
        self.m: Params = {}
        self.v: Params = {}

    def aggregate(
        self, global_params: Params, stacked: Params, weights: np.ndarray, owned: np.ndarray | None
    ) -> Params:
        mean = super().aggregate(global_params, stacked, weights, owned)
        out = {}
        for name, w in global_params.items():
            delta = mean[name] - w
            self.m[name] = self.beta1 * self.m.get(name, torch.zeros_like(w)) + (1 - self.beta1) * delta
            self.v[name] = self.beta2 * self.v.get(name, torch.zeros_like(w)) + (1 - self.beta2) * delta**2
            out[name] = w + self.lr * self.m[name] / (self.v[name].sqrt() + self.tau)
        return out
