"""`testbed profile`: measure a model here, then simulate with the measured costs."""

import pandas as pd
import pytest

from sim.cli import main
from sim.runner import load_spec, run
from workloads.xr.models import task_layers

FAST = ["--warmup", "1", "--repeats", "2"]


def _scenario(profile_csv: str) -> dict:
    return {
        "kind": "xr",
        "duration_s": 1.0,
        "hardware": {"preset": "Single_4K", "dataflow": "WS", "profile_csv": profile_csv},
        "models": [{"name": "keyword_detection", "fps": 10}],
    }


def test_profile_round_trip(tmp_path, capsys):
    out = tmp_path / "kd.csv"
    args = ["profile", "keyword_detection", "--out", str(out), "--power-w", "4", "--device-name", "acc0"]
    assert main([*args, *FAST]) == 0
    assert "layers of keyword_detection on cpu" in capsys.readouterr().out
    table = pd.read_csv(out)
    assert list(table["layer"]) == [layer.name for layer in task_layers("keyword_detection")]
    assert (table["latency_s"] > 0).all()
    assert table["energy_j"].to_numpy() == pytest.approx(4 * table["latency_s"].to_numpy())
    result = run(load_spec(_scenario(str(out))), seed=0)
    frames = result.tables["frames"]
    done = frames[frames["status"] == "completed"]
    # one model on one accelerator, nothing queues: each frame takes exactly the measured time
    assert (done["finish_s"] - done["start_s"]).to_numpy() == pytest.approx(table["latency_s"].sum())
    assert done["energy_j"].to_numpy() == pytest.approx(table["energy_j"].sum())


def test_a_profile_of_another_model_is_refused(tmp_path, capsys):
    out = tmp_path / "kd.csv"
    pd.DataFrame(
        {
            "model": "keyword_detection",
            "layer": ["stem"],
            "device": "acc0",
            "latency_s": [1e-3],
            "energy_j": [1e-3],
        }
    ).to_csv(out, index=False)
    with pytest.raises(Exception, match="layer\\(s\\) it does not have"):
        run(load_spec(_scenario(str(out))), seed=0)


def test_profile_a_factory_from_the_working_folder(tmp_path, monkeypatch, capsys):
    (tmp_path / "mynet.py").write_text(
        "from torch import nn\n\ndef build():\n"
        "    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 30 * 30, 10))\n"
    )
    monkeypatch.chdir(tmp_path)
    args = ["profile", "mynet:build", "--input-shape", "1,3,32,32", "--out", "p.csv", "--power-w", "1"]
    assert main([*args, *FAST]) == 0
    table = pd.read_csv(tmp_path / "p.csv")
    assert set(table["model"]) == {"mynet:build"} and len(table) >= 3


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--power-w", "-1"], "--power-w: -1.0 is not allowed"),
        (["--power-w", "1", "--repeats", "0"], "--repeats: 0 is not allowed"),
        (["--power-w", "1", "--input-shape", "1,x"], "--input-shape: '1,x' is not a shape"),
    ],
)
def test_bad_profile_options_are_one_line(tmp_path, capsys, extra, message):
    assert main(["profile", "keyword_detection", "--out", str(tmp_path / "p.csv"), *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_unknown_model_and_bad_factory(tmp_path, monkeypatch, capsys):
    (tmp_path / "notnet.py").write_text("def build():\n    return 3\n")
    monkeypatch.chdir(tmp_path)
    base = ["--out", "p.csv", "--power-w", "1", "--input-shape", "1,3"]
    assert main(["profile", "hand_trackng", *base]) == 2
    assert "model 'hand_trackng' is not registered; did you mean 'hand_tracking'?" in capsys.readouterr().err
    assert main(["profile", "notnet:build", *base]) == 2
    assert "returned int, not a torch nn.Module" in capsys.readouterr().err
    assert main(["profile", "nosuch:build", *base]) == 2
    assert "task: cannot import 'nosuch:build'" in capsys.readouterr().err
