"""Market simulation speed: one episode of the reference set-up, stacked engine against the loop.

The set-up of Kwon, Ginart and Zou (TMLR 2022): 18 logistic-regression predictors, 100
seed points each, budget 400, uncertainty buying, alpha = 4, T = 10,000 users, on the
Insurance data read from ../shared/data beside the repository. The same seed runs on
the stacked engine (all predictors as one stacked model, hand-written batched
gradients, fused Adam) and on the straightforward loop (one nn.Module and
torch.optim.Adam per predictor, one predictor and one point at a time). Prints both
wall times, their ratio (target: stacked at least 10x faster) and both runs' metrics
(target: the same within noise). A short run of each engine first keeps one-time
start-up costs out of both timings.

    python benchmarks/market.py [--seed 0] [--repeats 3] [--budget 400]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from sim.runner import load_spec, run
from workloads.market.data import load_data

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
METRICS = ("overall_quality", "qoe", "diversity", "purchases", "market_share_hhi", "user_accuracy")


def timed_run(spec, seed: int) -> tuple[float, dict[str, float]]:
    start = time.perf_counter()
    result = run(spec, seed=seed)
    return time.perf_counter() - start, result.summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="stacked runs (median wall time)")
    parser.add_argument("--budget", type=float, default=400.0)
    args = parser.parse_args()
    spec = load_spec(
        ROOT / "scenarios" / "market" / "insurance_market.yaml",
        [
            f"data.csv_x={SHARED_DATA / 'insurance_X.csv'}",
            f"data.csv_y={SHARED_DATA / 'insurance_Y.csv'}",
            f"predictors.0.budget={args.budget}",
        ],
    )
    load_data(spec.data)  # read the CSV files once, outside the timings
    loop_spec = spec.model_copy(update={"engine": "loop"})
    for warm in (spec, loop_spec):  # first calls into torch and torch.func, outside the timings
        run(warm.model_copy(update={"users": 200}), seed=args.seed)
    stacked = [timed_run(spec, args.seed) for _ in range(args.repeats)]
    loop_s, loop = timed_run(loop_spec, args.seed)
    stacked_s, summary = statistics.median(s for s, _ in stacked), stacked[0][1]
    group = spec.predictors[0]
    print(
        f"reference set-up: {group.count} {group.model.arch} predictors, {group.seed_points} seed points, "
        f"budget {group.budget:g}, {group.purchase.name} buying, alpha {spec.alpha:g}, T = {spec.users:,} "
        f"users, seed {args.seed}"
    )
    print(
        f"stacked engine: {stacked_s:.2f} s (median of {args.repeats}: "
        f"{', '.join(f'{s:.2f}' for s, _ in stacked)})"
    )
    print(f"loop engine:    {loop_s:.2f} s")
    print(f"speed-up:       {loop_s / stacked_s:.1f}x (target >= 10x)")
    print(f"{'metric':<18}{'stacked':>12}{'loop':>12}")
    for key in METRICS:
        print(f"{key:<18}{summary[key]:>12.6g}{loop[key]:>12.6g}")
    same = all(summary[k] == loop[k] for k in summary)
    print("metrics identical" if same else "metrics differ (float rounding changed a decision somewhere)")


if __name__ == "__main__":
    main()
