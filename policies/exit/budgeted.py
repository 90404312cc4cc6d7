"""MSDNet's budgeted exits: exit shares that follow a geometric law."""

import numpy as np
from pydantic import Field

from policies.exit.base import Calibration, ExitPlan, first_true, sequential
from sim.config import StrictModel
from sim.registry import register


@register("exit", "budgeted")
class BudgetedExit:
    """MSDNet budgeted (Huang et al. 2018): per-head confidence thresholds set on the calib split so
    the share of inputs leaving at head k follows p_k ~ q^k.

    Thresholds are found head by head: among the calib inputs still running, the most
    confident ones leave until head k has taken its share.
    """

    class Params(StrictModel):
        q: float = Field(
            0.5,
            gt=0.0,
            le=2.0,
            description="exit shares follow q^k: below 1 favours early heads, above 1 late ones, in (0, 2]",
        )

    def __init__(self, q: float):
        self.q = q
        self.thresholds: np.ndarray | None = None

    def fit(self, calib: Calibration) -> None:
        n_exits, n = calib.probs.shape[:2]
        share = self.q ** np.arange(n_exits)
        share /= share.sum()
        confidence = calib.probs.max(-1)
        remaining = np.ones(n, bool)
        thresholds = np.ones(n_exits)
        for k in range(n_exits - 1):
            take = int(round(share[k] * n))
            alive = np.flatnonzero(remaining)
            if take <= 0 or alive.size == 0:
                thresholds[k] = np.inf
                continue
            order = np.sort(confidence[k, alive])[::-1]
            thresholds[k] = order[min(take, order.size) - 1]
            remaining[alive[confidence[k, alive] >= thresholds[k]]] = False
        thresholds[-1] = 0.0
        self.thresholds = thresholds

    def plan(self, probs: np.ndarray) -> ExitPlan:
        confident = probs.max(-1) >= self.thresholds[:, None]
        return sequential(first_true(confident), probs.shape[0])
