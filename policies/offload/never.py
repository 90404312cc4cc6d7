"""Never offload."""

from sim.registry import register


@register("offload", "never")
class Never:
    """Never offload: every request runs on its device."""

    def decide(self, queue_length: int, local_s: float, remote_s: float, time_left_s: float) -> bool:
        return False
