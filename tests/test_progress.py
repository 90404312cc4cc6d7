"""Progress bars: every kind shows one on a terminal (users, rounds, simulated time), none elsewhere."""

import io
import sys
from pathlib import Path

import pytest

from sim.cli import main
from sim.runner import load_spec, run

ROOT = Path(__file__).parents[1]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_market_shows_a_bar_over_users_on_a_terminal_only(monkeypatch, capsys):
    spec = load_spec(ROOT / "scenarios" / "market" / "digits_market.yaml", ["users=120", "checkpoints=1"])
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    run(spec)
    assert "users:" in terminal.getvalue() and "/120 " in terminal.getvalue()
    monkeypatch.undo()
    run(spec)  # captured stderr is no terminal: no bar
    assert "users:" not in capsys.readouterr().err


@pytest.mark.parametrize(
    "scenario, sets",
    [("edge/edge_digits.yaml", ["duration_s=0.2"]), ("xr/vr_gaming.yaml", ["duration_s=0.1"])],
)
def test_run_shows_simulated_time_on_a_terminal_only(tmp_path, monkeypatch, capsys, scenario, sets):
    argv = ["run", str(ROOT / "scenarios" / scenario), "--no-report", *(f"--set={s}" for s in sets)]
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    assert "simulating:" in terminal.getvalue()
    monkeypatch.undo()
    assert main([*argv, "--out", str(tmp_path / "b")]) == 0
    assert "simulating:" not in capsys.readouterr().err
