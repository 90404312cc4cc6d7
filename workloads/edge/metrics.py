"""Metrics of an ``edge`` run (definitions in docs/metrics.md), computed once after the run."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from devices.edge import EdgeDevice
    from workloads.edge.world import EdgeWorld

TRACE_STEPS = 200  # samples of the energy and frequency trace over a run
TRACE_DEVICES = 16  # devices traced (the first ones): the trace costs steps x devices rows


def _quantile(values: np.ndarray, q: float) -> float:
    return float(np.quantile(values, q)) if values.size else float("nan")


def probe(env: Any, devices: list[EdgeDevice], end_s: float) -> list[tuple[float, int, float, int]]:
    """Start a probe of ``(time_s, device, energy_j, point)``: each of the first ``TRACE_DEVICES``
    devices' energy so far and operating point at ``TRACE_STEPS`` even times in ``[0, end_s)``.

    One SimPy process, so its cost does not grow with the load; it reads the devices and
    changes nothing, so results are the same with it. The rows fill in as the run goes.
    """
    rows: list[tuple[float, int, float, int]] = []
    traced = list(enumerate(devices[:TRACE_DEVICES]))

    def sample() -> Any:
        for _ in range(TRACE_STEPS):
            rows.extend((env.now, i, d.energy_j, d.current) for i, d in traced)
            yield env.timeout(end_s / TRACE_STEPS)

    env.process(sample())
    return rows


def _trace(world: EdgeWorld) -> pd.DataFrame:
    """The probe's samples plus each traced device's final energy at the end, with frequencies."""
    end = world.spec.duration_s
    final = [(end, i, d.energy_j, d.current) for i, d in enumerate(world.devices[:TRACE_DEVICES])]
    time_s, device, energy_j, point = map(np.array, zip(*(world.trace + final)))
    freqs = [[p.freq_hz for p in d.points] for d in world.devices]
    return pd.DataFrame(
        {
            "time_s": time_s,
            "device": np.array(world.names)[device],
            "energy_j": energy_j,
            "point": point,
            "freq_hz": [freqs[i][k] for i, k in zip(device.tolist(), point.tolist())],
        }
    )


def edge_results(world: EdgeWorld) -> tuple[dict[str, float], dict[str, pd.DataFrame]]:
    req = world.requests.to_frame()
    device = req["device"].to_numpy()
    budget = np.array([g.deadline_s for g in world.groups])[device] if len(req) else np.array([])
    latency = (req["finish_s"] - req["arrival_s"]).to_numpy()
    late = latency > budget
    completed = len(req)
    unserved_late = sum(world.unserved_late)
    # device energy (busy, idle, switching) plus the radio's while uploading offloaded requests
    energy = np.array([d.energy_j for d in world.devices]) + np.array(world.radio_j)
    # busy energy as each device drew it; idle at its constant power; switching is the rest
    busy_j = np.array([d.busy_j for d in world.devices])
    idle_j = np.array([d.config.idle_power_w * d.idle_s for d in world.devices])
    depleted = [d.depleted_at_s for d in world.devices if d.depleted_at_s is not None]
    finished = completed + unserved_late
    accuracy = float(req["correct"].mean()) if completed else float("nan")
    summary = {
        "accuracy": accuracy,
        # the test set's resolution: half-width of the normal 95 % interval of a binomial share
        "accuracy_ci95": 1.96 * math.sqrt(accuracy * (1 - accuracy) / completed)
        if completed
        else float("nan"),
        "flops_per_inference": float(2 * req["macs"].mean()) if completed else float("nan"),
        "energy_per_inference_j": float(energy.sum() / completed) if completed else float("nan"),
        "energy_j": float(energy.sum()),
        # active: computing, switching and the radio; idle: waiting for work
        "active_energy_per_inference_j": float((energy - idle_j).sum() / completed)
        if completed
        else float("nan"),
        "idle_energy_per_inference_j": float(idle_j.sum() / completed) if completed else float("nan"),
        "latency_p50_s": _quantile(latency, 0.5),
        "latency_p99_s": _quantile(latency, 0.99),
        "deadline_miss_rate": (int(late.sum()) + unserved_late) / finished if finished else float("nan"),
        "mean_exit_index": float(req["exit"].mean()) if completed else float("nan"),
        "battery_depleted_at_s": min(depleted) if depleted else float("nan"),
        "requests": float(sum(world.arrived)),
        "completed": float(completed),
        "unserved": float(sum(world.unserved)),
        "offloaded": float(sum(world.offloaded)),
    }
    req.insert(0, "device_name", np.array(world.names)[device] if completed else [])
    req["latency_s"] = latency
    req["late"] = late
    devices = pd.DataFrame(
        {
            "device": world.names,
            "deadline_s": [g.deadline_s for g in world.groups],
            "energy_j": energy,
            "busy_energy_j": busy_j,
            "idle_energy_j": idle_j,
            "busy_s": [sum(d.busy_s) for d in world.devices],
            "idle_s": [d.idle_s for d in world.devices],
            "switch_s": [d.switch_s for d in world.devices],
            "switches": [d.switches for d in world.devices],
            "depleted_at_s": [np.nan if d.depleted_at_s is None else d.depleted_at_s for d in world.devices],
            "arrived": world.arrived,
            "completed": np.bincount(device, minlength=len(world.devices)) if completed else 0,
            "unserved": world.unserved,
            "offloaded": world.offloaded,
            "radio_energy_j": world.radio_j,
        }
    )
    exits = (
        req.groupby("exit")
        .agg(requests=("correct", "size"), accuracy=("correct", "mean"), macs=("macs", "mean"))
        .reset_index()
    )
    points = pd.DataFrame(
        [
            {"device": name, "point": i, "freq_hz": p.freq_hz, "voltage_v": p.voltage_v, "busy_s": busy}
            for name, d in zip(world.names, world.devices)
            for i, (p, busy) in enumerate(zip(d.points, d.busy_s))
        ]
    )
    tables = {"requests": req, "devices": devices, "exits": exits, "points": points, "trace": _trace(world)}
    return summary, tables
