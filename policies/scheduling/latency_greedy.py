"""XRBench's LatencyGreedy baseline."""

from policies.scheduling.base import arrival, fastest
from sim.registry import register


@register("scheduling", "latency_greedy")
class LatencyGreedy:
    """XRBench LatencyGreedy: jobs in arrival order, each to the idle accelerator with the lowest latency."""

    def pick(self, ready, idle, now):
        job = min(ready, key=arrival)
        return job, fastest(job, idle)
