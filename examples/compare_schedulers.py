"""Compare every registered scheduler across the seven XRBench scenarios.

One sweep: scenarios x schedulers x seeds on local processes. Prints UXCost per
scenario (mean over seeds) and each scheduler's geometric-mean change against FCFS,
and writes the comparison report. Copy it and change HARDWARE, SECONDS or SEEDS.

    python examples/compare_schedulers.py [--out runs/compare_schedulers] [--workers N]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from sim import registry, sweep
from sim.compare import render_sweep_report

ROOT = Path(__file__).resolve().parents[1]
HARDWARE = "Dual_4K_bl"
SECONDS = 1.0
SEEDS = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/compare_schedulers")
    parser.add_argument("--workers", type=int)
    args = parser.parse_args()
    scenarios = sorted(
        str(p) for p in (ROOT / "scenarios" / "xr").glob("*.yaml") if not p.stem.startswith("study")
    )
    study = {
        "name": "compare_schedulers",
        "base": scenarios,
        "set": {"duration_s": SECONDS, "hardware.preset": HARDWARE},
        "grid": {"scheduler.name": registry.names("scheduling")},
        "seeds": SEEDS,
        "baseline": {"scheduler.name": "fcfs"},
    }
    out = Path(args.out)
    runs = sweep(study, out, workers=args.workers, resume=out.exists())
    report = render_sweep_report(out)
    uxcost = runs.pivot_table(index="scenario", columns="scheduler.name", values="uxcost")
    print(uxcost.to_string(float_format=lambda v: f"{v:.3e}"))
    change = np.exp(np.log(uxcost.div(uxcost["fcfs"], axis=0)).mean()) - 1
    print("\ngeometric-mean UXCost change against fcfs:")
    print((100 * change).round(1).astype(str).add(" %").to_string())
    print(f"\nreport: {report}")


if __name__ == "__main__":
    main()
