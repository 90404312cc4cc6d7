"""Invariants of every xr run: conservation of frames, one job per accelerator, energy."""

import numpy as np
import pytest
import yaml
from conftest import SMALL_ACCELERATOR, shipped

from sim import registry
from sim.runner import load_spec, run

SCENARIOS = [p for p in shipped() if "/xr/" in str(p)]


def _duration(path, short_s: float) -> str:
    """A short run, long enough to pass the scenario's last phase change."""
    phases = yaml.safe_load(path.read_text()).get("phases", [])
    return f"duration_s={max([short_s, *(p['at_s'] + 0.25 for p in phases)])}"


def check_invariants(result) -> None:
    t = result.tables
    models, frames, seg, acc = t["models"], t["frames"], t["segments"], t["accelerators"]
    # frames in = completed + dropped + in flight, per model and in the frame table
    assert (models["frames"] == models["completed"] + models["dropped"] + models["in_flight"]).all()
    assert len(frames) == models["frames"].sum()
    counts = frames.groupby("model")["status"].value_counts().unstack(fill_value=0)
    for row in models.itertuples():
        got = counts.loc[row.model] if row.model in counts.index else {}
        assert got.get("completed", 0) == row.completed and got.get("dropped", 0) == row.dropped
    # no accelerator runs two jobs at once
    for _, s in seg.groupby("accel"):
        start, end = s["start_s"].to_numpy(), s["end_s"].to_numpy()
        order = np.argsort(start, kind="stable")
        assert np.all(start[order][1:] >= end[order][:-1] - 1e-12)
        assert np.all(end >= start)
    # energy = per-job energy + idle energy; busy energy = integral over segments
    assert result.summary["energy_j"] == pytest.approx(
        frames["energy_j"].sum() + acc["idle_energy_j"].sum(), rel=1e-9
    )
    by_accel = seg.groupby("accel")["energy_j"].sum().reindex(acc["accel"], fill_value=0.0)
    assert np.allclose(by_accel.to_numpy(), acc["busy_energy_j"].to_numpy(), rtol=1e-9)
    busy = (seg["end_s"] - seg["start_s"]).groupby(seg["accel"]).sum().reindex(acc["accel"], fill_value=0.0)
    assert np.allclose(busy.to_numpy(), acc["busy_s"].to_numpy(), rtol=1e-9, atol=1e-12)
    # dropped frames never finish, completed frames never finish before they start
    done = frames[frames["status"] == "completed"]
    assert (done["finish_s"] >= done["start_s"]).all() and (done["start_s"] >= done["arrival_s"]).all()


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
@pytest.mark.parametrize("granularity", ["model", "layer_block"])
def test_invariants_hold_for_every_scheduler(path, granularity):
    for scheduler in registry.names("scheduling"):
        spec = load_spec(
            path,
            [
                f"scheduler.name={scheduler}",
                _duration(path, 0.6),
                f"granularity={granularity}",
                "hardware.preset=Dual_4K_bl",
            ],
        )
        result = run(spec, seed=7)
        check_invariants(result)
        assert result.summary["frames"] > 0


def test_overload_drops_and_cascades():
    small = {**SMALL_ACCELERATOR, "idle_power_w": 0.05}
    spec = load_spec(
        {
            "kind": "xr",
            "duration_s": 1.0,
            "hardware": {"accelerators": [{"name": "s0", **small}, {"name": "s1", **small}]},
            "models": [
                {"name": "eye_segmentation", "fps": 60},
                {"name": "gaze_estimation", "depends_on": "eye_segmentation"},
                {"name": "hand_tracking", "fps": 45},
            ],
        }
    )
    result = run(spec, seed=0)
    check_invariants(result)
    assert result.tables["accelerators"]["idle_energy_j"].gt(0).all()
    models = result.tables["models"].set_index("model")
    assert models["dropped"].sum() > 0 and models.loc["gaze_estimation", "dropped"] > 0
    frames = result.tables["frames"]
    eye_dropped = set(frames.query("model == 'eye_segmentation' and status == 'dropped'")["frame"])
    gaze_status = frames[frames["model"] == "gaze_estimation"].set_index("frame")["status"]
    # a dropped upstream frame takes its dependent with it
    assert all(gaze_status.get(f) == "dropped" for f in eye_dropped if f in gaze_status.index)


def test_trigger_probability_thins_dependents():
    spec = load_spec(
        {
            "kind": "xr",
            "duration_s": 20.0,
            "hardware": {"preset": "Dual_4K"},
            "models": [
                {"name": "keyword_detection", "fps": 30},
                {"name": "speech_recognition", "depends_on": "keyword_detection", "trigger_p": 0.2},
            ],
        }
    )
    models = run(spec, seed=3).tables["models"].set_index("model")
    share = models.loc["speech_recognition", "frames"] / models.loc["keyword_detection", "frames"]
    assert 0.15 < share < 0.25


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_xrbench_runtime_enters_frames_at_ticks_or_completions_and_drains(path):
    overrides = ["runtime=xrbench", "load_scale=1.5", _duration(path, 0.7), "granularity=layer_block"]
    spec = load_spec(path, overrides)
    result = run(spec, seed=2)
    check_invariants(result)
    frames = result.tables["frames"]
    assert result.summary["in_flight"] == 0  # queued work is drained after duration_s
    tick_s = min(spec.period_s(m.name) for m in spec.streams() if not m.depends_on)
    completions = frames.loc[frames["status"] == "completed", "finish_s"].to_numpy()
    arrival = frames["arrival_s"].to_numpy()
    on_tick = np.isclose(arrival / tick_s, np.round(arrival / tick_s), atol=1e-6)
    at_completion = np.isclose(arrival[:, None], completions[None, :], atol=1e-12, rtol=0).any(axis=1)
    assert (on_tick | at_completion).all()
    assert (arrival[~on_tick] <= spec.duration_s + 1e-12).all()
