"""FedYogi (Reddi et al., ICLR 2021): server-side Yogi, whose second moment grows additively.

``v = v - (1 - b2) d^2 sign(v - d^2)``: v moves toward ``d^2`` by a step proportional to
``d^2`` rather than to ``v``, so it cannot blow up after one large update (Zaheer et
al., NeurIPS 2018). Defaults as Flower's ``FedYogi`` (lr 0.01, tau 1e-3) except betas,
shared with ``fedadam``.
"""

from pydantic import Field, PositiveFloat

from policies.federated.base import ServerOptimizer
from sim.registry import register


@register("aggregation", "fedyogi")
class FedYogi(ServerOptimizer):
    """A server-side Yogi step on the averaged client update."""

    class Params(ServerOptimizer.Params):
        lr: PositiveFloat = Field(0.01, description="server learning rate of the Yogi step")

    def __init__(self, lr: float = 0.01, beta1: float = 0.9, beta2: float = 0.99, tau: float = 1e-3):
        super().__init__(lr, beta1, beta2, tau)

    def second_moment(self, v, d2):
        return v - (1 - self.beta2) * d2 * (v - d2).sign()
