"""Federated training speed: batched local training against a per-client training loop.

FedAvg on scikit-learn digits with an MLP (64-32-10), 100 clients all selected, 10
rounds, 2 local epochs, batch 8, SGD lr 0.1. Prints the wall time of the batched path
and of a straightforward per-client training loop with the same seed, their final
accuracies, and the ratio. Target: batched at least 10x faster than the loop, final
accuracies within 1 point.

The data and the IID split are the ``federated`` kind's own (``workloads.federated.data``):
80% train cut into equal client shares (14 or 15 samples at 100 clients), 20% held-out
test, pixels standardised by the train part's statistics. Times cover the rounds (local
training, aggregation); the final evaluation is outside them. Each path first runs one
untimed round, so the times leave out one-off first-use costs in a process (lazy
imports behind torch.func and torch.optim, up to a second or two; printed separately).

Against Flower (``--flower-python`` or ``--flower-json``): the same workload as a
whole ``testbed run`` (IID, every client always available and selected, no dropouts),
timed in-run (the run's own ``wall_time_s``: building the world, the simulated rounds,
evaluation) and as the whole process (``python -m sim.cli run``: imports, validation,
the run, writing results and report), beside the figures of
``benchmarks/flower_fedavg.py`` in its scratch environment. ``--flower-python`` runs
that script (it is never run with the project's environment), ``--flower-json`` reads
the JSON it wrote. Targets: in-run >= 100x shorter, whole process >= 20x.

    python benchmarks/federated.py [--clients 100] [--rounds 10] [--epochs 2] [--seed 0] [--repeats 3]
        [--flower-python /work/flwr-venv/bin/python | --flower-json flower.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import yaml

from policies.federated.base import weighted_average
from sim.kernel import numpy_rng, seed_sequence, torch_generator
from workloads.federated.data import PartitionConfig, load_dataset, partition
from workloads.federated.models import MLP
from workloads.federated.training import (
    ClientUpdates,
    LocalTraining,
    evaluate,
    train_clients,
    train_clients_loop,
)


def fedavg(
    train: Callable[..., ClientUpdates],
    seed: int,
    clients: int,
    rounds: int,
    cfg: LocalTraining,
) -> tuple[float, float]:
    """``rounds`` of FedAvg with every client selected; returns (wall seconds, final test accuracy)."""
    data = load_dataset("digits")
    labels = data.y_train.numpy()
    shares = partition(
        PartitionConfig(scheme="iid"),
        labels,
        clients,
        10,
        numpy_rng(seed, "split"),
    )
    shares = [shares.indices(k) for k in range(clients)]
    x, y = data.x_train, data.y_train
    model = MLP(x.shape[1], (32,), 10, generator=torch_generator(seed, "benchmarks/federated/init"))
    global_params = {n: p.detach().clone() for n, p in model.named_parameters()}
    start = time.perf_counter()
    for r in range(rounds):
        seeds = seed_sequence(seed, f"benchmarks/federated/round{r}").generate_state(clients, np.uint64)
        updates = train(model, global_params, x, y, shares, cfg, seeds)
        global_params = weighted_average(updates.params, updates.num_samples)
    wall = time.perf_counter() - start
    return wall, evaluate(model, global_params, data.x_test, data.y_test)


def testbed_spec(clients: int, rounds: int, epochs: int, seed: int) -> dict:
    """The benchmark's workload as a ``federated`` scenario."""
    return {
        "kind": "federated",
        "name": "bench_flower",
        "seed": seed,
        "dataset": "digits",
        "partition": {"scheme": "iid"},
        "clients": {"count": clients},
        "model": {"arch": "mlp", "hidden": [32]},
        "local": {"epochs": epochs, "batch_size": 8, "lr": 0.1},
        "clients_per_round": clients,
        "rounds": rounds,
        "target_accuracy": 0.5,
    }


