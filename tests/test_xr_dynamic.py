"""Dynamic workloads: phases, bursts, per-frame work variation, and their bad input."""

import numpy as np
import pytest
from conftest import SMALL_ACCELERATOR

from sim.cli import main
from sim.runner import load_spec, run

VR = [
    {"name": "eye_segmentation", "fps": 60},
    {"name": "gaze_estimation", "depends_on": "eye_segmentation"},
    {"name": "hand_tracking", "fps": 45},
]


def _frames(data, seed=0):
    return run(load_spec({"kind": "xr", **data}), seed=seed).tables["frames"]


def test_phase_adds_and_removes_models():
    frames = _frames(
        {
            "duration_s": 3.0,
            "models": VR,
            "phases": [
                {"at_s": 1.0, "add": [{"name": "depth_estimation", "fps": 30}]},
                {"at_s": 2.0, "remove": ["eye_segmentation"]},
            ],
        }
    )
    by_model = frames.groupby("model")["arrival_s"]
    assert by_model.min()["depth_estimation"] >= 1.0
    # removing the root stops its dependents too
    assert by_model.max()["eye_segmentation"] < 2.0 and by_model.max()["gaze_estimation"] < 2.0
    assert by_model.max()["hand_tracking"] > 2.9
    assert 55 <= (frames["model"] == "depth_estimation").sum() <= 62


def test_bursty_arrivals_cluster_and_keep_their_mean_rate():
    cfg = {"process": "bursty", "burst_factor": 5.0, "burst_mean_s": 0.2, "calm_mean_s": 0.8}
    frames = _frames(
        {
            "duration_s": 200.0,
            "integer_ms_period": False,
            "scheduler": {"name": "fcfs"},
            "hardware": {"preset": "Quad_8K"},
            "models": [{"name": "keyword_detection", "fps": 10, "arrival": cfg}],
        }
    )
    gaps = np.diff(np.sort(frames["arrival_s"].to_numpy()))
    # MMPP-2 mean rate: time-weighted mix of the two rates
    expected = 10 * (0.8 + 5.0 * 0.2) / 1.0
    assert len(frames) / 200.0 == pytest.approx(expected, rel=0.1)
    assert gaps.std() / gaps.mean() > 1.1  # burstier than Poisson (CV 1)


def test_work_variation_scales_latency_and_energy_together():
    base = {
        "duration_s": 2.0,
        "hardware": {"preset": "Quad_8K"},
        "models": [{"name": "keyword_detection", "fps": 30, "deadline": "none"}],
    }
    fixed = _frames(base)
    varied = _frames(
        {**base, "models": [{**base["models"][0], "work": {"distribution": "lognormal", "cv": 0.5}}]}
    )
    per_latency = varied["energy_j"] / varied["latency_s"]
    assert np.allclose(per_latency, (fixed["energy_j"] / fixed["latency_s"]).iloc[0])
    assert varied["energy_j"].std() > 0 and fixed["energy_j"].nunique() == 1


BAD = {
    "phase removes a model that is not running": (
        {"phases": [{"at_s": 1.0, "remove": ["depth_estimation"]}]},
        "phases.0.remove: 'depth_estimation' is not running at 1.0 s",
    ),
    "phase removes twice": (
        {"phases": [{"at_s": 0.5, "remove": ["hand_tracking"]}, {"at_s": 1.0, "remove": ["hand_tracking"]}]},
        "phases.1.remove: 'hand_tracking' is not running",
    ),
    "phase after the end": (
        {"phases": [{"at_s": 5.0, "remove": ["hand_tracking"]}]},
        "phases.0.at_s: 5.0 must be after the previous phase",
    ),
    "negative weight": (
        {"scheduler": {"name": "sdrm3", "params": {"w_urgency": -1}}},
        "scheduler.params.w_urgency: Input should be greater than or equal to 0 (got -1)",
    ),
    "unknown accelerator in a placement": (
        {"scheduler": {"name": "herald", "params": {"placement": {"hand_tracking": "acc7"}}}},
        "scheduler.params.placement.hand_tracking: unknown accelerator 'acc7'",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_dynamic_input(tmp_path, capsys, name):
    import yaml

    extra, expected = BAD[name]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"kind": "xr", "duration_s": 2.0, "models": VR, **extra}))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert expected in err, err
    assert len(err.strip().splitlines()) == 1


def _supernet_run(hardware, scheduler="sdrm3"):
    spec = load_spec(
        {
            "kind": "xr",
            "duration_s": 1.0,
            "hardware": hardware,
            "scheduler": {"name": scheduler},
            "models": [
                {"name": "hud", "supernet": "digits_slimmable", "fps": 60, "samples_per_frame": 512},
                {"name": "hand_tracking", "fps": 45},
            ],
        }
    )
    return run(spec, seed=0)


def test_sdrm3_narrows_the_supernet_under_load_and_not_when_idle():
    from workloads.supernet import load_supernet

    full = load_supernet().variants[-1].accuracy
    small = {**SMALL_ACCELERATOR}
    loaded = _supernet_run({"accelerators": [{"name": "s0", **small}]})
    light = _supernet_run({"preset": "Quad_8K"})
    assert light.summary["accuracy"] == pytest.approx(full)
    assert loaded.summary["accuracy"] < full
    served = loaded.tables["frames"].query("model == 'hud' and status == 'completed'")["accuracy"]
    assert served.nunique() > 1
    # a scheduler without width control serves the configured (widest) width throughout
    assert _supernet_run({"accelerators": [{"name": "s0", **small}]}, "edf").summary["accuracy"] == full


def test_supernet_width_that_does_not_exist(tmp_path, capsys):
    import yaml

    path = tmp_path / "bad.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "kind": "xr",
                "models": [{"name": "hud", "supernet": "digits_slimmable", "width": 0.3, "fps": 30}],
            }
        )
    )
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert (
        "models.0: width 0.3 is not a width of supernet digits_slimmable; widths: 0.25, 0.5, 0.75, 1.0" in err
    )
