"""Round robin over models."""

from sim.registry import register


@register("scheduling", "round_robin")
class RoundRobin:
    """Round robin: models take turns, each served earliest-ready-first on the first idle accelerator."""

    def __init__(self):
        self._last = -1  # index of the model served last

    def pick(self, ready, idle, now):
        last = self._last
        # models after `last` first (False sorts before True), then by index and arrival
        job = min(ready, key=lambda j: (j.model.index <= last, j.model.index, j.arrival_s))
        self._last = job.model.index
        return job, idle[0]
