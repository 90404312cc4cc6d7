"""A multi-accelerator system in simulated time: a ready queue, accelerators, a scheduler.

Jobs are frames of a model, split into layer blocks whose per-accelerator latency and
energy were computed once (:class:`ModelCost`), so the event loop only does lookups.
One accelerator runs one job at a time. At model granularity a started job keeps the
accelerator to the end (no preemption, as in XRBench's runtime); at block granularity
it hands the accelerator back after each block and the scheduler decides again, so
urgent work can take over between blocks.

A context switch costs ``context_switch_s``: a partly executed job that resumes on an
accelerator which ran another job since (or on a different accelerator) pays it once,
at the start of the resumed stretch, for saving and restoring its on-chip state. The
pool charges it, not the scheduler, so every policy pays it alike. The accelerator
counts as busy meanwhile and draws its idle power (the off-chip traffic's own energy
is not modelled); a job resuming where it left off, with nothing in between, pays
nothing.

The ready list stays in the order jobs first became ready (or sorted by the
pool's ``ready_key``): a job handing its accelerator back between blocks re-enters
at its place, ahead of jobs with an equal key. A job still waiting at its deadline
is dropped; the check runs before every decision, so no expired job is ever started,
and the drop is stamped with the deadline time.
Events per job: one SimPy ``Timeout`` per executed stretch, with a callback, no
process; the ready list stays short because expired jobs leave it.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any

import numpy as np
import simpy
from simpy.events import Timeout

from sim.recorder import Table

# job status codes (the frames table's `status` categories, in this order)
WAITING, READY, RUNNING, COMPLETED, DROPPED, IN_FLIGHT = range(6)
STATUS_NAMES = ("waiting", "ready", "running", "completed", "dropped", "in_flight")


class ModelCost:
    """A model's per-block cost on each accelerator of a system.

    ``cum_latency_s[a][b]`` is the latency of blocks ``0..b-1`` on accelerator ``a``
    (length ``n_blocks + 1``); likewise ``cum_energy_j``, and ``cum_edp_js`` for the
    sum over those blocks' layers of layer latency x layer energy (XRBench's EDP, which
    its runtime sums per layer). Prefix sums make the cost of any run of blocks one
    subtraction. Without ``block_edp_js`` each block counts as one layer.
    """

    __slots__ = (
        "name",
        "index",
        "priority",
        "period_s",
        "variant",
        "accuracy",
        "n_blocks",
        "cum_latency_s",
        "cum_energy_j",
        "cum_edp_js",
    )

    def __init__(
        self,
        name: str,
        index: int,
        block_latency_s: np.ndarray,
        block_energy_j: np.ndarray,
        priority: float = 1.0,
        period_s: float = math.inf,
        variant: int = 0,
        accuracy: float = math.nan,
        block_edp_js: np.ndarray | None = None,
    ):
        if block_edp_js is None:
            block_edp_js = block_latency_s * block_energy_j
        shape = block_latency_s.shape
        if block_energy_j.shape != shape or block_edp_js.shape != shape or block_latency_s.ndim != 2:
            raise ValueError("block latency, energy and EDP must all be [n_accel, n_blocks]")
        self.name = name
        self.index = index
        self.priority = priority
        self.period_s = period_s  # frame period of the model's stream
        self.variant = variant  # sub-network (supernet width) index; 0 for plain models
        self.accuracy = accuracy  # accuracy of this variant; NaN where not measured
        self.n_blocks = block_latency_s.shape[1]
        self.cum_latency_s = _prefix_sums(block_latency_s)
        self.cum_energy_j = _prefix_sums(block_energy_j)
        self.cum_edp_js = _prefix_sums(block_edp_js)


def _prefix_sums(per_block: np.ndarray) -> list[list[float]]:
    """``[a][b]``: sum of blocks ``0..b-1`` on accelerator ``a``, as lists for fast lookups."""
    zero = np.zeros((per_block.shape[0], 1))
    return np.concatenate([zero, np.cumsum(per_block, axis=1)], axis=1).tolist()


class Job:
    """One frame of one model: the unit the scheduler places."""

    __slots__ = (
        "model",
        "frame",
        "arrival_s",
        "ready_s",
        "deadline_s",
        "scale",
        "work",
        "next_block",
        "start_s",
        "energy_j",
        "accel",
        "status",
        "children",
        "waiting",
    )

    def __init__(
        self,
        model: ModelCost,
        frame: int,
        arrival_s: float,
        deadline_s: float,
        scale: float = 1.0,
        work: float = 1.0,
    ):
        self.model = model
        self.frame = frame
        self.arrival_s = arrival_s
        self.ready_s = math.nan
        self.deadline_s = deadline_s
        self.work = work  # amount of work of this frame's input (scales latency and energy)
        self.scale = scale * work  # latency multiplier: work times service-time variability
        self.next_block = 0
        self.start_s = math.nan
        self.energy_j = 0.0
        self.accel = -1
        self.status = WAITING
        self.children: list[Job] | None = None  # jobs that wait for this one
        self.waiting = 0  # upstream jobs not yet completed

    def remaining_latency_s(self, accel: Accelerator) -> float:
        cum = self.model.cum_latency_s[accel.index]
        return (cum[-1] - cum[self.next_block]) * self.scale

    def remaining_energy_j(self, accel: Accelerator) -> float:
        cum = self.model.cum_energy_j[accel.index]
        return (cum[-1] - cum[self.next_block]) * self.work

    def remaining_edp_js(self, accel: Accelerator) -> float:
        """Sum over the remaining layers of layer latency x layer energy (XRBench EDPGreedy)."""
        cum = self.model.cum_edp_js[accel.index]
        return (cum[-1] - cum[self.next_block]) * self.scale * self.work

    def next_block_latency_s(self, accel: Accelerator) -> float:
        cum = self.model.cum_latency_s[accel.index]
        return (cum[self.next_block + 1] - cum[self.next_block]) * self.scale


class Accelerator:
    """Run-time state of one accelerator; schedulers see it read-only.

    ``job`` is the running job (None when idle) and ``busy_until_s`` the end of its
    current stretch (or of the last one, which has passed when it is idle);
    ``last_job`` is the job that ran last and ``switches`` counts the context switches
    charged here.
    """

    __slots__ = (
        "index",
        "name",
        "num_pes",
        "dataflow",
        "idle_power_w",
        "busy_s",
        "busy_energy_j",
        "job",
        "seg_start_s",
        "busy_until_s",
        "seg_end_block",
        "seg_energy_j",
        "on_done",
        "last_job",
        "switches",
    )

    def __init__(self, index: int, spec: Any):
        self.index = index
        self.name = spec.name
        self.num_pes = spec.num_pes
        self.dataflow = spec.dataflow
        self.idle_power_w = spec.idle_power_w
        self.busy_s = 0.0
        self.busy_energy_j = 0.0
        self.job: Job | None = None
        self.seg_start_s = 0.0
        self.busy_until_s = 0.0  # end of the current (or last) stretch: idle once it has passed
        self.seg_end_block = 0
        self.seg_energy_j = 0.0
        self.on_done: Callable[[Any], None] | None = None
        self.last_job: Job | None = None
        self.switches = 0


_by_index = attrgetter("index")
_by_ready = attrgetter("ready_s")


class AcceleratorPool:
    """Ready queue + accelerators + scheduler, driven by SimPy events.

    ``on_complete(job, now)`` and ``on_drop(job, when)`` tell the owner (the scenario)
    what became of a job; ``segments`` receives one row per stretch of execution
    (a context switch included in the stretch it precedes). A scheduler's optional
    ``setup(accelerators, models)`` runs once here.
    """

    def __init__(
        self,
        env: simpy.Environment,
        accelerators: Sequence[Any],
        scheduler: Any,
        *,
        block_granularity: bool,
        on_complete: Callable[[Job, float], None],
        on_drop: Callable[[Job, float], None],
        model_names: Sequence[str],
        models: Sequence[ModelCost] = (),
        ready_key: Callable[[Job], Any] | None = None,
        context_switch_s: float = 0.0,
    ):
        self.env = env
        self.context_switch_s = context_switch_s
        self.scheduler = scheduler
        self.block_granularity = block_granularity
        self.on_complete = on_complete
        self.on_drop = on_drop
        self.accelerators = [Accelerator(i, spec) for i, spec in enumerate(accelerators)]
        # optional scheduler hooks (see policies/scheduling/base.py)
        self._sched_complete = getattr(scheduler, "on_complete", None)
        self._sched_drop = getattr(scheduler, "on_drop", None)
        setup = getattr(scheduler, "setup", None)
        if setup is not None:
            setup(self.accelerators, list(models))
        for accel in self.accelerators:
            accel.on_done = self._make_done(accel)
        self.idle: list[Accelerator] = list(self.accelerators)
        self.ready: list[Job] = []
        # keep the ready list sorted by this key (stable), else in the order jobs became ready
        self._ready_key = ready_key
        self.decisions = 0
        self.segments = Table(
            {
                "accel": "i2",
                "model": "i2",
                "frame": "i8",
                "block_start": "i2",
                "block_end": "i2",
                "start_s": "f8",
                "end_s": "f8",
                "energy_j": "f8",
            },
            categories={"model": model_names},
        )
        seg = self.segments
        self._seg_append = tuple(
            seg.appender(c)
            for c in ("accel", "model", "frame", "block_start", "block_end", "start_s", "end_s", "energy_j")
        )

    def _make_done(self, accel: Accelerator) -> Callable[[Any], None]:
        def done(_event: Any) -> None:
            self._finish(accel)

        return done

    # -- entering and leaving the queue ------------------------------------------------
    def submit(self, job: Job) -> None:
        """``job`` is ready to run now."""
        job.ready_s = self.env.now
        self._enqueue(job)
        if self.idle:
            self._dispatch()

    def submit_all(self, jobs: Sequence[Job]) -> None:
        """Several jobs are ready now: queue them all, then decide once."""
        for job in jobs:
            job.ready_s = self.env.now
            self._enqueue(job)
        if self.idle:
            self._dispatch()

    def _enqueue(self, job: Job) -> None:
        job.status = READY
        if self._ready_key is None:
            self.ready.append(job)
        else:
            insort(self.ready, job, key=self._ready_key)

    def _requeue(self, job: Job) -> None:
        """A job back between blocks: at its place in the queue, ahead of equal keys (it was there first).

        Without a ``ready_key`` the list is in first-ready order, so "ties to the job
        ready first" still holds, and a job keeps the accelerator it is on.
        """
        job.status = READY
        ready, key = self.ready, self._ready_key or _by_ready
        ready.insert(bisect_left(ready, key(job), key=key), job)

    def _purge(self, now: float) -> None:
        """Drop every ready job whose deadline has come (XRBench: queued at deadline)."""
        ready = self.ready
        expired = [job for job in ready if job.deadline_s <= now]
        if expired:
            for job in expired:
                ready.remove(job)
                job.status = DROPPED
                self.on_drop(job, job.deadline_s)
                if self._sched_drop is not None:
                    self._sched_drop(job, now)

    # -- decisions and execution -------------------------------------------------------
    def _dispatch(self) -> None:
        ready = self.ready
        if not ready:
            return
        now = self.env.now
        self._purge(now)
        idle = self.idle
        pick = self.scheduler.pick
        while ready and idle:
            self.decisions += 1
            choice = pick(ready, idle, now)
            if choice is None:
                break
            try:
                job, accel = choice
                ready.remove(job)
                idle.remove(accel)
            except (TypeError, ValueError):  # not a pair, or not one of the jobs / accelerators offered
                raise self._bad_pick(choice) from None
            self._start(job, accel, now)

    def _bad_pick(self, choice: Any) -> Exception:
        """The one-line error for a scheduler that returned something it may not."""
        from sim.errors import bad_decision

        need = "None or a (job, accelerator) pair from the ready jobs and idle accelerators it was given"
        return bad_decision(self.scheduler, "pick", choice, need)

    def _start(self, job: Job, accel: Accelerator, now: float) -> None:
        first = job.next_block
        end = first + 1 if self.block_granularity else job.model.n_blocks
        a = accel.index
        cum_lat = job.model.cum_latency_s[a]
        cum_en = job.model.cum_energy_j[a]
        if job.start_s != job.start_s:  # NaN: first start
            job.start_s = now
        job.status = RUNNING
        accel.job = job
        accel.seg_start_s = now
        accel.seg_end_block = end
        energy = (cum_en[end] - cum_en[first]) * job.work
        delay = (cum_lat[end] - cum_lat[first]) * job.scale
        if first and (accel.last_job is not job or job.accel != a):
            # a partly run job whose state is not on this accelerator: restore it first
            delay += self.context_switch_s
            energy += accel.idle_power_w * self.context_switch_s
            accel.switches += 1
        accel.last_job = job
        job.accel = a
        accel.seg_energy_j = energy
        accel.busy_until_s = now + delay
        Timeout(self.env, delay).callbacks.append(accel.on_done)

    def _finish(self, accel: Accelerator) -> None:
        job = accel.job
        now = self.env.now
        energy = accel.seg_energy_j
        self._record_segment(accel, job, now, energy)
        accel.busy_s += now - accel.seg_start_s
        accel.busy_energy_j += energy
        accel.job = None
        job.energy_j += energy
        job.next_block = accel.seg_end_block
        insort(self.idle, accel, key=_by_index)
        if job.next_block == job.model.n_blocks:
            job.status = COMPLETED
            self.on_complete(job, now)
            if self._sched_complete is not None:
                self._sched_complete(job, now)
        else:
            self._requeue(job)
        self._dispatch()

    def _record_segment(self, accel: Accelerator, job: Job, end_s: float, energy: float) -> None:
        acc, mod, frm, b0, b1, t0, t1, en = self._seg_append
        acc(accel.index)
        mod(job.model.index)
        frm(job.frame)
        b0(job.next_block)
        b1(accel.seg_end_block)
        t0(accel.seg_start_s)
        t1(end_s)
        en(energy)

    def finish(self, end_s: float) -> list[Job]:
        """Close the books at ``end_s``: drop what expired, pro-rate running stretches.

        A stretch still running at the end is charged the elapsed share of its energy,
        so energy stays the integral of power over ``[0, end_s]``. Returns the jobs
        still in flight (ready or running).
        """
        self._purge(end_s)
        in_flight = list(self.ready)
        for accel in self.accelerators:
            job = accel.job
            if job is None:
                continue
            span = accel.busy_until_s - accel.seg_start_s
            share = (end_s - accel.seg_start_s) / span if span > 0 else 1.0
            energy = accel.seg_energy_j * share
            self._record_segment(accel, job, end_s, energy)
            accel.busy_s += end_s - accel.seg_start_s
            accel.busy_energy_j += energy
            job.energy_j += energy
            in_flight.append(job)
        return in_flight
