"""Sweeps: equal results on every backend, resume after SIGKILL, failure isolation, errors."""

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from sim.cli import main
from sim.sweep import load_sweep, plan, sweep

ROOT = Path(__file__).parents[1]
SCENARIO = ROOT / "scenarios" / "xr" / "vr_gaming.yaml"


def _sweep_file(tmp_path, **extra) -> Path:
    data = {
        "name": "t",
        "base": str(SCENARIO),
        "set": {"duration_s": 0.3},
        "grid": {"scheduler.name": ["fcfs", "edf"]},
        "seeds": 2,
        **extra,
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _results(out: Path) -> dict[str, bytes]:
    return {p.parent.name: p.read_bytes() for p in sorted((out / "runs").glob("*/summary.json"))}


def test_backends_agree_bit_for_bit(tmp_path):
    path = _sweep_file(
        tmp_path, zip={"hardware.preset": ["Dual_4K", "Dual_4K_bl"], "granularity": ["model", "layer_block"]}
    )
    outs = {}
    for name, backend, workers in [
        ("serial", "serial", 1),
        ("pool1", "pool", 1),
        ("pool2", "pool", 2),
        ("ray", "ray", 2),
    ]:
        table = sweep(path, tmp_path / name, backend=backend, workers=workers, progress=False)
        assert (table["status"] == "done").all(), table["error"].dropna().tolist()
        outs[name] = table
    reference = outs["serial"].drop(columns="wall_time_s")
    assert len(reference) == 2 * 2 * 2
    for name, table in outs.items():
        pd.testing.assert_frame_equal(table.drop(columns="wall_time_s"), reference, check_exact=True)
        assert _results(tmp_path / name) == _results(tmp_path / "serial")


def test_missing_referenced_file_is_refused_before_any_run(tmp_path, capsys):
    path = _sweep_file(
        tmp_path,
        grid={"scheduler.name": ["fcfs", "edf"], "hardware.profile_csv": [None, "no/such/profile.csv"]},
    )
    code = main(["sweep", str(path), "--out", str(tmp_path / "cli"), "--backend", "serial"])
    err = capsys.readouterr().err
    assert code == 2 and "hardware.profile_csv: no such file 'no/such/profile.csv'" in err, err
    assert not (tmp_path / "cli" / "runs.sqlite").exists()


def test_resume_after_sigkill_runs_each_run_once(tmp_path):
    path = _sweep_file(tmp_path, seeds=6, set={"duration_s": 1.0})
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "sim.cli",
        "sweep",
        str(path),
        "--out",
        str(out),
        "--backend",
        "serial",
        "--no-report",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = out / "runs.sqlite"
    deadline = time.time() + 120
    done_before = {}
    while time.time() < deadline:
        if db.exists():
            with sqlite3.connect(db) as con, contextlib.suppress(sqlite3.OperationalError):
                # the file exists a moment before its table does
                done_before = dict(
                    con.execute("SELECT id, finished_at FROM runs WHERE status='done'").fetchall()
                )
            if len(done_before) >= 3:
                break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 3 <= len(done_before) < 12, "kill the sweep part-way"
    assert main(["sweep", str(path), "--out", str(out), "--backend", "serial", "--resume"]) == 0
    with sqlite3.connect(db) as con:
        rows = dict(con.execute("SELECT id, finished_at FROM runs WHERE status='done'").fetchall())
    assert len(rows) == 12
    # runs finished before the kill were not run again
    assert all(rows[rid] == t for rid, t in done_before.items())
    assert len(list((out / "runs").iterdir())) == 12
    assert len(pd.read_csv(out / "summary.csv")) == 12


def test_report_ranks_policies_against_baseline(tmp_path):
    path = _sweep_file(
        tmp_path,
        grid={
            "scheduler.name": ["fcfs", "edf", "latency_greedy"],
            "hardware.preset": ["Dual_4K", "Dual_4K_bl"],
        },
        baseline={"scheduler.name": "fcfs"},
    )
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out), "--backend", "serial", "--run-reports"]) == 0
    html = (out / "report.html").read_text()
    for needle in ("ranking by uxcost", "change vs fcfs", "by_scheduler_name", "by_hardware_preset", "runs/"):
        assert needle in html
    table = pd.read_csv(out / "summary.csv")
    assert set(table.columns) >= {"id", "status", "scheduler.name", "hardware.preset", "seed", "uxcost"}
    first = table["id"].iloc[0]
    assert (out / "runs" / first / "report.html").exists() and f"runs/{first}/report.html" in html


def test_plan_ids_are_stable_and_unique(tmp_path):
    spec, bases = load_sweep(_sweep_file(tmp_path))
    a, b = plan(spec, bases), plan(spec, bases)
    assert [r["id"] for r in a] == [r["id"] for r in b]
    assert len({r["id"] for r in a}) == len(a) == 4


def test_random_factors_are_reproducible(tmp_path):
    path = _sweep_file(
        tmp_path,
        grid={},
        random={
            "count": 5,
            "seed": 3,
            "params": {"duration_s": {"uniform": [0.1, 0.2]}, "scheduler.name": {"choice": ["fcfs", "edf"]}},
        },
    )
    spec, _ = load_sweep(path)
    points = spec.points()
    assert points == load_sweep(path)[0].points() and len(points) == 5
    assert all(0.1 <= p["duration_s"] <= 0.2 for p in points)


