"""The ``edge`` world: request streams served first-come first-served by DVFS edge devices.

Before the clock starts, the exit policy is calibrated on the calib split and plans
every test sample once from the inference cache: the exit it takes, the heads it
evaluates, the MACs and bytes that costs, split at the exit predictions where a
re-planning governor may change the frequency, and whether the answer is right. A
request then draws a test sample and only looks these up: no forward pass in the event loop.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Iterator
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd
import simpy

from devices.edge import EdgeDevice, read_profile
from policies.dvfs.base import Work
from policies.exit.base import Calibration
from sim.errors import ConfigError
from sim.kernel import Kernel
from sim.recorder import Table
from workloads.cache import ArrayStore, pinned_threads
from workloads.edge.decisions import checked_offload, checked_plan, checked_point
from workloads.edge.metrics import probe
from workloads.edge.models import load_model
from workloads.edge.spec import EdgeSpec
from workloads.multiexit import ExitModel
from workloads.streams import arrivals

PREDICTORS = "exit_predictors"  # on-disk store of what exit policies learn from the calib split
REQUEST_COLUMNS = {
    "device": "i2",
    "sample": "i8",
    "arrival_s": "f8",
    "start_s": "f8",
    "finish_s": "f8",
    "exit": "i2",
    "correct": "b",
    "macs": "f8",
    "point": "i2",
}


def part_costs(model: ExitModel) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MACs and bytes moved of each backbone segment and each exit head (see :func:`part_layers`)."""

    def totals(parts):
        macs = np.array([sum(layer.macs for layer in p) for p in parts], float)
        moved = np.array(
            [sum(layer.weight_bytes + layer.input_bytes + layer.output_bytes for layer in p) for p in parts],
            float,
        )
        return macs, moved

    return (*totals(model.segments), *totals(model.heads))


def part_layers(model: ExitModel) -> tuple[np.ndarray, np.ndarray]:
    """Layers of each backbone segment and each exit head: each costs a device's layer overhead."""
    return np.array([len(p) for p in model.segments], float), np.array([len(p) for p in model.heads], float)


def transfer_s(graph: nx.Graph, source: str, target: str, size_bytes: float) -> float:
    """Latency plus serialisation time over every hop of the shortest path."""
    path = nx.shortest_path(graph, source, target)
    return sum(
        graph.edges[u, v]["latency"] + size_bytes / graph.edges[u, v]["bandwidth"]
        for u, v in zip(path, path[1:])
    )


