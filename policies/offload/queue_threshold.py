"""Offload when the device's queue is long."""

from pydantic import Field, NonNegativeInt

from sim.config import StrictModel
from sim.registry import register


@register("offload", "queue_threshold")
class QueueThreshold:
    """Offload a request when at least ``max_queue`` others still wait on its device."""

    class Params(StrictModel):
        max_queue: NonNegativeInt = Field(
            2, description="offload a request when at least this many others wait on its device"
        )

    def __init__(self, max_queue: int):
        self.max_queue = max_queue

    def decide(self, queue_length: int, local_s: float, remote_s: float, time_left_s: float) -> bool:
        return queue_length >= self.max_queue
