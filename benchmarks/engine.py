"""Engine speed: simulated frames per second of a full xr run against a bare SimPy loop.

The full run is XRBench VR gaming on Quad_4K under EDF for at least 1,000,000 frames
(arrivals, dependencies, deadlines, scheduling, recording and metrics included), once
under each runtime (``exact`` arrivals, and ``xrbench``: frames entering at ticks and
completions). The bare loop is the textbook SimPy M/M/1 (a generator process per job, one ``Resource``,
service times drawn beforehand), timed in the same process. Bare and full runs alternate
``--repeats`` times and the median of the paired ratios is reported, so load from other
processes on the machine shifts both sides alike. Target: ratio >= 1.0 and peak memory
(RSS) under 1 GiB.

    python benchmarks/engine.py [--frames 1000000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import numpy as np
import simpy

from sim.runner import load_spec, run


def bare_simpy_mm1(jobs: int, load: float = 0.8, seed: int = 0) -> float:
    """Jobs per wall second of the bare SimPy M/M/1 loop."""
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(1.0 / load, jobs).tolist()
    services = rng.exponential(1.0, jobs).tolist()
    env = simpy.Environment()
    server = simpy.Resource(env, capacity=1)
    waits = []

    def job(i):
        arrived = env.now
        with server.request() as req:
            yield req
            waits.append(env.now - arrived)
            yield env.timeout(services[i])

    def source():
        for i in range(jobs):
            yield env.timeout(gaps[i])
            env.process(job(i))

    start = time.perf_counter()
    env.process(source())
    env.run()
    return jobs / (time.perf_counter() - start)


def full_xr(frames: int, runtime: str) -> tuple[float, float, dict]:
    """(frames per wall second, frames simulated, summary) of the VR gaming run."""
    probe = run(load_spec({"kind": "xr", "duration_s": 1.0, "runtime": runtime}), seed=0)
    per_s = probe.summary["frames"]
    spec = load_spec(
        {
            "kind": "xr",
            "name": "vr_gaming_quad",
            "duration_s": frames / per_s * 1.01,
            "hardware": {"preset": "Quad_4K", "dataflow": "WS"},
            "scheduler": {"name": "edf"},
            "runtime": runtime,
        }
    )
    start = time.perf_counter()
    result = run(spec, seed=0)
    wall = time.perf_counter() - start
    return result.summary["frames"] / wall, result.summary["frames"], result.summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for runtime in ("exact", "xrbench"):
        ratios = []
        for repeat in range(args.repeats):
            bare = bare_simpy_mm1(args.frames, seed=repeat)
            ours, n, summary = full_xr(args.frames, runtime)
            ratios.append(ours / bare)
            print(
                f"runtime {runtime}, repeat {repeat}: bare SimPy M/M/1 {bare:,.0f} jobs/s; "
                f"xr VR gaming, Quad_4K, EDF: {n:,.0f} frames, {ours:,.0f} frames/s "
                f"(score {summary['xrbench_score']:.2f}, drop rate {summary['drop_rate']:.4f}); "
                f"ratio {ours / bare:.2f}"
            )
        print(
            f"runtime {runtime}: median ratio to bare SimPy {statistics.median(ratios):.2f} "
            f"(min {min(ratios):.2f}, max {max(ratios):.2f}; target >= 1.0)"
        )
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak memory (RSS):          {peak_gib:.2f} GiB (target < 1 GiB)")


if __name__ == "__main__":
    main()
