"""Buy a point with a fixed probability."""

import numpy as np
from pydantic import Field

from policies.acquisition.base import PurchaseView
from sim.config import StrictModel
from sim.registry import register


@register("acquisition", "random")
class RandomPurchase:
    """Buy each point with probability ``p``, independently per predictor (Kwon, Ginart and
    Zou, TMLR 2022, "random"; p = 0.3 in the reference).

    One uniform number is drawn per predictor of the group and user, from the group's
    own random stream, whether or not the predictor has budget left.
    """

    class Params(StrictModel):
        p: float = Field(0.3, ge=0.0, le=1.0, description="probability of buying each point, in [0, 1]")

    def __init__(self, p: float):
        self.p = p

    def decide(self, view: PurchaseView, rng: np.random.Generator) -> np.ndarray:
        return rng.random(len(view.budget_left)) < self.p
