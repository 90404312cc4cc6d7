"""Buy the points near the decision boundary: a small margin between the top two classes."""

import numpy as np
from pydantic import Field

from policies.acquisition.base import PurchaseView
from sim.config import StrictModel
from sim.registry import register


@register("acquisition", "margin")
class MarginPurchase:
    """Margin sampling (Scheffer, Decomain and Wrobel, IDA 2001): buy when the two most
    probable classes are less than ``max_margin`` apart in predicted probability.

    The paper ranks a pool by margin; a stream has no pool, so we use a fixed threshold.
    Its default, 0.5, is our choice (the market paper has no margin rule): for two
    classes it buys when the top class has probability below 0.75.
    """

    class Params(StrictModel):
        max_margin: float = Field(
            0.5,
            ge=0.0,
            le=1.0,
            description="buy when the top two class probabilities are less than this apart, in [0, 1]",
        )

    def __init__(self, max_margin: float):
        self.max_margin = max_margin

    def decide(self, view: PurchaseView, rng: np.random.Generator) -> np.ndarray:
        top2 = np.sort(view.probs, axis=-1)[:, -2:]
        return top2[:, 1] - top2[:, 0] < self.max_margin
