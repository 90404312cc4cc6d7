"""Decision cost per scheduled job of every scheduler, against EDF.

Runs the same scenarios under each scheduler with the scheduler's ``pick`` wrapped in
a timer; the cost of a decision is the time spent in ``pick`` divided by the number
of job stretches started. Target: sdrm3 under 3x EDF.

    python benchmarks/schedulers.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from sim import registry
from sim.kernel import Kernel
from sim.runner import load_spec
from workloads.xr.world import XRWorld

ROOT = Path(__file__).resolve().parents[1]
CASES = [
    ("ar_assistant", "Dual_4K", ["WS", "OS"]),
    ("vr_gaming", "Dual_4K_bl", "WS"),
    ("social_interaction_a", "Quad_4K", "WS"),
]


def decision_cost_s(scheduler: str, seconds: float) -> tuple[float, int]:
    """(seconds in pick per started stretch, stretches started) over all cases."""
    spent, started = 0.0, 0
    for scenario, preset, dataflow in CASES:
        spec = load_spec(
            ROOT / "scenarios" / "xr" / f"{scenario}.yaml",
            [
                f"scheduler.name={scheduler}",
                f"duration_s={seconds}",
                f"hardware.preset={preset}",
                f"hardware.dataflow={dataflow}",
            ],
        )
        world = XRWorld(spec, Kernel(0))
        policy = world.pool.scheduler
        inner = policy.pick
        clock = [0.0]

        def timed(ready, idle, now, inner=inner, clock=clock):
            start = time.perf_counter()
            choice = inner(ready, idle, now)
            clock[0] += time.perf_counter() - start
            return choice

        policy.pick = timed
        world.run()
        spent += clock[0]
        started += len(world.pool.segments)
    return (spent / started if started else math.nan), started  # `idle` starts nothing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    costs = {name: decision_cost_s(name, args.seconds) for name in registry.names("scheduling")}
    edf = costs["edf"][0]
    print(f"{'scheduler':<16}{'us/decision':>12}{'x EDF':>8}{'jobs':>9}")
    for name, (cost, jobs) in costs.items():
        print(f"{name:<16}{cost * 1e6:>12.2f}{cost / edf:>8.2f}{jobs:>9}")
    print(f"sdrm3 / edf = {costs['sdrm3'][0] / edf:.2f} (target < 3)")


if __name__ == "__main__":
    main()
