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

With ``--study`` it runs the small exit study of docs/multiexit.md instead (edge_shapes,
2 s, seeds 0-2, both fine-grained networks, Nano and mobile CPU) and prints its table.

    python benchmarks/edge.py [--requests 200000] [--latency [--fit]] [--study]
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


STUDY = [
    ("none", "performance"),
    ("entropy", "performance"),
    ("max_softmax", "performance"),
    ("patience", "performance"),
    ("budgeted", "performance"),
    ("entropy", "deadline_aware"),
    ("predictive_exit", "performance"),
    ("predictive_exit", "predictive"),
]


def small_study(seeds: tuple[int, ...] = (0, 1, 2)) -> None:
    """Every policy of STUDY per network and device; Predictive Exit + DVFS against the plain
    network and SDN, paired over the seeds (95 % t interval)."""
    base = ROOT / "scenarios" / "edge" / "edge_shapes.yaml"
    t975 = {2: 12.706, 3: 4.303, 4: 3.182, 5: 2.776}[len(seeds)]
    for model in FINE_MODELS:
        for preset in ("jetson_nano_gpu", "mobile_cpu"):
            runs = {}
            for exit_policy, governor in STUDY:
                sets = [f"model={model}", f"devices.0.device.preset={preset}", "duration_s=2.0"]
                sets += [f"exit_policy.name={exit_policy}", f"dvfs.name={governor}"]
                runs[exit_policy, governor] = rows = [
                    run(load_spec(base, sets), seed=s).summary for s in seeds
                ]
                mean = {k: statistics.mean(r[k] for r in rows) for k in rows[0]}
                mj = {k: 1e3 * mean[f"{k}energy_per_inference_j"] for k in ("", "active_", "idle_")}
                print(
                    f"{model} {preset} {exit_policy}+{governor}: accuracy {mean['accuracy']:.4f} "
                    f"+-{mean['accuracy_ci95']:.4f}, energy/inference {mj['']:.3f} mJ (active "
                    f"{mj['active_']:.3f}, idle {mj['idle_']:.3f}), {mean['flops_per_inference'] / 1e6:.2f} "
                    f"MFLOPs, misses {100 * mean['deadline_miss_rate']:.1f} %",
                    flush=True,
                )
            ours = runs["predictive_exit", "predictive"]
            for label, other in (("plain", ("none", "performance")), ("SDN", ("max_softmax", "performance"))):
                for metric in ("energy_per_inference_j", "flops_per_inference"):
                    change = [100 * (o[metric] / b[metric] - 1) for o, b in zip(ours, runs[other])]
                    half = t975 * statistics.stdev(change) / len(change) ** 0.5
                    mean_change = statistics.mean(change)
                    print(
                        f"  predictive_exit+predictive vs {label}: {metric} {mean_change:+.1f} % +-{half:.1f}"
                    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--latency", action="store_true", help="host latency: measured vs simulated")
    parser.add_argument("--fit", action="store_true", help="with --latency: print the fitted host constants")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--study", action="store_true", help="the small exit study of docs/multiexit.md")
    args = parser.parse_args()
    if args.study:
        small_study()
        return
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
