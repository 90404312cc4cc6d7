"""A fixed exit: every input leaves at the same head (a truncated network)."""

import numpy as np
from pydantic import Field, NonNegativeInt

from policies.exit.base import Calibration, ExitPlan
from sim.config import StrictModel
from sim.errors import ConfigError
from sim.registry import register


@register("exit", "fixed")
class FixedExit:
    """Fixed exit: every input runs the backbone to head ``exit_index`` and leaves there (truncation)."""

    class Params(StrictModel):
        exit_index: NonNegativeInt = Field(
            0, description="the head every input leaves at, 0 = first exit (must exist in the network)"
        )

    def __init__(self, exit_index: int):
        self.exit_index = exit_index

    def fit(self, calib: Calibration) -> None:
        n_exits = calib.probs.shape[0]
        if self.exit_index >= n_exits:
            raise ConfigError(
                f"exit_policy.params.exit_index: {self.exit_index} is beyond the network's exits "
                f"(0..{n_exits - 1})"
            )

    def plan(self, probs: np.ndarray) -> ExitPlan:
        n_exits, n = probs.shape[:2]
        heads = np.zeros((n, n_exits), bool)
        heads[:, self.exit_index] = True
        return ExitPlan(np.full(n, self.exit_index), heads)
