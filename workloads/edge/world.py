"""The ``edge`` world: request streams served first-come first-served by DVFS edge devices.

Before the clock starts, the exit policy is calibrated on the calib split and plans
every test sample once from the inference cache: the exit it takes, the heads it
evaluates, the MACs and bytes that costs, the work a predictive governor plans for,
and whether the answer is right. A request then draws a test sample and only looks
these up: no forward pass in the event loop.
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

from devices.edge import EdgeDevice
from policies.dvfs.base import Work
from policies.exit.base import Calibration
from sim.kernel import Kernel
from sim.recorder import Table
from workloads.cache import ArrayStore
from workloads.edge.spec import EdgeSpec
from workloads.multiexit import ExitModel, load_exit_model
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
    """MACs and bytes moved of each backbone segment and each exit head."""

    def totals(parts):
        macs = np.array([sum(layer.macs for layer in p) for p in parts], float)
        moved = np.array(
            [sum(layer.weight_bytes + layer.input_bytes + layer.output_bytes for layer in p) for p in parts],
            float,
        )
        return macs, moved

    return (*totals(model.segments), *totals(model.heads))


def transfer_s(graph: nx.Graph, source: str, target: str, size_bytes: float) -> float:
    """Latency plus serialisation time over every hop of the shortest path."""
    path = nx.shortest_path(graph, source, target)
    return sum(
        graph.edges[u, v]["latency"] + size_bytes / graph.edges[u, v]["bandwidth"]
        for u, v in zip(path, path[1:])
    )


class SamplePlan:
    """Per test sample, what serving it costs under an exit policy (arrays over samples)."""

    def __init__(self, model: ExitModel, policy: Any):
        seg_macs, seg_bytes, head_macs, head_bytes = part_costs(model)
        store = ArrayStore(PREDICTORS)
        policy.fit(Calibration(model.calib_probs, model.calib_labels, seg_macs, head_macs, store))
        plan = policy.plan(model.test_probs)
        cum_macs, cum_bytes = np.cumsum(seg_macs), np.cumsum(seg_bytes)
        heads = plan.heads_evaluated.astype(float)
        rows = np.arange(len(model.test_labels))
        exit_index = plan.exit_index
        macs = cum_macs[exit_index] + heads @ head_macs
        moved = cum_bytes[exit_index] + heads @ head_bytes
        correct = model.test_probs[exit_index, rows].argmax(-1) == model.test_labels
        self.full_macs = float(cum_macs[-1] + head_macs[-1])
        self.full_bytes = float(cum_bytes[-1] + head_bytes[-1])
        if plan.predicted_exit is None:  # no prediction: plan for the whole network
            planned_macs = np.full(len(rows), self.full_macs)
            planned_bytes = np.full(len(rows), self.full_bytes)
        else:  # the predictor's head, then straight to the predicted exit and its head
            p = plan.predicted_exit
            planned_macs = cum_macs[p] + head_macs[0] + np.where(p > 0, head_macs[p], 0.0)
            planned_bytes = cum_bytes[p] + head_bytes[0] + np.where(p > 0, head_bytes[p], 0.0)
        # plain lists: the event loop indexes them once per request
        self.exit, self.macs, self.bytes = exit_index.tolist(), macs.tolist(), moved.tolist()
        self.correct = correct.astype(int).tolist()
        self.final_correct = (model.test_probs[-1].argmax(-1) == model.test_labels).astype(int).tolist()
        self.planned_macs, self.planned_bytes = planned_macs.tolist(), planned_bytes.tolist()


class EdgeWorld:
    """One built ``edge`` scenario, ready to :meth:`run`."""

    def __init__(self, spec: EdgeSpec, kernel: Kernel):
        self.spec = spec
        self.kernel = kernel
        self.env = kernel.env
        self.model = load_exit_model(spec.model)
        self.plan = SamplePlan(self.model, spec.exit_policy.build())
        self.governor = spec.dvfs.build()
        self.devices: list[EdgeDevice] = []
        self.names: list[str] = []
        self.groups: list[Any] = []
        for group in spec.devices:
            for k in range(group.count):
                self.devices.append(EdgeDevice(self.env, group.device))
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
        end = self.spec.duration_s
        samples = self._samples(name)
        times, queue = self._times[index], self._queues[index]
        offload = self._offload_policy
        if offload is not None:  # round trip to the server, without its queue
            remote_s = self._upload_s[index] + self._server_s + self._download_s[index]
        dev, smp, arr, start, fin, ext, cor, mac, pnt = self._row
        full_macs, full_bytes = plan.full_macs, plan.full_bytes
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
                local_s = device.execution_s(full_macs, full_bytes, device.current)
                if offload.decide(len(queue), local_s, remote_s, deadline - env.now):
                    env.process(self._run_remote(index, t, s, deadline))
                    continue
            work = Work(plan.planned_macs[s], plan.planned_bytes[s], full_macs, full_bytes)
            point = governor.select(points, work, deadline, env.now, device)
            started = env.now
            self._in_service[index] = deadline
            if point != device.current and not (yield device.switch_to(point)):
                return  # the battery ran out
            if not (yield device.execute(device.execution_s(plan.macs[s], plan.bytes[s], point))):
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
