"""Sweep speed: 16 short xr runs on serial, pool (2 workers) and ray (2 CPUs).

Prints each backend's wall time and speedups, and the per-run overhead of the run
store and outputs against a 5-second run. Targets: pool >= 1.8x serial on a 2-core
machine; ray within 1.5x of pool; store + report overhead < 5% of a 5-second run.

    python benchmarks/sweep.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from sim import sweep
from sim.runner import load_spec, run, write_run
from sim.store import RunStore

ROOT = Path(__file__).resolve().parents[1]
STUDY = {
    "name": "bench",
    "base": str(ROOT / "scenarios" / "xr" / "ar_assistant.yaml"),
    "set": {"duration_s": 20.0},
    "grid": {"scheduler.name": ["fcfs", "edf", "latency_greedy", "edp_greedy"]},
    "seeds": 4,
}


def timed(backend: str, workers: int, out: Path) -> float:
    start = time.perf_counter()
    table = sweep(STUDY, out / backend, backend=backend, workers=workers, progress=False)
    assert (table["status"] == "done").all(), table["error"].dropna().tolist()
    return time.perf_counter() - start


def overhead(out: Path) -> tuple[float, float, float]:
    """(run seconds, store seconds, outputs seconds) for one run of about 5 s."""
    spec = load_spec(STUDY["base"], ["duration_s=1.0"])
    start = time.perf_counter()
    run(spec)
    per_sim_s = time.perf_counter() - start
    spec = load_spec(STUDY["base"], [f"duration_s={5.0 / per_sim_s:.3f}"])
    start = time.perf_counter()
    result = run(spec)
    run_s = time.perf_counter() - start
    store = RunStore(out / "runs.sqlite")
    start = time.perf_counter()
    store.add([{"id": "x", "ord": 0, "factors": {}, "seed": 0, "config": result.config}])
    store.record("x", "done", result.summary, run_s, None)
    store_s = time.perf_counter() - start
    start = time.perf_counter()
    write_run(result, out / "one", report=False)
    outputs_s = time.perf_counter() - start
    start = time.perf_counter()
    write_run(result, out / "one_report", report=True)
    report_s = time.perf_counter() - start
    return run_s, store_s + outputs_s, report_s


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        serial = timed("serial", 1, out)
        pool = timed("pool", 2, out)
        ray = timed("ray", 2, out)
        run_s, store_s, report_s = overhead(out)
    print("16 runs of ar_assistant, 20 simulated s each")
    print(f"serial:            {serial:7.2f} s")
    print(f"pool, 2 workers:   {pool:7.2f} s   speedup {serial / pool:.2f}x (target >= 1.8x)")
    print(f"ray, 2 CPUs:       {ray:7.2f} s   {ray / pool:.2f}x pool (target <= 1.5x)")
    print(
        f"one {run_s:.2f} s run: store + tables {store_s * 1e3:.0f} ms "
        f"({100 * store_s / run_s:.1f}%, target < 5%); "
        f"with HTML report {report_s * 1e3:.0f} ms ({100 * report_s / run_s:.1f}%)"
    )


if __name__ == "__main__":
    main()
