"""Batched local training of federated clients: equal to the per-client loop, masked,
deterministic, and reading only the shared data it is pointed at."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from policies.federated.base import ClientFit, Phase, weighted_average
from sim import registry
from sim.errors import ConfigError
from sim.kernel import seed_sequence, torch_generator
from workloads.cache import pinned_threads
from workloads.federated.anchors import AnchorConfig, label_anchors
from workloads.federated.data import standardise_images
from workloads.federated.models import CNN, MLP, Anchored
from workloads.federated.training import (
    LocalTraining,
    batch_orders,
    evaluate,
    flops_per_sample,
    forward_flops_per_sample,
    model_bytes,
    pseudo_labels,
    similarities,
    train_clients,
    train_clients_loop,
)
from workloads.shapes import CLASSES, make_shapes

DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
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


def anchored() -> Anchored:
    gen = torch_generator(0, "tests/anchored")
    anchors = label_anchors(AnchorConfig(dim=8), "digits", DIGIT_NAMES)
    return Anchored(MLP(64, (16,), 12, generator=gen), 12, anchors, generator=gen)


def params_of(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def owned_classes(k: int) -> np.ndarray:
    """Each client owns 4 random classes of 10."""
    owned = np.zeros((k, 10), bool)
    gen = rng("owned")
    for row in owned:
        row[gen.choice(10, 4, replace=False)] = True
    return owned


def policy_fit(name: str, **params):
    """A fit of aggregation policy ``name`` for the test clients (None: the default phase)."""

    def make(clients, start, cfg):
        policy = registry.get("aggregation", name)(**params)
        policy.setup(100, {n: p[0] if p.dim() > model_dims[n] else p for n, p in start.items()})
        return policy.configure_fit(np.arange(len(clients)), start, cfg.default_phase())

    return make


SGD = LocalTraining(epochs=2, batch_size=8, lr=0.1)
# name: (model, local config, owned classes?, stacked start?, fit maker, pseudo-label percentile)
CASES = {
    "cross_entropy": (mlp, SGD, False, False, None, None),
    "adam": (mlp, LocalTraining(epochs=2, batch_size=8, lr=0.01, optimizer="adam"), False, False, None, None),
    "fedprox": (mlp, SGD, False, False, policy_fit("fedprox", mu=0.5), None),
    "owned_classes": (mlp, LocalTraining(epochs=2, batch_size=4, lr=0.1), True, False, None, None),
    "async_stacked_start": (
        mlp,
        LocalTraining(epochs=1, lr=0.1),
        False,
        True,
        policy_fit("fedprox", mu=0.1),
        None,
    ),
    "anchored_head_sgd": (anchored, SGD, False, False, None, None),
    "label_anchored": (
        anchored,
        LocalTraining(epochs=3, batch_size=8),
        True,
        False,
        policy_fit("label_anchored", data_lr=0.01, label_lr=0.02),
        60.0,  # pseudo-label percentile, low enough that these few samples get some
    ),
    "label_anchored_stacked": (
        anchored,
        LocalTraining(epochs=2, batch_size=4),
        False,
        True,
        policy_fit("label_anchored"),
        None,
    ),
}
model_dims = {
    **{n: p.dim() for n, p in mlp().named_parameters()},
    **{n: p.dim() for n, p in anchored().named_parameters()},
}


def case_inputs(name: str, x=None, y=None):
    make, cfg, with_owned, stacked, fit_maker, pseudo = CASES[name]
    model = make()
    clients = unequal_clients()
    start = params_of(model)
    if stacked:  # clients that started from different global versions
        noise = torch_generator(0, "tests/start")
        start = {n: p + 0.05 * torch.randn(len(clients), *p.shape, generator=noise) for n, p in start.items()}
    seeds = seed_sequence(0, f"tests/seeds/{name}").generate_state(len(clients), np.uint64)
    owned = owned_classes(len(clients)) if with_owned else None
    fit = fit_maker(clients, start, cfg) if fit_maker else None
    extra = pseudo_labels(model, start, x, y, clients, owned, pseudo) if pseudo else None
    return model, start, clients, cfg, seeds, owned, fit, extra


@pytest.mark.parametrize("name", sorted(CASES))
def test_batched_equals_loop(data, name):
    x, y = data
    model, start, clients, cfg, seeds, owned, fit, extra = case_inputs(name, x, y)
    batched = train_clients(model, start, x, y, clients, cfg, seeds, owned, fit, extra)
    loop = train_clients_loop(model, start, x, y, clients, cfg, seeds, owned, fit, extra)
    np.testing.assert_array_equal(batched.steps, loop.steps)
    np.testing.assert_array_equal(batched.num_samples, loop.num_samples)
    np.testing.assert_array_equal(batched.pseudo_labelled, loop.pseudo_labelled)
    if name == "label_anchored":
        assert batched.pseudo_labelled.sum() > 0  # pseudo-labelled samples are trained on
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
    model, start, clients, cfg, seeds, owned, fit, extra = case_inputs("label_anchored", x, y)
    with pinned_threads(2):
        first = train_clients(model, start, x, y, clients, cfg, seeds, owned, fit, extra)
    again = train_clients(model, start, x, y, clients, cfg, seeds, owned, fit, extra)
    for n in first.params:
        assert torch.equal(first.params[n], again.params[n])


def test_reads_only_the_rows_it_is_given(data):
    x, y = data
    model, start, clients, cfg, seeds, owned, fit, extra = case_inputs("label_anchored", x, y)
    x_before = x.clone()
    base = train_clients(model, start, x, y, clients, cfg, seeds, owned, fit, extra)
    assert torch.equal(x, x_before)
    # unused rows full of NaN, and a client's rows moved: the same results, bit for bit
    shift = 7
    x_big = torch.cat(
        [torch.full((shift, x.shape[1]), float("nan")), x, torch.full((5, x.shape[1]), float("nan"))]
    )
    y_big = torch.cat([torch.zeros(shift, dtype=torch.int64), y, torch.zeros(5, dtype=torch.int64)])
    extra = [(r + shift, t) for r, t in extra]
    moved = train_clients(
        model, start, x_big, y_big, [c + shift for c in clients], cfg, seeds, owned, fit, extra
    )
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


def test_pseudo_labels_follow_fedalign_rules(data):
    """Only unlabelled samples, only for lacked classes, only where the argmax over all
    classes is that class and the similarity tops the client's percentile of it."""
    x, y = data
    model, clients = anchored(), unequal_clients()
    params, owned = params_of(model), owned_classes(len(clients))
    found = pseudo_labels(model, params, x, y, clients, owned, 90.0)
    sims = similarities(model, params, x).numpy()
    for k, (rows, cls) in enumerate(found):
        s = sims[clients[k]]
        threshold = np.percentile(s, 90.0, axis=0)
        expected = [
            (r, c)
            for r, row in zip(clients[k], s)
            for c in [int(row.argmax())]
            if not owned[k][y[r]] and not owned[k][c] and row[c] > threshold[c]
        ]
        assert sorted(zip(rows.tolist(), cls.tolist())) == sorted(expected)
    assert sum(len(r) for r, _ in found) > 0
    # at the 99th percentile about 1 % of a client's samples per lacked class qualify
    big = [np.arange(400)]
    few = pseudo_labels(model, params, x, y, big, owned[:1], 99.0)[0][0]
    assert 0 < len(few) <= 0.01 * 400 * (~owned[0]).sum() + 6