class SamplePlan:
    """Per test sample, what serving it costs under an exit policy (arrays over samples).

    ``phases[s]``: the stretches request ``s`` runs as, ``(macs, bytes, layers, jump,
    remaining)`` each; a stretch after the first starts at a prediction of ``jump`` exits ahead with
    ``remaining`` exits left, where a re-planning governor may change the frequency. A
    policy without predictions runs as one stretch.
    """

    def profiled(
        self, model: ExitModel, profile: dict, where: str
    ) -> tuple[list[list[tuple[list, list]]], np.ndarray, np.ndarray]:
        """From a measured per-layer profile: per sample and phase, (seconds, mean watts) per
        point; and per point the seconds and mean watts of the whole network (no exit)."""
        parts = []
        for layers in (model.segments, model.heads):
            latency, energy = [], []
            for part in layers:
                rows = []
                for layer in part:
                    if layer.name not in profile:
                        raise ConfigError(
                            f"{where}: no row for layer {layer.name!r} of model {model.name!r}; "
                            f"its layers: {', '.join(x.name for p in model.segments for x in p)[:200]} ..."
                        )
                    rows.append(profile[layer.name])
                lat = np.array([r[0] for r in rows]).reshape(len(rows), -1)
                watts = np.array([r[1] for r in rows]).reshape(len(rows), -1)
                latency.append(lat.sum(0))
                energy.append((lat * watts).sum(0))
            parts.append((np.array(latency), np.array(energy)))
        (seg_s, seg_j), (head_s, head_j) = parts
        heads = self._heads.astype(float)[:, :, None]
        zero = np.zeros((len(heads), 1, seg_s.shape[1]))
        up_s = np.concatenate([zero, np.cumsum(seg_s, 0)[None] + np.cumsum(heads * head_s[None], 1)], 1)
        up_j = np.concatenate([zero, np.cumsum(seg_j, 0)[None] + np.cumsum(heads * head_j[None], 1)], 1)
        out = []
        for i, bounds in enumerate(self._bounds):
            phases = []
            for begin, end in bounds:
                seconds = up_s[i, end] - up_s[i, begin]
                watts = np.divide(
                    up_j[i, end] - up_j[i, begin], seconds, out=np.zeros_like(seconds), where=seconds > 0
                )
                phases.append((seconds.tolist(), watts.tolist()))
            out.append(phases)
        full_s, full_j = seg_s.sum(0) + head_s[-1], seg_j.sum(0) + head_j[-1]
        return out, full_s, np.divide(full_j, full_s, out=np.zeros_like(full_s), where=full_s > 0)

    def timed(self, device: EdgeDevice) -> list[tuple[tuple[list, None, int, int], ...]]:
        """Per sample and phase, the analytic seconds at each point of ``device`` (watts: the
        device's own), with the phase's jump and remaining exits."""
        flat = [phase for phases in self.phases for phase in phases]
        seconds = iter(device.execution_table(*np.array([p[:3] for p in flat]).T).tolist())
        return [tuple((next(seconds), None, p[3], p[4]) for p in phases) for phases in self.phases]

    def measured(
        self, profiled: list[list[tuple[list, list]]]
    ) -> list[tuple[tuple[list, list, int, int], ...]]:
        """:meth:`timed` from :meth:`profiled`'s seconds and mean watts per point."""
        return [
            tuple((seconds, watts, p[3], p[4]) for (seconds, watts), p in zip(timed, phases, strict=True))
            for timed, phases in zip(profiled, self.phases, strict=True)
        ]

    def __init__(self, model: ExitModel, policy: Any):
        seg_macs, seg_bytes, head_macs, head_bytes = part_costs(model)
        seg_layers, head_layers = part_layers(model)
        store = ArrayStore(PREDICTORS)
        # one torch thread: a policy's torch work is many tiny ops (an exit predictor), which
        # threads only slow down, and its results then do not depend on the caller's setting
        with pinned_threads(1):
            policy.fit(Calibration(model.calib_probs, model.calib_labels, seg_macs, head_macs, store))
            plan = checked_plan(policy, policy.plan(model.test_probs), *model.test_probs.shape[:2])
        self.full_macs = float(np.sum(seg_macs) + head_macs[-1])  # dense: what a governor plans for
        self.full_bytes = float(np.sum(seg_bytes) + head_bytes[-1])
        self.full_layers = int(np.sum(seg_layers) + head_layers[-1])
        # an input-gated model (workloads.dynamic_pruning) costs each test sample its own parts
        seg_macs, seg_bytes, head_macs, head_bytes = getattr(
            model, "test_part_costs", (seg_macs, seg_bytes, head_macs, head_bytes)
        )
        n, n_exits = plan.heads_evaluated.shape
        heads = plan.heads_evaluated.astype(float)
        exit_index = plan.exit_index
        zero = np.zeros((n, 1))
        # run totals up to and including each exit: backbone, then per sample the heads evaluated
        up_macs = np.cumsum(seg_macs, -1) + np.cumsum(heads * head_macs, 1)
        up_bytes = np.cumsum(seg_bytes, -1) + np.cumsum(heads * head_bytes, 1)
        up_layers = np.cumsum(seg_layers)[None, :] + np.cumsum(heads * head_layers, 1)
        up_macs, up_bytes = np.hstack([zero, up_macs]), np.hstack([zero, up_bytes])  # index k + 1
        up_layers = np.hstack([zero, up_layers]).astype(int)
        rows = np.arange(n)
        extra = np.zeros(n) if plan.extra_macs is None else plan.extra_macs
        macs = up_macs[rows, exit_index + 1] + extra
        moved = up_bytes[rows, exit_index + 1]
        correct = model.test_probs[exit_index, rows].argmax(-1) == model.test_labels
        last = n_exits - 1
        self.phases: list[tuple[tuple[float, float, int, int, int], ...]] = []
        self._heads, self._bounds = plan.heads_evaluated, []  # per sample: (begin, end) of each phase
        made_at = np.empty((0, n), int) if plan.prediction_at is None else plan.prediction_at
        made_to = np.empty((0, n), int) if plan.prediction_to is None else plan.prediction_to
        jump_macs = extra / np.maximum((np.where(made_at >= 0, made_to - made_at, 0)).sum(0), 1)
        for i in range(n):
            stops = [(a, t) for a, t in zip(made_at[:, i].tolist(), made_to[:, i].tolist()) if a >= 0]
            ends = [a for a, _ in stops] + [int(exit_index[i])]
            phases, begin, jump, remaining = [], 0, 0, 0
            self._bounds.append([])
            for k, end in enumerate(ends):
                self._bounds[i].append((begin, end + 1))
                predictor = (stops[k][1] - stops[k][0]) * jump_macs[i] if k < len(stops) else 0.0
                phase_macs = up_macs[i, end + 1] - up_macs[i, begin] + predictor
                phase_bytes = up_bytes[i, end + 1] - up_bytes[i, begin]
                phase_layers = int(up_layers[i, end + 1] - up_layers[i, begin])
                phases.append((phase_macs, phase_bytes, phase_layers, jump, remaining))
                if k < len(stops):
                    begin, jump, remaining = end + 1, stops[k][1] - end, last - end
            self.phases.append(tuple(phases))
        # plain lists: the event loop indexes them once per request
        self.exit, self.macs, self.bytes = exit_index.tolist(), macs.tolist(), moved.tolist()
        self.correct = correct.astype(int).tolist()
        self.final_correct = (model.test_probs[-1].argmax(-1) == model.test_labels).astype(int).tolist()


