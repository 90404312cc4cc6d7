"""Users who cannot check answers and go by each predictor's stated confidence."""

import numpy as np

from policies.user_choice.base import ChoiceView
from sim.registry import register


@register("user_choice", "confidence")
class ConfidenceChoice:
    """Pick predictor i with probability proportional to ``exp(alpha * confidence_i)``, where
    ``confidence_i`` is the probability i gives its own predicted label.

    Our alternative to the reference rule (not in the paper): the user sees no ground
    truth, only what each predictor claims, and predictors report their softmax
    confidence honestly.
    """

    def scores(self, view: ChoiceView) -> np.ndarray:
        return view.alpha * view.confidence