def test_similarities_are_cosines(data):
    x, _ = data
    model = anchored()
    params = params_of(model)
    with torch.no_grad():
        f = torch.nn.functional.normalize(model.encoder(x[:5]), dim=-1)
        g = torch.nn.functional.normalize(model.label_encoder(model.label_embedding), dim=-1)
        logits = model(x[:5])
    torch.testing.assert_close(similarities(model, params, x[:5]), f @ g.T)
    # logits: the data representation dotted with the L2-normalised label representation
    torch.testing.assert_close(logits, model.encoder(x[:5]).detach() @ g.T)


def test_built_in_anchors_carry_the_label_graph():
    a = label_anchors(
        AnchorConfig(dim=8),
        "shapes",
        ("disk", "square", "triangle", "plus", "ring", "diamond", "bars", "ellipse", "saltire", "frame"),
    )
    assert a.shape == (10, 8)
    torch.testing.assert_close(a.norm(dim=1), torch.ones(10))
    cos = a @ a.T
    disk, square, plus, ring, saltire, frame = 0, 1, 3, 4, 8, 9
    # classes sharing attributes sit closer than classes sharing none
    assert cos[disk, ring] > cos[disk, plus] and cos[plus, saltire] > cos[plus, ring]
    assert cos[square, frame] > cos[square, saltire]
    assert torch.equal(
        a,
        label_anchors(
            AnchorConfig(dim=8),
            "shapes",
            CLASSES,
        ),
    )
    with pytest.raises(ConfigError, match="no built-in label graph for dataset 'wine'"):
        label_anchors(AnchorConfig(), "wine", ("class_0", "class_1", "class_2"))


