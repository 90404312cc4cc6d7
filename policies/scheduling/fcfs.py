"""First come, first served."""

from policies.scheduling.base import arrival, fastest
from sim.registry import register


@register("scheduling", "fcfs")
class FCFS:
    """First come, first served: the earliest-arrived ready job, placed by XRBench's LatencyGreedy.

    Placement is the idle accelerator with the lowest latency for the job's remaining
    work (lower index on ties), as the XRBench runtime places every job; on identical
    accelerators that is the first idle one.
    """

    def pick(self, ready, idle, now):
        job = min(ready, key=arrival)
        return job, fastest(job, idle)
