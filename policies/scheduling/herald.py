"""Herald's dataflow-affinity placement (reconstruction)."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from policies.scheduling.base import AcceleratorView, JobView, ModelView, Pair
from sim.config import StrictModel
from sim.registry import register


@register("scheduling", "herald")
class Herald:
    """Herald: each layer block runs only on the accelerator whose dataflow suits it best; EDF among them.

    Reconstructed from Kwon et al., "Heterogeneous Dataflow Accelerators for Multi-DNN
    Workloads", HPCA 2021. Herald co-designs a heterogeneous-dataflow accelerator and
    a layer scheduler that places each layer on the sub-accelerator whose dataflow
    suits it (affinity), then balances the load. Here:

    - affinity: each (model, layer block) is placed once, on the accelerator where that
      block runs fastest (lowest index on ties), computed the first time a job reaches
      the block and kept for the run (a static placement, as in Herald). At
      ``granularity: model`` a model is one block, so this is whole-model affinity;
    - ``placement`` pins every block of a named model to a named accelerator instead;
    - a job's next block runs only on its placed accelerator: if that one is busy the
      job waits, even when others are idle;
    - among jobs whose placed accelerator is idle, earliest deadline first (ties to the
      earlier ready job); assumed, as Herald orders layers offline for throughput and
      our jobs carry deadlines;
    - assumed: Herald's load-balancing pass, which moves layers off overloaded
      accelerators, is left out, so the placement stays purely by affinity.
    """

    class Params(StrictModel):
        placement: dict[str, str] = Field(
            default_factory=dict, description="model name -> accelerator name, overriding affinity"
        )

    def __init__(self, placement: dict[str, str] | None = None):
        self._placement = dict(placement or {})
        self._accels: list[AcceleratorView] = []
        self._pinned: dict[str, int] = {}  # model name -> accelerator index
        self._home: dict[tuple[ModelView, int], int] = {}  # (model, block) -> accelerator index

    @classmethod
    def check(cls, params: Params, accelerator_names: list[str], model_names: list[str]) -> list[str]:
        """One line per placement entry naming an unknown model or accelerator."""
        problems = []
        for model, accel in params.placement.items():
            if model not in model_names:
                problems.append(
                    f"placement.{model}: unknown model {model!r}; known: {', '.join(model_names)}"
                )
            if accel not in accelerator_names:
                problems.append(
                    f"placement.{model}: unknown accelerator {accel!r}; known: {', '.join(accelerator_names)}"
                )
        return problems

    def setup(self, accelerators: Sequence[AcceleratorView], models: Sequence[ModelView]) -> None:
        self._accels = list(accelerators)
        index = {a.name: a.index for a in accelerators}
        unknown = sorted(set(self._placement.values()) - index.keys())
        if unknown:
            raise ValueError(f"herald placement: unknown accelerator(s) {unknown}; known: {', '.join(index)}")
        self._pinned = {model: index[accel] for model, accel in self._placement.items()}
        self._home.clear()

    def pick(self, ready: Sequence[JobView], idle: Sequence[AcceleratorView], now: float) -> Pair | None:
        free = {a.index: a for a in idle}
        choice = None
        for job in ready:
            accel = free.get(self._placed(job))
            if accel is not None and (choice is None or job.deadline_s < choice[0].deadline_s):
                choice = job, accel
        return choice

    def _placed(self, job: JobView) -> int:
        """Index of the accelerator that runs ``job``'s next block."""
        pinned = self._pinned.get(job.model.name)
        if pinned is not None:
            return pinned
        key = (job.model, job.next_block)
        home = self._home.get(key)
        if home is None:
            home = self._home[key] = min(self._accels, key=job.next_block_latency_s).index
        return home
