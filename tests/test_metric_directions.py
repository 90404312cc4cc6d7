"""Metric directions: every kind says which way its metrics are better; reports rank and word by it."""

import pandas as pd
import pytest

from sim import registry
from sim.compare import improvement, metric_directions, ranking, versus

KINDS = ("xr", "edge", "federated", "market")
NEUTRAL = {"market": {"diversity", "purchases", "budget_spent"}, "edge": {"mean_exit_index"}}  # not goals


@pytest.mark.parametrize("name", KINDS)
def test_every_kind_declares_its_headline_metrics(name):
    kind = registry.get("scenario", name)
    directions = kind.metric_directions
    assert set(directions.values()) <= {"lower", "higher"}
    undeclared = set(kind.headline_metrics) - set(directions) - NEUTRAL.get(name, set())
    assert not undeclared, undeclared


def test_sweep_lists_override_the_kind():
    kind = registry.get("scenario", "edge")
    d = metric_directions(kind, {"higher_is_better": ["energy_j"], "lower_is_better": ["mean_exit_index"]})
    assert d["energy_j"] == "higher" and d["mean_exit_index"] == "lower" and d["accuracy"] == "higher"


def _table() -> pd.DataFrame:
    """Two seeds, one scenario: ``new`` uses 12% less energy and is 20% less accurate than ``old``."""
    rows = []
    for seed in (0, 1):
        rows.append({"policy": "old", "seed": seed, "energy_j": 1.0, "accuracy": 0.9 + 0.01 * seed})
        rows.append({"policy": "new", "seed": seed, "energy_j": 0.88, "accuracy": 0.72 + 0.008 * seed})
    return pd.DataFrame(rows)


def test_changes_are_worded_by_direction():
    directions = {"energy_j": "lower", "accuracy": "higher"}
    row = improvement(_table(), "policy", "old", [], ["energy_j", "accuracy"], directions).set_index("policy")
    assert row.loc["new", "energy_j vs old"] == "-12.0%, better"
    assert row.loc["new", "accuracy vs old"] == "-20.0%, worse"
    undirected = improvement(_table(), "policy", "old", [], ["energy_j"], {}).set_index("policy")
    assert undirected.loc["new", "energy_j vs old"] == "-12.0%"


def test_versus_gives_a_change_and_a_verdict_not_a_reduction():
    accuracy = versus(_table(), "policy", "new", [], "accuracy", "higher").iloc[0]
    assert accuracy["accuracy change % (geomean)"] == pytest.approx(-20.0, abs=0.01)
    assert accuracy["verdict"] == "worse" and accuracy["cells better / tied / worse"] == "0% / 0% / 100%"
    energy = versus(_table(), "policy", "new", [], "energy_j", "lower").iloc[0]
    assert energy["verdict"] == "better" and energy["cells better / tied / worse"] == "100% / 0% / 0%"


def test_higher_is_better_ranks_highest_first():
    ranked = ranking(_table(), "policy", [], "accuracy", lower=False)
    assert ranked.iloc[0]["policy"] == "old" and ranked.iloc[0]["rank"] == 1
