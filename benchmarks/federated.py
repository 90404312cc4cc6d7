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

    python benchmarks/federated.py [--clients 100] [--rounds 10] [--epochs 2] [--seed 0] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per path; the median is printed")
    args = parser.parse_args()
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
