"""Evaluate your own purchase policy: least confidence against the built-in rules.

Ten logistic-regression predictors compete for digits users (scenarios/market/
digits_market.yaml), each with a budget of 100 points; the sweep compares
``least_confidence`` (the plugin in ``least_confidence.py``) with ``uncertainty``,
``random`` and no buying, over seeds on local processes. Prints overall quality and
QoE (mean and 95% CI over seeds) per policy and writes the comparison report.

    python examples/compare_purchase_policies.py [--out runs/compare_purchase] [--users 5000] [--seeds 5]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sim import sweep
from sim.compare import render_sweep_report, summarise

HERE = Path(__file__).resolve().parent
POLICIES = ["none", "random", "uncertainty", "least_confidence"]
POLICY = "predictors.0.purchase.name"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/compare_purchase")
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--workers", type=int)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))  # so this process and its workers import the plugin
    study = {
        "name": "compare_purchase",
        "base": str(HERE.parent / "scenarios" / "market" / "digits_market.yaml"),
        "plugins": ["least_confidence"],
        "set": {"users": args.users, "predictors.0.budget": 100},
        "grid": {POLICY: POLICIES},
        "seeds": args.seeds,
    }
    out = Path(args.out)
    table = sweep(study, out, workers=args.workers, resume=out.exists(), progress=False)
    for metric in ("overall_quality", "qoe"):
        stats = summarise(table, [POLICY], metric)
        print(f"{metric} (mean ± 95% CI over {args.seeds} seeds)")
        for _, row in stats.iterrows():
            print(f"  {row[POLICY]:<18} {row['mean']:.4f} ± {row['ci95']:.4f}")
    print(f"report: {render_sweep_report(out)}")


if __name__ == "__main__":
    main()
