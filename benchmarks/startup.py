"""Start-up cost of the CLI: CPU seconds of whole ``testbed`` processes (target < 1 s).

The commands: ``--version``, ``list``, ``describe`` of every scenario kind and every
policy and model, and ``validate`` of every shipped file under ``scenarios/`` (sweeps
included). Each runs ``--repeat`` times as a fresh ``python -m sim.cli`` process; the
median user + system CPU time is printed (wall time too; on a busy machine wall time
is the less telling number), and any over 1 s is flagged. ``list`` and ``describe`` read
the registry's cache of descriptions (one warm-up ``list`` fills it). Profile a slow one
with ``python -X importtime -m sim.cli ...``.

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


def commands() -> list[list[str]]:
    """Every command the benchmark times (see the module docstring)."""
    from sim.describe import catalog

    described = [
        [name] if family == "scenario" else [family, name]
        for family, names in catalog().items()
        for name in names
    ]
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "scenarios").rglob("*.yaml"))
    return [
        ["--version"],
        ["list"],
        *(["describe", *d] for d in described),
        *(["validate", f] for f in files),
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
    cpu_and_wall(["list"])  # fills the registry's description cache if it is stale
    print(f"median of {args.repeat} processes{'':<33} CPU s   wall s   (target: CPU < 1 s)")
    over = []
    for argv in commands():
        runs = [cpu_and_wall(argv) for _ in range(args.repeat)]
        cpu = statistics.median(r[0] for r in runs)
        wall = statistics.median(r[1] for r in runs)
        if cpu >= 1:
            over.append(" ".join(argv))
        print(f"  testbed {' '.join(argv):<60} {cpu:6.2f}  {wall:6.2f}{'  OVER 1 s' if cpu >= 1 else ''}")
    print(f"{len(over)} command(s) over 1 s of CPU" + (f": {', '.join(over)}" if over else ""))


if __name__ == "__main__":
    main()
