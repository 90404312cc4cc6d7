"""The edge scenario kind: conservation of requests, exact energy, battery, determinism, bad input."""

import json

import numpy as np
import pytest
import yaml

from sim.cli import main
from sim.runner import load_spec, run

SCENARIO = "scenarios/edge/edge_digits.yaml"


def _run(*sets, seed=0):
    return run(load_spec(SCENARIO, ["duration_s=2.0", *sets]), seed=seed)


@pytest.mark.parametrize("exit_policy", ["none", "max_softmax", "predictive_exit"])
@pytest.mark.parametrize("governor", ["performance", "ondemand", "predictive"])
def test_requests_and_energy_add_up(exit_policy, governor):
    result = _run(f"exit_policy.name={exit_policy}", f"dvfs.name={governor}")
    s, req, dev = result.summary, result.tables["requests"], result.tables["devices"]
    assert s["requests"] == s["completed"] + s["unserved"] == dev["arrived"].sum()
    assert len(req) == s["completed"]
    # one request at a time per device, in arrival order
    start, finish = req["start_s"].to_numpy(), req["finish_s"].to_numpy()
    assert np.all(start[1:] >= finish[:-1] - 1e-12) and np.all(start >= req["arrival_s"].to_numpy())
    # energy: busy time at each point's power + idle + switching, the device's own integral
    points = result.tables["points"]
    spec = load_spec(SCENARIO).devices[0].device
    busy_j = sum(spec.power_w(p, busy=True) * b for p, b in zip(spec.points, points["busy_s"]))
    idle_j = spec.idle_power_w * dev["idle_s"].sum()
    switch_j = dev["switch_s"].sum() * spec.idle_power_w + dev["switches"].sum() * spec.switch_energy_j
    assert s["energy_j"] == pytest.approx(busy_j + idle_j + switch_j, rel=1e-9)
    assert dev["busy_s"].sum() + dev["idle_s"].sum() + dev["switch_s"].sum() == pytest.approx(2.0)


def test_energy_splits_into_active_and_idle_and_costs_rank_lower_is_better():
    from sim import registry

    result = _run()
    s, dev = result.summary, result.tables["devices"]
    per = s["active_energy_per_inference_j"] + s["idle_energy_per_inference_j"]
    assert per == pytest.approx(s["energy_per_inference_j"], rel=1e-12)
    assert (
        dev["idle_energy_j"].sum() > 0
        and 0 < dev["busy_energy_j"].sum() <= s["energy_j"] - dev["idle_energy_j"].sum()
    )
    n, acc = s["completed"], s["accuracy"]
    assert s["accuracy_ci95"] == pytest.approx(1.96 * (acc * (1 - acc) / n) ** 0.5)
    directions = registry.get("scenario", "edge").metric_directions
    costs = [m for m in s if m.startswith(("energy", "active_energy", "idle_energy", "flops", "latency"))]
    assert len(costs) == 7 and all(directions[m] == "lower" for m in costs)


def test_accuracy_replays_the_inference_cache():
    from workloads.multiexit import load_exit_model

    model = load_exit_model("resnet_digits")
    req = _run("exit_policy.name=none").tables["requests"]
    expected = model.test_probs[-1, req["sample"].to_numpy()].argmax(-1) == model.test_labels[req["sample"]]
    assert (req["correct"].to_numpy() == expected).all()


def test_battery_runs_out_and_the_device_stops():
    result = _run("devices.0.device.battery_j=1.0")
    depleted = result.summary["battery_depleted_at_s"]
    assert 0 < depleted < 2.0
    assert result.tables["requests"]["finish_s"].max() <= depleted
    assert result.summary["energy_j"] == pytest.approx(1.0)
    assert result.summary["unserved"] > 0


def test_same_seed_same_results():
    a, b, c = _run(seed=4), _run(seed=4), _run(seed=5)
    assert json.dumps(a.summary) == json.dumps(b.summary) != json.dumps(c.summary)


def test_predictive_dvfs_re_sets_the_frequency_at_each_prediction():
    both = _run("exit_policy.params.beta=0.9", "exit_policy.params.max_round=2")
    points, dev = both.tables["points"], both.tables["devices"]
    assert points["busy_s"].iloc[:-1].sum() > 0  # predicted jumps ran below f_max ...
    assert dev["switches"].sum() > 0 and dev["switch_s"].sum() > 0  # ... and each change cost a switch
    fast = _run("exit_policy.params.beta=0.9", "exit_policy.params.max_round=2", "dvfs.name=performance")
    assert fast.tables["devices"]["switches"].sum() == 1  # the device starts at the lowest point
    assert fast.summary["accuracy"] == both.summary["accuracy"]
    assert fast.summary["flops_per_inference"] == both.summary["flops_per_inference"]
    # with no predictions it is the performance governor
    plain = [
        _run("exit_policy.name=max_softmax", f"dvfs.name={g}").summary for g in ("predictive", "performance")
    ]
    assert json.dumps(plain[0]) == json.dumps(plain[1])


