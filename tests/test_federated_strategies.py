"""Client-side strategies as plug-ins: SCAFFOLD against a plain per-client loop, and the
server optimisers (FedAdam, FedYogi, FedAdagrad, FedAvgM) against their update rules."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from policies.federated.base import Phase, weighted_average
from sim import registry
from sim.kernel import torch_generator
from workloads.federated.models import MLP
from workloads.federated.training import LocalTraining, batch_orders, train_clients

LR = 0.1


@pytest.fixture(scope="module")
def data():
    digits = load_digits()
    x = digits.data[:200] / 16.0
    return torch.from_numpy(x.astype(np.float32)), torch.from_numpy(digits.target[:200].astype(np.int64))


def model() -> MLP:
    return MLP(64, (8,), 10, generator=torch_generator(0, "tests/scaffold"))


def by_hand(net, start, x, y, rows, seed, cfg, correction):
    """One client's SCAFFOLD fit, plainly: SGD whose every step adds ``c - c_i`` to the gradient."""
    net = copy.deepcopy(net)
    net.load_state_dict(start)
    params = dict(net.named_parameters())
    (order,) = batch_orders([len(rows)], cfg.epochs, np.array([seed]))
    steps = 0
    for epoch in order:
        for lo in range(0, len(epoch), cfg.batch_size):
            batch = rows[epoch[lo : lo + cfg.batch_size]]
            net.zero_grad()
            F.cross_entropy(net(x[batch]), y[batch]).backward()
            with torch.no_grad():
                for n, p in params.items():
                    p -= LR * (p.grad + correction[n])
            steps += 1
    return {n: p.detach() for n, p in params.items()}, steps


