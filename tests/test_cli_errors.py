"""Bad input: exit code 2 and one line per problem naming the field; never a traceback."""

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import shipped

from sim.cli import main
from sim.sweep import load_sweep, plan

ROOT = Path(__file__).parents[1]
VR = ROOT / "scenarios" / "xr" / "vr_gaming.yaml"
GOOD = VR.read_text()


def _run_cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.err


CASES = {
    "wrong type": ("kind: xr\nduration_s: abc\n", [], "duration_s: Input should be a valid number"),
    "negative fps": (
        "kind: xr\nmodels:\n  - {name: hand_tracking, fps: -5}\n",
        [],
        "models.0.fps: Input should be greater than 0 (got -5)",
    ),
    "fps of zero": (
        "kind: xr\nmodels:\n  - {name: hand_tracking, fps: 0}\n",
        [],
        "models.0.fps: Input should be greater than 0 (got 0)",
    ),
    "unknown key": ("kind: xr\nmodelz: []\n", [], "modelz: unknown key"),
    "empty models": ("kind: xr\nmodels: []\n", [], "models: List should have at least 1 item"),
    "cycle": (
        "kind: xr\nmodels:\n  - {name: eye_segmentation, depends_on: gaze_estimation, fps: 60}\n"
        "  - {name: gaze_estimation, depends_on: eye_segmentation}\n",
        [],
        "dependency cycle",
    ),
    "unknown dependency": (
        "kind: xr\nmodels:\n  - {name: gaze_estimation, depends_on: nothing}\n",
        [],
        "models.0.depends_on: unknown model 'nothing'",
    ),
    "unknown scheduler": (
        "kind: xr\nscheduler: {name: magic}\n",
        [],
        "scheduler.name: 'magic' is not a registered scheduling policy; known: edf",
    ),
    "params not taken": (
        "kind: xr\nscheduler: {name: fcfs, params: {x: 1}}\n",
        [],
        "scheduler.params: policy 'fcfs' takes none",
    ),
    "unknown task": (
        "kind: xr\nmodels:\n  - {name: a, task: teleport, fps: 5}\n",
        [],
        "models.0.task: model 'teleport' is not registered",
    ),
    "unknown preset": ("kind: xr\nhardware: {preset: Octo_1K}\n", [], "hardware.preset"),
    "negative seed": ("kind: xr\nseed: -1\n", [], "seed: Input should be greater than or equal to 0"),
    "trigger above one": (
        "kind: xr\nmodels:\n  - {name: eye_segmentation, fps: 60}\n"
        "  - {name: gaze_estimation, depends_on: eye_segmentation, trigger_p: 1.5}\n",
        [],
        "models.1.trigger_p",
    ),
    "bad set": ("kind: xr\n", ["--set", "duration_s"], "--set 'duration_s': expected KEY=VALUE"),
    "bad set value": (
        "kind: xr\n",
        ["--set", "duration_s=-1"],
        "duration_s: Input should be greater than 0 (got -1)",
    ),
    "bad set index": ("kind: xr\n", ["--set", "models.9.fps=3"], "--set models.9.fps"),
    "unknown kind": ("kind: teleport\n", [], "kind: 'teleport' is not a registered scenario kind"),
    "bad yaml": ("models: [\n", [], "invalid YAML"),
    "not a mapping": ("- 1\n- 2\n", [], "top level must be a mapping"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_file_is_one_line_per_problem(tmp_path, capsys, name):
    body, extra, expected = CASES[name]
    path = tmp_path / "bad.yaml"
    path.write_text(body)
    code, err = _run_cli(capsys, "validate", str(path), *extra)
    assert code == 2
    assert expected in err, err
    assert all(line.startswith("error: ") for line in err.strip().splitlines())


def test_missing_file(capsys):
    code, err = _run_cli(capsys, "run", "does/not/exist.yaml")
    assert code == 2 and "does/not/exist.yaml: no such file" in err


def test_several_problems_give_several_lines(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("kind: xr\nduration_s: -1\nbogus: 1\n")
    code, err = _run_cli(capsys, "validate", str(path))
    assert code == 2 and len(err.strip().splitlines()) == 2


@pytest.mark.parametrize("path", shipped(), ids=lambda p: p.stem)
def test_shipped_scenarios_validate(capsys, path):
    assert main(["validate", str(path)]) == 0


@pytest.mark.parametrize("path", shipped("sweep"), ids=lambda p: p.stem)
def test_shipped_sweeps_plan(path):
    spec, bases = load_sweep(path)
    runs = plan(spec, bases)
    assert len({r["id"] for r in runs}) == len(runs) > 0


def test_console_exit_code_is_two():
    proc = subprocess.run(
        [sys.executable, "-m", "sim.cli", "validate", str(VR), "--set", "seed=-3"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: seed:") and "Traceback" not in proc.stderr
