"""Earliest deadline first."""

from policies.scheduling.base import fastest
from sim.registry import register


@register("scheduling", "edf")
class EDF:
    """Earliest deadline first, placed by XRBench's LatencyGreedy.

    The ready job with the nearest deadline (Liu & Layland); ties go to the earlier
    ready job (``min`` keeps the first of equal keys and the ready list is in the order
    jobs became ready). It runs on the idle accelerator with the lowest latency for its
    remaining work (lower index on ties), as the XRBench runtime places every job.
    """

    def pick(self, ready, idle, now):
        job = min(ready, key=_deadline)
        return job, fastest(job, idle)


def _deadline(job):
    return job.deadline_s
