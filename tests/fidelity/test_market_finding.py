"""The seed finding of Kwon, Ginart and Zou (TMLR 2022) on their reference set-up.

18 logistic-regression predictors, 100 seed points, T = 10,000 users, alpha = 4,
uncertainty buying, Insurance data with 30% label noise: buying data (budget 400)
makes the predictors better on average than no budget, and more alike (lower
diversity). The QoE change is measured, not asserted: the study reports it with its
confidence interval over seeds (docs/market.md).
"""

from pathlib import Path

from sim.runner import load_spec, run

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = ROOT.parent / "shared" / "data"  # the reference data, beside the repository
SCENARIO = ROOT / "scenarios" / "market" / "insurance_market.yaml"
DATA = [f"data.csv_x={SHARED_DATA / 'insurance_X.csv'}", f"data.csv_y={SHARED_DATA / 'insurance_Y.csv'}"]


def _summary(budget: int) -> dict[str, float]:
    spec = load_spec(SCENARIO, [*DATA, f"predictors.0.budget={budget}"])
    group = spec.predictors[0]
    assert (spec.users, spec.alpha, group.count, group.seed_points, group.purchase.name) == (
        10_000,
        4.0,
        18,
        100,
        "uncertainty",
    )
    return run(spec, seed=0).summary


def test_buying_raises_quality_and_makes_predictors_alike():
    none, buying = _summary(0), _summary(400)
    assert none["purchases"] == 0 < buying["purchases"]
    assert buying["overall_quality"] > none["overall_quality"]
    assert buying["diversity"] < none["diversity"]
