"""The xr scheduler studies: wall time of all of them on the pool backend, and their tables.

Runs, with 2 workers, ``scenarios/xr/study_schedulers.yaml`` (9 scenarios x 3 hardware
configurations x 3 loads x 2 granularities x every scheduler, sdrm3's ablations and the
``idle`` control x 5 seeds), ``study_tuning.yaml`` (the phase-change scenario at its
full length, where online tuning has something to do) and ``study_reference.yaml``
(XRBench's reference setting). Target: under 20 minutes in all on a 2-core machine.
Prints, per study, the scheduler table, sdrm3's geometric-mean change against every
other scheduler per load (95% CI over seeds), the ablation table and how many cells
sdrm3 loses. A study whose folder exists is resumed (only missing runs are run).

    python benchmarks/study.py [--out runs/studies] [--only study_tuning] [--set seeds=2 ...]
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
STUDIES = ("study_schedulers", "study_tuning", "study_reference")


def run_study(name: str, out: Path, workers: int, overrides: list[str]) -> float:
    """Run (or resume) one study into ``out``, print its tables; its wall time in seconds."""
    start = time.perf_counter()
    table = sweep(
        ROOT / "scenarios" / "xr" / f"{name}.yaml",
        out,
        backend="pool",
        workers=workers,
        resume=out.exists(),
        overrides=overrides,
    )
    wall = time.perf_counter() - start
    render_sweep_report(out)
    print(f"\n# {name}: {(table['status'] == 'done').sum()} of {len(table)} runs done in {wall:.1f} s")
    table = pd.read_csv(out / "summary.csv")
    factors = [c for c in table.columns[2 : table.columns.get_loc("seed")]]
    factors = label_policies(table, factors, "scheduler.name")
    with pd.option_context("display.width", 250, "display.max_columns", 20, "display.max_rows", 400):
        for title, frame in sweep_tables(table[table["status"] == "done"], factors).items():
            if "per scenario" in title:
                continue
            print(f"\n## {title}\n{frame.to_string(index=False)}")
    print(f"\nreport: {out / 'report.html'}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/studies", help="parent folder: one subfolder per study")
    parser.add_argument("--only", action="append", choices=STUDIES, help="run only these studies")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], help="override a sweep field, e.g. seeds=2")
    args = parser.parse_args()
    walls = {
        name: run_study(name, Path(args.out) / name, args.workers, args.set) for name in args.only or STUDIES
    }
    times = ", ".join(f"{name} {wall:.0f} s" for name, wall in walls.items())
    print(
        f"\nall studies: {sum(walls.values()):.0f} s with {args.workers} workers ({times}; target < 1200 s)"
    )


if __name__ == "__main__":
    main()
