"""XRBench's EDPGreedy baseline."""

from __future__ import annotations

from collections.abc import Callable

from policies.scheduling.base import AcceleratorView, JobView
from policies.scheduling.latency_greedy import LatencyGreedy
from sim.registry import register


@register("scheduling", "edp_greedy")
class EDPGreedy(LatencyGreedy):
    """XRBench EDPGreedy: jobs in queue order, each to the idle accelerator with the lowest per-layer EDP.

    As the XRBench runtime computes it (``HET_runtime.hpp``, ``DispatchJobs``): the
    energy-delay product of a job on an accelerator is the sum over its (remaining)
    layers of layer latency x layer energy there, not the whole model's latency x
    energy; the lowest wins, the lower index on ties. Queue order as ``latency_greedy``
    (the head of the pool's ready list). No params.
    """

    @staticmethod
    def cost(job: JobView) -> Callable[[AcceleratorView], float]:
        return job.remaining_edp_js
