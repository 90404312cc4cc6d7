"""Batched local training of federated clients: equal to the per-client loop, masked,
deterministic, and reading only the shared data it is pointed at."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from policies.federated.base import weighted_average
from sim.kernel import seed_sequence, torch_generator
from workloads.cache import pinned_threads
from workloads.federated.models import DIGIT_NAMES, MLP, AnchoredMLP, class_name_embedding
from workloads.federated.training import (
    LocalTraining,
    batch_orders,
    evaluate,
    flops_per_sample,
    model_bytes,
    train_clients,
    train_clients_loop,
)

N_ROWS = 400


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor]:
    digits = load_digits()
    px = digits.data[:N_ROWS]
    std = px.std(0)
    x = (px - px.mean(0)) / np.where(std > 0, std, 1.0)
    return torch.from_numpy(x.astype(np.float32)), torch.from_numpy(digits.target[:N_ROWS].astype(np.int64))


def rng(name: str) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(seed_sequence(0, f"tests/federated_training/{name}")))


def unequal_clients() -> list[np.ndarray]:
    """Clients of 1, 3 (< batch), 8 (= batch), 21 and 60 rows; rows shared by two clients too."""
    order = rng("clients").permutation(N_ROWS)
    return [order[:1], order[1:4], order[4:12], order[12:33], order[33:93], order[20:50]]


def mlp() -> MLP:
    return MLP(64, (16,), 10, generator=torch_generator(0, "tests/mlp"))


def anchored() -> AnchoredMLP:
    return AnchoredMLP(
        64, (16,), 12, DIGIT_NAMES, generator=torch_generator(0, "tests/anchored"), embed_dim=16
    )


def params_of(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def owned_classes(k: int) -> np.ndarray:
    """Each client owns 4 random classes of 10."""
    owned = np.zeros((k, 10), bool)
    gen = rng("owned")
    for row in owned:
        row[gen.choice(10, 4, replace=False)] = True
    return owned


CASES = {
    "cross_entropy": (mlp, LocalTraining(epochs=2, batch_size=8, lr=0.1), False, False),
    "fedprox": (mlp, LocalTraining(epochs=2, batch_size=8, lr=0.1, prox_mu=0.5), False, False),
    "owned_classes": (mlp, LocalTraining(epochs=2, batch_size=4, lr=0.1), True, False),
    "async_stacked_start": (mlp, LocalTraining(epochs=1, batch_size=8, lr=0.1, prox_mu=0.1), False, True),
    "label_anchored": (
        anchored,
        LocalTraining(
            epochs=3,
            batch_size=8,
            lr=0.1,
            prox_mu=0.1,
            objective="label_anchored",
            pseudo_label_threshold=0.2,
        ),
        True,
        False,
    ),
    "label_anchored_alternate_2": (
        anchored,
        LocalTraining(epochs=2, batch_size=4, objective="label_anchored", alternate_steps=2),
        False,
        True,
    ),
}


def case_inputs(name: str):
    make, cfg, with_owned, stacked = CASES[name]
    model = make()
    clients = unequal_clients()
    start = params_of(model)
    if stacked:  # clients that started from different global versions
        noise = torch_generator(0, "tests/start")
        start = {n: p + 0.05 * torch.randn(len(clients), *p.shape, generator=noise) for n, p in start.items()}
    seeds = seed_sequence(0, f"tests/seeds/{name}").generate_state(len(clients), np.uint64)
    return model, start, clients, cfg, seeds, owned_classes(len(clients)) if with_owned else None


@pytest.mark.parametrize("name", sorted(CASES))
def test_batched_equals_loop(data, name):
    x, y = data
    model, start, clients, cfg, seeds, owned = case_inputs(name)
    batched = train_clients(model, start, x, y, clients, cfg, seeds, owned)
    loop = train_clients_loop(model, start, x, y, clients, cfg, seeds, owned)
    np.testing.assert_array_equal(batched.steps, loop.steps)
    np.testing.assert_array_equal(batched.num_samples, loop.num_samples)
    np.testing.assert_array_equal(batched.pseudo_labelled, loop.pseudo_labelled)
    if name == "label_anchored":
        assert batched.pseudo_labelled.sum() > 0  # the pseudo-labelling step is exercised
    for n, p in loop.params.items():
        assert batched.params[n].shape == (len(clients), *model.get_parameter(n).shape)
        torch.testing.assert_close(batched.params[n], p, rtol=1e-5, atol=1e-5)
        moved = batched.params[n] - (start[n] if start[n].dim() == p.dim() else start[n][None])
        assert moved.abs().amax() > 1e-3  # training did something


def test_steps_and_samples_follow_labels(data):
    x, y = data
    clients = unequal_clients()
    cfg = LocalTraining(epochs=3, batch_size=8)
    updates = train_clients(mlp(), params_of(mlp()), x, y, clients, cfg, np.arange(len(clients)))
    sizes = np.array([len(c) for c in clients])
    np.testing.assert_array_equal(updates.num_samples, sizes)
    np.testing.assert_array_equal(updates.steps, 3 * np.ceil(sizes / 8).astype(int))
    owned = owned_classes(len(clients))
    masked = train_clients(mlp(), params_of(mlp()), x, y, clients, cfg, np.arange(len(clients)), owned)
    labelled = np.array([owned[k][y.numpy()[c]].sum() for k, c in enumerate(clients)])
    np.testing.assert_array_equal(masked.num_samples, labelled)


def test_client_without_steps_stays_unchanged(data):
    x, y = data
    owned = np.ones((3, 10), bool)
    owned[1] = False  # client 1 knows no label: nothing to train on
    clients = [np.arange(0, 30), np.arange(30, 60), np.array([], dtype=np.int64)]
    start = params_of(mlp())
    for train in (train_clients, train_clients_loop):
        updates = train(mlp(), start, x, y, clients, LocalTraining(), np.arange(3), owned)
        np.testing.assert_array_equal(updates.steps, [4, 0, 0])
        for n, p in start.items():
            assert torch.equal(updates.params[n][1], p) and torch.equal(updates.params[n][2], p)
            assert not torch.equal(updates.params[n][0], p)


def test_bit_identical_across_calls_and_thread_counts(data):
    x, y = data
    model, start, clients, cfg, seeds, owned = case_inputs("label_anchored")
    with pinned_threads(2):
        first = train_clients(model, start, x, y, clients, cfg, seeds, owned)
    again = train_clients(model, start, x, y, clients, cfg, seeds, owned)
    for n in first.params:
        assert torch.equal(first.params[n], again.params[n])


def test_reads_only_the_rows_it_is_given(data):
    x, y = data
    model, start, clients, cfg, seeds, owned = case_inputs("label_anchored")
    x_before = x.clone()
    base = train_clients(model, start, x, y, clients, cfg, seeds, owned)
    assert torch.equal(x, x_before)
    # unused rows full of NaN, and a client's rows moved: the same results, bit for bit
    shift = 7
    x_big = torch.cat(
        [torch.full((shift, x.shape[1]), float("nan")), x, torch.full((5, x.shape[1]), float("nan"))]
    )
    y_big = torch.cat([torch.zeros(shift, dtype=torch.int64), y, torch.zeros(5, dtype=torch.int64)])
    moved = train_clients(model, start, x_big, y_big, [c + shift for c in clients], cfg, seeds, owned)
    for n in base.params:
        assert torch.equal(base.params[n], moved.params[n])


def test_batch_orders():
    seeds = np.array([11, 12, 13])
    orders = batch_orders([5, 0, 9], 3, seeds)
    assert [o.shape for o in orders] == [(3, 5), (3, 0), (3, 9)]
    for order in orders:
        for epoch in order:
            np.testing.assert_array_equal(np.sort(epoch), np.arange(len(epoch)))
    # a client's order depends on its own seed only, not on the others
    (alone,) = batch_orders([9], 3, seeds[2:])
    np.testing.assert_array_equal(alone, orders[2])
    assert not np.array_equal(orders[2][0], orders[2][1])  # reshuffled every epoch


def test_weighted_average_by_hand():
    stacked = {"w": torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]), "b": torch.tensor([1.0, 2.0, 4.0])}
    avg = weighted_average(stacked, np.array([1, 0, 3]))
    assert torch.equal(avg["w"], torch.tensor([(1 + 15) / 4, (2 + 18) / 4]))
    assert torch.equal(avg["b"], torch.tensor((1 + 12) / 4))
    assert avg["w"].dtype == torch.float32
    with pytest.raises(ValueError, match="non-negative"):
        weighted_average(stacked, np.array([1, -1, 1]))
    with pytest.raises(ValueError, match="weights has 2"):
        weighted_average(stacked, np.array([1, 1]))


def test_class_name_embedding_is_fixed():
    names = list(DIGIT_NAMES)
    table = class_name_embedding(names, 32)
    assert table.shape == (10, 32)
    assert torch.equal(table, class_name_embedding(names, 32))
    torch.testing.assert_close(table.norm(dim=1), torch.ones(10))
    cos = table @ table.T
    assert (cos - torch.eye(10)).abs().max() < 0.9  # distinct anchors
    # a row depends on its name only
    assert torch.equal(class_name_embedding(names[::-1], 32), table.flip(0))
    # pinned values: "<one>" has 9 character 2-, 3- and 4-grams, each +-1 in one of 8 slots
    torch.testing.assert_close(
        3 * class_name_embedding(["one"], 8)[0], torch.tensor([1.0, 0, 0, -2, -1, 1, -1, 1])
    )
    with pytest.raises(ValueError, match="distinct"):
        class_name_embedding(["one", "one"], 8)


def test_init_is_deterministic_from_the_generator():
    a, b = anchored(), anchored()
    other = AnchoredMLP(
        64, (16,), 12, DIGIT_NAMES, generator=torch_generator(1, "tests/anchored"), embed_dim=16
    )
    for (n, p), q, r in zip(a.named_parameters(), b.parameters(), other.parameters()):
        assert torch.equal(p, q)
        assert torch.equal(p, r) == (n == "label_embedding")
    assert torch.equal(a.label_embedding, class_name_embedding(list(DIGIT_NAMES), 16))
    assert a.label_embedding.shape == (10, 16)


def test_costs_and_evaluate(data):
    x, y = data
    model = MLP(64, (32,), 10, generator=torch_generator(0, "tests/mlp"))
    assert flops_per_sample(model, 64) == 3 * 2 * (64 * 32 + 32 * 10)
    assert model_bytes(params_of(model)) == 4 * (64 * 32 + 32 + 32 * 10 + 10)
    params = params_of(model)
    with torch.no_grad():
        expected = (model(x).argmax(1) == y).double().mean().item()
    assert evaluate(model, params, x, y) == pytest.approx(expected)


def test_config_checked_at_the_door(data):
    with pytest.raises(ValueError, match="objective must be one of"):
        LocalTraining(objective="fedalign")
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        LocalTraining(batch_size=0)
    x, y = data
    with pytest.raises(ValueError, match="label_anchored"):
        train_clients(
            mlp(),
            params_of(mlp()),
            x,
            y,
            [np.arange(4)],
            LocalTraining(objective="label_anchored"),
            np.arange(1),
        )
