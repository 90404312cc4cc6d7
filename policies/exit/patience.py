"""PABEE: exit when consecutive heads agree."""

import numpy as np
from pydantic import Field, PositiveInt

from policies.exit.base import CalibratedParams, CalibratedRule, ExitPlan, first_true, sequential
from sim.registry import register


@register("exit", "patience")
class PatienceExit(CalibratedRule):
    """PABEE (Zhou et al. 2020): exit once ``patience`` consecutive heads agree on the argmax.

    With ``patience`` unset it is calibrated on the calib split (the cheapest patience
    within ``max_accuracy_loss`` of the full network).
    """

    class Params(CalibratedParams):
        patience: PositiveInt | None = Field(
            None,
            description=(
                "consecutive heads that must agree on the class before exiting, >= 1 (unset: calibrated)"
            ),
        )

    def __init__(self, patience: int | None, max_accuracy_loss: float):
        super().__init__(patience, max_accuracy_loss)

    def candidates(self, calib):
        return range(1, calib.probs.shape[0] + 1)

    @staticmethod
    def rule(patience: int, probs: np.ndarray) -> ExitPlan:
        top = probs.argmax(-1)  # [n_exits, n]
        run = np.ones(top.shape, int)  # length of the agreeing run ending at each head
        for k in range(1, top.shape[0]):
            run[k] = np.where(top[k] == top[k - 1], run[k - 1] + 1, 1)
        return sequential(first_true(run >= patience), probs.shape[0])
