"""Buy the points the predictor is unsure about: high predictive entropy."""

import math

import numpy as np
from pydantic import Field

from policies.acquisition.base import PurchaseView, entropy
from sim.config import StrictModel
from sim.registry import register


@register("acquisition", "uncertainty")
class UncertaintyPurchase:
    """Buy when the predictive entropy exceeds ``fraction * log(C)`` (Kwon, Ginart and Zou,
    TMLR 2022, "uncertainty"; fraction = 0.3 in the reference).

    ``log(C)`` is the entropy of the uniform distribution over the C classes, so
    ``fraction`` is the share of the largest possible uncertainty that triggers a buy.
    The reference code adds 1e-6 inside the logarithm; we use the exact entropy.
    """

    class Params(StrictModel):
        fraction: float = Field(
            0.3,
            ge=0.0,
            le=1.0,
            description="buy when the predictive entropy exceeds this share of log(classes), in [0, 1]",
        )

    def __init__(self, fraction: float):
        self.fraction = fraction

    def decide(self, view: PurchaseView, rng: np.random.Generator) -> np.ndarray:
        return entropy(view.probs) > self.fraction * math.log(view.probs.shape[1])
