"""SDRM3: every mechanism changes what happens, and each switch turns one off.

Scenarios: ``ar_phases`` (big.LITTLE, layer blocks; hand tracking and plane detection
join at 2 s) for the score weights and their tuning; ``vr_gaming_supernet`` (AR models join
at 0.5 s and leave at 1 s) for the supernet width; ``ar_assistant`` for the
workload-change detector.
"""

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import simpy
import yaml

from devices.system import AcceleratorPool, Job, ModelCost
from policies.scheduling.sdrm3 import SDRM3
from sim.cli import main
from sim.kernel import Kernel
from sim.runner import load_spec
from workloads.xr.metrics import uxcost
from workloads.xr.world import XRWorld

XR = Path(__file__).resolve().parents[1] / "scenarios" / "xr"
PHASE_AT_S = 2.0  # ar_phases: hand tracking and plane detection join
DEFAULT = (1.0, 0.5, 0.5)  # SDRM3.Params' initial (urgency, fairness, preference)


def _world(scenario: str, params: dict, seed: int = 0, *sets: str) -> XRWorld:
    overrides = ["scheduler.name=sdrm3", f"scheduler.params={json.dumps(params)}", *sets]
    spec = load_spec(XR / f"{scenario}.yaml", overrides)
    world = XRWorld(spec, Kernel(seed))
    world.run()
    return world


def _fixed(weights) -> dict:
    u, f, p = weights
    return {"adapt": False, "w_urgency": u, "w_fairness": f, "w_preference": p}


def _uxcost_since(world: XRWorld, since_s: float) -> float:
    """UXCost (workloads.xr.metrics.uxcost) of the frames that arrived from ``since_s`` on,
    charged the energy their jobs used (idle energy cannot be split by time)."""
    frames = world.results()[1]["frames"]
    f = frames[frames["arrival_s"] >= since_s]
    cfg = world.spec.metrics
    return uxcost(
        (f["status"] == "completed").to_numpy(),
        (f["status"] == "dropped").to_numpy(),
        f["late"].to_numpy(),
        f["latency_s"].to_numpy(),
        (f["deadline_s"] - f["arrival_s"]).to_numpy(),
        f["worst_latency_s"].to_numpy(),
        f["worst_energy_j"].to_numpy(),
        float(f["energy_j"].sum()),
        cfg.miss_penalty,
        cfg.drop_penalty,
    )


def _search_grid(centre, factor: float) -> list[tuple[float, ...]]:
    """``centre`` and ``centre`` with each weight multiplied by ``factor``, at ``centre``'s sum."""
    out = [tuple(centre)]
    for k in range(3):
        moved = list(centre)
        moved[k] *= factor
        out.append(tuple(w * sum(centre) / sum(moved) for w in moved))
    return out


def test_score_weights_change_schedules_and_uxcost():
    urgent = _world("ar_phases", _fixed((1.6, 0.2, 0.2)))
    placing = _world("ar_phases", _fixed((0.6, 0.3, 1.1)))
    a, b = (w.pool.segments.to_frame()[["accel", "start_s"]] for w in (urgent, placing))
    assert len(a) != len(b) or not a.equals(b)
    ux_urgent, ux_placing = urgent.results()[0]["uxcost"], placing.results()[0]["uxcost"]
    assert abs(ux_urgent - ux_placing) > 0.05 * min(ux_urgent, ux_placing), (ux_urgent, ux_placing)


def test_tuning_reaches_the_best_of_the_grid_within_five_steps_of_a_phase_change():
    """Five steps after ``ar_phases``' change, the tuned runs' UXCost over five seeds is at
    least as low as that of the best of the four fixed weight vectors the search samples
    (the best setting: lowest total over the same seeds)."""
    tuned_total, fixed_totals = 0.0, np.zeros(4)
    for seed in range(5):
        tuned = _world("ar_phases", {}, seed)
        policy = tuned.pool.scheduler
        p = policy.p
        detected = [t for t in policy.changes if t > PHASE_AT_S]
        assert detected and detected[0] <= PHASE_AT_S + 2 * p.window_s, policy.changes
        since = detected[0] + 5 * p.trial_windows * p.window_s  # five steps after the change
        grid = _search_grid(DEFAULT, p.explore_factor)
        tuned_total += _uxcost_since(tuned, since)
        fixed_totals += [_uxcost_since(_world("ar_phases", _fixed(w), seed), since) for w in grid]
        # the weights moved, and not to the floor
        settled = np.array(policy.weights) / sum(policy.weights)
        assert not np.allclose(settled, np.array(DEFAULT) / sum(DEFAULT))
        assert settled.min() > 2 * p.min_weight_share, settled
    assert tuned_total <= fixed_totals.min(), (tuned_total, fixed_totals)
    assert fixed_totals.min() < 0.97 * fixed_totals[0]  # the best setting is not the initial one


