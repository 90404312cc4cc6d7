"""Metrics of an ``xr`` run: XRBench score, deadline misses, drops, energy, EDP, UXCost.

Definitions are in docs/metrics.md. All are computed once, vectorised, from the
columnar frame records after the run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from devices.system import COMPLETED, DROPPED, IN_FLIGHT

if TYPE_CHECKING:
    from workloads.xr.world import XRWorld


def _rt_score(finish_s: np.ndarray, deadline_s: np.ndarray, k_per_ms: float) -> np.ndarray:
    """XRBench real-time score 1 / (1 + exp(k (completion - deadline))), times in ms."""
    x = np.clip(k_per_ms * (finish_s - deadline_s) * 1e3, -700.0, 700.0)
    return 1.0 / (1.0 + np.exp(x))


def _quantile(values: np.ndarray, q: float) -> float:
    return float(np.quantile(values, q)) if values.size else float("nan")


def uxcost(
    done: np.ndarray,
    dropped: np.ndarray,
    late: np.ndarray,
    latency_s: np.ndarray,
    budget_s: np.ndarray,
    worst_latency_s: np.ndarray,
    worst_energy_j: np.ndarray,
    energy_j: float,
    miss_penalty: float,
    drop_penalty: float,
) -> float:
    """UXCost (docs/metrics.md): charged energy per finished frame x mean effective delay.

    A dropped frame is charged, in both factors, at least what the same frame would cost
    completed at its worst: the energy of its most expensive accelerator, and the delay of
    finishing a full worst-case latency after its deadline (late) plus ``drop_penalty``
    budgets. Doing nothing therefore never lowers UXCost, and turning any completed
    frame into a drop never lowers it either. Masks and arrays are per frame;
    ``energy_j`` is the run's measured energy (jobs and idle).
    """
    finished = done | dropped
    if not finished.any():
        return float("nan")
    budget = np.where(np.isfinite(budget_s), budget_s, 0.0)
    delay = np.where(
        done,
        latency_s + np.where(late, miss_penalty * budget, 0.0),
        (1.0 + miss_penalty + drop_penalty) * budget + worst_latency_s,
    )
    charged_j = energy_j + float(worst_energy_j[dropped].sum())
    return charged_j / int(finished.sum()) * float(delay[finished].mean())


def xr_results(world: XRWorld) -> tuple[dict[str, float], dict[str, pd.DataFrame]]:
    spec, cfg = world.spec, world.spec.metrics
    end_s = world.end_s
    f = world.frames
    model = f.column("model")
    status = f.column("status")
    arrival = f.column("arrival_s")
    deadline = f.column("deadline_s")
    finish = f.column("finish_s")
    energy = f.column("energy_j")
    accuracy = f.column("accuracy")
    budget = np.array([s.budget_s for s in world.streams], dtype=float)[model]
    done = status == COMPLETED
    dropped = status == DROPPED
    late = done & (finish > deadline)
    latency = np.where(done, finish - arrival, np.nan)

    rt = _rt_score(finish, deadline, cfg.rt_k_per_ms)
    en = np.clip((cfg.energy_max_j - energy) / cfg.energy_max_j, 0.0, 1.0)

    rows = []
    for index, stream in enumerate(spec.streams()):
        mine = model == index
        m_done, m_drop = done & mine, dropped & mine
        n_done, n_drop = int(m_done.sum()), int(m_drop.sum())
        n_fin = n_done + n_drop
        qoe = 1.0 - n_drop / n_fin if n_fin else 0.0
        # the reference's HET scoring: the sum over completed frames divided by all
        # finished ones (completed + dropped), then times QoE (docs/metrics.md)
        score = float(np.sum(rt[m_done] * en[m_done])) / n_fin * qoe if n_fin else 0.0
        lat = latency[m_done]
        rows.append(
            {
                "model": stream.name,
                "fps": 1.0 / spec.period_s(stream.name),
                "frames": int(world.frames_in[index]),
                "completed": n_done,
                "dropped": n_drop,
                "late": int((late & mine).sum()),
                "in_flight": int((mine & (status == IN_FLIGHT)).sum()),
                "drop_rate": n_drop / n_fin if n_fin else float("nan"),
                "deadline_miss_rate": (int((late & mine).sum()) + n_drop) / n_fin if n_fin else float("nan"),
                "latency_p50_s": _quantile(lat, 0.5),
                "latency_p99_s": _quantile(lat, 0.99),
                "energy_j": float(energy[mine].sum()),
                "score": score,
            }
        )
    models = pd.DataFrame(rows)

    accel_rows = []
    for accel, spec_a in zip(world.pool.accelerators, world.system.accelerators):
        idle_energy = accel.idle_power_w * max(end_s - accel.busy_s, 0.0)
        accel_rows.append(
            {
                "accel": accel.index,
                "name": accel.name,
                "num_pes": accel.num_pes,
                "dataflow": spec_a.dataflow,
                "busy_s": accel.busy_s,
                "utilisation": accel.busy_s / end_s,
                "busy_energy_j": accel.busy_energy_j,
                "idle_energy_j": idle_energy,
                "energy_j": accel.busy_energy_j + idle_energy,
            }
        )
    accelerators = pd.DataFrame(accel_rows)

    n_done, n_drop = int(done.sum()), int(dropped.sum())
    n_fin = n_done + n_drop
    energy_j = float(accelerators["energy_j"].sum())
    lat_done = latency[done]
    energy_per_frame = energy_j / n_fin if n_fin else float("nan")
    mean_latency = float(lat_done.mean()) if n_done else float("nan")
    summary = {
        "xrbench_score": 100.0 * float(models["score"].mean()),
        "deadline_miss_rate": (int(late.sum()) + n_drop) / n_fin if n_fin else float("nan"),
        "drop_rate": n_drop / n_fin if n_fin else float("nan"),
        "energy_j": energy_j,
        "latency_p50_s": _quantile(lat_done, 0.5),
        "latency_p99_s": _quantile(lat_done, 0.99),
        "latency_mean_s": mean_latency,
        "edp": energy_per_frame * mean_latency,
        "uxcost": uxcost(
            done,
            dropped,
            late,
            latency,
            budget,
            f.column("worst_latency_s"),
            f.column("worst_energy_j"),
            energy_j,
            cfg.miss_penalty,
            cfg.drop_penalty,
        ),
        "energy_per_frame_j": energy_per_frame,
        "energy_per_completed_j": energy_j / n_done if n_done else float("nan"),
        "frames": float(sum(world.frames_in)),
        "completed": float(n_done),
        "dropped": float(n_drop),
        "late": float(late.sum()),
        "in_flight": float((status == IN_FLIGHT).sum()),
        "utilisation_mean": float(accelerators["utilisation"].mean()),
        "scheduler_decisions": float(world.pool.decisions),
    }
    served = done & np.isfinite(accuracy)
    if served.any():  # frames of supernet models: each counts the accuracy of the width it got
        summary["accuracy"] = float(accuracy[served].mean())

    frames = f.to_frame()
    frames.insert(frames.columns.get_loc("status") + 1, "late", late)
    frames.insert(frames.columns.get_loc("late") + 1, "latency_s", latency)
    segments = world.pool.segments.to_frame()
    names = accelerators["name"].to_numpy()
    segments.insert(1, "accel_name", names[segments["accel"].to_numpy()] if len(segments) else [])
    return summary, {"frames": frames, "segments": segments, "models": models, "accelerators": accelerators}
