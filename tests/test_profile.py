"""`testbed profile`: measure a model here, then simulate with the measured costs."""

import pandas as pd
import pytest
import yaml

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


# --- edge: a multi-exit model's profile for one frequency step ---------------------------

FREQ_HZ = 2.6e9


def _edge_scenario(profile_csv: str, freqs_hz: tuple[float, ...] = (FREQ_HZ,), **model) -> dict:
    points = [{"freq_hz": f, "voltage_v": 1.0} for f in freqs_hz]
    device = {"preset": "host", "points": points, "profile_csv": profile_csv}
    return {
        "kind": "edge",
        "duration_s": 0.5,
        "model": "resnet_digits",
        **model,
        "exit_policy": {"name": "max_softmax"},
        "dvfs": {"name": "performance"},
        "devices": [{"name": "host", "device": device, "rate_hz": 100, "deadline_s": 0.05}],
    }


def _check_edge_round_trip(out, scenario: dict) -> None:
    """The written CSV has a row per layer of the model at the one step, and in a run on a
    device with that step each request's service time is the sum of the profiled layers
    it ran (max_softmax: the backbone and every head up to its exit)."""
    from workloads.multiexit import load_exit_model

    table = pd.read_csv(out)
    model = load_exit_model(scenario["model"], scenario.get("model_kwargs"), scenario.get("dataset"))
    layers = [x.name for parts in (model.segments, model.heads) for part in parts for x in part]
    assert sorted(table["layer"]) == sorted(layers) and len(table) == len(layers)
    assert (table["freq_hz"] == FREQ_HZ).all() and (table["power_w"] == 10).all()
    assert (table["latency_s"] > 0).all()
    result = run(load_spec(scenario), seed=0)
    req = result.tables["requests"]
    latency = table.set_index("layer")["latency_s"]
    seg_s, head_s = (
        [sum(latency[x.name] for x in part) for part in parts] for parts in (model.segments, model.heads)
    )
    to_exit_s = pd.Series(seg_s).cumsum() + pd.Series(head_s).cumsum()
    assert len(req) > 10 and req["exit"].nunique() > 1
    expected = to_exit_s[req["exit"]].to_numpy()
    assert (req["finish_s"] - req["start_s"]).to_numpy() == pytest.approx(expected, rel=1e-9)
    busy_j = result.tables["devices"]["busy_energy_j"].sum()
    assert busy_j == pytest.approx(10 * expected.sum(), rel=1e-9)


def test_edge_profile_round_trip(tmp_path, capsys):
    """Profile resnet_digits here (an exit model's name means the edge kind), then simulate it."""
    out = tmp_path / "rd.csv"
    args = ["profile", "resnet_digits", "--freq-hz", str(FREQ_HZ), "--power-w", "10", "--out", str(out)]
    assert main([*args, *FAST]) == 0
    assert "layers of resnet_digits on cpu" in capsys.readouterr().out
    _check_edge_round_trip(out, _edge_scenario(str(out)))


def test_edge_profile_of_a_users_multi_exit_module(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend("examples")
    out = tmp_path / "two.csv"
    model = {"model": "my_models:TwoExitNet", "model_kwargs": {"width": 8}, "dataset": "digits"}
    args = [
        "profile",
        model["model"],
        "--kind",
        "edge",
        "--model-kwargs",
        '{"width": 8}',
        "--dataset",
        "digits",
    ]
    assert main([*args, "--freq-hz", str(FREQ_HZ), "--power-w", "10", "--out", str(out), *FAST]) == 0
    _check_edge_round_trip(out, _edge_scenario(str(out), **model))


def test_a_device_with_steps_the_profile_lacks_is_refused(tmp_path, capsys):
    out = tmp_path / "one_step.csv"
    pd.DataFrame({"layer": ["stem.0"], "freq_hz": [FREQ_HZ], "latency_s": [1e-5], "power_w": [10.0]}).to_csv(
        out, index=False
    )
    scenario = tmp_path / "s.yaml"
    scenario.write_text(yaml.safe_dump(_edge_scenario(str(out), (1.3e9, FREQ_HZ))))
    assert main(["validate", str(scenario)]) == 2
    err = capsys.readouterr().err
    assert "devices.0.device.profile_csv" in err and "has no row for 1300 MHz" in err, err


@pytest.mark.parametrize(
    "model, extra, message",
    [
        ("resnet_digits", ["--freq-hz", "0"], "--freq-hz: 0.0 is not allowed; need a frequency in Hz > 0"),
        ("resnet_digits", ["--freq-hz=-1e9"], "--freq-hz: -1000000000.0 is not allowed"),
        ("resnet_digits", [], "--freq-hz: needed for an edge model"),
        (
            "resnet_digits",
            ["--freq-hz", "1e9", "--batch", "2"],
            "--batch: 2 is not allowed for an edge model",
        ),
        ("vgg_shapes_dynprune", ["--freq-hz", "1e9"], "profile its parent 'vgg_shapes' instead"),
        ("keyword_detection", ["--kind", "xr", "--freq-hz", "1e9"], "--freq-hz: only for an edge model"),
        (
            "resnet_digit",
            ["--freq-hz", "1e9"],
            "unknown multi-exit model 'resnet_digit'; did you mean 'resnet_digits'?",
        ),
        ("resnet_digits", ["--device-name", "acc0"], "--device-name: only for an xr model (--kind xr)"),
        ("resnet_digits", ["--freq-hz", "1e9", "--dataset", "cifar"], "--dataset: unknown dataset 'cifar'"),
        ("m:f", ["--kind", "edge", "--model-kwargs", "[1]"], "--model-kwargs: '[1]' is not a JSON object"),
    ],
)
def test_bad_edge_profile_input_is_one_line(tmp_path, capsys, monkeypatch, model, extra, message):
    import workloads.edge.profile

    monkeypatch.setattr(workloads.edge.profile, "CLOCK_FILE", tmp_path / "no_such_clock")
    assert main(["profile", model, "--out", str(tmp_path / "p.csv"), "--power-w", "1", *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "p.csv").exists()
