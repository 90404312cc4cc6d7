"""BranchyNet: exit when the prediction's entropy is low enough."""

import numpy as np
from pydantic import Field

from policies.exit.base import CalibratedParams, CalibratedRule, ExitPlan, entropy, first_true, sequential
from sim.registry import register


@register("exit", "entropy")
class EntropyExit(CalibratedRule):
    """BranchyNet (Teerapittayanon et al. 2016): exit at the first head whose normalised entropy < threshold.

    One threshold for every head (normalised entropy, in [0, 1]); with ``threshold``
    unset it is calibrated on the calib split: the cheapest of a grid whose accuracy is
    within ``max_accuracy_loss`` of the full network.
    """

    class Params(CalibratedParams):
        threshold: float | None = Field(
            None,
            ge=0.0,
            le=1.0,
            description="exit below this normalised entropy, in [0, 1] (unset: calibrated)",
        )

    def __init__(self, threshold: float | None, max_accuracy_loss: float):
        super().__init__(threshold, max_accuracy_loss)

    def candidates(self, calib):
        return np.linspace(0.0, 1.0, 101)

    @staticmethod
    def rule(threshold: float, probs: np.ndarray) -> ExitPlan:
        return sequential(first_true(entropy(probs) < threshold), probs.shape[0])
