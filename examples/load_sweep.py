"""Sweep load and plot deadline misses: how fast can hand tracking run before frames drop?

Raises hand tracking's frame rate in VR gaming on two hardware configurations, five
seeds per point, and plots the deadline-miss rate (mean and 95% CI over seeds)
against the frame rate.

    python examples/load_sweep.py [--out runs/load_sweep]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from matplotlib.figure import Figure

from sim import sweep
from sim.compare import summarise

ROOT = Path(__file__).resolve().parents[1]
FPS = [30, 45, 60, 90, 120, 180]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/load_sweep")
    args = parser.parse_args()
    study = {
        "name": "load",
        "base": str(ROOT / "scenarios" / "xr" / "vr_gaming.yaml"),
        "set": {"duration_s": 1.0, "scheduler.name": "edf"},
        "grid": {"hardware.preset": ["Single_4K", "Dual_4K"], "models.2.fps": FPS},
        "seeds": 5,
    }
    out = Path(args.out)
    table = sweep(study, out, resume=out.exists())
    stats = summarise(table, ["hardware.preset", "models.2.fps"], "deadline_miss_rate")
    fig = Figure(figsize=(5, 3.5), layout="constrained")
    ax = fig.subplots()
    for preset, group in stats.groupby("hardware.preset"):
        ax.errorbar(
            group["models.2.fps"], group["mean"], yerr=group["ci95"], marker="o", capsize=3, label=preset
        )
    ax.set_xlabel("hand tracking frame rate (fps)")
    ax.set_ylabel("deadline miss rate")
    ax.legend()
    fig.savefig(out / "deadline_misses.png", dpi=120)
    print(stats.to_string(index=False))
    print(f"figure: {out / 'deadline_misses.png'}")


if __name__ == "__main__":
    main()
