"""Earliest deadline first."""

from sim.registry import register


@register("scheduling", "edf")
class EDF:
    """Earliest deadline first: the ready job with the nearest deadline on the first idle accelerator.

    Ties go to the earlier arrival (``min`` keeps the first of equal keys and the ready
    list is in the order jobs became ready).
    """

    def pick(self, ready, idle, now):
        return min(ready, key=_deadline), idle[0]


def _deadline(job):
    return job.deadline_s