BAD = {
    "unsorted points": (
        {
            "devices": [
                {
                    "name": "d",
                    "device": {
                        "points": [{"freq_hz": 2e9, "voltage_v": 1.0}, {"freq_hz": 1e9, "voltage_v": 1.1}]
                    },
                }
            ]
        },
        "devices.0.device.points",
    ),
    "non-positive frequency": (
        {"devices": [{"name": "d", "device": {"points": [{"freq_hz": 0, "voltage_v": 1.0}]}}]},
        "devices.0.device.points.0.freq_hz",
    ),
    "deadline zero": ({"devices": [{"name": "d", "deadline_s": 0}]}, "devices.0.deadline_s"),
    "threshold above one": (
        {"exit_policy": {"name": "max_softmax", "params": {"q": 1.5}}},
        "exit_policy.params.q",
    ),
    "beta at one": (
        {"exit_policy": {"name": "predictive_exit", "params": {"beta": 1.0}}},
        "exit_policy.params.beta",
    ),
    "entropy threshold above one": (
        {"exit_policy": {"name": "entropy", "params": {"threshold": [0.5, 1.5]}}},
        "exit_policy.params.threshold: must be in [0, 1]: one number, or one per exit (got [0.5, 1.5])",
    ),
    "unknown model": ({"model": "resnet_imagenet"}, "model: unknown multi-exit model"),
    "unknown governor": ({"dvfs": {"name": "turbo"}}, "dvfs.name: 'turbo' is not a registered dvfs policy"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_edge_input(tmp_path, capsys, name):
    extra, expected = BAD[name]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"kind": "edge", **extra}))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert expected in err, err


