"""Predictive Exit's DVFS: slow down for a predicted short jump, back to the maximum after the exit."""

from sim.registry import register


@register("dvfs", "predictive")
class Predictive:
    """Predictive Exit's DVFS (Li et al., AAAI 2023), reconstructed from the paper.

    A request starts at the highest point. At every (re-)prediction of the exit policy (made
    at exit ``i``, predicting a jump of ``j`` exits with ``r`` exits left after ``i``) the
    frequency is set to the step nearest ``f_max * j / r`` (ties to the higher step): the
    predicted work runs in about the time the rest of the network would take at ``f_max``,
    assuming exits evenly spaced in work, as the paper's per-layer exits are. After the exit
    the device goes back to the highest point. Every change costs the device's switching
    latency and energy, inside the request or after it. With an exit policy that makes no
    predictions this is ``performance``.
    """

    def select(self, points, work, deadline_s, now, device):
        return len(points) - 1

    def __init__(self):
        self._steps: dict[tuple[int, int, int], int] = {}  # (id of points, jump, remaining) -> step
        self._tables: list = []  # the point tables keyed by id, kept alive so no id is reused

    def on_prediction(self, points, jump: int, remaining: int, device) -> int:
        key = (id(points), jump, remaining)
        step = self._steps.get(key)  # once per table and prediction, not once per request
        if step is None:
            target = points[-1].freq_hz * jump / remaining
            step = min(range(len(points)), key=lambda i: (abs(points[i].freq_hz - target), -i))
            self._steps[key] = step
            self._tables.append(points)
        return step

    def after_exit(self, points, device) -> int:
        return len(points) - 1
