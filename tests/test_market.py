"""The market scenario kind: accounting, policies, metrics, determinism, data and bad input."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from policies.acquisition.base import PurchaseView
from sim.cli import main
from sim.registry import get
from sim.runner import load_spec, run, write_run
from sim.sweep import sweep
from workloads.market.data import DataConfig, load_data
from workloads.market.metrics import hhi, market_quality
from workloads.market.study import budget_effect, sweep_figures

ROOT = Path(__file__).parents[1]
SHARED_DATA = ROOT.resolve().parent / "shared" / "data"  # the reference data, beside the repository
DIGITS = ROOT / "scenarios" / "market" / "digits_market.yaml"
SMALL = ["users=400", "checkpoints=2", "predictors.0.count=4", "predictors.0.budget=30"]


def _run(*sets, seed=0):
    return run(load_spec(DIGITS, [*SMALL, *sets]), seed=seed)


def test_every_user_is_won_and_every_purchase_paid_for():
    result = _run("predictors.0.purchase.name=random", "price=2.0", "predictors.0.budget=31")
    s, users, pred = result.summary, result.tables["users"], result.tables["predictors"]
    assert s["users"] == len(users) == pred["wins"].sum() == 400
    assert (pred["wins"] == users["predictor"].value_counts().sort_index().to_numpy()).all()
    assert users["bought"].sum() == s["purchases"] == pred["purchases"].sum() > 0
    # price 2 from a budget of 31: at most 15 points each, and nothing overspent
    assert (pred["purchases"] <= 15).all() and (pred["budget_spent"] == 2.0 * pred["purchases"]).all()
    assert s["budget_spent"] == 2.0 * s["purchases"]
    assert (pred["data_points"] == 20 + pred["wins"]).all()
    # a retrain per 50 new points, plus the seed training and the final retrain
    assert (pred["retrains"] == pred["wins"] // 50 + 2).all()
    assert 1 / 4 <= s["market_share_hhi"] <= 1
    assert s["market_share_hhi"] == pytest.approx(((pred["wins"] / 400) ** 2).sum())
    assert users["latency_s"].min() >= 0.1 - 1e-12  # at least the service time


def test_first_buys_every_user_until_the_budgets_run_out():
    s = _run("predictors.0.purchase.name=first").summary
    assert s["purchases"] == 4 * 30
    none = _run("predictors.0.purchase.name=none").summary
    zero = _run("predictors.0.budget=0").summary
    assert none["purchases"] == zero["purchases"] == 0
    assert json.dumps(none) == json.dumps({**zero, "budget_spent": 0.0})


def test_paced_buying_stays_under_the_straight_line():
    result = _run(
        "predictors.0.purchase.name=paced", "predictors.0.purchase.params.fraction=0", "checkpoints=8"
    )
    over = result.tables["over_time"]
    spent = 30 - over["budget_left"]
    assert (spent <= 30 * over["users"] / 400 + 1e-9).all()
    assert result.summary["purchases"] >= 4 * 30 - 4  # and still spends (nearly) all of it


def test_purchase_rules_on_a_hand_made_view():
    probs = np.array([[0.5, 0.5], [0.9, 0.1], [0.99, 0.01], [0.6, 0.4]])
    view = PurchaseView(probs, np.full(4, 5.0), np.full(4, 10.0), 1.0, 49, 100)
    rng = np.random.default_rng(0)

    def decide(name, **params):
        return get("acquisition", name)(**params).decide(view, rng).tolist()

    assert decide("none") == [False] * 4 and decide("first") == [True] * 4
    # entropy > 0.3 log 2 = 0.208 nats: 0.693, 0.325, 0.056, 0.673
    assert decide("uncertainty", fraction=0.3) == [True, True, False, True]
    assert decide("margin", max_margin=0.5) == [True, False, False, True]
    # spent 5 + 1 > 10 * 50 / 100: off pace at t = 49
    assert decide("paced", fraction=0.0) == [False] * 4
    coin = get("acquisition", "random")(p=0.3)
    draws = np.mean([coin.decide(view, rng) for _ in range(2000)])
    assert draws == pytest.approx(0.3, abs=0.02)


def test_quality_and_latency_users_avoid_busy_predictors():
    loaded = ["rate_hz=400", "predictors.0.budget=0"]  # 4 devices of 10 requests/s each: overloaded
    plain = _run(*loaded).summary
    quick = _run(*loaded, "choice.name=quality_latency").summary
    assert quick["latency_mean_s"] < plain["latency_mean_s"]
    confident = _run(*loaded, "choice.name=confidence").summary
    assert confident["users"] == 400


def test_trace_arrivals_bound_the_users():
    times = [0.0, 0.5, 0.5, 2.0, 7.25]
    users = _run("arrival.process=trace", f"arrival.times_s={times}").tables["users"]
    assert users["arrival_s"].tolist() == times


def test_market_metrics_by_hand():
    labels = np.array([0, 1, 1, 0])
    pred = np.array([[0, 1, 0, 1], [0, 1, 1, 1]])  # q = 1, 1, 0.5, 0
    m = market_quality(pred, labels, alpha=math.log(3.0), n_classes=2)
    assert m["overall_quality"] == pytest.approx(0.625)
    assert m["qoe"] == pytest.approx((1 + 1 + 0.75 + 0) / 4)  # q*3 / (q*3 + 1 - q)
    assert m["diversity"] == pytest.approx(math.log(2) / 4)  # one point of four split 1:1
    assert market_quality(pred, labels, alpha=1e6, n_classes=2)["qoe"] == pytest.approx(0.75)
    assert hhi(np.array([5, 5, 0, 0])) == 0.5


def test_same_seed_same_files_whatever_the_thread_count(tmp_path):
    spec = load_spec(DIGITS, [*SMALL, "predictors.0.model.arch=mlp", "predictors.0.model.hidden=16"])
    a = write_run(run(spec, seed=5), tmp_path / "a", report=False)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        b = write_run(run(spec, seed=5), tmp_path / "b", report=False)
    finally:
        torch.set_num_threads(before)
    assert (a / "summary.json").read_bytes() == (b / "summary.json").read_bytes()
    for table in sorted(p.name for p in (a / "tables").iterdir()):
        pd.testing.assert_frame_equal(
            pd.read_parquet(a / "tables" / table), pd.read_parquet(b / "tables" / table), check_exact=True
        )
    other = run(spec, seed=6).summary
    assert other != json.loads((a / "summary.json").read_text())


def test_serial_and_pool_sweeps_agree_bit_for_bit(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "m",
                "base": str(DIGITS),
                "set": {"users": 200, "checkpoints": 1, "predictors.0.count": 3},
                "grid": {"predictors.0.budget": [0, 40], "predictors.0.purchase.name": ["uncertainty"]},
                "seeds": 2,
            }
        )
    )
    tables = [
        sweep(path, tmp_path / name, backend=backend, workers=2, progress=False).drop(columns="wall_time_s")
        for name, backend in (("serial", "serial"), ("pool", "pool"))
    ]
    assert (tables[0]["status"] == "done").all()
    pd.testing.assert_frame_equal(tables[0], tables[1], check_exact=True)


def test_insurance_data_as_in_the_reference():
    """The reference set-up's data: 16 features, 2 classes, last 5,000 shuffled rows held out,
    3,000 test points, 30% of the pool's labels replaced by random ones."""
    x_csv, y_csv = str(SHARED_DATA / "insurance_X.csv"), str(SHARED_DATA / "insurance_Y.csv")
    clean = load_data(DataConfig(source="csv", csv_x=x_csv, csv_y=y_csv))
    noisy = load_data(DataConfig(source="csv", csv_x=x_csv, csv_y=y_csv, label_noise=0.3))
    assert clean.pool_x.shape == (18822 - 5000, 16) and clean.test_x.shape == (3000, 16)
    assert clean.n_classes == 2 and set(np.unique(clean.pool_y)) == {0, 1}
    assert clean.pool_x.min() == 0 and clean.pool_x.max() == 1
    flipped = (clean.pool_y != noisy.pool_y).mean()
    assert flipped == pytest.approx(0.3 / 2, abs=0.01)  # a random label keeps its value half the time
    assert (clean.test_y == noisy.test_y).all()


