"""Deadline-aware DVFS on the predicted remaining work: the DVFS half of Predictive Exit."""

from policies.dvfs.base import lowest_fitting
from sim.registry import register


@register("dvfs", "predictive")
class Predictive:
    """Predictive Exit's DVFS (Li et al., AAAI 2023), reconstructed: lowest frequency for the predicted work.

    The paper predicts the exit point (the remaining layers) and sets frequency and
    voltage from the predicted remaining work; its DVFS tables and rule are not
    public. Assumed here: the deadline-aware rule (lowest point whose switch plus
    execution time fits the time left; the highest if none) applied to
    ``work.macs``/``work.bytes_moved``, the layers the caller's predictor expects to
    run. A predicted early exit means less work, so a lower point than
    ``deadline_aware`` picks; a too-optimistic prediction can miss the deadline,
    which is the trade the paper makes.
    """

    def select(self, points, work, deadline_s, now, device):
        return lowest_fitting(points, work.macs, work.bytes_moved, deadline_s - now, device)
