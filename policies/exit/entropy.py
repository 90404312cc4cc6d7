"""BranchyNet: exit when the prediction's entropy is low enough, one threshold per exit."""

import numpy as np
from pydantic import Field, PositiveInt, field_validator

from policies.exit.base import (
    CalibratedParams,
    CalibratedRule,
    Calibration,
    ExitPlan,
    calibrate,
    entropy,
    first_true,
    sequential,
)
from sim.errors import ConfigError
from sim.registry import register

GRID = np.linspace(0.0, 1.0, 101)  # candidate thresholds of normalised entropy


@register("exit", "entropy")
class EntropyExit(CalibratedRule):
    """BranchyNet (Teerapittayanon et al. 2016): exit at the first head whose normalised entropy
    is below that head's threshold T_k (the last head takes whatever is left).

    ``threshold``: one value for every head, or a list of one per head. Unset, it is calibrated
    on the calib split, always within ``max_accuracy_loss`` of the full network's calib
    accuracy: first the cheapest shared threshold of a 0.01 grid; then, with ``per_exit``
    (BranchyNet's per-exit T_k; the paper sets them by hand, this search is assumed),
    coordinate descent: head by head, shallowest first, the grid value that makes the whole
    rule cheapest with the other heads' thresholds fixed, for up to ``passes`` sweeps or
    until a sweep changes nothing. Every step keeps the accuracy constraint, so the result
    costs at most what the shared threshold does on the calib split.
    """

    class Params(CalibratedParams):
        threshold: float | list[float] | None = Field(
            None,
            description="exit below this normalised entropy, in [0, 1]: one number or one per exit "
            "(unset: calibrated)",
        )
        per_exit: bool = Field(True, description="calibrate one threshold per exit (else one shared)")
        passes: PositiveInt = Field(
            3, description="most coordinate-descent sweeps of the per-exit calibration"
        )

        @field_validator("threshold")
        @classmethod
        def _in_unit_interval(cls, value):
            values = [] if value is None else value if isinstance(value, list) else [value]
            if any(not 0.0 <= t <= 1.0 for t in values):  # NaN too
                raise ValueError("must be in [0, 1]: one number, or one per exit")
            return value

    def __init__(self, threshold, max_accuracy_loss: float, per_exit: bool = True, passes: int = 3):
        super().__init__(threshold, max_accuracy_loss)
        self.per_exit, self.passes = per_exit, passes

    def candidates(self, calib):
        return GRID

    def fit(self, calib: Calibration) -> None:
        n_exits = calib.probs.shape[0]
        if isinstance(self.setting, list) and len(self.setting) != n_exits:
            raise ConfigError(
                f"exit_policy.params.threshold: {len(self.setting)} thresholds for a network with "
                f"{n_exits} exits; give one per exit or a single number"
            )
        if self.setting is not None:
            return
        h = entropy(calib.probs)  # once, not per candidate
        shared = calibrate(
            GRID, lambda t, probs: self._rule(np.full(n_exits, t), h), calib, self.max_accuracy_loss
        )
        thresholds = np.full(n_exits, float(shared))
        if self.per_exit:
            self._descend(thresholds, h, calib)
        self.setting = thresholds.tolist()

    def _descend(self, thresholds: np.ndarray, h: np.ndarray, calib: Calibration) -> None:
        """Coordinate descent on ``thresholds`` in place: per head, every grid value at once
        (the inputs reaching head k leave there or at their next exit under the other heads)."""
        n_exits, n = h.shape
        correct = calib.probs.argmax(-1) == calib.labels
        cost = np.cumsum(calib.segment_macs) + np.cumsum(calib.head_macs)  # every head up to the exit
        target = correct[-1].mean() - self.max_accuracy_loss
        rows = np.arange(n)
        for _ in range(self.passes):
            before = thresholds.copy()
            for k in range(n_exits - 1):
                leaves = h < thresholds[:, None]
                leaves[-1] = True
                reach = ~leaves[:k].any(0)
                now = leaves.argmax(0)
                after = k + 1 + leaves[k + 1 :].argmax(0)  # the exit taken if head k lets it pass
                exits = np.where(reach & (h[k] < GRID[:, None]), k, np.where(reach, after, now))
                accuracy, macs = correct[exits, rows].mean(1), cost[exits].mean(1)
                ok = accuracy >= target
                if not ok.any():
                    return  # not even the shared threshold met it: keep the fallback
                best = np.flatnonzero(ok)[np.argmin(macs[ok])]
                current = cost[now].mean()
                if macs[best] < current:  # otherwise keep it: no grid value is cheaper
                    thresholds[k] = GRID[best]
            if np.array_equal(before, thresholds):
                return

    @staticmethod
    def _rule(thresholds: np.ndarray, h: np.ndarray) -> ExitPlan:
        return sequential(first_true(h < thresholds[:, None]), h.shape[0])

    @staticmethod
    def rule(threshold, probs: np.ndarray) -> ExitPlan:
        return EntropyExit._rule(
            np.broadcast_to(np.asarray(threshold, float), probs.shape[:1]), entropy(probs)
        )
