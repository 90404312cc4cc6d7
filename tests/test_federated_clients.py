"""Client devices, partitions and federated policies: behaviour and input errors."""

import numpy as np
import pytest
import torch

from devices.clients import Availability, AvailabilityConfig, ClientPopulation, ClientsConfig
from policies.federated.base import ClientView, weighted_average
from sim import registry
from sim.errors import ConfigError
from workloads.federated.data import PartitionConfig, load_dataset, partition


def rng(seed=0):
    return np.random.default_rng(seed)


# ---- partitions ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "cfg",
    [
        PartitionConfig(scheme="iid"),
        PartitionConfig(scheme="dirichlet", alpha=0.3),
        PartitionConfig(scheme="exclusive", classes_per_client=3, unlabelled_share=0.2),
    ],
    ids=lambda c: c.scheme,
)
def test_partitions_deal_each_sample_once(cfg):
    labels = load_dataset("digits").y_train.numpy()
    part = partition(cfg, labels, 50, 10, rng())
    assert part.num_clients == 50
    assert np.array_equal(np.sort(part.order), np.arange(len(labels)))
    assert part.sizes().sum() == len(labels)


def test_partition_views_share_one_data_copy_for_2000_clients():
    data = load_dataset("digits_shifted")
    part = partition(PartitionConfig(scheme="dirichlet", alpha=0.5), data.y_train.numpy(), 2000, 10, rng())
    # A partition holds indices only: 8 bytes per training sample plus offsets, not data.
    assert part.order.nbytes + part.offsets.nbytes < 9 * len(data.y_train) + 9 * 2001
    views = [data.x_train[torch.from_numpy(part.indices(k))] for k in range(0, 2000, 400)]
    assert all(v.shape[1] == 64 for v in views)
    assert load_dataset("digits_shifted").x_train.data_ptr() == data.x_train.data_ptr()
    # indices() is a slice of the one order array, not a copy
    assert all(np.shares_memory(part.indices(k), part.order) for k in range(0, 2000, 97) if part.sizes()[k])


def test_smaller_dirichlet_alpha_skews_labels_more():
    labels = load_dataset("digits").y_train.numpy()

    def mean_classes_held(alpha):
        part = partition(PartitionConfig(scheme="dirichlet", alpha=alpha), labels, 40, 10, rng(1))
        return np.mean([len(np.unique(labels[part.indices(k)])) for k in range(40)])

    assert mean_classes_held(0.1) < mean_classes_held(100.0) - 3


def test_exclusive_clients_know_labels_of_their_own_classes_only():
    labels = load_dataset("digits").y_train.numpy()
    part = partition(PartitionConfig(scheme="exclusive", classes_per_client=3), labels, 30, 10, rng())
    assert (part.owned.sum(axis=1) == 3).all()
    for k in range(30):
        assert part.owned[k, labels[part.indices(k)]].all()  # no unlabelled share: only own classes
    shared = partition(
        PartitionConfig(scheme="exclusive", classes_per_client=3, unlabelled_share=0.3), labels, 30, 10, rng()
    )
    assert (shared.labelled_sizes(labels) < shared.sizes()).any()


# ---- devices ---------------------------------------------------------------------------------
def test_on_off_availability_matches_its_stationary_share():
    avail = Availability(AvailabilityConfig(mode="on_off", mean_on_s=30, mean_off_s=10), 4000, rng())
    shares = [avail.available(t).mean() for t in np.arange(0, 2000, 50.0)]
    assert abs(np.mean(shares) - 0.75) < 0.02


def test_availability_trace_windows(tmp_path):
    path = tmp_path / "windows.csv"
    path.write_text("client,start_s,end_s\n0,0,10\n0,20,30\n1,5,6\n")
    avail = Availability(AvailabilityConfig(mode="trace", trace_csv=str(path)), 3, rng())
    assert avail.available(0.0).tolist() == [True, False, False]
    assert avail.available(5.5).tolist() == [True, True, False]
    assert avail.online_until(25.0)[0] == 30.0 and avail.available(15.0).sum() == 0


@pytest.mark.parametrize(
    "rows, message",
    [
        ("0,0,10\n0,5,20\n", "windows of client 0 overlap"),
        ("0,-1,10\n", "every value must be a number >= 0"),
        ("0,10,5\n", "end_s must be after start_s"),
    ],
)
def test_bad_availability_trace_is_one_line_error(tmp_path, rows, message):
    path = tmp_path / "windows.csv"
    path.write_text("client,start_s,end_s\n" + rows)
    with pytest.raises(ConfigError, match=message) as err:
        Availability(AvailabilityConfig(mode="trace", trace_csv=str(path)), 2, rng())
    assert "\n" not in str(err.value)


