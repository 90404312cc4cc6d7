"""The scheduler study: wall time of the whole sweep on the pool backend, and its headline.

Runs ``scenarios/xr/study_schedulers.yaml`` (8 scenarios x 3 hardware configurations x
9 schedulers x 6 seeds of 2 simulated seconds) with 2 workers. Target: under 20 minutes
on a 2-core machine. Prints sdrm3's geometric-mean UXCost reduction against every
other scheduler (with its 95% CI over seeds).

    python benchmarks/study.py [--out runs/study_schedulers]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from sim import sweep
from sim.compare import render_sweep_report, summarise, versus

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "scenarios" / "xr" / "study_schedulers.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/study_schedulers")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    start = time.perf_counter()
    table = sweep(STUDY, args.out, backend="pool", workers=args.workers, resume=Path(args.out).exists())
    wall = time.perf_counter() - start
    render_sweep_report(args.out)
    done = table[table["status"] == "done"]
    print(
        f"{len(done)} of {len(table)} runs done in {wall:.1f} s with {args.workers} workers (target < 1200 s)"
    )
    policy, cells = "scheduler.name", ["scenario", "hardware.preset", "hardware.dataflow"]
    print(summarise(done, [policy], "uxcost").sort_values("mean").to_string(index=False))
    print(versus(done, policy, "sdrm3", cells, "uxcost").to_string(index=False))
    print(f"report: {Path(args.out) / 'report.html'}")


if __name__ == "__main__":
    main()
