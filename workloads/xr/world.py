"""The ``xr`` world: frame streams with dependencies feeding a multi-accelerator system.

XRBench timing semantics: a frame's deadline is the next frame's (nominal) arrival; a
job still queued at its deadline is dropped, and so are the jobs of the same frame
that depend on it; a dependent model becomes ready when its upstream jobs of the same
frame are done. Models may join and leave in phases, and a supernet model is served
at the width its scheduler picks per frame. Costs come from the cost model once,
before the clock starts.

Two runtimes decide when a frame enters. ``exact`` (default): at its own arrival time.
``xrbench``: as the reference runtime does, a frame that has come due (its nominal,
jitter-free time) enters only at the next tick of the fastest stream or the next
completion, per-model queues are served in name order, and the work queued at
``duration_s`` is drained rather than cut off.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd

from devices.cost import ProfileTable, cost_table
from devices.system import (
    COMPLETED,
    DROPPED,
    IN_FLIGHT,
    STATUS_NAMES,
    WAITING,
    AcceleratorPool,
    Job,
    ModelCost,
)
from sim.kernel import Kernel
from sim.recorder import Table
from workloads.streams import arrivals
from workloads.xr.metrics import xr_results
from workloads.xr.models import task_layers
from workloads.xr.spec import ModelStream, XRSpec

FRAME_COLUMNS = {
    "model": "i2",
    "frame": "i8",
    "arrival_s": "f8",
    "deadline_s": "f8",
    "start_s": "f8",
    "finish_s": "f8",
    "status": "b",
    "energy_j": "f8",
    "accel": "i2",
    "accuracy": "f8",
    "worst_latency_s": "f8",
    "worst_energy_j": "f8",
}


def block_bounds(macs: np.ndarray, n_blocks: int) -> list[int]:
    """Layer indices splitting a model into ``n_blocks`` contiguous blocks of about equal MACs."""
    n_blocks = max(1, min(n_blocks, len(macs)))
    cum = np.cumsum(macs, dtype=float)
    total = cum[-1] if cum[-1] > 0 else 1.0
    cuts = [int(np.searchsorted(cum, total * k / n_blocks, side="left")) + 1 for k in range(1, n_blocks)]
    return sorted({0, len(macs), *(min(max(c, 1), len(macs) - 1) for c in cuts)})


def variant_costs(
    spec: XRSpec, system: Any, index: int, stream: ModelStream, profile: Any
) -> list[ModelCost]:
    """Per-block latency and energy of one model on every accelerator, one entry per variant.

    A task model or a MAESTRO network has one variant (profile rows name a MAESTRO
    network's layers by the network's name); a supernet has one per width (ascending), each
    costed from its own sub-network. Cost scales linearly with ``samples_per_frame``.
    """
    if stream.supernet is not None:
        from workloads.supernet import load_supernet

        net = load_supernet(stream.supernet)
        variants = [(f"{stream.supernet}@{v.width}", v.layers, v.accuracy) for v in net.variants]
    elif stream.maestro is not None:
        from devices.maestro import network_layers

        layers = network_layers(stream.maestro.file, stream.maestro.network)
        variants = [(stream.maestro.network, layers, math.nan)]
    else:
        variants = [(stream.task, task_layers(stream.task, stream.task_kwargs, stream.input_shape), math.nan)]
    n_blocks = spec.blocks_per_model if spec.granularity == "layer_block" else 1
    costs = []
    for k, (model_name, layers, accuracy) in enumerate(variants):
        latency, energy = cost_table(model_name, layers, system, profile)
        bounds = block_bounds(np.array([layer.macs for layer in layers]), n_blocks)[:-1]
        samples = stream.samples_per_frame
        costs.append(
            ModelCost(
                stream.name,
                index,
                np.add.reduceat(latency, bounds, axis=1) * samples,
                np.add.reduceat(energy, bounds, axis=1) * samples,
                priority=stream.priority,
                period_s=spec.period_s(stream.name),
                variant=k,
                accuracy=accuracy,
                block_edp_js=np.add.reduceat(latency * energy, bounds, axis=1) * samples,
            )
        )
    return costs


class _Stream:
    """Everything the event loop needs about one model, looked up once."""

    __slots__ = ("name", "variants", "default", "budget_s", "start_s", "stop_s", "scales", "works")

    def __init__(self, name, variants, default, budget_s, window, scales, works):
        self.name = name
        self.variants = variants
        self.default = default
        self.budget_s = budget_s
        self.start_s, self.stop_s = window
        self.scales = scales  # service-time factors, one per frame
        self.works = works  # input-work factors, one per frame


class XRWorld:
    """One built ``xr`` scenario, ready to :meth:`run`."""

    def __init__(self, spec: XRSpec, kernel: Kernel):
        self.spec = spec
        self.kernel = kernel
        self.env = kernel.env
        self.system = spec.hardware.build()
        streams = spec.streams()
        profile = ProfileTable.from_csv(spec.hardware.profile_csv) if spec.hardware.profile_csv else None
        self.variants = [variant_costs(spec, self.system, i, s, profile) for i, s in enumerate(streams)]
        self.costs = [v[self._default_variant(s, v)] for s, v in zip(streams, self.variants)]
        names = [m.name for m in streams]
        self.frames = Table(FRAME_COLUMNS, categories={"model": names, "status": STATUS_NAMES})
        self._row = tuple(self.frames.appender(c) for c in FRAME_COLUMNS)
        scheduler = spec.scheduler.build()
        self._choose = getattr(scheduler, "choose_variant", None)
        # per variant: (worst latency, worst energy) of a whole frame over the accelerators
        self._worst = {
            id(c): (max(lat[-1] for lat in c.cum_latency_s), max(en[-1] for en in c.cum_energy_j))
            for v in self.variants
            for c in v
        }
        self.pool = AcceleratorPool(
            self.env,
            self.system.accelerators,
            scheduler,
            block_granularity=spec.granularity == "layer_block",
            on_complete=self._complete,
            on_drop=self._drop,
            model_names=names,
            models=[c for v in self.variants for c in v],
            ready_key=_model_name if spec.runtime == "xrbench" else None,
            context_switch_s=spec.context_switch_s,
        )
        self.frames_in = [0] * len(names)
        self.streams = [self._stream(i, s) for i, s in enumerate(streams)]
        self._streams = {s.name: s for s in self.streams}
        self.end_s = spec.duration_s  # the run's end; later when the xrbench runtime drains
        self._due: list | None = None  # xrbench runtime: root streams' frame iterators

    @staticmethod
    def _default_variant(stream: ModelStream, variants: list[ModelCost]) -> int:
        if stream.supernet is None or stream.width is None:
            return len(variants) - 1  # a task's only variant, or a supernet's widest
        from workloads.supernet import load_supernet

        return load_supernet(stream.supernet).widths.index(stream.width)

    def _stream(self, index: int, stream: ModelStream) -> _Stream:
        spec, rng = self.spec, self.kernel.rng
        deadline = stream.deadline
        budget = (
            math.inf
            if deadline == "none"
            else spec.period_s(stream.name)
            if deadline == "next_frame"
            else float(deadline)
        )
        return _Stream(
            stream.name,
            self.variants[index],
            self._default_variant(stream, self.variants[index]),
            budget,
            spec.window_s(stream.name),
            spec.service_time.factors(rng(f"service/{stream.name}")),
            stream.work.factors(rng(f"work/{stream.name}")),
        )

    # -- frames entering ---------------------------------------------------------------
    def _new_job(self, stream: _Stream, frame: int, t: float, nominal: float) -> Job:
        variants = stream.variants
        pick = stream.default
        if self._choose is not None and len(variants) > 1:
            pick = self._choose(variants, self.env.now)
        cost = variants[pick]
        self.frames_in[cost.index] += 1
        return Job(cost, frame, t, nominal + stream.budget_s, next(stream.scales), next(stream.works))

    def _frames(self, name: str) -> Iterator[tuple[float, float, Any]]:
        """``(arrival_s, nominal_s, enter)`` of a root model's frames until it stops.

        ``enter(t, nominal)`` makes the frame's job at time ``t``, with the dependents it
        triggers, and returns the jobs to submit.
        """
        spec, kernel = self.spec, self.kernel
        index = {m.name: i for i, m in enumerate(spec.streams())}
        root = self._streams[name]
        graph = spec.graph()
        members = [n for n in nx.topological_sort(graph) if n in nx.descendants(graph, name)]
        pos = {name: -1, **{n: k for k, n in enumerate(members)}}
        group = []  # per descendant: stream, parent positions (-1: root), trigger draws or None
        for n in members:
            parents = sorted(graph.predecessors(n), key=index.get)
            draws = []
            for p in parents:
                prob = graph.edges[p, n]["p"]
                draws.append(None if prob >= 1.0 else _bernoulli(kernel.rng(f"trigger/{p}->{n}"), prob))
            group.append((self._streams[n], [pos[p] for p in parents], draws))
        end = min(spec.duration_s, root.stop_s)
        times = arrivals(
            spec.stream(name).arrival,
            spec.period_s(name),
            kernel.rng(f"arrivals/{name}"),
            f"{spec._where(name)}.arrival",
            start_s=root.start_s,
        )
        for frame, (t, nominal) in enumerate(times):
            if t >= end:
                return

            def enter(now: float, nominal: float, frame: int = frame) -> Job:
                job = self._new_job(root, frame, now, nominal)
                if group:
                    self._spawn_dependents(group, job, frame, now, nominal)
                return job

            yield t, nominal, enter

    def _source(self, name: str) -> Iterator[Any]:
        """Exact runtime: each frame of a root model enters at its own arrival time."""
        env, submit = self.env, self.pool.submit
        for t, nominal, enter in self._frames(name):
            yield env.timeout(t - env.now)
            submit(enter(t, nominal))

    def _xrbench_ticks(self, roots: list[str]) -> Iterator[Any]:
        """XRBench runtime: frames due by now enter at every tick of the fastest stream."""
        self._due = [(name, self._frames(name)) for name in sorted(roots)]
        self._next = [next(frames, None) for _, frames in self._due]
        tick_s = min(self.spec.period_s(name) for name in roots)
        end, k = self.spec.duration_s, 0
        while k * tick_s < end:
            yield self.env.timeout(k * tick_s - self.env.now)
            self._inject(self.env.now)
            k += 1

    def _inject(self, now: float) -> None:
        """Let every frame that has come due (nominal time, no jitter) enter now, in name order."""
        jobs = []
        for i, (_, frames) in enumerate(self._due):
            item = self._next[i]
            while item is not None and item[1] <= now + _DUE_TOLERANCE_S:
                jobs.append(item[2](now, item[1]))
                item = next(frames, None)
            self._next[i] = item
        if jobs:
            self.pool.submit_all(jobs)

    def _spawn_dependents(self, group: list, job: Job, frame: int, t: float, nominal: float) -> None:
        spawned: list[Job | None] = []
        for stream, parents, draws in group:
            ups = [job if p < 0 else spawned[p] for p in parents]
            fired = [d is None or next(d) for d in draws]  # draw every edge: streams stay aligned
            active = stream.start_s <= t < stream.stop_s
            if active and all(u is not None for u in ups) and all(fired):
                child = self._new_job(stream, frame, t, nominal)
                child.waiting = len(ups)
                for up in ups:
                    if up.children is None:
                        up.children = []
                    up.children.append(child)
                spawned.append(child)
            else:
                spawned.append(None)

    # -- frames leaving ----------------------------------------------------------------
    def _record(self, job: Job, finish_s: float, status: int) -> None:
        model, frame, arrival, deadline, start, finish, stat, energy, accel, accuracy, w_lat, w_en = self._row
        model(job.model.index)
        frame(job.frame)
        arrival(job.arrival_s)
        deadline(job.deadline_s)
        start(job.start_s)
        finish(finish_s)
        stat(status)
        energy(job.energy_j)
        accel(job.accel)
        accuracy(job.model.accuracy)
        worst_latency_s, worst_energy_j = self._worst[id(job.model)]
        w_lat(worst_latency_s * job.scale)
        w_en(worst_energy_j * job.work)

    def _complete(self, job: Job, now: float) -> None:
        self._record(job, now, COMPLETED)
        if self._due is not None:  # xrbench runtime: a completion lets due frames in
            self._inject(now)
        children = job.children
        if children:
            submit = self.pool.submit
            for child in children:
                if child.status == WAITING:
                    child.waiting -= 1
                    if child.waiting == 0:
                        submit(child)

    def _drop(self, job: Job, when: float) -> None:
        job.status = DROPPED
        self._record(job, when, DROPPED)
        for child in job.children or ():
            if child.status == WAITING:
                self._drop(child, when)

    # -- running -----------------------------------------------------------------------
    def run(self) -> None:
        roots = [s.name for s in self.spec.streams() if not s.depends_on]
        end = self.spec.duration_s
        if self.spec.runtime == "xrbench":
            self.env.process(self._xrbench_ticks(roots))
            self.env.run(until=end)
            self._inject(end)
            self._due = None  # drain: nothing enters after duration_s
            self.env.run()
            end = self.end_s = max(end, self.env.now)
        else:
            for name in roots:
                self.env.process(self._source(name))
            self.env.run(until=end)
        pending = self.pool.finish(end)
        seen = set()
        while pending:
            job = pending.pop()
            if id(job) in seen:
                continue
            seen.add(id(job))
            job.status = IN_FLIGHT
            self._record(job, math.nan, IN_FLIGHT)
            pending.extend(c for c in job.children or () if c.status == WAITING)

    def results(self) -> tuple[dict[str, float], dict[str, pd.DataFrame]]:
        return xr_results(self)


_DUE_TOLERANCE_S = 1e-9  # a frame due at a tick's time (up to rounding) enters at that tick


def _model_name(job: Job) -> str:
    return job.model.name


def _bernoulli(rng: np.random.Generator, p: float) -> Iterator[bool]:
    """Bernoulli(p) draws, in chunks."""
    while True:
        yield from (rng.random(4096) < p).tolist()
