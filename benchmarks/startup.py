"""Start-up cost of the CLI: CPU seconds of whole ``testbed`` processes (target < 1 s).

Each command runs ``--repeat`` times as a fresh ``python -m sim.cli`` process; the
median user + system CPU time is printed (wall time too; on a busy machine wall time
is the less telling number). Profile a slow one with ``python -X importtime -m sim.cli ...``.

    python benchmarks/startup.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = [
    ["--version"],
    ["list"],
    ["describe", "xr"],
    ["describe", "scheduling", "sdrm3"],
    ["describe", "edge"],
    ["validate", "scenarios/xr/vr_gaming.yaml"],
    ["validate", "scenarios/xr/study_whatif.yaml"],
    ["validate", "scenarios/xr/study_schedulers.yaml"],
    ["validate", "scenarios/market/digits_market.yaml"],
    ["validate", "scenarios/edge/edge_digits.yaml"],
    ["validate", "scenarios/federated/fl_digits.yaml"],
]


def cpu_and_wall(argv: list[str]) -> tuple[float, float]:
    """(CPU s, wall s) of one ``python -m sim.cli ARGV`` process run from the repository root."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "sim.cli", *argv], cwd=ROOT, env=env, check=True, capture_output=True
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"median of {args.repeat} processes       CPU s   wall s   (target: CPU < 1 s)")
    for argv in COMMANDS:
        runs = [cpu_and_wall(argv) for _ in range(args.repeat)]
        cpu = statistics.median(r[0] for r in runs)
        wall = statistics.median(r[1] for r in runs)
        mark = "" if cpu < 1 else "  over target"
        print(f"  testbed {' '.join(argv):<44} {cpu:6.2f}  {wall:6.2f}{mark}")


if __name__ == "__main__":
    main()
