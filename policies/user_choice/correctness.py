"""The reference rule: a softmax over whether each predictor is right."""

import numpy as np

from policies.user_choice.base import ChoiceView
from sim.registry import register


@register("user_choice", "correctness")
class CorrectnessChoice:
    """Pick predictor i with probability proportional to ``exp(alpha * 1[i is correct])``
    (Kwon, Ginart and Zou, TMLR 2022; alpha = 4 in the reference experiment).

    Users can tell right from wrong answers (they experience them) but not which of
    the right ones is better, so all correct predictors are equally likely.
    """

    def scores(self, view: ChoiceView) -> np.ndarray:
        return view.alpha * view.correct
