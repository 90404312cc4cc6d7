"""Sweeps that lose nothing and never abort: dead and hung workers, exact resume, one
driver per folder, no orphans after a killed driver, atomic run folders.

The runs are of a tiny scenario kind defined here (``misbehave``), imported by the
workers as the sweep's plugin: it sleeps, raises, or kills its own process on demand.
"""

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Literal

import pandas as pd
import pytest
import yaml
from pydantic import NonNegativeFloat

from sim.cli import main
from sim.config import StrictModel
from sim.registry import register
from sim.sweep import sweep

HERE = Path(__file__).parent
PLUGIN = Path(__file__).stem


class MisbehaveSpec(StrictModel):
    kind: Literal["misbehave"] = "misbehave"
    name: str = "misbehave"
    seed: int = 0
    action: Literal["ok", "sleep", "raise", "kill", "kill_once"] = "ok"
    sleep_s: NonNegativeFloat = 0.0
    marker: str = ""  # kill_once: dies unless this file exists, and creates it


class _World:
    def __init__(self, spec: MisbehaveSpec):
        self.spec = spec

    def run(self) -> None:
        spec = self.spec
        if spec.action == "raise":
            raise RuntimeError("this run raises")
        if spec.action == "kill" or (spec.action == "kill_once" and not os.path.exists(spec.marker)):
            if spec.action == "kill_once":
                Path(spec.marker).touch()
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(spec.sleep_s)

    def results(self):
        return {"value": float(self.spec.seed)}, {"rows": pd.DataFrame({"seed": [self.spec.seed]})}


@register("scenario", "misbehave")
class MisbehaveKind:
    """A run that behaves as told (tests only)."""

    Spec = MisbehaveSpec
    headline_metrics = ("value",)

    @staticmethod
    def build(spec, kernel):
        return _World(spec)

    @staticmethod
    def figures(tables, summary, spec):
        return {}


def _sweep_file(tmp_path: Path, name: str = "sweep.yaml", **extra) -> Path:
    data = {"name": "t", "base": {"kind": "misbehave"}, "seeds": 2, "plugins": [PLUGIN], **extra}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def _status(table: pd.DataFrame) -> dict:
    return {(row["action"], row["seed"]): row["status"] for _, row in table.iterrows()}


def test_dead_worker_is_retried_once_then_recorded(tmp_path):
    marker = tmp_path / "died_once"
    path = _sweep_file(
        tmp_path,
        zip={"action": ["ok", "kill", "kill_once"], "marker": ["", "", str(marker)]},
    )
    table = sweep(path, tmp_path / "out", backend="pool", workers=2, progress=False)
    assert _status(table) == {
        ("ok", 0): "done",
        ("ok", 1): "done",
        ("kill", 0): "failed",
        ("kill", 1): "failed",
        ("kill_once", 0): "done",  # the first try killed its worker, the retry ran
        ("kill_once", 1): "done",
    }
    errors = table.loc[table["action"] == "kill", "error"]
    assert errors.str.fullmatch(r"worker died on each of 2 tries: killed by SIGKILL").all(), errors
    assert len(pd.read_csv(tmp_path / "out" / "summary.csv")) == 6
    assert len(list((tmp_path / "out" / "runs").iterdir())) == 4


def test_no_retry_and_cli_exit_code(tmp_path, capsys):
    path = _sweep_file(tmp_path, zip={"action": ["ok", "kill_once"], "marker": ["", str(tmp_path / "m")]})
    out = tmp_path / "out"
    argv = ["sweep", str(path), "--out", str(out), "--backend", "pool", "--workers", "1", "--retries", "0"]
    assert main(argv) == 1
    assert "3 runs done, 1 failed, 0 not done" in capsys.readouterr().out
    table = pd.read_csv(out / "summary.csv")
    assert table["error"].dropna().tolist() == ["worker died (no retry): killed by SIGKILL"]
    assert (out / "report.html").is_file() and "failed runs" in (out / "report.html").read_text()


@pytest.mark.parametrize("backend", ["pool", "serial"])
def test_hanging_run_is_stopped_at_its_timeout(tmp_path, backend):
    path = _sweep_file(tmp_path, zip={"action": ["ok", "sleep"], "sleep_s": [0.0, 60.0]}, timeout_s=1.0)
    start = time.perf_counter()
    table = sweep(path, tmp_path / "out", backend=backend, workers=2, progress=False)
    assert time.perf_counter() - start < 20
    hung = table[table["action"] == "sleep"]
    assert (hung["status"] == "failed").all() and hung["error"].str.contains("timed out").all()
    assert (table.loc[table["action"] == "ok", "status"] == "done").all()