def test_entropy_thresholds_for_another_network_are_refused_at_build(tmp_path, capsys):
    sets = ["--set", "exit_policy.name=entropy", "--set", "exit_policy.params.threshold=[0.5, 0.5]"]
    assert main(["run", SCENARIO, *sets, "--set", "duration_s=0.1", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "error: exit_policy.params.threshold: 2 thresholds for a network with 4 exits; "
        "give one per exit or a single number"
    ), err


def test_offloading_relieves_an_overloaded_device():
    loaded = ["devices.0.rate_hz=6000", "dvfs.name=powersave"]  # more work than the device can do
    local = _run(*loaded)
    shared = _run(*loaded, "offload.policy.name=queue_threshold", "offload.policy.params.max_queue=1")
    s, dev, req = shared.summary, shared.tables["devices"], shared.tables["requests"]
    remote_done = int((req["point"] == -1).sum())
    assert 0 < remote_done <= s["offloaded"]
    assert s["requests"] == s["completed"] + s["unserved"] == dev["arrived"].sum()
    assert s["latency_p99_s"] < local.summary["latency_p99_s"]
    # the radio's upload energy is part of the total
    assert dev["radio_energy_j"].sum() > 0
    assert s["energy_j"] == pytest.approx(dev["energy_j"].sum())
    never = _run(*loaded, "offload.policy.name=never")
    assert never.summary["offloaded"] == 0
    assert json.dumps(never.summary) == json.dumps({**local.summary, "offloaded": 0.0})


def test_exit_index_beyond_the_network(tmp_path, capsys):
    code = main(
        [
            "run",
            SCENARIO,
            "--set",
            "exit_policy.name=fixed",
            "--set",
            "exit_policy.params.exit_index=7",
            "--set",
            "duration_s=0.1",
            "--no-report",
            "--out",
            "/tmp/never_written",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and not (tmp_path / "out").exists()
    assert "exit_policy.params.exit_index: 7 is beyond the network's exits (0..3)" in err


@pytest.mark.parametrize(
    "field,value,expected",
    [
        ("max_round", 9, "exit_policy.params.max_round: 9 is more predictions than exits after start_exit 0"),
        ("start_exit", 3, "exit_policy.params.start_exit: 3 leaves no exit to predict; allowed 0..2"),
    ],
)
def test_predictive_exit_beyond_the_network(capsys, field, value, expected):
    sets = [f"exit_policy.params.{field}={value}", "duration_s=0.1"]
    code = main(
        ["run", SCENARIO, *(a for s in sets for a in ("--set", s)), "--no-report", "--out", "/tmp/never"]
    )
    assert code == 2 and expected in capsys.readouterr().err


def test_fixed_exit_truncates_the_network():
    first = _run("exit_policy.name=fixed", "exit_policy.params.exit_index=0").summary
    full = _run("exit_policy.name=none").summary
    assert first["mean_exit_index"] == 0 and first["flops_per_inference"] < full["flops_per_inference"]


def _profile(tmp_path, drop_step=False, negative=False, slower=1.0):
    """A per-layer profile of resnet_digits on the Nano, written from the analytic model itself
    (``slower`` times its latency)."""
    from devices.edge import EdgeDeviceConfig
    from workloads.multiexit import load_exit_model

    nano, model = EdgeDeviceConfig(preset="jetson_nano_gpu"), load_exit_model("resnet_digits")
    rows = ["layer,freq_hz,latency_s,power_w"]
    for layer in (x for parts in (model.segments, model.heads) for part in parts for x in part):
        moved = layer.weight_bytes + layer.input_bytes + layer.output_bytes
        for i, point in enumerate(nano.points):
            if drop_step and i == 3 and layer is model.heads[0][0]:
                continue
            latency = -1e-6 if negative and i == 0 else slower * nano.execution_s(layer.macs, moved, point, 1)
            rows.append(f"{layer.name},{point.freq_hz},{latency!r},{nano.power_w(point, busy=True)!r}")
    path = tmp_path / "profile.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_a_measured_profile_replaces_the_analytic_device(tmp_path):
    path = _profile(tmp_path)
    sets = ["exit_policy.name=max_softmax", "dvfs.name=ondemand"]
    analytic = _run(*sets).summary
    measured = _run(*sets, f"devices.0.device.profile_csv={path}").summary
    for metric in ("energy_j", "latency_p50_s", "latency_p99_s", "completed", "accuracy"):
        assert measured[metric] == pytest.approx(analytic[metric], rel=1e-9), metric
    slower = tmp_path / "slower.csv"  # twice the measured latency: twice the busy time
    text = path.read_text().splitlines()
    rows = [text[0]] + [
        ",".join([*r.split(",")[:2], repr(2 * float(r.split(",")[2])), r.split(",")[3]]) for r in text[1:]
    ]
    slower.write_text("\n".join(rows) + "\n")
    busy = [
        _run(*sets, "dvfs.name=performance", f"devices.0.device.profile_csv={p}")
        .tables["devices"]["busy_s"]
        .sum()
        for p in (path, slower)
    ]
    assert busy[1] == pytest.approx(2 * busy[0], rel=0.05)


def test_governors_on_a_profiled_device_estimate_from_the_profile(tmp_path, monkeypatch):
    """deadline_aware plans with the profile's time: on a device measured three times slower
    than the analytic model it runs at higher points, and misses fewer deadlines than it
    would planning with the analytic constants."""
    from devices.edge import EdgeDevice
    from sim.kernel import Kernel
    from workloads.edge.world import EdgeWorld

    sets = ["duration_s=2.0", "exit_policy.name=none", "dvfs.name=deadline_aware", "devices.0.rate_hz=100"]
    spec = load_spec(SCENARIO, [*sets, f"devices.0.device.profile_csv={_profile(tmp_path, slower=3.0)}"])
    world = EdgeWorld(spec, Kernel(0))
    plan, device = world.plan, world.devices[0]
    work = (plan.full_macs, plan.full_bytes, plan.full_layers)
    estimate = [device.execution_s(*work[:2], i, work[2]) for i in range(len(device.points))]
    analytic = [device.config.execution_s(*work[:2], p, work[2]) for p in device.points]
    assert estimate == pytest.approx([3.0 * a for a in analytic], rel=1e-9)
    aware = run(spec, seed=0)
    monkeypatch.setattr(EdgeDevice, "use_profile", lambda *args: None)  # planning with the analytic model
    unaware = run(spec, seed=0)
    point = {k: r.tables["requests"]["point"].mean() for k, r in (("aware", aware), ("unaware", unaware))}
    assert point["aware"] > point["unaware"] + 1
    assert aware.summary["deadline_miss_rate"] < 0.5 * unaware.summary["deadline_miss_rate"]


@pytest.mark.parametrize(
    "kind,expected",
    [
        ("drop_step", "has no row for 307.2 MHz (1 of the device's 12 steps missing)"),
        ("negative", "has latency_s -1e-06; must be >= 0"),
    ],
)
def test_bad_profile_is_refused_naming_the_field(tmp_path, capsys, kind, expected):
    path = _profile(tmp_path, **{kind: True})
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        yaml.safe_dump({"kind": "edge", "devices": [{"name": "d", "device": {"profile_csv": str(path)}}]})
    )
    assert main(["validate", str(scenario)]) == 2
    err = capsys.readouterr().err
    assert "devices.0.device.profile_csv" in err and expected in err, err
