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
    index: int
    priority: float
    n_blocks: int


class AcceleratorView(Protocol):
    index: int
    name: str
    num_pes: int
    dataflow: str


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


Pair = tuple[JobView, AcceleratorView]


class Scheduler(Protocol):
    def pick(self, ready: Sequence[JobView], idle: Sequence[AcceleratorView], now: float) -> Pair | None: ...


def fastest(job: JobView, idle: Sequence[AcceleratorView]) -> AcceleratorView:
    """The idle accelerator that finishes ``job``'s remaining work soonest (first on ties)."""
    return min(idle, key=job.remaining_latency_s)


def arrival(job: JobView) -> float:
    """Sort key: arrival time (first come, first served)."""
    return job.arrival_s
