"""Idle: the do-nothing control."""

from sim.registry import register


@register("scheduling", "idle")
class Idle:
    """Never starts a job, so every frame is dropped at its deadline.

    Not a scheduler anyone would use: it is the control every study runs to show that
    its metrics cannot be gamed by doing nothing (UXCost must rank it worst).
    """

    def pick(self, ready, idle, now):
        return None
