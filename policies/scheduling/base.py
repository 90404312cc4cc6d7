"""What a scheduler sees and returns.

A scheduler is consulted whenever a job becomes ready or an accelerator frees up.
It receives the ready jobs and the idle accelerators as read-only views and returns
one ``(job, accelerator)`` pair to start, or ``None`` to leave the rest waiting; the
engine asks again until it says ``None`` or nothing is left to pair. Views must not
be mutated. A scheduler is a plain class registered with
``@register("scheduling", "name")``; see ``docs/extending.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class ModelView(Protocol):
    name: str
    index: int  # the stream's index in the scenario
    priority: float
    n_blocks: int
    period_s: float
    variant: int  # sub-network (supernet width) index; 0 for plain models
    accuracy: float  # of this variant; NaN where not measured
    cum_latency_s: list[list[float]]  # [accel][b]: latency of blocks 0..b-1 (prefix sums)
    cum_energy_j: list[list[float]]
    cum_edp_js: list[list[float]]  # [accel][b]: sum over blocks 0..b-1's layers of latency x energy


class AcceleratorView(Protocol):
    index: int
    name: str
    num_pes: int
    dataflow: str
    job: JobView | None  # running job, None when idle
    busy_until_s: float  # end of the running (or last) stretch; <= now when idle


class JobView(Protocol):
    model: ModelView
    frame: int
    arrival_s: float
    ready_s: float
    deadline_s: float
    next_block: int
    start_s: float  # NaN until first started

    def remaining_latency_s(self, accel: AcceleratorView) -> float: ...
    def remaining_energy_j(self, accel: AcceleratorView) -> float: ...
    def remaining_edp_js(self, accel: AcceleratorView) -> float: ...  # per-layer sum, as XRBench
    def next_block_latency_s(self, accel: AcceleratorView) -> float: ...


Pair = tuple[JobView, AcceleratorView]


class Scheduler(Protocol):
    """The one required method; optional hooks the engine calls when a scheduler has them:

    - ``setup(accelerators, models)``: once before the run, with every accelerator and model view;
    - ``on_complete(job, now)`` / ``on_drop(job, now)``: feedback as jobs leave the system;
    - ``choose_variant(variants, now) -> int``: the supernet width of a new frame (``variants``
      are the model views of one stream, one per width, ascending);
    - ``check(params, accelerator_names, model_names) -> list[str]`` (classmethod): problems of
      the params against the scenario, reported at load time under ``scheduler.params``.
    """

    def pick(self, ready: Sequence[JobView], idle: Sequence[AcceleratorView], now: float) -> Pair | None: ...


def fastest(job: JobView, idle: Sequence[AcceleratorView]) -> AcceleratorView:
    """The idle accelerator that finishes ``job``'s remaining work soonest (XRBench's LatencyGreedy).

    Ties go to the lower index, as the reference's strict ``<`` over accelerator ids does.
    """
    return min(idle, key=job.remaining_latency_s)


def arrival(job: JobView) -> float:
    """Sort key: arrival time (first come, first served)."""
    return job.arrival_s