def test_weights_stay_put_between_workload_changes():
    policy = _world("ar_phases", {}).pool.scheduler
    p = policy.p
    search_s = 4 * p.trial_windows * p.window_s
    after = [w for t, w in policy.history if t > policy.changes[-1] + search_s + 1e-9]
    assert after and all(w == after[0] for w in after)


def test_a_workload_change_is_a_change_of_the_active_streams():
    # ar_assistant: every stream starts at once; speech recognition (triggered by keyword
    # detection with p=0.5, 3 fps) joins at its first trigger and never counts as leaving
    policy = _world("ar_assistant", {}, 0, "duration_s=4.0").pool.scheduler
    assert 1 <= len(policy.changes) <= 2, policy.changes
    assert len(policy.history) >= 39  # windows of 0.1 s, each one step
    # ar_phases: the start, then the join at 2 s (within a window of the phase)
    changes = _world("ar_phases", {}).pool.scheduler.changes
    assert len(changes) == 2 and PHASE_AT_S < changes[1] <= PHASE_AT_S + 0.2, changes


@pytest.mark.parametrize("load_scale", [1.3, 1.5])
def test_supernet_narrows_without_slack_and_widens_when_slack_returns(load_scale):
    world = _world("vr_gaming_supernet", {}, 0, f"load_scale={load_scale}")
    widths = world.pool.scheduler.width_history  # (time, model index, width index)
    narrowed = [(t, k) for t, _, k in widths if 0.5 < t <= 1.0 and k < 3]
    assert narrowed, widths
    if load_scale > 1.0:  # no slack left at all: down to the narrowest width
        assert min(k for _, k in narrowed) == 0, widths
    widest_again = [t for t, _, k in widths if k == 3 and t > narrowed[0][0]]
    assert widest_again and 1.0 < widest_again[0] < 1.5, widths
    frames = world.results()[1]["frames"]
    hud = frames[(frames["model"] == "hud_reader") & (frames["status"] == "completed")]
    full = hud["accuracy"].max()
    by_phase = [hud[(hud["arrival_s"] >= a) & (hud["arrival_s"] < b)]["accuracy"] for a, b in PHASES]
    assert (by_phase[0] == full).all() and by_phase[1].mean() < full and (by_phase[2].tail(5) == full).all()


PHASES = [(0.0, 0.5), (0.6, 1.0), (1.0, 1.5)]  # vr_gaming_supernet: before, during, after the AR models


def test_switches_turn_each_mechanism_off():
    no_width = _world("vr_gaming_supernet", {"switch_width": False})
    frames = no_width.results()[1]["frames"]
    hud = frames[(frames["model"] == "hud_reader") & (frames["status"] == "completed")]
    assert hud["accuracy"].nunique() == 1 and not no_width.pool.scheduler.width_history
    fixed = _world("ar_phases", {"adapt": False}).pool.scheduler
    assert fixed.weights == list(DEFAULT) and not fixed.history


def _two_accelerator_pool(scheduler):
    env = simpy.Environment()
    specs = [SimpleNamespace(name=n, num_pes=1, dataflow="WS", idle_power_w=0.0) for n in ("fit", "poor")]
    done = []
    # the job runs 1 s on `fit` and 10 s on `poor`
    cost = ModelCost("m", 0, np.array([[1.0], [10.0]]), np.ones((2, 1)), period_s=100.0)
    pool = AcceleratorPool(
        env,
        specs,
        scheduler,
        block_granularity=False,
        on_complete=lambda j, t: done.append((j.frame, j.accel, t)),
        on_drop=lambda j, t: None,
        model_names=["m"],
        models=[cost],
    )
    pool.submit(Job(cost, 0, 0.0, 100.0))  # takes `fit` until t=1
    pool.submit(Job(cost, 1, 0.0, 100.0))
    env.run()
    return done


def test_waits_for_the_accelerator_that_suits_the_job_unless_the_filter_is_off():
    assert _two_accelerator_pool(SDRM3(adapt=False)) == [(0, 0, 1.0), (1, 0, 2.0)]
    assert _two_accelerator_pool(SDRM3(adapt=False, wait_filter=False)) == [(0, 0, 1.0), (1, 1, 10.0)]


def test_decision_state_is_per_instance():
    a, b = SDRM3(), SDRM3()
    a.weights[0] = 5.0
    assert b.weights[0] == 1.0 and not math.isnan(b.weights[1])


def test_a_load_band_upside_down_is_a_one_line_error(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    scheduler = {"name": "sdrm3", "params": {"load_low": 0.95}}
    path.write_text(yaml.safe_dump({"kind": "xr", "scheduler": scheduler}))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: scheduler.params.load_low (0.95) must be below load_high (0.9)"
