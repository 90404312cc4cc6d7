"""A policy of any family that returns an invalid decision, or raises, stops the run with one
line naming the policy, the call and the bad value; the CLI exits 2 without a traceback."""

from pathlib import Path

import numpy as np
import pytest

from policies.exit.base import ExitPlan
from policies.federated.base import FedAvgBase, Selection
from sim import registry
from sim.cli import main
from sim.errors import PolicyError
from sim.runner import load_spec, run

ROOT = Path(__file__).parents[1]
EDGE = ROOT / "scenarios" / "edge" / "edge_digits.yaml"
MARKET = ROOT / "scenarios" / "market" / "digits_market.yaml"
FEDERATED = ROOT / "scenarios" / "federated" / "fl_digits.yaml"


class BeyondTheLastExit:
    """Plans an exit the network does not have."""

    def fit(self, calib):
        pass

    def plan(self, probs):
        n_exits, n = probs.shape[:2]
        return ExitPlan(np.full(n, n_exits), np.ones((n, n_exits), bool))


class NamesAFrequency:
    """Returns a frequency where an operating point index is due."""

    def select(self, points, work, deadline_s, now, device):
        return points[-1].freq_hz


class SaysMaybe:
    """Answers the offload question with a string."""

    def decide(self, queue_length, local_s, remote_s, time_left_s):
        return "maybe"


class BuysForOne:
    """One decision for a whole group of predictors."""

    def decide(self, view, rng):
        return np.ones(1, bool)


class ScoresNaN:
    """Scores every predictor NaN."""

    def scores(self, view):
        return np.full(len(view.correct), np.nan)


class DividesByZero:
    """Raises on its first decision."""

    def scores(self, view):
        return 1 / 0


class PicksAGhost:
    """Selects a client that does not exist."""

    def select(self, view, k, rng):
        return Selection(np.array([len(view.available) + 5]))


class LosesTheModel:
    """Aggregates to an empty model."""

    def aggregate(self, global_params, stacked, weights, owned, uploads):
        return {}


class LosesTheModelFedAvg(LosesTheModel, FedAvgBase):
    """FedAvg's client side, an empty aggregate."""


BAD = [
    # family, name, class, scenario, overrides, call, expected text
    (
        "exit",
        "t_beyond",
        BeyondTheLastExit,
        EDGE,
        ["exit_policy.name=t_beyond"],
        "plan",
        "exit_index array([4, 4",
    ),
    ("dvfs", "t_freq", NamesAFrequency, EDGE, ["dvfs.name=t_freq"], "select", "returned 921600000.0; need"),
    ("offload", "t_maybe", SaysMaybe, EDGE, ["offload.policy.name=t_maybe"], "decide", "returned 'maybe'"),
    (
        "acquisition",
        "t_one",
        BuysForOne,
        MARKET,
        ["predictors.0.purchase.name=t_one"],
        "decide",
        "10 booleans",
    ),
    (
        "user_choice",
        "t_nan",
        ScoresNaN,
        MARKET,
        ["choice.name=t_nan", "predictors.0.budget=0"],
        "scores",
        "none NaN or +inf",
    ),
    (
        "selection",
        "t_ghost",
        PicksAGhost,
        FEDERATED,
        ["selection.name=t_ghost"],
        "select",
        "distinct available",
    ),
    ("aggregation", "t_lose", LosesTheModelFedAvg, FEDERATED, ["aggregation.name=t_lose"], "aggregate", "{}"),
]
SMALL = {
    EDGE: ["duration_s=0.05"],
    MARKET: ["users=30", "checkpoints=1"],
    FEDERATED: ["rounds=1", "clients.count=20", "clients_per_round=4", "selection.params={}"],
}


@pytest.fixture
def registered():
    """Registers a test policy for one test; the shipped policies' own tests do not see it."""
    added = []

    def add(family, name, cls):
        registry.register(family, name)(cls)
        added.append((family, name))

    yield add
    for family, name in added:
        registry._TABLES[family].pop(name, None)


@pytest.mark.parametrize("family, name, cls, scenario, sets, call, expected", BAD, ids=[b[0] for b in BAD])
def test_an_invalid_decision_names_the_policy_the_call_and_the_value(
    registered, family, name, cls, scenario, sets, call, expected
):
    registered(family, name, cls)
    with pytest.raises(PolicyError) as error:
        run(load_spec(scenario, [*SMALL[scenario], *sets]))
    line = str(error.value)
    assert "\n" not in line and line.startswith(f"{family} policy {name!r}: {call}() returned "), line
    assert expected in line, line


def test_a_raising_policy_is_one_line_and_the_cli_exits_2(registered, tmp_path, capsys):
    registered("user_choice", "t_raises", DividesByZero)
    argv = ["run", str(MARKET), "--out", str(tmp_path / "o"), "--no-report"]
    sets = [f"--set={s}" for s in [*SMALL[MARKET], "choice.name=t_raises", "predictors.0.budget=0"]]
    assert main([*argv, *sets]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "user_choice policy 't_raises': scores() raised ZeroDivisionError: division by zero" in err
    assert main([*argv, *sets, "--debug"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_an_invalid_decision_through_the_cli_is_one_line(registered, tmp_path, capsys):
    registered("dvfs", "t_freq", NamesAFrequency)
    argv = ["run", str(EDGE), "--out", str(tmp_path / "o"), "--set=duration_s=0.05", "--set=dvfs.name=t_freq"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "dvfs policy 't_freq': select() returned 921600000.0; need an operating point index" in err