def timed_process(argv: list[str]) -> float:
    """Wall seconds of one subprocess (which must succeed)."""
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def versus_flower(args: argparse.Namespace) -> None:
    """Whole ``testbed run`` processes against Flower's figures (measured or read), medians."""
    root = Path(__file__).resolve().parent
    with tempfile.TemporaryDirectory() as tmp:
        scenario = Path(tmp) / "bench_flower.yaml"
        scenario.write_text(yaml.safe_dump(testbed_spec(args.clients, args.rounds, args.epochs, args.seed)))
        flower_argv = [
            args.flower_python or "",
            str(root / "flower_fedavg.py"),
            *("--clients", str(args.clients), "--rounds", str(args.rounds), "--epochs", str(args.epochs)),
            *("--seed", str(args.seed), "--out", str(Path(tmp) / "flower.json")),
        ]
        ours, flower = [], []
        for i in range(args.repeats):  # interleaved, so drifts in machine load hit both alike
            out = Path(tmp) / f"run{i}"
            testbed = [sys.executable, "-m", "sim.cli", "run", str(scenario), "--out", str(out)]
            process_s = timed_process(testbed)
            in_run_s = json.loads((out / "run.json").read_text())["wall_time_s"]
            accuracy = json.loads((out / "summary.json").read_text())["final_accuracy"]
            ours.append((in_run_s, process_s, accuracy))
            if args.flower_python:
                process_s = timed_process(flower_argv)
                figures = json.loads((Path(tmp) / "flower.json").read_text())
                flower.append((figures["in_run_s"], process_s, figures["final_accuracy"]))
    if args.flower_json:
        figures = json.loads(Path(args.flower_json).read_text())
        flower = [(figures["in_run_s"], figures["process_s"], figures["final_accuracy"])]
    median = lambda rows, i: statistics.median(r[i] for r in rows)  # noqa: E731
    source = f"measured now, {len(flower)} runs" if args.flower_python else f"read from {args.flower_json}"
    print(f"\nagainst Flower (whole runs; testbed: median of {len(ours)}; Flower: {source})")
    print(f"{'':8} {'in-run s':>9} {'process s':>10} {'accuracy':>9}")
    for name, rows in (("testbed", ours), ("flower", flower)):
        print(f"{name:8} {median(rows, 0):9.3f} {median(rows, 1):10.2f} {median(rows, 2):9.2%}")
    in_run, process = median(flower, 0) / median(ours, 0), median(flower, 1) / median(ours, 1)
    print(f"in-run {in_run:.1f}x shorter (target >= 100x); whole process {process:.1f}x (target >= 20x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per path; the median is printed")
    flower = parser.add_mutually_exclusive_group()
    flower.add_argument("--flower-python", help="python of a scratch venv with flwr[simulation]: run Flower")
    flower.add_argument("--flower-json", help="figures written by benchmarks/flower_fedavg.py --out")
    parser.add_argument("--skip-loop", action="store_true", help="only the comparison with Flower")
    args = parser.parse_args()
    if not args.skip_loop:
        batched_against_loop(args)
    if args.flower_python or args.flower_json:
        versus_flower(args)


def batched_against_loop(args: argparse.Namespace) -> None:
    """The batched path against the per-client loop, rounds only, medians."""
    cfg = LocalTraining(epochs=args.epochs, batch_size=8, lr=0.1)
    for name, train in (("batched", train_clients), ("loop", train_clients_loop)):
        first = time.perf_counter()
        fedavg(train, args.seed, args.clients, 1, cfg)
        print(f"untimed warm-up round, {name} (first-use costs): {time.perf_counter() - first:.2f} s")
    batched, loop = [], []
    for _ in range(args.repeats):  # interleaved, so drifts in machine load hit both paths alike
        batched.append(fedavg(train_clients, args.seed, args.clients, args.rounds, cfg))
        loop.append(fedavg(train_clients_loop, args.seed, args.clients, args.rounds, cfg))
    batched_s, batched_acc = statistics.median(b[0] for b in batched), batched[0][1]
    loop_s, loop_acc = statistics.median(b[0] for b in loop), loop[0][1]
    print(
        f"FedAvg, digits, MLP 64-32-10, {args.clients} clients, {args.rounds} rounds, "
        f"{args.epochs} local epochs, batch 8, SGD lr 0.1, seed {args.seed}"
    )
    print(f"wall time, median of {args.repeats} interleaved runs each")
    print(f"batched : {batched_s:7.3f} s  final test accuracy {batched_acc:.2%}")
    print(f"loop    : {loop_s:7.3f} s  final test accuracy {loop_acc:.2%}")
    print(
        f"speed-up {loop_s / batched_s:.1f}x (target >= 10x); "
        f"accuracy gap {abs(batched_acc - loop_acc) * 100:.2f} points (target <= 1)"
    )


if __name__ == "__main__":
    main()
