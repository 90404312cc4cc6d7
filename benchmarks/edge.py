"""Edge simulation speed, and the ``host`` device's latency against real execution.

Prints simulated requests per wall second on ``edge_shapes`` (the fine-grained VGG) and
the time spent in torch during the run
(torch profiler: every torch op, the exit predictor's training included; the first run
starts from an empty predictor store, the second reads it), next to one
batched forward pass of all exits over the model's unique test samples. Targets: at
least 50,000 requests/s, and torch time of the run at most 1.2x that forward pass (no
per-request forward).

With ``--latency`` it instead runs the fine-grained networks with torch on this CPU (batch
1, one thread) up to each exit (the backbone to exit k and head k only; warm-up, then 5
blocks of ``--rounds`` rounds that time every exit once in a seeded random order) and prints
the median thread CPU time of the quietest block, its spread and the wall time next to the
``host`` preset's simulated latency of the same layers (target: within 15 %); ``--fit`` also
prints the ``host`` constants with the smallest worst relative error on these measurements
(time = MACs / rate + bytes / bandwidth + layers * overhead), which is how the preset was
set. Run it niced; other processes' load moves the shallow exits most.

With ``--study`` it runs a small version of the exit study of docs/multiexit.md instead
(edge_shapes and edge_shapes_resnet, 2 s, seeds 0-2, Nano and mobile CPU) and prints it.

    python benchmarks/edge.py [--requests 200000] [--latency [--fit] [--rounds 100]] [--study]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from devices.edge import EdgeDeviceConfig
from sim.kernel import numpy_rng
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


def measured_exit_s(name: str, rounds: int, blocks: int = 5, warmup: int = 50) -> dict[str, list[float]]:
    """Per exit k, one batch-1 forward to exit k (backbone to exit k, head k) on one thread,
    timed in ``blocks`` blocks of ``rounds`` rounds; each round times every exit once in a
    fresh seeded order (interleaved, so a burst of load falls on all exits alike). Per exit:
    ``cpu_s``, the median thread CPU time in the quietest block (the lowest sum of medians:
    what the forward takes on a core of its own; a shared machine's load slows even CPU time,
    through caches and the core's other thread), ``cpu_iqr``, that block's interquartile range
    over its median, ``block_range``, the spread of the blocks' medians over the quietest,
    and ``wall_s``, the quietest block's median wall time."""
    model, x = trained_model(name), test_inputs(name)[:1]
    n = len(model.heads)

    def forward(k: int) -> torch.Tensor:
        h = model.stem(x)
        for stage in model.stages[: k + 1]:
            h = stage(h)
        return model.heads[k](h)

    order = list(range(n))
    rng = numpy_rng(0, f"bench/latency/{name}")
    timed = []  # per block: per exit, (cpu, wall) lists
    with torch.inference_mode():
        for _ in range(warmup):
            for k in order:
                forward(k)
        for _ in range(blocks):
            cpu: list[list[float]] = [[] for _ in range(n)]
            wall: list[list[float]] = [[] for _ in range(n)]
            for _ in range(rounds):
                rng.shuffle(order)
                for k in order:
                    start_wall, start_cpu = time.perf_counter(), time.thread_time()
                    forward(k)
                    cpu[k].append(time.thread_time() - start_cpu)
                    wall[k].append(time.perf_counter() - start_wall)
            timed.append((cpu, wall))
    medians = [[statistics.median(t) for t in cpu] for cpu, _ in timed]
    quiet = min(range(blocks), key=lambda b: sum(medians[b]))
    cpu, wall = timed[quiet]
    cpu_s = medians[quiet]
    quartiles = [statistics.quantiles(t, n=4) for t in cpu]
    return {
        "cpu_s": cpu_s,
        "cpu_iqr": [(q[2] - q[0]) / m for q, m in zip(quartiles, cpu_s, strict=True)],
        "block_range": [(max(m[k] for m in medians) - cpu_s[k]) / cpu_s[k] for k in range(n)],
        "wall_s": [statistics.median(t) for t in wall],
    }


def exit_work(name: str) -> tuple[list[float], list[float], list[int]]:
    """MACs, bytes and layers of the backbone to each exit plus that exit's head."""
    model = load_exit_model(name)
    seg_macs, seg_bytes, head_macs, head_bytes = part_costs(model)
    seg_layers, head_layers = part_layers(model)
    macs = torch.tensor(seg_macs).cumsum(0) + torch.tensor(head_macs)
    moved = torch.tensor(seg_bytes).cumsum(0) + torch.tensor(head_bytes)
    layers = torch.tensor(seg_layers).cumsum(0) + torch.tensor(head_layers)
    return macs.tolist(), moved.tolist(), [int(n) for n in layers.tolist()]


def latency(fit: bool, rounds: int) -> None:
    torch.set_num_threads(1)
    host = EdgeDeviceConfig(preset="host")
    rows = []
    for name in FINE_MODELS:
        macs, moved, layers = exit_work(name)
        measured = measured_exit_s(name, rounds)
        for k, (cpu_s, iqr, blocks, wall_s) in enumerate(zip(*measured.values(), strict=True)):
            rows.append((name, k, macs[k], moved[k], layers[k], cpu_s, iqr, blocks, wall_s))
    worst = {}
    for name, k, macs, moved, layers, cpu_s, iqr, blocks, wall_s in rows:
        sim_s = host.execution_s(macs, moved, host.points[-1], layers)
        error = sim_s / cpu_s - 1
        worst[name] = max(worst.get(name, 0.0), abs(error))
        print(
            f"{name} exit {k:2d}: {macs / 1e6:5.2f} MMACs {layers:3d} layers  measured "
            f"{cpu_s * 1e3:6.3f} ms CPU (IQR {100 * iqr:4.1f} %, blocks +{100 * blocks:4.1f} %; "
            f"wall {wall_s * 1e3:6.3f} ms)  "
            f"simulated on host {sim_s * 1e3:6.3f} ms  ({100 * error:+5.1f} %)"
        )
    for name, error in worst.items():
        print(f"{name}: worst simulated-vs-measured error {100 * error:.1f} % (target <= 15 %)")
    if fit:
        print(fit_host(rows, host))


def fit_host(rows: list[tuple], host: EdgeDeviceConfig) -> str:
    """The ``host`` constants that minimise the worst relative error over ``rows`` (a linear
    program: time = MACs * a + bytes * b + layers * c, all >= 0), as preset fields."""
    from scipy.optimize import linprog

    real = np.array([r[5] for r in rows])
    work = np.array([[r[2], r[3], r[4]] for r in rows], float) / real[:, None]
    n, ones = work.shape[0], np.ones((work.shape[0], 1))
    # minimise t subject to |work @ x - 1| <= t row by row
    result = linprog(
        np.r_[0.0, 0.0, 0.0, 1.0],
        A_ub=np.vstack([np.hstack([work, -ones]), np.hstack([-work, -ones])]),
        b_ub=np.r_[np.ones(n), -np.ones(n)],
        bounds=[(0, None)] * 4,
    )
    s_per_mac, s_per_byte, overhead_s, worst = result.x
    peak = host.macs_per_cycle * host.points[-1].freq_hz
    return (
        f"fit (worst relative error {100 * worst:.1f} %): peak_fraction {1 / s_per_mac / peak:.4f} "
        f"({1 / s_per_mac / 1e9:.2f} GMAC/s), memory_bandwidth_bytes_per_s "
        f"{1 / s_per_byte if s_per_byte > 0 else float('inf'):.4g}, layer_overhead_s {overhead_s:.3g}"
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
    bases = {"vgg_shapes": "edge_shapes.yaml", "resnet_shapes": "edge_shapes_resnet.yaml"}
    t975 = {2: 12.706, 3: 4.303, 4: 3.182, 5: 2.776}[len(seeds)]
    for model in FINE_MODELS:
        for preset in ("jetson_nano_gpu", "mobile_cpu"):
            runs = {}
            for exit_policy, governor in STUDY:
                sets = [f"devices.0.device.preset={preset}", "duration_s=2.0"]
                sets += [f"exit_policy.name={exit_policy}", f"dvfs.name={governor}"]
                runs[exit_policy, governor] = rows = [
                    run(load_spec(ROOT / "scenarios" / "edge" / bases[model], sets), seed=s).summary
                    for s in seeds
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
    parser.add_argument("--rounds", type=int, default=100, help="with --latency: rounds per block (5 blocks)")
    parser.add_argument("--study", action="store_true", help="the small exit study of docs/multiexit.md")
    args = parser.parse_args()
    if args.study:
        small_study()
        return
    if args.latency:
        latency(args.fit, args.rounds)
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
