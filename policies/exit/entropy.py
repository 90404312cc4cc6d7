"""BranchyNet: exit when the prediction's entropy is low enough."""

import numpy as np
from pydantic import Field

from policies.exit.base import Calibration, ExitPlan, calibrate, entropy, first_true, sequential
from sim.config import StrictModel
from sim.registry import register


@register("exit", "entropy")
class EntropyExit:
    """BranchyNet (Teerapittayanon et al. 2016): exit at the first head whose normalised entropy < threshold.

    One threshold for every head (normalised entropy, in [0, 1]); with ``threshold``
    unset it is calibrated on the calib split: the cheapest of a grid whose accuracy is
    within ``max_accuracy_loss`` of the full network.
    """

    class Params(StrictModel):
        threshold: float | None = Field(None, ge=0.0, le=1.0)
        max_accuracy_loss: float = Field(0.005, ge=0.0, le=1.0)

    def __init__(self, threshold: float | None, max_accuracy_loss: float):
        self.threshold = threshold
        self.max_accuracy_loss = max_accuracy_loss

    def fit(self, calib: Calibration) -> None:
        if self.threshold is None:
            grid = np.linspace(0.0, 1.0, 101)
            self.threshold = calibrate(grid, _plan, calib, self.max_accuracy_loss)

    def plan(self, probs: np.ndarray) -> ExitPlan:
        return _plan(self.threshold, probs)


def _plan(threshold: float, probs: np.ndarray) -> ExitPlan:
    return sequential(first_true(entropy(probs) < threshold), probs.shape[0])
