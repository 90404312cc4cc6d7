"""FedProx (Li et al., MLSys 2020): FedAvg with a proximal term in the clients' objective.

Each client minimises ``loss + (mu / 2) * ||w - w_start||^2``, which keeps clients
with skewed data near the model they started from; the server averages as FedAvg.
The term is a client-side loss term (:class:`~policies.federated.base.ClientFit`).
"""

import numpy as np
from pydantic import Field, NonNegativeFloat

from policies.federated.base import ClientFit, FedAvgBase, Phase
from sim.config import StrictModel
from sim.registry import register


@register("aggregation", "fedprox")
class FedProx(FedAvgBase):
    """FedAvg aggregation; clients add the proximal term with weight ``mu``."""

    class Params(StrictModel):
        mu: NonNegativeFloat = Field(
            0.01,
            description=(
                "weight of the proximal term (mu / 2) ||w - w_start||^2 in each client's loss (0: FedAvg)"
            ),
        )

    def __init__(self, mu: float = 0.01):
        self.mu = mu

    def proximal(self, params: Params, start: Params, state: Params):
        return self.mu / 2 * sum(((params[n] - start[n]) ** 2).sum() for n in params)

    def configure_fit(self, clients: np.ndarray, global_params: Params, default: Phase) -> ClientFit:
        return ClientFit(self.phases(default), loss_term=self.proximal if self.mu else None)