def test_csv_scaling_uses_the_pool(tmp_path):
    x = tmp_path / "x.csv"
    y = tmp_path / "y.csv"
    x.write_text("a,b\n" + "".join(f"{i},{7}\n" for i in range(30)))
    y.write_text("label\n" + "".join(f"{i % 3}\n" for i in range(30)))
    data = load_data(DataConfig(source="csv", csv_x=str(x), csv_y=str(y), holdout=10, test_points=4))
    assert data.n_classes == 3 and len(data.pool_y) == 20 and len(data.test_y) == 4
    assert data.pool_x[:, 0].min() == 0 and data.pool_x[:, 0].max() == 1
    assert (data.pool_x[:, 1] == 0).all()  # a constant column


def test_sweep_hooks_give_budget_curves_and_paired_changes():
    rows = [
        {"scenario": s, "predictors.0.budget": b, "predictors.0.purchase.name": p, "seed": k,
         "overall_quality": 0.5 + b / 1000 + k / 100, "qoe": 0.9 - b / 10000, "diversity": 0.6 - b / 1000}
        for s in ("a", "b") for b in (0, 400) for p in ("uncertainty", "first") for k in range(3)
    ]  # fmt: skip
    factors = ["scenario", "predictors.0.budget", "predictors.0.purchase.name"]
    table = budget_effect(pd.DataFrame(rows), factors)
    assert len(table) == 4 and (table["seeds"] == 3).all()
    assert set(table["overall_quality change"]) == {"+0.4000 ± 0.0000"}
    assert set(table["qoe change"]) == {"-0.0400 ± 0.0000"}
    assert set(sweep_figures(pd.DataFrame(rows), factors)) == {"budget"}


