"""Edge simulation speed: 200,000 requests replayed from the inference cache.

Prints simulated requests per wall second and the time spent in torch during the run
(torch profiler: every torch op, the exit predictor's training included; the first run
starts from an empty predictor store, the second reads it), next to one
batched forward pass of all exits over the model's unique test samples. Targets: at
least 50,000 requests/s, and torch time of the run at most 1.2x that forward pass (no
per-request forward).

    python benchmarks/edge.py [--requests 200000]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from sim.runner import load_spec, run
from workloads.cache import ArrayStore
from workloads.edge.world import PREDICTORS
from workloads.multiexit import load_exit_model, test_inputs, trained_model

ROOT = Path(__file__).resolve().parents[1]
RATE_HZ = 2500.0


def batched_forward_s(name: str) -> float:
    """Median time of one forward pass of every exit over all test samples, in one batch."""
    model, images = trained_model(name), test_inputs(name)
    times = []
    with torch.inference_mode():
        for _ in range(5):
            start = time.perf_counter()
            model(images)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200_000)
    args = parser.parse_args()
    base = ROOT / "scenarios" / "edge" / "edge_digits.yaml"
    spec = load_spec(base, [f"devices.0.rate_hz={RATE_HZ}", f"duration_s={args.requests / RATE_HZ}"])
    load_exit_model(spec.model)  # the trained weights and inference cache, from disk
    forward_s = batched_forward_s(spec.model)
    n_samples = len(load_exit_model(spec.model).test_labels)
    for label, fresh in (
        ("first run, empty predictor store (trains the exit predictor)", True),
        ("second run (predictor read from the on-disk store)", False),
    ):
        if fresh:
            shutil.rmtree(ArrayStore(PREDICTORS).root, ignore_errors=True)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            start = time.perf_counter()
            result = run(spec)
            wall = time.perf_counter() - start
        torch_s = sum(e.self_cpu_time_total for e in prof.key_averages()) / 1e6
        n = result.summary["requests"]
        print(
            f"{label}: {n:,.0f} requests in {wall:.2f} s -> {n / wall:,.0f} requests/s (target >= 50,000); "
            f"torch {torch_s * 1e3:.1f} ms = {torch_s / forward_s:.2f}x one batched forward of all exits "
            f"over the {n_samples} test samples ({forward_s * 1e3:.1f} ms; target <= 1.2x)"
        )


if __name__ == "__main__":
    main()
