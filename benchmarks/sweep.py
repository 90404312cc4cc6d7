"""Sweep speed and its bookkeeping, and the speed of ``testbed validate``.

1. ``testbed validate`` of every shipped scenario and sweep file, in one process after
   the imports (CPU seconds; target < 1 s each), and of a market with 30,000 predictors
   (target < 1 s). Whole-process start-up is measured by ``benchmarks/startup.py``.
2. The per-run overhead of a sweep's bookkeeping (run store, lock, folder checks,
   timeouts, process messages): sweeps of ``--runs`` and twice as many tiny xr runs on
   ``serial`` and ``pool`` (1 worker); a sweep's wall time minus the time its runs spent
   in :func:`sim.sweep.execute` (validate, run, write the folder), per extra run, as a
   share of a 2-second run (target < 2 %). The fixed start-up of a sweep (planning,
   worker processes and their imports) is printed beside it.
3. Unless ``--skip-backends``: 16 xr runs of about ``--run-s`` seconds each on serial,
   pool (2 workers) and ray (2 CPUs). Targets: pool >= 1.8x serial on a 2-core
   machine; ray within 1.5x of pool.

    python benchmarks/sweep.py [--run-s 2] [--runs 40] [--skip-backends]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
from pathlib import Path

from sim.cli import main as cli
from sim.runner import load_spec, run
from sim.sweep import execute, load_sweep, plan, sweep

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "scenarios" / "xr" / "vr_gaming.yaml"
REFERENCE_RUN_S = 2.0


def cpu_s(argv: list[str]) -> float:
    """CPU seconds of ``testbed ARGV`` in this process (exit 0 required)."""
    with contextlib.redirect_stdout(io.StringIO()):
        start = time.process_time()
        code = cli(argv)
        spent = time.process_time() - start
    assert code == 0, argv
    return spent


def validate_times() -> None:
    files = sorted(ROOT.glob("scenarios/**/*.yaml"))
    for path in files:  # first pass: the imports each kind needs
        cpu_s(["validate", str(path)])
    print("testbed validate, CPU s in one process after imports (target < 1 s each):")
    for path in files:
        print(f"  {path.relative_to(ROOT)!s:<44} {cpu_s(['validate', str(path)]):6.3f}")
    market = str(ROOT / "scenarios" / "market" / "digits_market.yaml")
    many = cpu_s(["validate", market, "--set", "predictors.0.count=30000"])
    print(f"  digits_market with 30,000 predictors        {many:6.3f} (target < 1 s)")


def _study(n_runs: int) -> dict:
    return {
        "name": "bookkeeping",
        "base": str(BASE),
        "set": {"duration_s": 0.05},
        "grid": {"scheduler.name": ["fcfs", "edf"]},
        "seeds": n_runs // 2,
    }


def bookkeeping(out: Path, n_runs: int) -> None:
    """Per-run cost of the sweep machinery: wall time of a sweep minus the time its runs
    spent in :func:`sim.sweep.execute` (validate, run, write the folder; recorded per run).

    Sweeps of ``n_runs`` and ``2 * n_runs`` runs: the difference of their overheads per
    extra run is the per-run cost, without the fixed start-up (workers' imports, store).
    """
    execute(plan(*load_sweep(_study(2)))[0]["config"], str(out / "warm"), [], False)  # imports, caches
    print("sweep bookkeeping per run (tiny xr runs):")
    for backend in ("serial", "pool"):
        overheads = []
        for n in (n_runs, 2 * n_runs):
            start = time.perf_counter()
            table = sweep(_study(n), out / f"{backend}{n}", backend=backend, workers=1, progress=False)
            wall = time.perf_counter() - start
            assert (table["status"] == "done").all(), table["error"].dropna().tolist()
            overheads.append(wall - float(table["wall_time_s"].sum()))
        extra = (overheads[1] - overheads[0]) / n_runs
        fixed = overheads[0] - n_runs * extra
        print(
            f"  {backend:<6} {extra * 1e3:6.1f} ms = {100 * extra / REFERENCE_RUN_S:5.2f}% of a "
            f"{REFERENCE_RUN_S:.0f} s run (target < 2%); fixed start-up {fixed:.2f} s per sweep"
        )


def simulated_s_for(wall_s: float) -> float:
    """Simulated seconds of VR gaming that take about ``wall_s`` of wall time."""
    spec = load_spec(BASE, ["duration_s=200"])
    run(spec)  # warm caches
    start = time.perf_counter()
    run(spec)
    return 200 * wall_s / (time.perf_counter() - start)


def backends(out: Path, run_s: float) -> None:
    duration = simulated_s_for(run_s)
    study = {
        "name": "bench",
        "base": str(BASE),
        "set": {"duration_s": round(duration, 1)},
        "grid": {"scheduler.name": ["fcfs", "edf", "latency_greedy", "edp_greedy"]},
        "seeds": 4,
    }
    walls = {}
    for backend, workers in (("serial", 1), ("pool", 2), ("ray", 2)):
        start = time.perf_counter()
        table = sweep(study, out / backend, backend=backend, workers=workers, progress=False)
        assert (table["status"] == "done").all(), table["error"].dropna().tolist()
        walls[backend] = time.perf_counter() - start
    serial, pool, ray = walls["serial"], walls["pool"], walls["ray"]
    print(f"16 runs of vr_gaming, {duration:.0f} simulated s each (~{run_s:.1f} s wall)")
    print(f"  serial:            {serial:7.2f} s")
    print(f"  pool, 2 workers:   {pool:7.2f} s   speedup {serial / pool:.2f}x (target >= 1.8x)")
    print(f"  ray, 2 CPUs:       {ray:7.2f} s   {ray / pool:.2f}x pool (target <= 1.5x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-s", type=float, default=2.0, help="wall seconds per run of the backend test")
    parser.add_argument(
        "--runs", type=int, default=40, help="tiny runs of the bookkeeping test (and twice as many)"
    )
    parser.add_argument("--skip-backends", action="store_true", help="skip the serial/pool/ray comparison")
    args = parser.parse_args()
    validate_times()
    with tempfile.TemporaryDirectory() as tmp:
        bookkeeping(Path(tmp), args.runs)
        if not args.skip_backends:
            backends(Path(tmp), args.run_s)


if __name__ == "__main__":
    main()
