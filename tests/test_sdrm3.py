"""SDRM3: online weight adaptation after a workload change, waiting for a suitable accelerator."""

import math
from types import SimpleNamespace

import numpy as np
import simpy

from devices.system import AcceleratorPool, Job, ModelCost
from policies.scheduling.sdrm3 import SDRM3
from sim.kernel import Kernel
from sim.runner import load_spec
from workloads.xr.world import XRWorld

PHASE_AT_S = 1.0
SCENARIO = {
    "kind": "xr",
    "duration_s": 3.0,
    "granularity": "layer_block",
    "hardware": {"preset": "Dual_4K", "dataflow": ["WS", "OS"]},
    "models": [
        {"name": "eye_segmentation", "fps": 60},
        {"name": "gaze_estimation", "depends_on": "eye_segmentation"},
        {"name": "depth_estimation", "fps": 30},
    ],
    "phases": [
        {
            "at_s": PHASE_AT_S,
            "add": [{"name": "plane_detection", "fps": 15}, {"name": "hand_tracking", "fps": 45}],
        }
    ],
}
# initial weights that favour urgency although this workload needs accelerator preference
POOR = {"w_urgency": 2.0, "w_fairness": 0.05, "w_preference": 0.05}


def _run(adapt: bool, seed: int):
    spec = load_spec({**SCENARIO, "scheduler": {"name": "sdrm3", "params": {"adapt": adapt, **POOR}}})
    world = XRWorld(spec, Kernel(seed))
    world.run()
    return world.results()[1]["frames"], world.pool.scheduler


def _uxcost(frames, since_s: float) -> float:
    """UXCost (docs/metrics.md) of the frames that arrived after ``since_s``."""
    f = frames[frames["status"].isin(["completed", "dropped"]) & (frames["arrival_s"] >= since_s)]
    budget = f["deadline_s"] - f["arrival_s"]
    delay = np.where(
        f["status"] == "completed", f["latency_s"] + np.where(f["late"], budget, 0.0), 2 * budget
    )
    return f["energy_j"].mean() * delay.mean()


def test_weights_settle_within_five_steps_after_a_phase_change():
    """An overload (drops: urgency matters) gives way at 1.5 s to a light mix (placement matters)."""
    change_s = 1.5
    spec = load_spec(
        {
            **SCENARIO,
            "models": [
                {"name": "eye_segmentation", "fps": 60},
                {"name": "gaze_estimation", "depends_on": "eye_segmentation"},
                {"name": "hand_tracking", "fps": 90},
                {"name": "depth_estimation", "fps": 60},
                {"name": "plane_detection", "fps": 60},
            ],
            "phases": [{"at_s": change_s, "remove": ["hand_tracking", "plane_detection"]}],
            "scheduler": {"name": "sdrm3"},
        }
    )
    world = XRWorld(spec, Kernel(0))
    world.run()
    after = [np.array(w) / sum(w) for t, w in world.pool.scheduler.history if t > change_s]
    moves = [np.abs(b - a).max() for a, b in zip(after, after[1:])]
    assert max(moves[:2]) > 0.1, "the new workload should move the weights"
    assert max(moves[4:]) < 0.01, f"not settled after 5 steps: {np.round(moves, 3)}"


def test_settled_weights_beat_the_initial_ones():
    for seed in (0, 1):
        adapted = _uxcost(_run(adapt=True, seed=seed)[0], since_s=2 * PHASE_AT_S)
        fixed = _uxcost(_run(adapt=False, seed=seed)[0], since_s=2 * PHASE_AT_S)
        assert adapted < 0.97 * fixed, (adapted, fixed)


def test_waits_for_the_accelerator_that_suits_the_job():
    env = simpy.Environment()
    specs = [SimpleNamespace(name=n, num_pes=1, dataflow="WS", idle_power_w=0.0) for n in ("fit", "poor")]
    done = []
    # the job runs 1 s on `fit` and 10 s on `poor`
    cost = ModelCost("m", 0, np.array([[1.0], [10.0]]), np.ones((2, 1)), period_s=100.0)
    pool = AcceleratorPool(
        env,
        specs,
        SDRM3(adapt=False),
        block_granularity=False,
        on_complete=lambda j, t: done.append((j.frame, j.accel, t)),
        on_drop=lambda j, t: None,
        model_names=["m"],
        models=[cost],
    )
    pool.submit(Job(cost, 0, 0.0, 100.0))  # takes `fit` until t=1
    pool.submit(Job(cost, 1, 0.0, 100.0))  # waits for `fit` rather than 10 s on `poor`
    env.run()
    assert done == [(0, 0, 1.0), (1, 0, 2.0)]


def test_decision_state_is_per_instance():
    a, b = SDRM3(), SDRM3()
    a.weights[0] = 5.0
    assert b.weights[0] == 1.0 and not math.isnan(b.weights[1])
