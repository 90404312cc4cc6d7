"""Sweep speed and its bookkeeping, and the speed of ``testbed validate``.

1. ``testbed validate`` of every shipped scenario and sweep file, in one process after
   the imports (CPU seconds; target < 1 s each), and of a market with 30,000 predictors
   (target < 1 s). Whole-process start-up is measured by ``benchmarks/startup.py``.
2. The per-run overhead of a sweep's bookkeeping (run store, lock, folder checks,
   timeouts, process messages): ``--runs`` and twice as many runs of a scenario kind that
   sleeps a fixed time, through the real sweep driver on ``serial`` and ``pool`` (1
   worker) and through :func:`sim.sweep.execute` called directly (the same work without
   the bookkeeping), interleaved, medians of ``--repeats``; the growth of the difference
   per extra run, as a share of a 2-second run (target < 2 %). The fixed start-up of a
   sweep (planning, worker processes and their imports) is printed beside it.
3. Unless ``--skip-backends``: 16 xr runs of about ``--run-s`` seconds each on serial,
   pool (2 workers) and ray (2 CPUs). Targets: pool >= 1.8x serial on a 2-core
   machine; ray within 1.5x of pool.

    python benchmarks/sweep.py [--run-s 2] [--runs 40] [--repeats 5] [--skip-validate] [--skip-backends]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile
import time
from pathlib import Path

from sim import registry
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


FIXED_KIND = '''"""A scenario kind whose run takes a fixed wall time (the bookkeeping test's)."""

import time
from typing import Literal

from sim.config import StrictModel
from sim.registry import register


class FixedSpec(StrictModel):
    kind: Literal["fixed_run"] = "fixed_run"
    name: str = "fixed"
    seed: int = 0
    run_s: float = 0.05


class FixedWorld:
    def __init__(self, spec):
        self.spec = spec

    def run(self):
        time.sleep(self.spec.run_s)

    def results(self):
        return {"slept_s": self.spec.run_s}, {}


@register("scenario", "fixed_run")
class FixedRun:
    """Sleeps ``run_s`` seconds: a run of known length."""

    Spec = FixedSpec
    headline_metrics = ("slept_s",)

    @staticmethod
    def build(spec, kernel):
        return FixedWorld(spec)

    @staticmethod
    def figures(tables, summary, spec):
        return {}
'''


def bookkeeping(out: Path, n_runs: int, run_s: float, repeats: int) -> None:
    """Per-run cost of the sweep machinery (run store, lock, folder checks, timeouts, worker
    messages, progress), measured two ways on sweeps of ``n_runs`` and ``2 * n_runs`` runs
    of a kind that sleeps ``run_s`` (so the runs themselves hardly vary):

    - inside the driver: a sweep's wall time minus the time its runs spent in
      :func:`sim.sweep.execute` (validate, run, write the folder; timed by the executing
      process and recorded per run);
    - against direct calls: the sweep's wall time minus that of the same runs through
      :func:`sim.sweep.execute` called in a loop here (noisier: two separate timings).

    Each is taken per extra run (the growth from ``n_runs`` to ``2 * n_runs``), so the fixed
    start-up (planning, worker processes) cancels out; sizes and paths are interleaved,
    ``repeats`` times, and medians printed.
    """
    plugin = out / "fixed_run_kind.py"
    plugin.write_text(FIXED_KIND)
    registry.load_plugins([str(plugin)])
    base = {"kind": "fixed_run", "run_s": run_s}

    def study(n: int) -> dict:
        return {"name": "bookkeeping", "base": base, "seeds": n, "plugins": [str(plugin)]}

    def direct(n: int, where: Path) -> float:
        configs = [r["config"] for r in plan(*load_sweep(study(n)))]
        start = time.perf_counter()
        for i, config in enumerate(configs):
            outcome = execute(config, str(where / f"run{i}"), [str(plugin)], False)
            assert outcome["status"] == "done", outcome["error"]
        return time.perf_counter() - start

    def driven(n: int, where: Path, backend: str) -> tuple[float, float]:
        start = time.perf_counter()
        table = sweep(study(n), where, backend=backend, workers=1, progress=False)
        wall = time.perf_counter() - start
        assert (table["status"] == "done").all(), table["error"].dropna().tolist()
        return wall, float(table["wall_time_s"].sum())

    print(
        f"sweep bookkeeping per run ({n_runs} and {2 * n_runs} runs of {run_s * 1e3:.0f} ms, 1 worker, "
        f"median of {repeats} interleaved; target < 2% of a {REFERENCE_RUN_S:.0f} s run):"
    )
    for backend in ("serial", "pool"):
        inside, versus, fixed = [], [], []
        for rep in range(repeats):
            own, other = {}, {}
            for n in (n_runs, 2 * n_runs):
                here = out / f"{backend}-{rep}-{n}"
                wall, executing = driven(n, here / "sweep", backend)
                own[n], other[n] = wall - executing, wall - direct(n, here / "direct")
            inside.append((own[2 * n_runs] - own[n_runs]) / n_runs)
            versus.append((other[2 * n_runs] - other[n_runs]) / n_runs)
            fixed.append(own[n_runs] - n_runs * inside[-1])
        for label, values in (("inside the driver", inside), ("against direct calls", versus)):
            mid = statistics.median(values)
            print(
                f"  {backend:<6} {label:<21} {mid * 1e3:6.2f} ms = {100 * mid / REFERENCE_RUN_S:5.2f}% "
                f"(repeats {min(values) * 1e3:.1f} .. {max(values) * 1e3:.1f} ms)"
            )
        print(f"  {backend:<6} fixed start-up per sweep {statistics.median(fixed):.2f} s")


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
        "--runs", type=int, default=40, help="runs of the bookkeeping test (and twice as many)"
    )
    parser.add_argument("--fake-run-s", type=float, default=0.05, help="length of a bookkeeping-test run")
    parser.add_argument("--repeats", type=int, default=5, help="repetitions of the bookkeeping test")
    parser.add_argument("--skip-validate", action="store_true", help="skip the validate timings")
    parser.add_argument("--skip-backends", action="store_true", help="skip the serial/pool/ray comparison")
    args = parser.parse_args()
    if not args.skip_validate:
        validate_times()
    with tempfile.TemporaryDirectory() as tmp:
        bookkeeping(Path(tmp), args.runs, args.fake_run_s, args.repeats)
        if not args.skip_backends:
            backends(Path(tmp), args.run_s)


if __name__ == "__main__":
    main()
