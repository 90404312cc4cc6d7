"""Flower's simulation engine on the workload of ``benchmarks/federated.py``, for comparison.

FedAvg, scikit-learn digits, MLP 64-32-10 (PyTorch), 100 clients all selected every
round, 10 rounds, 2 local epochs, batch 8, SGD lr 0.1, no client-side evaluation.
Data as the ``federated`` kind prepares it: a fixed 80/20 split, pixels z-scored by the
training part's statistics, an IID deal of the training samples to the clients (the
split and the deal are drawn here with NumPy, not with the project's named streams:
the same sizes, not the same samples).

Flower is never a project dependency: this script runs only in a scratch environment,

    python3 -m venv /work/flwr-venv
    /work/flwr-venv/bin/pip install "flwr[simulation]" scikit-learn torch==2.13.0
    /work/flwr-venv/bin/python benchmarks/flower_fedavg.py --out flower.json

``in_run_s`` is the wall time of ``FedAvg.start`` inside the ServerApp (the rounds: sending
the model, the clients' local training in Ray actors, aggregation); ``simulation_s`` adds
the simulation engine's start and stop (Ray, the SuperNodes); ``process_s`` is the process's
age when it writes its figures (from ``/proc``: interpreter start and imports included,
exit left out). ``benchmarks/federated.py
--flower-python /work/flwr-venv/bin/python`` runs this script as a subprocess, times the
whole process itself, and prints the figures beside the testbed's.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg
from flwr.simulation import run_simulation
from sklearn.datasets import load_digits
from torch import nn


def digits(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """80/20 split of the digits, standardised by the training part."""
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = round(0.2 * len(y))
    test, train = order[:n_test], order[n_test:]
    mean, std = x[train].mean(0), x[train].std(0)
    scale = lambda a: torch.from_numpy(((a - mean) / np.where(std > 0, std, 1.0)).astype(np.float32))  # noqa: E731
    return scale(x[train]), torch.from_numpy(y[train]), scale(x[test]), torch.from_numpy(y[test])


def process_age_s() -> float:
    """Wall seconds since this process started (Linux ``/proc``: uptime minus start tick)."""
    with open("/proc/uptime") as f:
        uptime_s = float(f.read().split()[0])
    with open("/proc/self/stat") as f:
        ticks = float(f.read().rsplit(")", 1)[1].split()[19])
    return uptime_s - ticks / os.sysconf("SC_CLK_TCK")


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cpus", type=float, default=1.0, help="CPUs Ray gives each client (num_cpus)")
    parser.add_argument("--out", help="write the figures to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    x, y, x_test, y_test = digits(args.seed)
    shares = np.array_split(np.random.default_rng(args.seed + 1).permutation(len(y)), args.clients)
    figures: dict[str, float] = {}

    client = ClientApp()

    @client.train()
    def train(msg: Message, context: Context) -> Message:
        model = mlp()
        model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
        rows = torch.from_numpy(shares[int(context.node_config["partition-id"])])
        opt = torch.optim.SGD(model.parameters(), lr=float(msg.content["config"]["lr"]))
        gen = torch.Generator().manual_seed(args.seed * 100_003 + int(context.node_config["partition-id"]))
        for _ in range(args.epochs):
            for batch in rows[torch.randperm(len(rows), generator=gen)].split(8):
                opt.zero_grad()
                F.cross_entropy(model(x[batch]), y[batch]).backward()
                opt.step()
        content = RecordDict(
            {"arrays": ArrayRecord(model.state_dict()), "metrics": MetricRecord({"num-examples": len(rows)})}
        )
        return Message(content=content, reply_to=msg)

    server = ServerApp()

    @server.main()
    def rounds(grid: Grid, context: Context) -> None:
        model = mlp()
        strategy = FedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_available_nodes=args.clients)
        start = time.perf_counter()
        result = strategy.start(
            grid=grid,
            initial_arrays=ArrayRecord(model.state_dict()),
            num_rounds=args.rounds,
            train_config=ConfigRecord({"lr": 0.1}),
        )
        figures["in_run_s"] = time.perf_counter() - start
        model.load_state_dict(result.arrays.to_torch_state_dict())
        with torch.no_grad():
            figures["final_accuracy"] = float((model(x_test).argmax(1) == y_test).float().mean())

    start = time.perf_counter()
    run_simulation(
        server_app=server,
        client_app=client,
        num_supernodes=args.clients,
        backend_config={"client_resources": {"num_cpus": args.cpus, "num_gpus": 0.0}},
    )
    figures["simulation_s"] = time.perf_counter() - start
    figures.update(clients=args.clients, rounds=args.rounds, epochs=args.epochs, process_s=process_age_s())
    print(json.dumps(figures))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(figures, f, indent=1)


if __name__ == "__main__":
    main()
