"""PREMA's token-based predictive scheduling (reconstruction)."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from policies.scheduling.base import AcceleratorView, JobView, ModelView, Pair, fastest
from sim.config import StrictModel
from sim.registry import register


@register("scheduling", "prema")
class PREMA:
    """PREMA: jobs earn tokens (priority x slowdown); among those over a threshold, the shortest runs.

    Reconstructed from Choi & Rhu, "PREMA: A Predictive Multi-task Scheduling Algorithm
    For Preemptible Neural Processing Units", HPCA 2020. PREMA predicts each task's
    run time, grows a token per task by its priority times its slowdown, makes the
    tasks whose token reaches a threshold candidates, and runs the shortest candidate,
    preempting the running task when needed. Here:

    - isolated time: the job's whole latency on its best accelerator (over all of
      them, idle or not), taken when the scheduler first sees the job; isolated
      remaining time: likewise from the job's next block;
    - slowdown = (now - ready + isolated remaining) / isolated, the predicted slowdown
      if the job ran alone from now on; "ready" is when the job joined the queue (for
      a dependent model, when its upstream finished), PREMA's arrival at the NPU;
    - token = priority x slowdown, computed at each decision. It grows with waiting
      time, the continuous-time form of PREMA's per-period accumulation, which in an
      event-driven engine would depend on how often the scheduler happens to be asked;
    - candidates: jobs with token >= ``token_threshold``; assumed: if none reaches it,
      every ready job is a candidate, so the accelerators never idle with work queued;
    - the shortest candidate (least isolated remaining time) runs on its fastest idle
      accelerator; ties go to the earlier ready job.

    Preemption happens at layer-block boundaries (``granularity: layer_block``): the
    running job hands its accelerator back after each block and competes again, so a
    candidate with a shorter remaining time takes over at the next boundary. The
    preempted job pays the pool's context switch (``context_switch_s``: PREMA's
    CHECKPOINT, saving and restoring its state) when it resumes after another job ran
    on that accelerator, or on another one; PREMA's choice among CHECKPOINT, KILL and
    DRAIN is not modelled (the block boundary is the drain point, and no work is
    killed). At ``granularity: model`` it is non-preemptive.
    """

    class Params(StrictModel):
        token_threshold: float = Field(
            3.0,
            ge=0.0,
            description="token a job needs to be a candidate (assumed: a priority-1 job qualifies "
            "once its predicted slowdown reaches 3)",
        )

    def __init__(self, token_threshold: float = 3.0):
        self.token_threshold = token_threshold
        self._accels: list[AcceleratorView] = []
        self._isolated: dict[JobView, float] = {}  # isolated whole-job time per job in the system

    def setup(self, accelerators: Sequence[AcceleratorView], models: Sequence[ModelView]) -> None:
        self._accels = list(accelerators)
        self._isolated.clear()

    def on_complete(self, job: JobView, now: float) -> None:
        self._isolated.pop(job, None)

    def on_drop(self, job: JobView, now: float) -> None:
        self._isolated.pop(job, None)

    def pick(self, ready: Sequence[JobView], idle: Sequence[AcceleratorView], now: float) -> Pair | None:
        accels, isolated, threshold = self._accels, self._isolated, self.token_threshold
        best = shortest = None  # (isolated remaining time, job)
        for job in ready:
            left = min(map(job.remaining_latency_s, accels))
            total = isolated.setdefault(job, left)
            slowdown = (now - job.ready_s + left) / total if total > 0 else 1.0
            if shortest is None or left < shortest[0]:
                shortest = left, job
            if job.model.priority * slowdown >= threshold and (best is None or left < best[0]):
                best = left, job
        job = (best or shortest)[1]
        return job, fastest(job, idle)
