"""Compete with your own predictor network in the market kind, against logistic regression.

Two groups of predictors share one market of digits users: the built-in logistic
predictors and ``predictor_net`` (``my_models.py``, one tanh hidden layer), named by its
factory path and trained stacked by ``torch.func``. Prints each group's test accuracy and
the market's overall quality.

    python examples/my_market_model.py [--users 500]
"""

from __future__ import annotations

import argparse

import numpy as np

from sim.runner import load_spec, run


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=500)
    args = parser.parse_args(argv)
    groups = [
        {"name": "logistic", "count": 3, "model": {"arch": "logistic"}},
        {"name": "mine", "count": 3, "model": {"arch": "my_models:predictor_net", "kwargs": {"hidden": 32}}},
    ]
    spec = {"kind": "market", "users": args.users, "data": {"source": "digits"}, "predictors": groups}
    result = run(load_spec(spec), seed=0)
    table = result.tables["predictors"]
    accuracy = {
        name: float(np.mean(table.loc[table["group"] == name, "accuracy"])) for name in ("logistic", "mine")
    }
    for name, value in accuracy.items():
        print(f"{name:<8} predictors: mean test accuracy {value:.3f}")
    print(f"overall quality {result.summary['overall_quality']:.3f}")
    return accuracy


if __name__ == "__main__":
    main()