BAD = {
    "unknown factor key": ({"grid": {"scheduler.nmae": ["fcfs"]}}, "grid.scheduler.nmae: unknown config key"),
    "empty factor list": (
        {"grid": {"scheduler.name": []}},
        "grid.scheduler.name: List should have at least 1 item",
    ),
    "zero seeds": ({"seeds": 0}, "seeds"),
    "bad factor value": (
        {"grid": {"scheduler.name": ["fcfs", "magic"]}},
        "point scheduler.name='magic': scheduler.name: 'magic' is not a registered",
    ),
    "unknown sweep key": ({"grids": {}}, "grids: unknown key"),
    "zip lengths": ({"zip": {"duration_s": [0.1, 0.2], "seed": [1]}}, "zip: lists must have equal lengths"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_sweep_files(tmp_path, capsys, name):
    extra, expected = BAD[name]
    code = main(["sweep", str(_sweep_file(tmp_path, **extra)), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and expected in err, err
    assert "Traceback" not in err


def test_existing_sweep_folder_needs_resume(tmp_path, capsys):
    path = _sweep_file(tmp_path, seeds=1, grid={"scheduler.name": ["fcfs"]})
    assert main(["sweep", str(path), "--out", str(tmp_path / "o"), "--backend", "serial", "--no-report"]) == 0
    assert main(["sweep", str(path), "--out", str(tmp_path / "o"), "--backend", "serial"]) == 2
    assert "--resume" in capsys.readouterr().err
    summary = json.loads(next((tmp_path / "o" / "runs").glob("*/summary.json")).read_text())
    assert "uxcost" in summary


def test_several_base_scenarios_make_a_scenario_factor(tmp_path):
    other = ROOT / "scenarios" / "xr" / "ar_gaming.yaml"
    path = _sweep_file(tmp_path, base=[str(SCENARIO), str(other)], seeds=1)
    table = sweep(path, tmp_path / "o", backend="serial", progress=False)
    assert list(table["scenario"]) == ["vr_gaming"] * 2 + ["ar_gaming"] * 2
    assert (table["status"] == "done").all()


def test_demo_study(tmp_path, capsys):
    from sim.demo import run_demo

    report = run_demo(tmp_path / "demo")
    table = pd.read_csv(tmp_path / "demo" / "summary.csv")
    assert len(table) == 18 and (table["status"] == "done").all()
    # the what-if shows a difference: at twice the frame rates the schedulers part ways
    spread = table.groupby(["load_scale", "scheduler.name"])["uxcost"].mean().groupby(level=0)
    ratio = spread.max() / spread.min()
    assert ratio[2.0] > 1.1 and ratio[2.0] > ratio[1.0], ratio
    assert "load x2: UXCost spread" in capsys.readouterr().out
    assert all((tmp_path / "demo" / "runs" / rid / "report.html").exists() for rid in table["id"])
    assert "change vs fcfs" in report.read_text()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    assert main(["demo", "--out", str(tmp_path / "other")]) == 2
    assert (tmp_path / "other" / "keep.txt").read_text() == "mine"


def test_zipped_arms_are_shown_apart(tmp_path):
    """Two zipped arms sharing an aggregation name stay two arms in the report's factors."""
    from sim.compare import fold_zip

    sweep_dict = {
        "zip": {"name": ["plain", "plain_head", "prox"], "aggregation.name": ["fedavg", "fedavg", "fedprox"]},
        "baseline": {"aggregation.name": "fedprox"},
    }
    table = pd.DataFrame(
        {"name": ["plain", "plain_head", "prox"] * 2, "aggregation.name": ["fedavg", "fedavg", "fedprox"] * 2}
    )
    factors, policy, marks = fold_zip(table, sweep_dict, ["name", "aggregation.name"], "aggregation.name")
    assert (factors, policy, marks["baseline"]) == (["name"], "name", "prox")
    # a first key that does not tell the rows apart is labelled with the keys that do
    table = pd.DataFrame({"aggregation.name": ["fedavg", "fedavg"], "model.head": ["linear", "anchored"]})
    factors, policy, _ = fold_zip(
        table, {"zip": {"aggregation.name": [], "model.head": []}}, ["aggregation.name", "model.head"], None
    )
    assert factors == ["aggregation.name"] and policy is None
    assert list(table["aggregation.name"]) == ["fedavg, model.head=linear", "fedavg, model.head=anchored"]


def test_pool_sweep_of_a_federated_run_leaves_no_leaked_semaphore(tmp_path):
    """Workers make tqdm's lock a thread lock: no resource-tracker warning at the end."""
    data = {
        "name": "t",
        "base": str(ROOT / "scenarios" / "federated" / "fl_digits.yaml"),
        "set": {"rounds": 1},
        "grid": {"aggregation.name": ["fedavg"]},
        "seeds": 1,
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data))
    cmd = [
        sys.executable,
        "-m",
        "sim.cli",
        "sweep",
        str(path),
        "--out",
        str(tmp_path / "o"),
        "--workers",
        "1",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr[-500:]
    assert "leaked" not in done.stderr, done.stderr[-500:]
