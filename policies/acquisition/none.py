"""Never buy."""

import numpy as np

from policies.acquisition.base import PurchaseView
from sim.registry import register


@register("acquisition", "none")
class NoPurchase:
    """Never buy: predictors learn only from the users who choose them."""

    def decide(self, view: PurchaseView, rng: np.random.Generator) -> np.ndarray:
        return np.zeros(len(view.budget_left), bool)
