"""XRBench's EDPGreedy baseline."""

from policies.scheduling.base import arrival
from sim.registry import register


@register("scheduling", "edp_greedy")
class EDPGreedy:
    """XRBench EDPGreedy: jobs in arrival order, each to the idle accelerator of lowest energy x latency."""

    def pick(self, ready, idle, now):
        job = min(ready, key=arrival)
        return job, min(idle, key=lambda a: job.remaining_energy_j(a) * job.remaining_latency_s(a))
