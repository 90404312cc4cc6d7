"""Sweep speed: 16 short xr runs on serial, pool (2 workers) and ray (2 CPUs).

Each run is VR gaming sized to take about ``--run-s`` seconds of wall time. Prints each
backend's wall time and the speedups, then, against a 5-second run, the per-run cost
of the run store, of the run's outputs (summary, config, parquet tables) and of the
optional per-run HTML report (``--run-reports``). Targets: pool >= 1.8x serial on a
2-core machine; ray within 1.5x of pool; store + outputs < 5% of a 5-second run.

    python benchmarks/sweep.py [--run-s 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from sim import sweep
from sim.runner import load_spec, run, write_run
from sim.store import RunStore

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "scenarios" / "xr" / "vr_gaming.yaml"


def simulated_s_for(wall_s: float) -> float:
    """Simulated seconds of VR gaming that take about ``wall_s`` of wall time."""
    spec = load_spec(BASE, ["duration_s=200"])
    run(spec)  # warm caches
    start = time.perf_counter()
    run(spec)
    return 200 * wall_s / (time.perf_counter() - start)


def timed(study: dict, backend: str, workers: int, out: Path) -> float:
    start = time.perf_counter()
    table = sweep(study, out / backend, backend=backend, workers=workers, progress=False)
    assert (table["status"] == "done").all(), table["error"].dropna().tolist()
    return time.perf_counter() - start


def overhead(out: Path) -> tuple[float, float, float, float]:
    """(run s, run-store s, tables s, HTML report s) for one run of about 5 s."""
    result = run(load_spec(BASE, [f"duration_s={simulated_s_for(5.0):.1f}"]))
    write_run(result, out / "warm", report=False)  # imports (pyarrow) as a sweep worker has them
    store = RunStore(out / "runs.sqlite")
    start = time.perf_counter()
    store.add([{"id": "x", "ord": 0, "factors": {}, "seed": 0, "config": result.config}])
    store.record("x", "done", result.summary, result.wall_time_s, None)
    store_s = time.perf_counter() - start
    start = time.perf_counter()
    write_run(result, out / "one", report=False)
    tables_s = time.perf_counter() - start
    start = time.perf_counter()
    write_run(result, out / "one_report", report=True)
    report_s = time.perf_counter() - start - tables_s
    return result.wall_time_s, store_s, tables_s, report_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-s", type=float, default=2.0, help="wall seconds per run")
    args = parser.parse_args()
    duration = simulated_s_for(args.run_s)
    study = {
        "name": "bench",
        "base": str(BASE),
        "set": {"duration_s": round(duration, 1)},
        "grid": {"scheduler.name": ["fcfs", "edf", "latency_greedy", "edp_greedy"]},
        "seeds": 4,
    }
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        serial = timed(study, "serial", 1, out)
        pool = timed(study, "pool", 2, out)
        ray = timed(study, "ray", 2, out)
        run_s, store_s, tables_s, report_s = overhead(out)
    print(f"16 runs of vr_gaming, {duration:.0f} simulated s each (~{args.run_s:.1f} s wall)")
    print(f"serial:            {serial:7.2f} s")
    print(f"pool, 2 workers:   {pool:7.2f} s   speedup {serial / pool:.2f}x (target >= 1.8x)")
    print(f"ray, 2 CPUs:       {ray:7.2f} s   {ray / pool:.2f}x pool (target <= 1.5x)")
    print(
        f"per {run_s:.2f} s run: run store {store_s * 1e3:.1f} ms ({100 * store_s / run_s:.2f}%), "
        f"summary + config + parquet tables {tables_s * 1e3:.0f} ms ({100 * tables_s / run_s:.1f}%), "
        f"optional HTML report {report_s * 1e3:.0f} ms ({100 * report_s / run_s:.1f}%); target < 5%"
    )


if __name__ == "__main__":
    main()
