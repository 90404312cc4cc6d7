"""Queueing theory: the xr engine with Poisson arrivals and no deadlines is an M/G/c queue.

One stream into one accelerator under FCFS reproduces the Pollaczek-Khinchine mean
wait (M/D/1 with the cost model's fixed service time, M/M/1 with exponential
service); the Quad_4K pool of four identical accelerators reproduces Erlang C.
Each check runs at load 0.8 over at least 100,000 jobs and must land within 3%.
"""

import math

import numpy as np
import pytest

from sim.kernel import Kernel
from sim.runner import load_spec, run
from workloads.xr.world import XRWorld

LOAD = 0.8


def _spec(preset: str, rate: float, distribution: str, jobs: int):
    return load_spec(
        {
            "kind": "xr",
            "name": "queue",
            "integer_ms_period": False,
            "duration_s": jobs / rate,
            "hardware": {"preset": preset, "dataflow": "WS"},
            "scheduler": {"name": "fcfs"},
            "service_time": {"distribution": distribution},
            "models": [
                {
                    "name": "gaze_estimation",
                    "fps": rate,
                    "deadline": "none",
                    "arrival": {"process": "poisson"},
                }
            ],
        }
    )


def _service_s(preset: str) -> float:
    probe = _spec(preset, 1.0, "deterministic", 1)
    return XRWorld(probe, Kernel(0)).costs[0].cum_latency_s[0][-1]


def _mean_wait(preset: str, servers: int, distribution: str, jobs: int, seed: int) -> tuple[float, float]:
    service = _service_s(preset)
    rate = LOAD * servers / service
    result = run(_spec(preset, rate, distribution, jobs), seed=seed)
    frames = result.tables["frames"]
    started = frames[frames["start_s"].notna()]
    assert len(started) >= jobs * 0.98
    return float((started["start_s"] - started["arrival_s"]).mean()), service


def erlang_c_wait(servers: int, load: float, service_s: float) -> float:
    """Mean wait in queue of M/M/c with per-server utilisation ``load``."""
    a = servers * load  # offered load in Erlangs
    terms = sum(a**k / math.factorial(k) for k in range(servers))
    top = a**servers / math.factorial(servers) / (1 - load)
    p_wait = top / (terms + top)
    return p_wait * service_s / (servers * (1 - load))


def test_md1_matches_pollaczek_khinchine():
    wait, d = _mean_wait("Single_4K", 1, "deterministic", 200_000, seed=0)
    expected = LOAD * d / (2 * (1 - LOAD))
    assert wait == pytest.approx(expected, rel=0.03)


def test_mm1_matches_pollaczek_khinchine():
    wait, d = _mean_wait("Single_4K", 1, "exponential", 1_000_000, seed=0)
    expected = LOAD * d / (1 - LOAD)
    assert wait == pytest.approx(expected, rel=0.03)


def test_mmc_matches_erlang_c():
    wait, d = _mean_wait("Quad_4K", 4, "exponential", 1_000_000, seed=0)
    assert wait == pytest.approx(erlang_c_wait(4, LOAD, d), rel=0.03)


def test_erlang_c_reduces_to_mm1():
    assert erlang_c_wait(1, 0.8, 1.0) == pytest.approx(4.0)
    assert np.isclose(erlang_c_wait(2, 0.5, 1.0), 1 / 3)
