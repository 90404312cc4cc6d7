"""Shallow-Deep Networks: exit when the top softmax probability is high enough."""

import numpy as np
from pydantic import Field

from policies.exit.base import CalibratedParams, CalibratedRule, ExitPlan
from sim.registry import register


@register("exit", "max_softmax")
class MaxSoftmaxExit(CalibratedRule):
    """SDN (Kaya et al. 2019): exit at the first head with max softmax >= q; if none, the most confident head.

    With ``q`` unset it is calibrated on the calib split (cheapest q within
    ``max_accuracy_loss`` of the full network). Every head up to the exit is evaluated;
    when no head is confident all are.
    """

    class Params(CalibratedParams):
        q: float | None = Field(
            None,
            ge=0.0,
            le=1.0,
            description=(
                "exit at the first head whose max softmax is at least q, in [0, 1] (unset: calibrated)"
            ),
        )

    def __init__(self, q: float | None, max_accuracy_loss: float):
        super().__init__(q, max_accuracy_loss)

    def candidates(self, calib):
        return np.linspace(0.5, 1.0, 101)

    @staticmethod
    def rule(q: float, probs: np.ndarray) -> ExitPlan:
        n_exits, n = probs.shape[:2]
        confidence = probs.max(-1)  # [n_exits, n]
        confident = confidence >= q
        any_confident = confident.any(axis=0)
        exit_index = np.where(any_confident, confident.argmax(axis=0), confidence.argmax(axis=0))
        last_evaluated = np.where(any_confident, exit_index, n_exits - 1)
        heads = np.arange(n_exits)[None, :] <= last_evaluated[:, None]
        return ExitPlan(exit_index, heads)
