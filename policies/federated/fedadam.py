"""FedAdam (Reddi et al., ICLR 2021, "Adaptive Federated Optimization"): server-side Adam.

Second moment ``v = b2 v + (1 - b2) d^2``; see :class:`~policies.federated.base.ServerOptimizer`.
"""

from policies.federated.base import ServerOptimizer
from sim.registry import register


@register("aggregation", "fedadam")
class FedAdam(ServerOptimizer):
    """A server-side Adam step on the averaged client update."""

    Params = ServerOptimizer.Params

    def __init__(self, lr: float = 0.03, beta1: float = 0.9, beta2: float = 0.99, tau: float = 1e-3):
        super().__init__(lr, beta1, beta2, tau)

    def second_moment(self, v, d2):
        return self.beta2 * v + (1 - self.beta2) * d2