def test_anchor_csv_and_its_errors(tmp_path):
    path = tmp_path / "anchors.csv"
    path.write_text("class,e0,e1\none,1,0\ntwo,0,2\n")
    a = label_anchors(AnchorConfig(source="csv", csv=str(path), dim=2), "any", ("two", "one"))
    assert a.tolist() == [[0.0, 1.0], [1.0, 0.0]]
    with pytest.raises(
        ConfigError, match=r"model.anchors.csv: .* has 2 embedding columns; model.anchors.dim is 3"
    ):
        label_anchors(AnchorConfig(source="csv", csv=str(path), dim=3), "any", ("one", "two"))
    with pytest.raises(ConfigError, match=r"model.anchors.csv: .* lacks class\(es\) three"):
        label_anchors(AnchorConfig(source="csv", csv=str(path), dim=2), "any", ("one", "two", "three"))


def test_init_is_deterministic_from_the_generator():
    a, b = anchored(), anchored()
    gen = torch_generator(1, "tests/anchored")
    other = Anchored(MLP(64, (16,), 12, generator=gen), 12, a.anchors, generator=gen)
    for (n, p), q, r in zip(a.named_parameters(), b.parameters(), other.parameters()):
        assert torch.equal(p, q)
        assert torch.equal(p, r) == (n == "label_embedding")
    assert torch.equal(a.label_embedding, a.anchors) and a.label_embedding.shape == (10, 8)


def test_costs_and_evaluate(data):
    x, y = data
    model = MLP(64, (32,), 10, generator=torch_generator(0, "tests/mlp"))
    assert flops_per_sample(model, (64,)) == 3 * 2 * (64 * 32 + 32 * 10)
    cnn = CNN((3, 32, 32), (4, 8), 10, generator=torch_generator(0, "tests/cnn"))
    macs = 32 * 32 * 4 * 3 * 9 + 16 * 16 * 8 * 4 * 9 + 8 * 8 * 8 * 10
    assert flops_per_sample(cnn, (3, 32, 32)) == 3 * 2 * macs
    assert model_bytes(params_of(model)) == 4 * (64 * 32 + 32 + 32 * 10 + 10)
    params = params_of(model)
    with torch.no_grad():
        expected = (model(x).argmax(1) == y).double().mean().item()
    assert evaluate(model, params, x, y) == pytest.approx(expected)


def test_config_checked_at_the_door(data):
    with pytest.raises(ValueError, match="optimizer must be 'sgd' or 'adam'"):
        LocalTraining(optimizer="lion")
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        LocalTraining(batch_size=0)
    x, y = data
    fit = ClientFit((Phase("data", "adam", 0.01), Phase("label", "adam", 0.01)))
    with pytest.raises(ValueError, match="need parameters named label_"):
        train_clients(mlp(), params_of(mlp()), x, y, [np.arange(4)], LocalTraining(), np.arange(1), fit=fit)


