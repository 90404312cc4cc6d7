"""The slowest point that still meets the deadline with the whole network."""

from policies.dvfs.base import lowest_fitting
from sim.registry import register


@register("dvfs", "deadline_aware")
class DeadlineAware:
    """Lowest frequency at which the FULL network (no early exit) meets the deadline; the highest if none.

    The time needed at a point is the switch latency (when it is not the current
    point) plus the execution time of ``work.full_macs``/``work.full_bytes_moved``/``work.full_layers``.
    """

    def select(self, points, work, deadline_s, now, device):
        return lowest_fitting(
            points, work.full_macs, work.full_bytes_moved, deadline_s - now, device, work.full_layers
        )
