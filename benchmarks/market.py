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

``--phases`` instead splits one whole ``testbed run`` of the episode (a fresh process,
with its report) into its phases: start-up imports, loading and validating the
scenario, importing torch, building the world, the run (and the retrains in it),
results, writing the tables, importing the report's matplotlib, drawing the report,
and the interpreter's exit (process wall time minus the time inside it), each the
median of ``--repeats`` processes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

START = time.perf_counter()  # the phases' clock starts before the engine's imports

from sim.runner import load_spec, run  # noqa: E402
from workloads.market.data import load_data  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
METRICS = ("overall_quality", "qoe", "diversity", "purchases", "market_share_hhi", "user_accuracy")


def timed_run(spec, seed: int) -> tuple[float, dict[str, float]]:
    start = time.perf_counter()
    result = run(spec, seed=seed)
    return time.perf_counter() - start, result.summary


def phases(sets: list[str], out: Path) -> dict[str, float]:
    """Seconds of each phase of one ``testbed run`` of the episode in this process, as the
    CLI does it (``sim.runner.run`` and ``write_run``, unrolled to time each part)."""
    from sim.kernel import Kernel
    from sim.runner import RunResult, _write_files, render_run_report

    split, clock = {"start-up imports": time.perf_counter() - START}, time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        split[name], clock = time.perf_counter() - clock, time.perf_counter()

    spec = load_spec(ROOT / "scenarios" / "market" / "insurance_market.yaml", sets)
    lap("load and validate")
    from workloads.market import world as market

    lap("import torch (the world)")
    retrain, inner = [0.0], market.MarketWorld._retrain

    def timed(self, indices):
        begin = time.perf_counter()
        inner(self, indices)
        retrain[0] += time.perf_counter() - begin

    market.MarketWorld._retrain = timed
    world = market.MarketWorld(spec, Kernel(spec.seed))
    lap("build")
    world.run()
    lap("run")
    split["  of which retrains"] = retrain[0]
    summary, tables = world.results()
    lap("results")
    result = RunResult("market", spec.seed, summary, tables, spec.model_dump(mode="json"), {}, 0.0)
    _write_files(result, out, report=False)
    lap("write tables")
    import sim.report  # noqa: F401

    lap("import matplotlib (report)")
    render_run_report(out, result)
    lap("report")
    return split


def whole_process_phases(sets: list[str], repeats: int) -> None:
    """Median phases of ``repeats`` fresh processes, and the exit each one takes."""
    runs = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            command = [sys.executable, __file__, "--phases-child", str(Path(tmp) / "run"), *sets]
            env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
            begin = time.perf_counter()
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            wall = time.perf_counter() - begin
        split = json.loads(done.stdout.splitlines()[-1])
        inside = sum(v for k, v in split.items() if not k.startswith(" "))
        runs.append({**split, "interpreter start and exit": wall - inside, "whole process": wall})
    print(f"one market episode as a whole process, phases in s (median of {repeats})")
    for key in runs[0]:
        print(f"  {key:<30} {statistics.median(r[key] for r in runs):6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="stacked runs (median wall time)")
    parser.add_argument("--budget", type=float, default=400.0)
    parser.add_argument("--phases", action="store_true", help="split whole testbed-run processes into phases")
    parser.add_argument("--phases-child", help=argparse.SUPPRESS)  # one timed process, into this folder
    args, extra = parser.parse_known_args()
    if args.phases_child:
        print(json.dumps(phases(extra, Path(args.phases_child))))
        return
    sets = [
        f"data.csv_x={SHARED_DATA / 'insurance_X.csv'}",
        f"data.csv_y={SHARED_DATA / 'insurance_Y.csv'}",
        f"predictors.0.budget={args.budget}",
    ]
    if args.phases:
        whole_process_phases(sets, args.repeats)
        return
    spec = load_spec(ROOT / "scenarios" / "market" / "insurance_market.yaml", sets)
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
