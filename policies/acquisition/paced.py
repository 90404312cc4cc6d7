"""Uncertainty buying that spends the budget evenly over the horizon."""

import math

import numpy as np
from pydantic import Field

from policies.acquisition.base import PurchaseView, entropy
from sim.config import StrictModel
from sim.registry import register


@register("acquisition", "paced")
class PacedPurchase:
    """Budget pacing by throttling (Agarwal et al., KDD 2014, "Budget pacing for targeted
    online advertisements at LinkedIn"): buy an uncertain point only while spending stays
    on or below the straight line from nothing at the first user to the whole budget at
    the last.

    With ``t`` users seen of a horizon of ``T``, a predictor may buy if, after paying,
    ``spent <= budget * (t + 1) / T``. Uncertain means entropy above
    ``fraction * log(C)``, as in the uncertainty rule; ``fraction: 0`` paces every
    point. The paper adapts a throttling rate to a forecast of traffic; with a known
    horizon a fixed line is enough (our simplification).
    """

    class Params(StrictModel):
        fraction: float = Field(
            0.3,
            ge=0.0,
            le=1.0,
            description=(
                "buy (while on pace) when entropy exceeds this share of log(classes); 0 paces every point"
            ),
        )

    def __init__(self, fraction: float):
        self.fraction = fraction

    def decide(self, view: PurchaseView, rng: np.random.Generator) -> np.ndarray:
        spent_after = view.budget - view.budget_left + view.price
        on_pace = spent_after <= view.budget * (view.t + 1) / view.horizon
        return on_pace & (entropy(view.probs) > self.fraction * math.log(view.probs.shape[1]))
