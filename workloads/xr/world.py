"""The ``xr`` world: frame streams with dependencies feeding a multi-accelerator system.

XRBench timing semantics: a frame's deadline is the next frame's (nominal) arrival; a
job still queued at its deadline is dropped, and so are the jobs of the same frame
that depend on it; a dependent model becomes ready when its upstream jobs of the same
frame are done. Costs come from the cost model once, before the clock starts.
"""

from __future__ import annotations

import math
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
from workloads.xr.spec import XRSpec


def block_bounds(macs: np.ndarray, n_blocks: int) -> list[int]:
    """Layer indices splitting a model into ``n_blocks`` contiguous blocks of about equal MACs."""
    n_blocks = max(1, min(n_blocks, len(macs)))
    cum = np.cumsum(macs, dtype=float)
    total = cum[-1] if cum[-1] > 0 else 1.0
    cuts = [int(np.searchsorted(cum, total * k / n_blocks, side="left")) + 1 for k in range(1, n_blocks)]
    bounds = sorted({0, len(macs), *(min(max(c, 1), len(macs) - 1) for c in cuts)})
    return bounds


def model_costs(spec: XRSpec, system: Any) -> list[ModelCost]:
    """Per-block latency and energy of every model on every accelerator."""
    profile = ProfileTable.from_csv(spec.hardware.profile_csv) if spec.hardware.profile_csv else None
    costs = []
    for index, stream in enumerate(spec.models):
        layers = task_layers(stream.task)
        latency, energy = cost_table(stream.task, layers, system, profile)
        n_blocks = spec.blocks_per_model if spec.granularity == "layer_block" else 1
        bounds = block_bounds(np.array([layer.macs for layer in layers]), n_blocks)
        block_lat = np.add.reduceat(latency, bounds[:-1], axis=1)
        block_en = np.add.reduceat(energy, bounds[:-1], axis=1)
        costs.append(ModelCost(stream.name, index, block_lat, block_en, stream.priority))
    return costs


class _Root:
    """A model with its own frame stream, and the dependency group hanging from it."""

    __slots__ = ("cost", "budget_s", "times", "scales", "next_frame", "group")

    def __init__(self, cost, budget_s, times, scales, group):
        self.cost = cost
        self.budget_s = budget_s
        self.times = times
        self.scales = scales
        self.next_frame = 0
        # per descendant, in topological order: (cost, parent positions in the group
        # list, where -1 is the root, trigger draws per parent or None when p == 1)
        self.group = group


class XRWorld:
    """One built ``xr`` scenario, ready to :meth:`run`."""

    def __init__(self, spec: XRSpec, kernel: Kernel):
        self.spec = spec
        self.kernel = kernel
        self.env = kernel.env
        self.system = spec.hardware.build()
        self.costs = model_costs(spec, self.system)
        names = [m.name for m in spec.models]
        self.frames = Table(
            {
                "model": "i2",
                "frame": "i8",
                "arrival_s": "f8",
                "deadline_s": "f8",
                "start_s": "f8",
                "finish_s": "f8",
                "status": "b",
                "energy_j": "f8",
                "accel": "i2",
            },
            categories={"model": names, "status": STATUS_NAMES},
        )
        self._row = tuple(
            self.frames.appender(c)
            for c in (
                "model",
                "frame",
                "arrival_s",
                "deadline_s",
                "start_s",
                "finish_s",
                "status",
                "energy_j",
                "accel",
            )
        )
        self.pool = AcceleratorPool(
            self.env,
            self.system.accelerators,
            spec.scheduler.build(),
            block_granularity=spec.granularity == "layer_block",
            on_complete=self._complete,
            on_drop=self._drop,
            model_names=names,
        )
        self.frames_in = [0] * len(names)
        self._roots = [self._root(stream.name) for stream in spec.models if not stream.depends_on]
        self.wall_decisions = 0

    def _root(self, name: str) -> _Root:
        spec, kernel = self.spec, self.kernel
        index = {m.name: i for i, m in enumerate(spec.models)}
        stream = spec.stream(name)
        graph = spec.graph()
        order = [n for n in nx.topological_sort(graph) if n in nx.descendants(graph, name)]
        pos = {name: -1, **{n: k for k, n in enumerate(order)}}
        group = []
        for n in order:
            parents = sorted(graph.predecessors(n), key=index.get)
            draws = [
                None
                if graph.edges[p, n]["p"] >= 1.0
                else _bernoulli(kernel.rng(f"trigger/{p}->{n}"), graph.edges[p, n]["p"])
                for p in parents
            ]
            group.append(
                (
                    self.costs[index[n]],
                    [pos[p] for p in parents],
                    draws,
                    self._budget(n),
                    spec.service_time.factors(kernel.rng(f"service/{n}")),
                )
            )
        period = spec.period_s(name)
        times = arrivals(
            stream.arrival, period, kernel.rng(f"arrivals/{name}"), f"models.{index[name]}.arrival"
        )
        scales = spec.service_time.factors(kernel.rng(f"service/{name}"))
        return _Root(self.costs[index[name]], self._budget(name), times, scales, group)

    def _budget(self, name: str) -> float:
        deadline = self.spec.stream(name).deadline
        if deadline == "none":
            return math.inf
        return self.spec.period_s(name) if deadline == "next_frame" else float(deadline)

    # -- frames entering ---------------------------------------------------------------
    def _source(self, root: _Root):
        env = self.env
        end = self.spec.duration_s
        timeout = env.timeout
        arrive = self._arrive
        for t, nominal in root.times:
            if t >= end:
                return
            yield timeout(t - env.now)
            arrive(root, t, nominal)

    def _arrive(self, root: _Root, t: float, nominal: float) -> None:
        frame = root.next_frame
        root.next_frame = frame + 1
        job = Job(root.cost, frame, t, nominal + root.budget_s, next(root.scales))
        self.frames_in[root.cost.index] += 1
        if root.group:
            self._spawn_dependents(root, job, frame, t, nominal)
        self.pool.submit(job)

    def _spawn_dependents(self, root: _Root, job: Job, frame: int, t: float, nominal: float) -> None:
        members: list[Job | None] = []
        for cost, parents, draws, budget_s, scales in root.group:
            ups = [job if p < 0 else members[p] for p in parents]
            fired = [d is None or next(d) for d in draws]  # draw every edge: streams stay aligned
            if all(u is not None for u in ups) and all(fired):
                child = Job(cost, frame, t, nominal + budget_s, next(scales))
                child.waiting = len(ups)
                for up in ups:
                    if up.children is None:
                        up.children = []
                    up.children.append(child)
                self.frames_in[cost.index] += 1
                members.append(child)
            else:
                members.append(None)

    # -- frames leaving ----------------------------------------------------------------
    def _record(self, job: Job, finish_s: float, status: int) -> None:
        model, frame, arrival, deadline, start, finish, stat, energy, accel = self._row
        model(job.model.index)
        frame(job.frame)
        arrival(job.arrival_s)
        deadline(job.deadline_s)
        start(job.start_s)
        finish(finish_s)
        stat(status)
        energy(job.energy_j)
        accel(job.accel)

    def _complete(self, job: Job, now: float) -> None:
        self._record(job, now, COMPLETED)
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
        for root in self._roots:
            self.env.process(self._source(root))
        end = self.spec.duration_s
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


def _bernoulli(rng: np.random.Generator, p: float):
    """Yield Bernoulli(p) draws, in chunks."""
    while True:
        yield from (rng.random(4096) < p).tolist()
