"""The ``edge`` world: request streams served first-come first-served by DVFS edge devices.

Before the clock starts, the exit policy is calibrated on the calib split and plans
every test sample once from the inference cache: the exit it takes, the heads it
evaluates, the MACs and bytes that costs, the work a predictive governor plans for,
and whether the answer is right. A request then draws a test sample and only looks
these up: no forward pass in the event loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from devices.edge import EdgeDevice
from policies.dvfs.base import Work
from policies.exit.base import Calibration
from sim.kernel import Kernel
from sim.recorder import Table
from workloads.edge.spec import EdgeSpec
from workloads.multiexit import ExitModel, load_exit_model
from workloads.streams import arrivals

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


class SamplePlan:
    """Per test sample, what serving it costs under an exit policy (arrays over samples)."""

    def __init__(self, model: ExitModel, policy: Any):
        seg_macs, seg_bytes, head_macs, head_bytes = part_costs(model)
        policy.fit(Calibration(model.calib_probs, model.calib_labels, seg_macs, head_macs))
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
        self._in_service: list[float | None] = [None] * n  # deadline of the request being served

    def _samples(self, name: str) -> Iterator[int]:
        rng = self.kernel.rng(f"samples/{name}")
        n = len(self.plan.exit)
        while True:
            yield from rng.integers(0, n, 4096).tolist()

    def _serve(self, index: int) -> Iterator[Any]:
        """One device: take each request in arrival order, pick a point, run it."""
        env, plan, governor = self.env, self.plan, self.governor
        device, group, name = self.devices[index], self.groups[index], self.names[index]
        points = device.points
        end = self.spec.duration_s
        samples = self._samples(name)
        times = self._times[index]
        dev, smp, arr, start, fin, ext, cor, mac, pnt = self._row
        full_macs, full_bytes = plan.full_macs, plan.full_bytes
        for t, _ in times:
            if t >= end:
                return
            if t > env.now:
                yield env.timeout(t - env.now)
            self.arrived[index] += 1
            s = next(samples)
            deadline = t + group.deadline_s
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
                self.unserved[i] += 1
                self.unserved_late[i] += deadline < end
            for t, _ in self._times[i]:  # arrived, never taken up
                if t >= end:
                    break
                self.arrived[i] += 1
                self.unserved[i] += 1
                self.unserved_late[i] += t + self.groups[i].deadline_s < end

    def results(self) -> tuple[dict[str, float], dict[str, pd.DataFrame]]:
        from workloads.edge.metrics import edge_results

        return edge_results(self)
