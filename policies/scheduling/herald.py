"""Herald's dataflow-affinity placement with load balancing (reconstruction)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from pydantic import Field, PositiveFloat

from policies.scheduling.base import AcceleratorView, JobView, ModelView, Pair
from sim.config import StrictModel
from sim.registry import register


@register("scheduling", "herald")
class Herald:
    """Herald: layer blocks placed once by dataflow affinity, balanced over the accelerators; EDF among them.

    Reconstructed from Kwon et al., "Heterogeneous Dataflow Accelerators for Multi-DNN
    Workloads", HPCA 2021. Herald co-designs a heterogeneous-dataflow accelerator and
    a layer scheduler that assigns each layer to the sub-accelerator whose dataflow
    suits it (affinity) and balances the load over the sub-accelerators. The placement
    here follows the load-balanced assignment of the MAESTRO-based XRBench engine from
    the same authors (``HET_proccessor-assignment-engine.hpp``, ``LatencyBalanced``):

    - before the run, models in scenario order and their blocks in order: a block's
      affinity accelerator is where it runs fastest; the least loaded accelerator so
      far takes the block instead when the block's latency there is below
      ``balance_factor`` times its latency on the affinity one (the reference's 2).
      Ties go to the lower index. So identical accelerators share the models out, and
      a block moves off its best dataflow only when that costs less than the factor;
    - assumed: an accelerator's load is the sum of its blocks' latency x their
      stream's frame rate (its utilisation), so a 60 fps model weighs 20x a 3 fps one;
      the reference sums plain latency, the same when every rate is equal. A stream
      without a frame period counts 1 frame/s;
    - a supernet's narrower widths run their blocks where the widest width's blocks
      run (the stream's load is counted once);
    - ``placement`` pins every block of a named model to a named accelerator instead
      (its load counts there);
    - a job's next block runs only on its placed accelerator: if that one is busy the
      job waits, even when others are idle (a static placement, as in Herald);
    - among jobs whose placed accelerator is idle, earliest deadline first (ties to the
      earlier ready job); assumed, as Herald orders layers offline for throughput and
      our jobs carry deadlines.

    At ``granularity: model`` a model is one block, so whole models are placed; at
    ``layer_block`` consecutive blocks may be placed apart, and each hand-over pays the
    pool's context switch. ``home`` holds the placement: model view -> accelerator
    index per block.
    """

    class Params(StrictModel):
        placement: dict[str, str] = Field(
            default_factory=dict, description="model name -> accelerator name, overriding affinity"
        )
        balance_factor: PositiveFloat = Field(
            2.0,
            description="a less loaded accelerator takes a block when its latency there is below "
            "this times the block's best (XRBench's Herald-style assignment uses 2)",
        )

    def __init__(self, placement: dict[str, str] | None = None, balance_factor: float = 2.0):
        self._placement = dict(placement or {})
        self.balance_factor = balance_factor
        self._accels: list[AcceleratorView] = []
        self._pinned: dict[str, int] = {}  # model name -> accelerator index
        self._load: list[float] = []  # per accelerator: placed utilisation
        self.home: dict[ModelView, list[int]] = {}  # model -> accelerator index per block

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
        self._load = [0.0] * len(self._accels)
        self.home.clear()
        widest: dict[int, ModelView] = {}
        for m in models:
            if m.index not in widest or m.variant > widest[m.index].variant:
                widest[m.index] = m
        for m in widest.values():
            self._place(m)
        for m in models:
            if m not in self.home:  # a narrower width: where the widest's blocks run
                wide = self.home[widest[m.index]]
                self.home[m] = [wide[min(b, len(wide) - 1)] for b in range(m.n_blocks)]

    def _place(self, model: ModelView) -> list[int]:
        """Place ``model``'s blocks (affinity, then balance) and add their load."""
        rate = 1.0 / model.period_s if math.isfinite(model.period_s) else 1.0
        load, pinned = self._load, self._pinned.get(model.name)
        home = []
        for b in range(model.n_blocks):
            latency = [c[b + 1] - c[b] for c in model.cum_latency_s]
            if pinned is not None:
                a = pinned
            else:
                a = min(range(len(latency)), key=latency.__getitem__)
                least = min(range(len(load)), key=load.__getitem__)
                if least != a and latency[least] < self.balance_factor * latency[a]:
                    a = least
            load[a] += latency[a] * rate
            home.append(a)
        self.home[model] = home
        return home

    def pick(self, ready: Sequence[JobView], idle: Sequence[AcceleratorView], now: float) -> Pair | None:
        free = {a.index: a for a in idle}
        home = self.home
        choice = None
        for job in ready:
            placed = home.get(job.model) or self._place(job.model)
            accel = free.get(placed[job.next_block])
            if accel is not None and (choice is None or job.deadline_s < choice[0].deadline_s):
                choice = job, accel
        return choice
