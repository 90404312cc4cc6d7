"""The scheduler study: wall time of the whole sweep on the pool backend, and its tables.

Runs ``scenarios/xr/study_schedulers.yaml`` (9 scenarios x 3 hardware configurations x
3 loads x 2 granularities x every scheduler and sdrm3's ablations x 5 seeds) with 2
workers. Target: under 20 minutes on a 2-core machine. Prints the scheduler table,
sdrm3's geometric-mean change against every other scheduler per load (95% CI over
seeds), the ablation table and how many cells sdrm3 loses.

    python benchmarks/study.py [--out runs/study_schedulers] [--set seeds=2 ...]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from sim import sweep
from sim.compare import label_policies, render_sweep_report
from workloads.xr.study import sweep_tables

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "scenarios" / "xr" / "study_schedulers.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/study_schedulers")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], help="override a sweep field, e.g. seeds=2")
    args = parser.parse_args()
    start = time.perf_counter()
    table = sweep(
        STUDY,
        args.out,
        backend="pool",
        workers=args.workers,
        resume=Path(args.out).exists(),
        overrides=args.set,
    )
    wall = time.perf_counter() - start
    render_sweep_report(args.out)
    print(
        f"{(table['status'] == 'done').sum()} of {len(table)} runs done in {wall:.1f} s "
        f"with {args.workers} workers (target < 1200 s)"
    )
    table = pd.read_csv(Path(args.out) / "summary.csv")
    factors = [c for c in table.columns[2 : table.columns.get_loc("seed")]]
    factors = label_policies(table, factors, "scheduler.name")
    with pd.option_context("display.width", 250, "display.max_columns", 20, "display.max_rows", 400):
        for title, frame in sweep_tables(table[table["status"] == "done"], factors).items():
            if "per scenario" in title:
                continue
            print(f"\n## {title}\n{frame.to_string(index=False)}")
    print(f"\nreport: {Path(args.out) / 'report.html'}")


if __name__ == "__main__":
    main()
