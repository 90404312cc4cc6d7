"""Hostile or careless input is refused at the door: one line, exit 2, no traceback, no hang."""

import os
import time
from pathlib import Path

import pytest

from sim.cli import main
from sim.config import parse_scalar, set_values

ROOT = Path(__file__).parents[1]
VR = ROOT / "scenarios" / "xr" / "vr_gaming.yaml"


def _one_line(capsys, argv, expected):
    start = time.perf_counter()
    code = main(argv)
    err = capsys.readouterr().err
    assert time.perf_counter() - start < 10
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert expected in err, err


def _bomb(levels: int = 9) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "kind: xr\n" + "\n".join(lines) + "\n"


HOSTILE = {
    "alias bomb": (_bomb(), "values once aliases are expanded"),
    "deep nesting": ("kind: xr\nx: " + "[" * 5000 + "]" * 5000 + "\n", "invalid YAML"),
    "huge integer": ("kind: xr\nseed: " + "1" * 5000 + "\n", "invalid YAML"),
    "duplicate key": ("kind: xr\nduration_s: 1\nduration_s: 2\n", "duplicate key 'duration_s'"),
    "self alias": ("kind: xr\nx: &a [*a]\n", "alias refers to the node that contains it"),
    "nan": ("kind: xr\nduration_s: .nan\n", "duration_s: Input should be a finite number"),
    "jitter past period": (
        "kind: xr\nmodels:\n  - {name: hand_tracking, fps: 45, arrival: {jitter_s: 0.5}}\n",
        "models.0.arrival.jitter_s: 0.5 must be less than the period",
    ),
    "too many events": (
        "kind: xr\nduration_s: 1.0e+300\nmodels:\n  - {name: hand_tracking, fps: 45}\n",
        "more than the 1e+09 a run can simulate",
    ),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_file(tmp_path, capsys, name):
    body, expected = HOSTILE[name]
    path = tmp_path / "bad.yaml"
    path.write_text(body)
    _one_line(capsys, ["validate", str(path)], expected)


def test_big_file_and_special_files(tmp_path, capsys):
    big = tmp_path / "big.yaml"
    big.write_text("kind: xr\n# " + "x" * (5 * 2**20) + "\n")
    _one_line(capsys, ["validate", str(big)], "larger than")
    _one_line(capsys, ["validate", "/dev/zero"], "is not a regular file")
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    _one_line(capsys, ["validate", str(fifo)], "is not a regular file")
    _one_line(capsys, ["validate", str(VR), "--set", "hardware.profile_csv=/dev/zero"], "not a regular file")


def test_set_scalars_are_yaml_1_2():
    assert [parse_scalar(v, "x") for v in ["no", "on", "yes", "007", "'7'", "1:30"]] == [
        "no",
        "on",
        "yes",
        "007",
        "7",
        "1:30",
    ]
    assert [parse_scalar(v, "x") for v in ["true", "null", "1e3", "0x1f", "-2", "0.5", "[1, 2]"]] == [
        True,
        None,
        1000.0,
        31,
        -2,
        0.5,
        [1, 2],
    ]
    assert set_values({"grid": {"a.b": [1]}}, {"grid.a.b": [2, 3]}) == {"grid": {"a.b": [2, 3]}}


def test_sweep_file_validates_every_run(tmp_path, capsys):
    sweep = tmp_path / "s.yaml"
    sweep.write_text(
        f"base: {VR}\ngrid: {{scheduler.name: [fcfs, edf]}}\nbaseline: {{scheduler.name: sjf}}\n"
    )
    _one_line(capsys, ["validate", str(sweep)], "baseline.scheduler.name: 'sjf' is not one of")
    sweep.write_text(f"base: {VR}\ngrid: {{scheduler.name: [fcfs, edf]}}\nhighlight: planaria\n")
    _one_line(capsys, ["validate", str(sweep)], "highlight: 'planaria' is not a value")
    sweep.write_text(f"base: {VR}\ngrid: {{models.0.arrival.jitter_s: [0.0, 0.5]}}\n")
    _one_line(capsys, ["validate", str(sweep)], "point models.0.arrival.jitter_s=0.5")
    sweep.write_text(f"base: {VR}\ngrid: {{scheduler.name: [fcfs, edf]}}\nseeds: 2\n")
    assert main(["validate", str(sweep)]) == 0
    assert "valid sweep of 4 runs" in capsys.readouterr().out
    _one_line(capsys, ["sweep", str(sweep), "--out", str(tmp_path / "o"), "--workers", "0"], "--workers")


MARKET = ROOT / "scenarios" / "market" / "digits_market.yaml"


def test_market_data_is_checked_at_validation(tmp_path, capsys):
    _one_line(capsys, ["validate", str(MARKET), "--set", "data.holdout=1797"], "data.holdout: 1797 held-out")
    _one_line(capsys, ["validate", str(MARKET), "--set", "predictors.0.seed_points=5"], "fewer than the 10")
    _one_line(
        capsys, ["validate", str(MARKET), "--set", "predictors.0.seed_points=2000"], "more than the 1198 pool"
    )
    x, y = tmp_path / "x.csv", tmp_path / "y.csv"
    x.write_text("a,b\n" + "".join(f"{i},{i % 7}\n" for i in range(30)))
    y.write_text("y\n" + "".join(f"{i % 2}\n" for i in range(30)))
    csv = ["--set", "data.source=csv", "--set", f"data.csv_x={x}", "--set", f"data.csv_y={y}"]
    small = [*csv, "--set", "predictors.0.seed_points=4"]
    assert main(["validate", str(MARKET), *small]) == 0, capsys.readouterr().err
    _one_line(capsys, ["validate", str(MARKET), *small, "--set", "data.holdout=40"], "leave no users")
    _one_line(capsys, ["validate", str(MARKET), *csv, "--set", f"data.csv_y={tmp_path / 'no.csv'}"], "no.csv")
    y.write_text("y\n" + "".join(f"{i % 2}\n" for i in range(29)) + "seven\n")
    _one_line(capsys, ["validate", str(MARKET), *small], "data.csv_y: line 31")


def test_bundled_row_counts_are_the_tables():
    from sklearn import datasets

    from workloads.market.data import BUNDLED_ROWS

    assert {k: len(getattr(datasets, f"load_{k}")().target) for k in BUNDLED_ROWS} == BUNDLED_ROWS
