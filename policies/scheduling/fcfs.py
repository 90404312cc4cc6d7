"""First come, first served."""

from policies.scheduling.base import arrival
from sim.registry import register


@register("scheduling", "fcfs")
class FCFS:
    """First come, first served: the earliest-arrived ready job on the first idle accelerator."""

    def pick(self, ready, idle, now):
        return min(ready, key=arrival), idle[0]
