"""FedAdagrad (Reddi et al., ICLR 2021): server-side Adagrad, ``v = v + d^2``.

``beta1`` is the first-moment decay (0 gives plain Adagrad on the pseudo-gradient);
the paper and Flower's ``FedAdagrad`` use momentum 0.9 as here.
"""

from pydantic import Field, PositiveFloat

from policies.federated.base import ServerOptimizer
from sim.config import StrictModel
from sim.registry import register


@register("aggregation", "fedadagrad")
class FedAdagrad(ServerOptimizer):
    """A server-side Adagrad step on the averaged client update."""

    class Params(StrictModel):
        lr: PositiveFloat = Field(0.03, description="server learning rate of the Adagrad step")
        beta1: float = Field(
            0.9, ge=0.0, lt=1.0, description="first-moment decay, in [0, 1) (0: plain Adagrad)"
        )
        tau: PositiveFloat = Field(
            1e-3, description="adaptivity: added to sqrt(v) in the step's denominator (> 0)"
        )

    def __init__(self, lr: float = 0.03, beta1: float = 0.9, tau: float = 1e-3):
        super().__init__(lr, beta1, 0.0, tau)

    def second_moment(self, v, d2):
        return v + d2
