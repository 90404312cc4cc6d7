"""The market's stacked engine against torch.func, torch.optim and the one-at-a-time loop."""

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from sim.kernel import Kernel
from sim.runner import load_spec
from workloads.market.predictors import (
    Pool,
    RetrainJob,
    StackedGroup,
    adam_,
    build_module,
    gradients,
    init_layers,
    layer_sizes,
)
from workloads.market.spec import ModelConfig
from workloads.market.world import MarketWorld

ARCHS = {"logistic": ModelConfig(arch="logistic"), "mlp": ModelConfig(arch="mlp", hidden=8)}


def _stacked_params(module, thetas):
    names = [n for n, _ in module.named_parameters()]
    params = {}
    for (weight, bias), theta in zip(zip(names[::2], names[1::2]), thetas):
        params[weight], params[bias] = theta[:, :-1].transpose(1, 2), theta[:, -1]
    return params


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_hand_written_gradients_equal_vmap_of_grad(arch):
    """The hot path's backward pass equals torch.func's, padding and weights included."""
    rng = np.random.default_rng(0)
    k, batch, d, c = 3, 5, 6, 4
    sizes = layer_sizes(ARCHS[arch], d, c)
    thetas = [torch.from_numpy(np.stack(t)) for t in zip(*(init_layers(rng, sizes) for _ in range(k)))]
    x = torch.from_numpy(rng.random((k, batch, d), dtype=np.float32))
    y = torch.from_numpy(rng.integers(0, c, (k, batch)))
    valid = torch.ones(k, batch)
    valid[1, 3:] = 0  # a short last batch, padded
    weight = (valid / valid.sum(1, keepdim=True)).unsqueeze(-1)
    xa = F.pad(x, (0, 1), value=1.0)
    ours = gradients(thetas, xa, xa.transpose(1, 2), -F.one_hot(y, c).float() * weight, weight)

    module = build_module(sizes)

    def loss(params, xb, yb, wb):
        per_point = F.cross_entropy(functional_call(module, params, (xb,)), yb, reduction="none")
        return (per_point * wb).sum()

    theirs = vmap(grad(loss))(_stacked_params(module, thetas), x, y, weight[..., 0])
    ours_named = _stacked_params(module, ours)
    for name, value in theirs.items():
        torch.testing.assert_close(ours_named[name], value, rtol=1e-5, atol=1e-6)


def test_adam_step_equals_torch_optim_adam():
    rng = np.random.default_rng(1)
    start = torch.from_numpy(rng.standard_normal((2, 3, 4), dtype=np.float32))
    ours, avg, avg_sq = start.clone(), torch.zeros_like(start), torch.zeros_like(start)
    theirs = start.clone().requires_grad_()
    optimizer = torch.optim.Adam([theirs], lr=5e-3)
    for step in range(1, 31):
        g = torch.from_numpy(rng.standard_normal((2, 3, 4), dtype=np.float32)) * 10.0 ** -(step % 4)
        adam_([ours], [g], [avg], [avg_sq], torch.tensor(float(step)), 5e-3)
        theirs.grad = g.clone()
        optimizer.step()
    torch.testing.assert_close(ours, theirs.detach(), rtol=0, atol=1e-6)


def test_retrains_due_together_equal_retrains_one_at_a_time():
    """A batched retrain of predictors with different data sizes (so different step counts)
    leaves each exactly where its own retrain would, and leaves the others untouched."""
    rng = np.random.default_rng(2)
    pool = Pool(rng.random((60, 5), dtype=np.float32), rng.integers(0, 3, 60), 3)
    sizes = layer_sizes(ARCHS["mlp"], 5, 3)
    jobs = []
    for i, n in enumerate((7, 23, 16)):
        batches = np.full((2, 8 * -(-n // 8)), -1)
        batches[:, :n] = [rng.permutation(60)[:n] for _ in range(2)]
        jobs.append(RetrainJob(i, init_layers(rng, sizes), batches.reshape(-1, 8)))
    together, apart = StackedGroup(sizes, 4, pool, 5e-3), StackedGroup(sizes, 4, pool, 5e-3)
    together.retrain(jobs)
    for job in jobs:
        apart.retrain([job])
    for a, b in zip(together.layers(), apart.layers()):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
        assert not a[3].any()  # predictor 3 had no job
    assert together.steps == apart.steps == [2, 6, 4, 0]  # 2 epochs of ceil(n / 8) batches


SMALL = {
    "kind": "market",
    "users": 300,
    "checkpoints": 3,
    "data": {"source": "wine"},
    "training": {"retrain_every": 20},
    "predictors": [
        {"name": "lr", "count": 3, "seed_points": 6, "budget": 20, "purchase": {"name": "uncertainty"}},
        {"name": "mlp", "count": 2, "seed_points": 6, "budget": 20, "model": {"arch": "mlp", "hidden": 8}},
    ],
}


def _world(engine: str) -> MarketWorld:
    world = MarketWorld(load_spec({**SMALL, "engine": engine}), Kernel(3))
    world.run()
    return world


def test_stacked_engine_equals_the_predictor_by_predictor_loop():
    """Same seed, same users, same choices and purchases; parameters equal to float rounding."""
    stacked, loop = _world("stacked"), _world("loop")
    s_summary, s_tables = stacked.results()
    l_summary, l_tables = loop.results()
    pd.testing.assert_frame_equal(s_tables["users"], l_tables["users"], check_exact=True)
    assert (stacked.final_pred == loop.final_pred).all()
    for s_group, l_group in zip(stacked.groups, loop.groups):
        for a, b in zip(s_group.engine.layers(), l_group.engine.layers()):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-4)
    assert s_summary == pytest.approx(l_summary, rel=1e-12)
    assert s_summary["purchases"] > 0 and stacked.retrains.sum() > 2 * len(stacked.names)


def test_inference_mode_changes_no_bit_of_the_stacked_engine():
    """The stacked engine's run in torch.inference_mode (the fast path) gives the very users,
    predictions and parameters of a run with autograd's bookkeeping on."""
    fast = _world("stacked")
    slow = MarketWorld(load_spec({**SMALL, "engine": "stacked"}), Kernel(3))
    loop = MarketWorld(load_spec({**SMALL, "engine": "loop"}), Kernel(3))
    assert fast.no_autograd and slow.no_autograd and not loop.no_autograd
    slow.no_autograd = False
    slow.run()
    pd.testing.assert_frame_equal(fast.users.to_frame(), slow.users.to_frame(), check_exact=True)
    assert (fast.final_pred == slow.final_pred).all()
    for f_group, s_group in zip(fast.groups, slow.groups):
        for a, b in zip(f_group.engine.layers(), s_group.engine.layers()):
            np.testing.assert_array_equal(a, b)
