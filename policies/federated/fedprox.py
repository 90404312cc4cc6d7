"""FedProx (Li et al., MLSys 2020): FedAvg with a proximal term in the clients' objective.

Each client minimises ``loss + (mu / 2) * ||w - w_start||^2``, which keeps clients
with skewed data near the model they started from; the server averages as FedAvg.
"""

from pydantic import NonNegativeFloat

from policies.federated.base import FedAvgBase
from sim.config import StrictModel
from sim.registry import register


@register("aggregation", "fedprox")
class FedProx(FedAvgBase):
    """FedAvg aggregation; clients add the proximal term with weight ``mu``."""

    class Params(StrictModel):
        mu: NonNegativeFloat = 0.01

    def __init__(self, mu: float = 0.01):
        self.prox_mu = mu
