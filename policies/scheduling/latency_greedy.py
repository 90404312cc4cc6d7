"""XRBench's LatencyGreedy baseline."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from policies.scheduling.base import AcceleratorView, JobView, Pair
from sim.registry import register


@register("scheduling", "latency_greedy")
class LatencyGreedy:
    """XRBench LatencyGreedy: jobs in queue order, each to the idle accelerator with the lowest latency.

    As the XRBench runtime (``HET_runtime.hpp``, ``DispatchJobs``): the latency of a
    job on an accelerator is the sum of its (remaining) layers' latencies there, and
    the lowest wins, the lower index on ties. The policy has no order of its own: the
    reference dispatches from the head of its queues in the runtime's order, so this
    takes the head of the pool's ready list, which is the order jobs became ready
    (``runtime: exact``) or the reference's per-model queues in name order, oldest
    frame first (``runtime: xrbench``). No params.
    """

    @staticmethod
    def cost(job: JobView) -> Callable[[AcceleratorView], float]:
        """What the placement minimises over idle accelerators for ``job``."""
        return job.remaining_latency_s

    def pick(self, ready: Sequence[JobView], idle: Sequence[AcceleratorView], now: float) -> Pair | None:
        job = ready[0]
        return job, min(idle, key=self.cost(job))