def test_run_writes_the_report(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", str(DIGITS), "--out", str(out), *[a for s in SMALL for a in ("--set", s)]]) == 0
    assert {"market_share.png", "quality.png", "specialisation.png", "report.html"} <= {
        p.name for p in out.iterdir()
    }
    printed = capsys.readouterr().out  # the kind's headline metrics, with the summary's values
    summary = json.loads((out / "summary.json").read_text())
    assert f"  overall_quality = {summary['overall_quality']:.6g}" in printed and "  qoe = " in printed
    spec = pd.read_parquet(out / "tables" / "specialisation.parquet")
    assert set(spec["by"]) == {"class", "region"} and set(spec[spec["by"] == "class"]["group"]) == set(
        range(10)
    )


def _write_csv(tmp_path, features: str, labels: str) -> tuple[str, str]:
    (tmp_path / "x.csv").write_text(features)
    (tmp_path / "y.csv").write_text(labels)
    return str(tmp_path / "x.csv"), str(tmp_path / "y.csv")


GOOD_X = "a,b\n" + "".join(f"{i},{i % 5}\n" for i in range(40))
GOOD_Y = "y\n" + "".join(f"{i % 2}\n" for i in range(40))
CSV = {"source": "csv", "holdout": 10, "test_points": 5}
ONE_GROUP = {"predictors": [{"name": "p", "count": 2, "seed_points": 4}], "users": 20}
BAD = {
    "negative budget": (
        {"predictors": [{"name": "p", "budget": -5}]},
        None,
        "predictors.0.budget: Input should be greater than or equal to 0 (got -5)",
    ),
    "infinite alpha": ({"alpha": float("inf")}, None, "alpha: Input should be a finite number (got inf)"),
    "alpha not a number": ({"alpha": float("nan")}, None, "alpha: Input should be a finite number (got nan)"),
    "fewer seed points than classes": (
        {"predictors": [{"name": "p", "seed_points": 5}]},
        None,
        "predictors.0.seed_points: 5 is fewer than the 10 classes of the data",
    ),
    "fewer seed points than the classes in a csv": (
        {**ONE_GROUP, "predictors": [{"name": "p", "count": 2, "seed_points": 2}]},
        (GOOD_X, "y\n" + "".join(f"{i % 3}\n" for i in range(40))),
        "predictors.0.seed_points: 2 is fewer than the 3 classes of the data",
    ),
    "non-numeric feature column": (
        ONE_GROUP,
        ("a,colour\n1,2\n3,red\n" + GOOD_X[4:], GOOD_Y),
        "data.csv_x: column 'colour' of '{x}' must be numeric; line 3 holds 'red'",
    ),
    "missing feature value": (
        ONE_GROUP,
        ("a,b\n1,2\n3,\n" + GOOD_X[4:], GOOD_Y),
        "data.csv_x: column 'b' of '{x}' must be numeric; line 3 holds a missing value",
    ),
    "label outside the class set": (
        {**ONE_GROUP, "data": {**CSV, "n_classes": 2}},
        (GOOD_X, GOOD_Y.replace("\n1\n", "\n3\n", 1)),
        "data.csv_y: line 3 of '{y}': label 3 is outside the class set 0..1 (data.n_classes = 2)",
    ),
    "negative label": (
        ONE_GROUP,
        (GOOD_X, "y\n-1\n" + GOOD_Y[2:]),
        "data.csv_y: line 2 of '{y}': label -1 is outside the class set 0, 1, 2, ...",
    ),
    "rows differ": (
        ONE_GROUP,
        (GOOD_X, "y\n" + "".join(f"{i % 2}\n" for i in range(39))),
        "data.csv_y: '{y}' has 39 rows but data.csv_x '{x}' has 40; they must match row for row",
    ),
    "missing file": (ONE_GROUP, ("", ""), "data.csv_x: no such file"),
    "csv path for a bundled set": (
        {"data": {"csv_x": "x.csv"}},
        None,
        "data.csv_x: only applies to source 'csv', not 'digits' (got 'x.csv')",
    ),
    "unknown purchase policy": (
        {"predictors": [{"name": "p", "purchase": {"name": "magic"}}]},
        None,
        "predictors.0.purchase.name: 'magic' is not a registered acquisition policy",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_market_input_is_one_line_and_exit_two(tmp_path, capsys, name):
    extra, files, expected = BAD[name]
    body = {"kind": "market", **extra}
    x = y = ""
    if files is not None:
        x, y = _write_csv(tmp_path, *files) if files[0] else (str(tmp_path / "nope.csv"),) * 2
        body["data"] = {**CSV, **body.get("data", {}), "csv_x": x, "csv_y": y}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(body))
    command = (
        ["run", str(path), "--no-report", "--out", str(tmp_path / "out")]
        if files
        else ["validate", str(path)]
    )
    assert main(command) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert expected.format(x=x, y=y) in err, err
    assert not (tmp_path / "out").exists()


def test_reference_test_split_is_scaled_on_its_own_and_noised():
    from workloads.market.data import DataConfig, load_data

    clean = load_data(DataConfig(source="digits", label_noise=0.3))
    ref = load_data(DataConfig(source="digits", label_noise=0.3, reference_test=True))
    assert np.array_equal(clean.pool_x, ref.pool_x) and np.array_equal(clean.pool_y, ref.pool_y)
    # the same held-out rows: clean labels by default, about 0.3 x 9/10 of them changed in the reference's
    changed = np.mean(clean.test_y != ref.test_y)
    assert 0.2 < changed < 0.34, changed
    # scaled with the held-out rows' own range (on digits every held-out row is a test row):
    # every non-constant column spans exactly [0, 1]
    spans = ref.test_x.max(0) - ref.test_x.min(0)
    assert np.allclose(spans[spans > 0], 1.0) and np.allclose(ref.test_x.min(0), 0.0)
    assert not np.array_equal(clean.test_x, ref.test_x)