def test_hooks_returning_wrong_shapes_are_one_line_errors(data):
    x, y = data
    start = params_of(mlp())
    clients = [np.arange(10), np.arange(10, 20)]
    bad_state = ClientFit((Phase(),), state={"c": torch.zeros(3, 5)})
    with pytest.raises(ConfigError, match=r"client state 'c' has shape \[3, 5\]; expected \[2, ...\]"):
        train_clients(mlp(), start, x, y, clients, LocalTraining(), np.arange(2), fit=bad_state)
    vector = ClientFit((Phase(),), loss_term=lambda p, s, st: p["net.0.bias"] * 0)
    for train in (train_clients, train_clients_loop):
        with pytest.raises(ConfigError, match="loss term gives .*expected one scalar per client"):
            train(mlp(), start, x, y, clients, LocalTraining(), np.arange(2), fit=vector)


@pytest.mark.parametrize("head", ["linear", "anchored"])
def test_cnn_on_shapes_batched_equals_loop(head):
    """The realistic workload: a CNN on 32x32 colour images, vmapped over clients."""
    shapes = make_shapes(90, seed=0)
    x, y = torch.from_numpy(shapes.images), torch.from_numpy(shapes.labels)
    gen = torch_generator(0, "tests/cnn")
    model = CNN((3, 32, 32), (4, 8), 10 if head == "linear" else 12, generator=gen)
    cfg, fit = LocalTraining(epochs=2, batch_size=8, lr=0.05), None
    if head == "anchored":
        names = CLASSES
        model = Anchored(model, 12, label_anchors(AnchorConfig(dim=6), "shapes", names), generator=gen)
        fit = ClientFit((Phase("data", "adam", 0.01), Phase("label", "adam", 0.01)))
    clients = [np.arange(0, 3), np.arange(3, 20), np.arange(20, 60), np.arange(50, 90)]
    seeds = np.arange(4) + 7
    start = params_of(model)
    batched = train_clients(model, start, x, y, clients, cfg, seeds, fit=fit)
    loop = train_clients_loop(model, start, x, y, clients, cfg, seeds, fit=fit)
    np.testing.assert_array_equal(batched.steps, [2, 6, 10, 10])
    for n, p in loop.params.items():
        torch.testing.assert_close(batched.params[n], p, rtol=1e-4, atol=1e-5)
        assert (batched.params[n] - start[n]).abs().amax() > 1e-4


def test_shapes_images_are_standardised_one_by_one():
    """Each image's channels centred (its random background colour removed), unit std."""
    images = make_shapes(20, seed=0).images
    out = standardise_images(images)
    np.testing.assert_allclose(out.mean(axis=(2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(1, 2, 3)), 1, rtol=1e-4)
    # standardising is per image: an image's result does not depend on the others
    np.testing.assert_array_equal(standardise_images(images[3:4]), out[3:4])


def test_flop_counts_are_cached_by_architecture(tmp_path, monkeypatch):
    """Counted once per architecture and input shape, then read from disk; a damaged entry is recounted."""
    monkeypatch.setenv("TESTBED_CACHE", str(tmp_path))
    gen = torch_generator(0, "tests/flops")
    small, wide = MLP(64, (32,), 10, generator=gen), MLP(64, (48,), 10, generator=gen)
    counted = forward_flops_per_sample(small, (64,))
    assert counted == 2 * (64 * 32 + 32 * 10)
    (entry,) = (tmp_path / "federated-flops").iterdir()
    assert forward_flops_per_sample(small, (64,)) == counted
    assert forward_flops_per_sample(wide, (64,)) == 2 * (64 * 48 + 48 * 10)  # another entry
    entry.write_text("{not json")
    assert forward_flops_per_sample(small, (64,)) == counted


def test_dataset_shape_matches_the_loaded_data():
    from workloads.federated.data import dataset_shape, load_dataset

    data = load_dataset("digits")
    assert dataset_shape("digits") == (data.input_shape, data.num_classes) == ((64,), 10)
    assert dataset_shape("shapes") == (make_shapes(1, 0).images.shape[1:], len(CLASSES))