def test_device_trace_with_missing_columns_is_one_line_error(tmp_path):
    path = tmp_path / "devices.csv"
    path.write_text("client,speed_flops_per_s\n0,1e7\n")
    with pytest.raises(ConfigError, match="missing column.*upload_bytes_per_s, download_bytes_per_s"):
        ClientPopulation.build(ClientsConfig(count=1, trace_csv=str(path)), rng())


def test_hierarchical_download_adds_the_backhaul_hop():
    flat = ClientPopulation.build(ClientsConfig(count=8), rng())
    tiered = ClientPopulation.build(ClientsConfig(count=8, topology={"edge_aggregators": 2}), rng())
    hop = tiered.backhaul_s(1e6)
    assert np.allclose(tiered.download_s(1e6) - flat.download_s(1e6), hop[np.arange(8) % 2])
    assert np.allclose(tiered.upload_s(1e6), flat.upload_s(1e6))


# ---- policies --------------------------------------------------------------------------------
def view(n=20, available=None, expected=None):
    return ClientView(
        now_s=0.0,
        round=3,
        available=np.ones(n, bool) if available is None else available,
        expected_round_s=np.linspace(1, 10, n) if expected is None else expected,
        num_samples=np.full(n, 10),
        last_loss=np.full(n, np.nan),
        last_round=np.full(n, -1),
    )


def test_selection_policies_pick_available_clients():
    available = np.arange(20) % 2 == 0
    for name in registry.names("selection"):
        chosen = registry.get("selection", name)().select(view(available=available), 5, rng())
        assert len(chosen.clients) <= 7 and available[chosen.clients].all(), name
        assert len(np.unique(chosen.clients)) == len(chosen.clients)


def test_over_commit_selects_more_and_keeps_k():
    chosen = registry.get("selection", "over_commit")(factor=1.3).select(view(), 10, rng())
    assert len(chosen.clients) == 13 and chosen.keep_first == 10


def test_deadline_selects_only_clients_expected_in_time():
    chosen = registry.get("selection", "deadline")(deadline_s=4.0).select(view(), 10, rng())
    assert (view().expected_round_s[chosen.clients] <= 4.0).all() and chosen.deadline_s == 4.0


def test_oort_prefers_high_loss_fast_clients_once_explored():
    oort = registry.get("selection", "oort")(epsilon=0.0, epsilon_min=0.0)
    v = view(expected=np.ones(20))
    loss = np.where(np.arange(20) < 5, 5.0, 0.1)
    v = ClientView(**{**v.__dict__, "last_loss": loss, "last_round": np.zeros(20, int)})
    assert set(oort.select(v, 5, rng()).clients) == set(range(5))


def params(value):
    return {"w": torch.full((2, 3), float(value)), "label_embedding": torch.full((4, 2), float(value))}


def test_fedavg_is_the_sample_weighted_mean():
    stacked = {k: torch.stack([params(1)[k], params(4)[k]]) for k in params(0)}
    avg = weighted_average(stacked, np.array([2.0, 1.0]))
    assert torch.allclose(avg["w"], torch.full((2, 3), 2.0))


def test_label_anchored_averages_each_class_over_its_holders():
    agg = registry.get("aggregation", "label_anchored")()
    stacked = {k: torch.stack([params(1)[k], params(3)[k]]) for k in params(0)}
    owned = np.array([[True, True, False, False], [False, True, True, False]])
    out = agg.aggregate(params(9), stacked, np.array([1.0, 1.0]), owned, {})
    assert out["label_embedding"][:, 0].tolist() == [1.0, 2.0, 3.0, 9.0]  # class 3: nobody, kept
    assert torch.allclose(out["w"], torch.full((2, 3), 2.0))


def test_fedadam_moves_toward_the_client_mean():
    agg = registry.get("aggregation", "fedadam")(lr=0.1)
    stacked = {k: torch.stack([params(1)[k], params(1)[k]]) for k in params(0)}
    out = agg.aggregate(params(0), stacked, np.array([1.0, 1.0]), None, {})
    step = 0.1 * 0.1 / (np.sqrt(0.01) + 1e-3)  # lr * m / (sqrt(v) + tau) after one step of d = 1
    assert torch.allclose(out["w"], torch.full((2, 3), step), atol=1e-6)
