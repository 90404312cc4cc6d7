"""Always the highest frequency."""

from sim.registry import register


@register("dvfs", "performance")
class Performance:
    """Linux ``performance``: always the highest operating point."""

    def select(self, points, work, deadline_s, now, device):
        return len(points) - 1
