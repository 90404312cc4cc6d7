"""Always the lowest frequency."""

from sim.registry import register


@register("dvfs", "powersave")
class Powersave:
    """Linux ``powersave``: always the lowest operating point, deadlines or not."""

    def select(self, points, work, deadline_s, now, device):
        return 0
