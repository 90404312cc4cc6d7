"""What a user-choice rule sees and returns.

When no predictor buys the arriving user, the user picks predictor ``i`` with
probability proportional to ``exp(score_i)``; a rule returns the scores. It sees, for
every predictor, whether its answer for this user is right, how confident it is, and
how long its device would take to answer (queueing plus service), plus the market's
``alpha``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class ChoiceView:
    """One arriving user's view of the market (arrays over all predictors)."""

    correct: np.ndarray  # [M] bool: the predictor's label equals the user's
    confidence: np.ndarray  # [M] the predictor's probability of its own predicted label
    latency_s: np.ndarray  # [M] time the predictor's device would take to answer this user
    alpha: float  # how strongly users favour a better predictor


class UserChoice(Protocol):
    def scores(self, view: ChoiceView) -> np.ndarray:
        """Scores of shape [M]; the user picks ``i`` with probability ``softmax(scores)_i``."""
        ...
