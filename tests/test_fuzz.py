"""Property-based fuzz of every shipped scenario and sweep file (Hypothesis).

Each example mutates one place of a shipped file (a hostile value, a deleted key, an
unknown key) and checks the CLI's contract: ``testbed validate`` either accepts the
file or exits 2 with one ``error: FIELD: message`` line per problem, never a traceback
and never a hang. A few small perturbations of the xr scenarios are also run for real
(short ``duration_s``): a file that validates runs, and its summary has no NaN or inf.
"""

import contextlib
import json
import math
import signal
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.cli import main
from tests.conftest import shipped, short_s

FILES = [*shipped("scenario"), *shipped("sweep")]
# xr files run for real, but not the supernet one: a fresh cache trains it for minutes
XR = [p for p in shipped("scenario") if p.parent.name == "xr" and "supernet" not in p.read_text()]

HOSTILE = st.one_of(
    st.sampled_from(
        [0, -1, 1e308, math.nan, math.inf, -math.inf, "", "x", "../../x", "$x^2$", None, True, [], {}]
    ),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
)
SETTINGS = settings(
    max_examples=60,
    deadline=None,  # the first example of a kind pays its imports; hangs are caught below
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _places(tree, path=()):
    """Every (path, value) of a YAML tree, containers included, root excluded."""
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else ()
    for key, value in items:
        yield (*path, key), value
        yield from _places(value, (*path, key))


def _absolute_bases(data: dict, folder: Path) -> dict:
    """A sweep's relative ``base`` files made absolute, so the mutated copy can live in tmp."""
    base = data.get("base")
    fix = lambda b: str(folder / b) if isinstance(b, str) else b  # noqa: E731
    data["base"] = [fix(b) for b in base] if isinstance(base, list) else fix(base)
    return data


def _mutate(data: dict, draw) -> dict:
    places = list(_places(data))
    path, _ = draw(st.sampled_from(places))
    *head, last = path
    node = data
    for key in head:
        node = node[key]
    action = draw(st.sampled_from(["replace", "replace", "replace", "delete", "unknown key"]))
    if action == "delete" and isinstance(node, dict):
        del node[last]
    elif action == "unknown key" and isinstance(node[last], dict):
        node[last][draw(st.sampled_from(["colour", "durations", "fpss", "nmae"]))] = 1
    else:
        node[last] = draw(HOSTILE)
    return data


class Hang(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raise :class:`Hang` in the block after ``seconds`` of wall time (SIGALRM)."""

    def expire(signum, frame):
        raise Hang(f"still running after {seconds} s")

    before = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, before)


def _check_contract(code: int, err: str) -> None:
    assert "Traceback" not in err, err
    if code == 0:
        return
    lines = err.strip().splitlines()
    assert code == 2 and lines, (code, err)
    for line in lines:  # one line per problem, each naming where: "error: FIELD: message"
        assert line.startswith("error: ") and ": " in line[len("error: ") :], line
        assert len(line) < 600, line


@SETTINGS
@given(data=st.data())
def test_mutated_files_validate_or_fail_in_one_line(tmp_path, capsys, data):
    source = data.draw(st.sampled_from(FILES), label="file")
    tree = _absolute_bases(yaml.safe_load(source.read_text()), source.parent)
    tree = _mutate(tree, data.draw)
    path = tmp_path / source.name
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    with time_limit(30):  # generous: the first file of a kind pays its imports on a busy machine
        code = main(["validate", str(path)])
    _check_contract(code, capsys.readouterr().err)


SCALES = st.sampled_from([0.0, 0.5, 2.0, 10.0, -1.0])


@settings(SETTINGS, max_examples=12)
@given(data=st.data())
def test_perturbed_xr_scenarios_that_validate_run(tmp_path, capsys, data):
    source = data.draw(st.sampled_from(XR), label="file")
    tree = yaml.safe_load(source.read_text())
    numbers = [
        (p, v)
        for p, v in _places(tree)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and p[-1] not in ("at_s", "duration_s")
    ]
    duration = short_s(source, 0.3)
    if numbers:
        path, value = data.draw(st.sampled_from(numbers))
        node = tree
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value * data.draw(SCALES)
    tree["duration_s"] = duration
    path = tmp_path / source.name
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    out = tmp_path / "out"
    with time_limit(60):  # a fresh cache traces the models first
        code = main(["run", str(path), "--out", str(out), "--no-report", "--force"])
    _check_contract(code, capsys.readouterr().err)
    if code == 0:
        summary = json.loads((out / "summary.json").read_text())  # NaN and inf are written as null
        assert all(v is not None for v in summary.values()), summary


@pytest.mark.parametrize("source", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_shipped_file_validates(source, capsys):
    assert main(["validate", str(source)]) == 0, capsys.readouterr().err
