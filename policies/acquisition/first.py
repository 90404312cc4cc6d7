"""Buy every point while the budget lasts."""

import numpy as np

from policies.acquisition.base import PurchaseView
from sim.registry import register


@register("acquisition", "first")
class FirstPurchase:
    """Buy every point until the budget runs out (Kwon, Ginart and Zou, TMLR 2022, "first")."""

    def decide(self, view: PurchaseView, rng: np.random.Generator) -> np.ndarray:
        return np.ones(len(view.budget_left), bool)