def test_ray_worker_crash_is_recorded(tmp_path, monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    path = _sweep_file(tmp_path, grid={"action": ["ok", "kill"]}, seeds=1, retries=0)
    table = sweep(path, tmp_path / "out", backend="ray", workers=2, progress=False)
    assert _status(table) == {("ok", 0): "done", ("kill", 0): "failed"}
    assert table.loc[table["action"] == "kill", "error"].str.startswith("worker died (no retry): ").all()


def test_resume_of_a_different_sweep_is_refused(tmp_path, capsys):
    path = _sweep_file(tmp_path, grid={"action": ["ok", "raise"]})
    out = tmp_path / "out"
    base = ["sweep", str(path), "--out", str(out), "--backend", "serial", "--no-report"]
    assert main(base) == 1  # the `raise` runs fail, the others finish
    capsys.readouterr()
    table = pd.read_csv(out / "summary.csv")
    raised = table[table["action"] == "raise"]
    assert (raised["status"] == "failed").all() and raised["error"].str.contains("Traceback").all()
    assert raised["error"].str.contains("RuntimeError: this run raises").all()
    assert (table.loc[table["action"] == "ok", "status"] == "done").all()
    assert main([*base, "--resume", "--set", "seeds=3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds a different sweep (differs in seeds (2 -> 3))" in err[0], err
    assert main([*base, "--resume", "--set", "grid.action=[ok]"]) == 2  # a factor value removed
    assert "differs in grid.action" in capsys.readouterr().err
    assert main([*base, "--resume", "--timeout-s", "30"]) == 1  # execution settings may change
    assert main([*base, "--force-new", "--set", "grid.action=[ok]"]) == 0
    assert len(pd.read_csv(out / "summary.csv")) == 2


def test_whole_but_unrecorded_run_is_recorded_not_rerun(tmp_path):
    path = _sweep_file(tmp_path)
    out = tmp_path / "out"
    sweep(path, out, backend="serial", progress=False)
    with sqlite3.connect(out / "runs.sqlite") as db:  # as if the driver died between rename and commit
        db.execute("UPDATE runs SET status='pending', metrics=NULL WHERE seed=1")
    rid = pd.read_csv(out / "summary.csv").query("seed == 1")["id"].iloc[0]
    written = (out / "runs" / rid / "run.json").stat().st_mtime_ns
    (out / "runs" / "0000.partial").mkdir()  # a killed run's leftovers
    table = sweep(path, out, backend="serial", resume=True, progress=False)
    assert (table["status"] == "done").all() and table.loc[table["seed"] == 1, "value"].tolist() == [1.0]
    assert (out / "runs" / rid / "run.json").stat().st_mtime_ns == written
    assert not (out / "runs" / "0000.partial").exists()


def _cli(path: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "sim.cli", "sweep", str(path), "--out", str(out), "--no-report", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_one_driver_per_folder(tmp_path):
    path = _sweep_file(tmp_path, set={"action": "sleep", "sleep_s": 1.5})
    out = tmp_path / "out"
    out.mkdir()
    (out / ".lock").write_text("999999999\n")  # stale: nobody holds it
    procs = [_cli(path, out, "--backend", "serial") for _ in range(2)]
    results = [(p.wait(120), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    refused = next(err for code, err in results if code == 2)
    assert "another sweep driver (pid " in refused and len(refused.strip().splitlines()) == 1
    assert (pd.read_csv(out / "summary.csv")["status"] == "done").all()


def _descendants(pid: int) -> set[int]:
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_killed_driver_leaves_no_workers(tmp_path):
    path = _sweep_file(tmp_path, set={"action": "sleep", "sleep_s": 60.0}, seeds=4)
    proc = _cli(tmp_path / "sweep.yaml", tmp_path / "out", "--backend", "pool", "--workers", "2")
    deadline = time.time() + 60
    family: set[int] = set()
    while time.time() < deadline and len(family) < 4:  # fork server, resource tracker, 2 workers
        time.sleep(0.2)
        family = _descendants(proc.pid)
    assert len(family) >= 4, family
    time.sleep(1.0)  # the workers are in their runs
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 15
    while time.time() < deadline and any(_alive(p) for p in family):
        time.sleep(0.2)
    assert not [p for p in family if _alive(p)]
    assert path.exists()


def test_run_folder_is_whole_or_absent(tmp_path, capsys, monkeypatch):
    scenario = tmp_path / "s.yaml"
    scenario.write_text(yaml.safe_dump({"kind": "misbehave", "name": "../../escape"}))
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(scenario), "--plugin", PLUGIN]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs", "s.yaml"]
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["_.._escape-seed0"]
    out = tmp_path / "one"
    assert main(["run", str(scenario), "--plugin", PLUGIN, "--out", str(out)]) == 0
    (out / "stale.txt").write_text("from an older run")
    capsys.readouterr()
    assert main(["run", str(scenario), "--plugin", PLUGIN, "--out", str(out)]) == 2  # not without --force
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "exists and is not empty" in err[0] and "--force" in err[0], err
    assert (out / "stale.txt").exists()
    assert main(["run", str(scenario), "--plugin", PLUGIN, "--out", str(out), "--force"]) == 0
    assert not (out / "stale.txt").exists() and (out / "summary.json").is_file()
    assert not list(tmp_path.glob("*.partial")) and not list(tmp_path.glob("*.old"))
    (tmp_path / "empty").mkdir()
    assert main(["run", str(scenario), "--plugin", PLUGIN, "--out", str(tmp_path / "empty")]) == 0
    capsys.readouterr()
    (tmp_path / "file").write_text("mine")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "keep.txt").write_text("mine")
    for target in ("file", "folder"):
        for force, expected in (([], "exists and is not empty"), (["--force"], "is not a run folder")):
            argv = ["run", str(scenario), "--plugin", PLUGIN, "--out", str(tmp_path / target), *force]
            assert main(argv) == 2
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and expected in err[0], err
    assert (tmp_path / "folder" / "keep.txt").read_text() == "mine"
    long_name = "x" * 300
    assert main(["run", str(scenario), "--plugin", PLUGIN, "--out", str(tmp_path / long_name)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "File name too long" in err[0], err


def test_report_of_damaged_folders_is_one_line(tmp_path, capsys):
    path = _sweep_file(tmp_path, seeds=1)
    out = tmp_path / "out"
    sweep(path, out, backend="serial", progress=False)
    run_dir = next(p for p in (out / "runs").iterdir())
    parquet = run_dir / "tables" / "rows.parquet"
    parquet.write_bytes(parquet.read_bytes()[:20])
    assert main(["report", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "rows.parquet: cannot read" in err[0], err
    (out / "summary.csv").write_text('id,status\n"unterminated')
    assert main(["report", str(out)]) == 2
    assert "cannot read its summary.csv" in capsys.readouterr().err
    assert json.loads((run_dir / "summary.json").read_text()) == {"value": 0.0}


def test_tampered_cache_entry_is_missing(tmp_path, monkeypatch):
    import numpy as np
    import torch

    from workloads.cache import ArrayStore, load_torch, save_torch

    monkeypatch.setenv("TESTBED_CACHE", str(tmp_path))
    store = ArrayStore("t")
    store["k"] = (np.arange(5.0), np.ones(3))
    assert "k" in store and store["k"][0].tolist() == [0, 1, 2, 3, 4]
    path = store._path("k")
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # one flipped byte
    path.write_bytes(bytes(data))
    assert "k" not in store
    with pytest.raises(KeyError):
        store["k"]
    store["k"] = (np.arange(2.0),)
    path.write_bytes(path.read_bytes()[:-40])  # truncated
    assert "k" not in store
    store["other"] = (np.arange(2.0),)
    store._path("other").rename(store._path("moved"))  # an entry under another key
    assert "moved" not in store
    weights = tmp_path / "w.pt"
    save_torch(weights, {"w": torch.ones(4)})
    assert torch.equal(load_torch(weights)["w"], torch.ones(4))
    weights.write_bytes(weights.read_bytes()[:-8] + bytes(8))  # zeroed tail
    assert load_torch(weights) is None


def test_tampered_xr_layer_cost_entry_is_retraced(tmp_path, monkeypatch):
    from workloads.xr import models

    monkeypatch.setenv("TESTBED_CACHE", str(tmp_path))
    models._task_layers.cache_clear()
    true = models.task_layers("keyword_detection")
    (path,) = tmp_path.glob("xr-layers-keyword_detection-*.json")
    edited = path.read_bytes().replace(b'"macs": ', b'"macs": 9', 1)  # a layer's MACs made larger
    assert edited != path.read_bytes()
    path.write_bytes(edited)
    assert models.load_checked(path) is None
    models._task_layers.cache_clear()
    assert models.task_layers("keyword_detection") == true  # the edited entry is ignored and rebuilt
    assert models.load_checked(path) is not None
    path.write_bytes(path.read_bytes()[:-30])  # truncated
    models._task_layers.cache_clear()
    assert models.task_layers("keyword_detection") == true
    models._task_layers.cache_clear()
