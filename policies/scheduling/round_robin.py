"""Round robin over models."""

from policies.scheduling.base import fastest
from sim.registry import register


@register("scheduling", "round_robin")
class RoundRobin:
    """Round robin: models take turns, each served earliest-arrival first, placed by XRBench's LatencyGreedy.

    The next model after the one served last (by stream index, wrapping around) that
    has a ready job goes next; its job runs on the idle accelerator with the lowest
    latency for its remaining work (lower index on ties).
    """

    def __init__(self):
        self._last = -1  # index of the model served last

    def pick(self, ready, idle, now):
        last = self._last
        # models after `last` first (False sorts before True), then by index and arrival
        job = min(ready, key=lambda j: (j.model.index <= last, j.model.index, j.arrival_s))
        self._last = job.model.index
        return job, fastest(job, idle)
