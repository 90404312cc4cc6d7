"""Planaria's task scheduling (reconstruction)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from policies.scheduling.base import AcceleratorView, JobView, Pair, fastest
from sim.registry import register


@register("scheduling", "planaria")
class Planaria:
    """Planaria: the job with the highest priority / slack first, on its fastest idle accelerator.

    Reconstructed from Ghodrati et al., "Planaria: Dynamic Architecture Fission for
    Spatial Multi-Tenant Acceleration of DNNs", MICRO 2020. The real system fissions
    one systolic array into subarrays and sizes each tenant's share by a score of
    priority over slack to its deadline. Here the accelerators are fixed units, so
    fission is not modelled; the task scheduling is kept:

    - slack = deadline - now - remaining latency on the job's fastest idle accelerator;
    - jobs with slack >= 0 go first, highest ``priority / slack`` first (zero slack
      first of all; priority 0 after every positive priority);
    - assumed: a job that can no longer meet its deadline on any idle accelerator
      (slack < 0) goes after every feasible job, least late first, since the score
      is meaningless for negative slack;
    - the chosen job runs on its fastest idle accelerator; ties go to the earlier
      ready job and the lower accelerator index.

    At ``granularity: layer_block`` Planaria re-allocates at every block boundary, the
    counterpart of its re-fission when tasks arrive or finish: the running job hands
    its accelerator back, the order is re-evaluated, and each job goes to its fastest
    idle accelerator then, which may be another one than before (paying the pool's
    context switch to move its state). No constants are assumed, so there are no
    params.
    """

    def pick(self, ready: Sequence[JobView], idle: Sequence[AcceleratorView], now: float) -> Pair | None:
        choice, best = None, None
        for job in ready:
            accel = fastest(job, idle)
            key = _rank(job.deadline_s - now - job.remaining_latency_s(accel), job.model.priority)
            if best is None or key < best:
                choice, best = (job, accel), key
        return choice


def _rank(slack: float, priority: float) -> tuple[int, float]:
    """Sort key: feasible jobs by slack per unit priority (highest priority/slack first), then late ones."""
    if slack < 0:
        return 1, -slack
    return 0, slack / priority if priority > 0 else math.inf