def test_scaffold_plugin_equals_a_per_client_loop(data):
    x, y = data
    net, population = model(), 50
    start = {n: p.detach().clone() for n, p in net.named_parameters()}
    gen = torch_generator(0, "tests/scaffold/variates")
    rand = lambda: {n: 0.05 * torch.randn(p.shape, generator=gen) for n, p in start.items()}  # noqa: E731
    policy = registry.get("aggregation", "scaffold")(lr_global=0.7)
    policy.setup(population, start)
    policy.c = rand()
    policy.c_client = {3: rand(), 8: rand()}  # clients 3 and 8 took part before; 5 never did
    own_before = {k: copy.deepcopy(v) for k, v in policy.c_client.items()}
    c_before = copy.deepcopy(policy.c)
    clients = np.array([3, 5, 8])
    rows = [np.arange(0, 20), np.arange(20, 29), np.arange(29, 60)]
    seeds = np.array([1, 2, 3])
    weights = np.array([20.0, 9.0, 31.0])
    cfg = LocalTraining(epochs=2, batch_size=8, lr=LR)

    fit = policy.configure_fit(clients, start, cfg.default_phase())
    up = train_clients(net, start, x, y, rows, cfg, seeds, fit=fit)
    uploads = policy.collect(clients, start, up.params, fit, up.steps)
    new = policy.aggregate(start, up.params, weights, None, uploads)

    zero = {n: torch.zeros_like(p) for n, p in start.items()}
    trained, deltas = [], []
    for k, client in enumerate(clients.tolist()):
        own = own_before.get(client, zero)
        y_k, steps = by_hand(
            net, start, x, y, rows[k], seeds[k], cfg, {n: c_before[n] - own[n] for n in start}
        )
        assert steps == up.steps[k]
        own_new = {n: own[n] - c_before[n] + (start[n] - y_k[n]) / (steps * LR) for n in start}
        for n in start:
            torch.testing.assert_close(up.params[n][k], y_k[n], rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(policy.c_client[client][n], own_new[n], rtol=1e-4, atol=1e-5)
        trained.append(y_k)
        deltas.append({n: own_new[n] - own[n] for n in start})
    mean = weighted_average({n: torch.stack([t[n] for t in trained]) for n in start}, weights)
    for n in start:
        torch.testing.assert_close(new[n], start[n] + 0.7 * (mean[n] - start[n]), rtol=1e-5, atol=1e-6)
        c_expected = c_before[n] + len(clients) / population * torch.stack([d[n] for d in deltas]).mean(0)
        torch.testing.assert_close(policy.c[n], c_expected, rtol=1e-4, atol=1e-6)
    # the correction matters: without it the clients would have trained elsewhere
    plain = train_clients(net, start, x, y, rows, cfg, seeds)
    assert (plain.params["net.0.weight"] - up.params["net.0.weight"]).abs().max() > 1e-3
    assert policy.transfer_bytes(100) == (200, 200)


def params(value):
    return {"w": torch.full((2, 3), float(value))}


def one_step(name, global_value=0.0, client_value=1.0, **kw):
    agg = registry.get("aggregation", name)(**kw)
    stacked = {k: torch.stack([params(client_value)[k]] * 2) for k in params(0)}
    return agg, agg.aggregate(params(global_value), stacked, np.array([1.0, 1.0]), None, {})["w"][0, 0].item()


@pytest.mark.parametrize(
    "name, expected",
    [
        # d = 1, m = 0.1 after one step; v after one step from 0:
        ("fedadam", 0.1 * 0.1 / (np.sqrt(0.01) + 1e-3)),  # v = (1 - b2) d^2
        ("fedyogi", 0.1 * 0.1 / (np.sqrt(0.01) + 1e-3)),  # v = 0 - (1 - b2) d^2 sign(0 - d^2)
        ("fedadagrad", 0.1 * 0.1 / (1.0 + 1e-3)),  # v = d^2
    ],
)
def test_adaptive_server_optimisers_first_step(name, expected):
    _, value = one_step(name, lr=0.1)
    assert value == pytest.approx(expected, rel=1e-6)


def test_yogi_second_moment_grows_additively_unlike_adam():
    """After a large update then small ones, Adam's v decays multiplicatively, Yogi's by steps of d^2."""
    for name in ("fedadam", "fedyogi"):
        agg = registry.get("aggregation", name)(lr=0.1)
        w = params(0)
        for d in (10.0, 0.1, 0.1):
            w = agg.aggregate(w, {"w": torch.stack([w["w"] + d] * 2)}, np.array([1.0, 1.0]), None, {})
        v = agg.v["w"][0, 0].item()
        if name == "fedadam":
            assert v == pytest.approx(0.99**2 * 0.01 * 100 + 0.99 * 0.01 * 0.01 + 0.01 * 0.01, rel=1e-5)
        else:
            assert v == pytest.approx(0.01 * 100 - 2 * 0.01 * 0.01, rel=1e-5)


def test_fedavgm_momentum():
    agg = registry.get("aggregation", "fedavgm")(lr=1.0, momentum=0.5)
    w = agg.aggregate(params(0), {"w": torch.stack([params(1)["w"]] * 2)}, np.array([1.0, 1.0]), None, {})
    assert w["w"][0, 0].item() == 1.0  # m = d = 1
    w = agg.aggregate(w, {"w": torch.stack([params(2)["w"]] * 2)}, np.array([1.0, 1.0]), None, {})
    assert w["w"][0, 0].item() == 1.0 + 0.5 * 1 + 1  # m = 0.5 * 1 + d(1)
    plain = registry.get("aggregation", "fedavgm")(lr=1.0, momentum=0.0)
    _, value = one_step("fedavgm", momentum=0.0)
    assert value == 1.0 and plain.momentum == 0.0  # momentum 0 is FedAvg


def test_scaffold_needs_local_sgd():
    policy = registry.get("aggregation", "scaffold")()
    policy.setup(4, params(0))
    with pytest.raises(ValueError, match="local.optimizer: scaffold.*got .adam."):
        policy.configure_fit(np.array([0]), params(0), Phase("all", "adam", 0.01))
