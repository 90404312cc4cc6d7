"""Bad input: exit code 2 and one line per problem naming the field; never a traceback."""

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import shipped

from sim import registry
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


DOCS = Path(__file__).parents[1] / "docs" / "extending.md"


def _doc_steps(text: str) -> tuple[dict[str, str], list[str]]:
    """Files (code blocks whose first line is ``# NAME``) and ``$ testbed`` commands of a page."""
    import re

    files, commands = {}, []
    for lang, body in re.findall(r"```(\w*)\n(.*?)```", text, flags=re.S):
        first, _, rest = body.partition("\n")
        if lang in ("python", "yaml") and first.startswith("# ") and "." in first:
            files[first[2:].strip()] = body
        if lang == "console":
            commands += [line[2:] for line in body.splitlines() if line.startswith("$ testbed ")]
    return files, commands


def _launcher(tmp_path: Path) -> list[str]:
    """A ``testbed`` like the console script: the working folder is not on its path."""
    script = tmp_path / "bin" / "testbed.py"
    script.parent.mkdir()
    script.write_text("import sys\nfrom sim.cli import main\nsys.exit(main())\n")
    return [sys.executable, str(script)]


def test_extending_docs_steps_work_verbatim(tmp_path):
    files, commands = _doc_steps(DOCS.read_text())
    assert {"my_schedulers.py", "my_scenario.yaml"} <= set(files) and len(commands) >= 4
    work = tmp_path / "work"
    work.mkdir()
    for name, body in files.items():
        (work / name).write_text(body)
    testbed = _launcher(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]), "OMP_NUM_THREADS": "1"}
    for command in commands:
        argv = [*testbed, *shlex.split(command)[1:]]
        done = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, (command, done.stderr)
        if command.startswith("testbed list"):
            assert "shortest_first" in done.stdout
    assert (work / "runs" / "mine" / "summary.json").is_file()


@pytest.fixture
def forget_divides_by_zero():
    """The plugins below register in this process: unregister them, so later tests that
    run every registered scheduler do not meet them."""
    yield
    for name in ("divides_by_zero", "picks_a_stranger"):
        registry._TABLES["scheduling"].pop(name, None)


@pytest.mark.parametrize("returned", ["ready[0]", "(ready[0], 'acc9')", "(object(), idle[0])"])
def test_an_invalid_pick_is_one_line_naming_the_policy(tmp_path, capsys, forget_divides_by_zero, returned):
    plugin = tmp_path / "stranger.py"
    plugin.write_text(
        "from sim.registry import register\n\n\n"
        '@register("scheduling", "picks_a_stranger")\n'
        "class PicksAStranger:\n"
        '    """Returns what it may not."""\n\n'
        "    def pick(self, ready, idle, now):\n"
        f"        return {returned}\n"
    )
    scenario = tmp_path / "s.yaml"
    scenario.write_text("kind: xr\nduration_s: 0.1\nscheduler: {name: picks_a_stranger}\n")
    assert main(["run", str(scenario), "--plugin", str(plugin), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert (
        "scheduling policy 'picks_a_stranger': pick() returned" in err
        and "need None or a (job, accelerator)" in err
    )


def test_failing_policy_is_one_line_and_debug_shows_the_traceback(tmp_path, capsys, forget_divides_by_zero):
    (tmp_path / "bad_sched.py").write_text(
        "from sim.registry import register\n\n\n"
        '@register("scheduling", "divides_by_zero")\n'
        "class DividesByZero:\n"
        '    """Raises on its first decision."""\n\n'
        "    def pick(self, ready, idle, now):\n"
        "        return 1 / 0\n"
    )
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        "kind: xr\nduration_s: 0.2\nscheduler: {name: divides_by_zero}\n"
        "models:\n  - {name: hand_tracking, fps: 45}\n"
    )
    argv = ["run", str(scenario), "--plugin", str(tmp_path / "bad_sched.py"), "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "scheduling policy 'divides_by_zero': pick() raised ZeroDivisionError: division by zero" in err
    assert main([*argv, "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "return 1 / 0" in err and err.strip().endswith("--debug for the traceback)")


def test_plugin_that_does_not_exist_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["list", "--plugin", "no_such_plugin"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no module of that name in" in err
    assert main(["list", "--plugin", "missing.py"]) == 2
    assert "no such file 'missing.py'" in capsys.readouterr().err


SWEEP_TYPOS = {
    "grid key": (
        {"grid": {"schedular.name": ["fcfs"]}},
        "grid.schedular.name: unknown config key",
        "scheduler.name",
    ),
    "zip key": ({"zip": {"duraton_s": [0.1]}}, "zip.duraton_s: unknown config key", "duration_s"),
    "nested key": ({"grid": {"hardware.presett": ["Dual_4K"]}}, "grid.hardware.presett", "hardware.preset"),
    "random key": (
        {"random": {"count": 1, "params": {"load_scal": {"uniform": [0.5, 1]}}}},
        "random.params.load_scal",
        "load_scale",
    ),
    "sweep key": ({"grd": {"duration_s": [0.1]}}, "grd: unknown key", "grid"),
    "set key": ({"set": {"duraton_s": 0.1}}, "set.duraton_s: unknown key", "duration_s"),
    "policy param": ({"grid": {"scheduler.params.adaptt": [True]}}, "scheduler.params.adaptt", "adapt"),
    "baseline key": (
        {"grid": {"scheduler.name": ["fcfs", "edf"]}, "baseline": {"scheduler.nam": "fcfs"}},
        "baseline: 'scheduler.nam' is not a factor",
        "scheduler.name",
    ),
    "baseline value": (
        {"grid": {"scheduler.name": ["fcfs", "edf"]}, "baseline": {"scheduler.name": "fcsf"}},
        "baseline.scheduler.name: 'fcsf' is not one of the factor's values",
        "fcfs",
    ),
    "highlight": (
        {"grid": {"scheduler.name": ["fcfs", "edf"]}, "highlight": "eddf"},
        "highlight: 'eddf'",
        "edf",
    ),
}


@pytest.mark.parametrize("name", sorted(SWEEP_TYPOS))
def test_mistyped_sweep_keys_suggest_the_closest(tmp_path, capsys, name):
    import yaml

    extra, problem, suggestion = SWEEP_TYPOS[name]
    data = {"base": str(VR), "grid": {}, "seeds": 1, **extra}
    if name == "policy param":
        data["set"] = {"scheduler.name": "sdrm3"}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data))
    code, err = _run_cli(capsys, "validate", str(path))
    assert code == 2 and err.count("\n") == 1, err
    assert problem in err and f"did you mean {suggestion!r}?" in err, err


def test_a_factor_key_with_nothing_close_has_no_suggestion(tmp_path, capsys):
    import yaml

    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"base": str(VR), "grid": {"zzzzqqq": [1]}}))
    code, err = _run_cli(capsys, "validate", str(path))
    assert code == 2 and "grid.zzzzqqq: unknown config key (not a field of the xr scenario)" in err
    assert "did you mean" not in err
