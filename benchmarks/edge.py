"""Edge simulation speed, and the ``host`` device's latency against real execution.

Prints simulated requests per wall second on ``edge_shapes`` (the fine-grained VGG) and
the time spent in torch during the run
(torch profiler: every torch op, the exit predictor's training included; the first run
starts from an empty predictor store, the second reads it), next to one
batched forward pass of all exits over the model's unique test samples. Targets: at
least 50,000 requests/s, and torch time of the run at most 1.2x that forward pass (no
per-request forward).

With ``--latency`` it instead runs the fine-grained networks with torch on this CPU (batch
1, one thread) up to each exit (the backbone to exit k and head k only) and prints the
measured median next to the ``host`` preset's simulated latency of the same layers (target:
within 15 %); ``--fit`` also prints the least-squares ``host`` constants from these
measurements (time = MACs / rate + layers * overhead), which is how the preset was set.

    python benchmarks/edge.py [--requests 200000] [--latency [--fit]]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from devices.edge import EdgeDeviceConfig
from sim.runner import load_spec, run
from workloads.edge.world import part_costs, part_layers
from workloads.multiexit import load_exit_model, test_inputs, trained_model

ROOT = Path(__file__).resolve().parents[1]
RATE_HZ = 700.0  # edge_shapes' load: the Nano about half busy


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


FINE_MODELS = ("vgg_shapes", "resnet_shapes")


def measured_exit_s(name: str, repeats: int) -> list[float]:
    """Median wall time of one batch-1 forward to each exit (backbone to exit k, head k), one thread."""
    model, x = trained_model(name), test_inputs(name)[:1]
    out = []
    with torch.inference_mode():
        for k in range(len(model.heads)):

            def forward(k=k):
                h = model.stem(x)
                for stage in model.stages[: k + 1]:
                    h = stage(h)
                return model.heads[k](h)

            for _ in range(20):  # warm-up
                forward()
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                forward()
                times.append(time.perf_counter() - start)
            out.append(statistics.median(times))
    return out


def exit_work(name: str) -> tuple[list[float], list[float], list[int]]:
    """MACs, bytes and layers of the backbone to each exit plus that exit's head."""
    model = load_exit_model(name)
    seg_macs, seg_bytes, head_macs, head_bytes = part_costs(model)
    seg_layers, head_layers = part_layers(model)
    macs = torch.tensor(seg_macs).cumsum(0) + torch.tensor(head_macs)
    moved = torch.tensor(seg_bytes).cumsum(0) + torch.tensor(head_bytes)
    layers = torch.tensor(seg_layers).cumsum(0) + torch.tensor(head_layers)
    return macs.tolist(), moved.tolist(), [int(n) for n in layers.tolist()]


def latency(fit: bool, repeats: int) -> None:
    torch.set_num_threads(1)
    host = EdgeDeviceConfig(preset="host")
    rows = []
    for name in FINE_MODELS:
        macs, moved, layers = exit_work(name)
        for k, real_s in enumerate(measured_exit_s(name, repeats)):
            rows.append((name, k, macs[k], moved[k], layers[k], real_s))
    worst = 0.0
    for name, k, macs, moved, layers, real_s in rows:
        sim_s = host.execution_s(macs, moved, host.points[-1], layers)
        worst = max(worst, abs(sim_s / real_s - 1))
        print(
            f"{name} exit {k:2d}: {macs / 1e6:6.2f} MMACs {layers:3d} layers  measured {real_s * 1e3:7.3f} ms"
            f"  simulated on host {sim_s * 1e3:7.3f} ms  ({100 * (sim_s / real_s - 1):+5.1f} %)"
        )
    print(f"worst simulated-vs-measured error: {100 * worst:.1f} % (target <= 15 %)")
    if fit:
        a = torch.tensor([[r[2], r[4]] for r in rows], dtype=torch.float64)
        memory_s = torch.tensor([r[3] / host.memory_bandwidth_bytes_per_s for r in rows], dtype=torch.float64)
        b = torch.tensor([r[5] for r in rows], dtype=torch.float64) - memory_s
        s_per_mac, overhead_s = torch.linalg.lstsq(a, b[:, None]).solution[:, 0].tolist()
        print(
            f"fit: {1 / s_per_mac / 1e9:.3f} GMAC/s achieved "
            f"(peak_fraction {1 / s_per_mac / (host.macs_per_cycle * host.points[-1].freq_hz):.4f}), "
            f"layer_overhead_s {overhead_s:.3e}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--latency", action="store_true", help="host latency: measured vs simulated")
    parser.add_argument("--fit", action="store_true", help="with --latency: print the fitted host constants")
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    if args.latency:
        latency(args.fit, args.repeats)
        return
    base = ROOT / "scenarios" / "edge" / "edge_shapes.yaml"
    spec = load_spec(base, [f"devices.0.rate_hz={RATE_HZ}", f"duration_s={args.requests / RATE_HZ}"])
    load_exit_model(spec.model)  # the trained weights and inference cache, from the shared cache
    forward_s = batched_forward_s(spec.model)
    n_samples = len(load_exit_model(spec.model).test_labels)
    # the predictor store in a folder of its own: the first run starts empty, no shared one is touched
    os.environ["TESTBED_CACHE"] = tempfile.mkdtemp(prefix="edge-bench-")
    for label in (
        "first run, empty predictor store (trains the exit predictor)",
        "second run (predictor read from the on-disk store)",
    ):
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
