"""PABEE: exit when consecutive heads agree."""

import numpy as np
from pydantic import Field, PositiveInt

from policies.exit.base import Calibration, ExitPlan, calibrate, first_true, sequential
from sim.config import StrictModel
from sim.registry import register


@register("exit", "patience")
class PatienceExit:
    """PABEE (Zhou et al. 2020): exit once ``patience`` consecutive heads agree on the argmax.

    With ``patience`` unset it is calibrated on the calib split (the cheapest patience
    within ``max_accuracy_loss`` of the full network).
    """

    class Params(StrictModel):
        patience: PositiveInt | None = None
        max_accuracy_loss: float = Field(0.005, ge=0.0, le=1.0)

    def __init__(self, patience: int | None, max_accuracy_loss: float):
        self.patience = patience
        self.max_accuracy_loss = max_accuracy_loss

    def fit(self, calib: Calibration) -> None:
        if self.patience is None:
            candidates = range(1, calib.probs.shape[0] + 1)
            self.patience = calibrate(candidates, _plan, calib, self.max_accuracy_loss)

    def plan(self, probs: np.ndarray) -> ExitPlan:
        return _plan(self.patience, probs)


def _plan(patience: int, probs: np.ndarray) -> ExitPlan:
    top = probs.argmax(-1)  # [n_exits, n]
    run = np.ones(top.shape, int)  # length of the agreeing run ending at each head
    for k in range(1, top.shape[0]):
        run[k] = np.where(top[k] == top[k - 1], run[k - 1] + 1, 1)
    return sequential(first_true(run >= patience), probs.shape[0])
