"""Offload when the device would miss the deadline and the server would not."""

from sim.registry import register


@register("offload", "deadline_risk")
class DeadlineRisk:
    """Offload when the queue ahead plus this request would overrun the deadline locally, and the
    round trip to the server fits (queue time estimated as queue length x local time)."""

    def decide(self, queue_length: int, local_s: float, remote_s: float, time_left_s: float) -> bool:
        return (queue_length + 1) * local_s > time_left_s >= remote_s