class EdgeWorld:
    """One built ``edge`` scenario, ready to :meth:`run`."""

    def __init__(self, spec: EdgeSpec, kernel: Kernel):
        self.spec = spec
        self.kernel = kernel
        self.env = kernel.env
        self.model = load_model(spec.model, spec.model_kwargs, spec.dataset)
        self.plan = SamplePlan(self.model, spec.exit_policy.build())
        self.governor = spec.dvfs.build()
        # per device, sample and phase: (seconds per point, mean watts per point or None for the
        # device's own busy power, jump, remaining): the event loop looks times up, never computes them
        self._timed: list[list[tuple[tuple[list, list | None, int, int], ...]]] = []
        self.devices: list[EdgeDevice] = []
        self.names: list[str] = []
        self.groups: list[Any] = []
        profiled = {}
        for i, group in enumerate(spec.devices):
            if group.device.profile_csv is not None:
                where = f"devices.{i}.device.profile_csv"
                if hasattr(self.model, "test_part_costs"):
                    raise ConfigError(
                        f"{where}: a measured profile times dense layers; model {spec.model!r} is input-gated"
                    )
                freqs = [p.freq_hz for p in group.device.points]
                profile = read_profile(group.device.profile_csv, where, freqs)
                profiled[group.name] = self.plan.profiled(self.model, profile, where)
        plan = self.plan
        for group in spec.devices:
            timed = None
            for k in range(group.count):
                device = EdgeDevice(self.env, group.device)
                if group.name in profiled:  # governors estimate from the profile as well
                    measured, full_s, full_w = profiled[group.name]
                    device.use_profile(full_s, full_w, plan.full_macs, plan.full_bytes, plan.full_layers)
                if timed is None:  # one table per group: its devices are alike
                    timed = plan.measured(measured) if group.name in profiled else plan.timed(device)
                self.devices.append(device)
                self._timed.append(timed)
                self.names.append(group.name if group.count == 1 else f"{group.name}{k}")
                self.groups.append(group)
        self.requests = Table(REQUEST_COLUMNS)
        self._row = tuple(self.requests.appender(c) for c in REQUEST_COLUMNS)
        n = len(self.devices)
        self.arrived = [0] * n  # requests that arrived before the end
        self.unserved = [0] * n  # of those, not completed (queued, in service, or after depletion)
        self.unserved_late = [0] * n  # of those, with their deadline before the end
        self._times: list[Iterator[tuple[float, float]]] = []
        self._upcoming = [math.inf] * n  # the next arrival not yet queued
        self._queues: list[deque[float]] = [deque() for _ in range(n)]  # arrived, not started
        self._in_service: list[float | None] = [None] * n  # deadline of the request being served
        self._remote: dict[int, tuple[int, float]] = {}  # offloaded in flight: id -> (device, deadline)
        self._remote_ids = itertools.count()
        self.offloaded = [0] * n
        self.radio_j = [0.0] * n
        self._offload_policy = None
        if spec.offload is not None:
            cfg = spec.offload
            graph = nx.Graph()
            for name in self.names:
                graph.add_edge(name, "server", bandwidth=cfg.bandwidth_bytes_per_s, latency=cfg.latency_s)
            input_bytes = self.model.segments[0][0].input_bytes
            self._upload_s = [transfer_s(graph, name, "server", input_bytes) for name in self.names]
            self._download_s = [transfer_s(graph, "server", name, 0.0) for name in self.names]
            self._server = simpy.Resource(self.env, capacity=1)
            self._server_s = self.plan.full_macs / cfg.server_macs_per_s
            self._offload_policy = cfg.policy.build()

    def _samples(self, name: str) -> Iterator[int]:
        rng = self.kernel.rng(f"samples/{name}")
        n = len(self.plan.exit)
        while True:
            yield from rng.integers(0, n, 4096).tolist()

    def _serve(self, index: int) -> Iterator[Any]:
        """One device: queue what has arrived, take requests in order, offload or pick a point and run."""
        env, plan, governor = self.env, self.plan, self.governor
        device, group, name = self.devices[index], self.groups[index], self.names[index]
        points = device.points
        n = len(points)
        end = self.spec.duration_s
        samples = self._samples(name)
        times, queue = self._times[index], self._queues[index]
        offload = self._offload_policy
        if offload is not None:  # round trip to the server, without its queue
            remote_s = self._upload_s[index] + self._server_s + self._download_s[index]
        dev, smp, arr, start, fin, ext, cor, mac, pnt = self._row
        full_macs, full_bytes = plan.full_macs, plan.full_bytes
        work = Work(full_macs, full_bytes, full_macs, full_bytes, plan.full_layers)  # no exit known yet
        on_prediction = getattr(governor, "on_prediction", None)  # a re-planning governor (Replanning)
        after_exit = getattr(governor, "after_exit", None)
        timed = self._timed[index]
        upcoming = next(times)[0]
        while True:
            while upcoming <= env.now and upcoming < end:  # what has arrived joins the queue
                queue.append(upcoming)
                self.arrived[index] += 1
                upcoming = next(times)[0]
            self._upcoming[index] = upcoming
            if not queue:
                if upcoming >= end:
                    return
                yield env.timeout(upcoming - env.now)
                continue
            t = queue.popleft()
            s = next(samples)
            deadline = t + group.deadline_s
            if offload is not None:
                local_s = device.execution_s(full_macs, full_bytes, device.current, plan.full_layers)
                if checked_offload(
                    offload, offload.decide(len(queue), local_s, remote_s, deadline - env.now)
                ):
                    env.process(self._run_remote(index, t, s, deadline))
                    continue
            point = checked_point(
                governor, "select", governor.select(points, work, deadline, env.now, device), n
            )
            started = env.now
            self._in_service[index] = deadline
            if point != device.current and not (yield device.switch_to(point)):
                return  # the battery ran out
            for k, (seconds, watts, jump, remaining) in enumerate(timed[s]):
                if k and on_prediction is not None:  # a prediction: the governor may re-set the point
                    step = checked_point(
                        governor, "on_prediction", on_prediction(points, jump, remaining, device), n
                    )
                    if step != device.current and not (yield device.switch_to(step)):
                        return
                at = device.current
                if not (yield device.execute(seconds[at], None if watts is None else watts[at])):
                    return
            self._in_service[index] = None
            dev(index)
            smp(s)
            arr(t)
            start(started)
            fin(env.now)
            ext(plan.exit[s])
            cor(plan.correct[s])
            mac(plan.macs[s])
            pnt(point)
            if after_exit is not None:
                step = checked_point(governor, "after_exit", after_exit(points, device), n)
                if step != device.current and not (yield device.switch_to(step)):
                    return

    def _run_remote(self, index: int, t: float, s: int, deadline: float) -> Iterator[Any]:
        """An offloaded request: upload, the server's queue and the full network, download."""
        env, plan = self.env, self.plan
        key = next(self._remote_ids)
        self._remote[key] = (index, deadline)
        self.offloaded[index] += 1
        started = env.now
        self.radio_j[index] += self.spec.offload.radio_power_w * self._upload_s[index]
        yield env.timeout(self._upload_s[index])
        with self._server.request() as slot:
            yield slot
            yield env.timeout(self._server_s)
        yield env.timeout(self._download_s[index])
        del self._remote[key]
        dev, smp, arr, start, fin, ext, cor, mac, pnt = self._row
        dev(index)
        smp(s)
        arr(t)
        start(started)
        fin(env.now)
        ext(len(self.model.heads) - 1)
        cor(plan.final_correct[s])
        mac(plan.full_macs)  # the full network, run on the server
        pnt(-1)  # -1: served by the edge server

    def run(self) -> None:
        rng = self.kernel.rng
        for i, (group, name) in enumerate(zip(self.groups, self.names)):
            self._times.append(arrivals(group.arrival, 1.0 / group.rate_hz, rng(f"arrivals/{name}"), name))
            self.env.process(self._serve(i))
        end = self.spec.duration_s
        self.trace = probe(self.env, self.devices, end)
        self.env.run(until=end)
        for i, device in enumerate(self.devices):
            device.finish(end)
            deadline = self._in_service[i]
            if deadline is not None:  # cut short by the end of the run or by the battery
                self._unserved(i, deadline, end)
            later = [] if self._upcoming[i] >= end else [self._upcoming[i]]
            later += [t for t, _ in itertools.takewhile(lambda a: a[0] < end, self._times[i])]
            self.arrived[i] += len(later)  # arrived while the device was busy, never queued by it
            for t in [*self._queues[i], *later]:  # arrived, never taken up
                self._unserved(i, t + self.groups[i].deadline_s, end)
        for i, deadline in self._remote.values():  # offloaded, not back by the end
            self._unserved(i, deadline, end)

    def _unserved(self, index: int, deadline: float, end: float) -> None:
        self.unserved[index] += 1
        self.unserved_late[index] += deadline < end

    def results(self) -> tuple[dict[str, float], dict[str, pd.DataFrame]]:
        from workloads.edge.metrics import edge_results

        return edge_results(self)
