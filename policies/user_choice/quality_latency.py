"""Users who want a right answer and a fast one: busy predictors answer late and lose users."""

import numpy as np
from pydantic import Field, NonNegativeFloat

from policies.user_choice.base import ChoiceView
from sim.config import StrictModel
from sim.registry import register


@register("user_choice", "quality_latency")
class QualityLatencyChoice:
    """Pick predictor i with probability proportional to
    ``exp(alpha * 1[i is correct] - latency_cost_per_s * latency_i)``.

    ``latency_i`` is the time i's device would take to answer now: the wait for its
    earliest free server plus its service time. Popular predictors build queues and
    lose users to idle ones: the systems side of competition. Our extension of the
    reference rule; the default cost (10 per second) makes 0.4 s of extra latency
    weigh as much as a right answer at alpha = 4.
    """

    class Params(StrictModel):
        latency_cost_per_s: NonNegativeFloat = Field(
            10.0, description="choice score lost per second of answer latency (0: latency ignored)"
        )

    def __init__(self, latency_cost_per_s: float):
        self.latency_cost_per_s = latency_cost_per_s

    def scores(self, view: ChoiceView) -> np.ndarray:
        return view.alpha * view.correct - self.latency_cost_per_s * view.latency_s
