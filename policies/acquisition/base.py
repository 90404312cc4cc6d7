"""What a purchase (data-acquisition) policy sees and returns.

Each arriving user carries a labelled point. Before the user chooses, every predictor
of a group decides whether to buy that point; the world then lets only predictors with
at least ``price`` of budget left buy, and if several do, one of them, drawn
uniformly, gets the user and pays (Kwon, Ginart and Zou, TMLR 2022). A policy decides
for the whole group at once, from arrays, so a market of many predictors costs one
call per user.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class PurchaseView:
    """A group's state when a user arrives (arrays over the group's predictors)."""

    probs: np.ndarray  # [m, classes] each predictor's predicted class probabilities for the point
    budget_left: np.ndarray  # [m] budget not yet spent
    budget: np.ndarray  # [m] initial budget
    price: float  # budget units one point costs
    t: int  # users before this one
    horizon: int  # users in the whole run


class PurchasePolicy(Protocol):
    def decide(self, view: PurchaseView, rng: np.random.Generator) -> np.ndarray:
        """Whether each predictor wants the point: a bool array of shape [m]."""
        ...


def entropy(probs: np.ndarray, axis: int = -1) -> np.ndarray:
    """Entropy in nats of the distributions along ``axis`` of ``probs`` (0 log 0 = 0)."""
    return -(probs * np.log(np.where(probs > 0, probs, 1.0))).sum(axis)
