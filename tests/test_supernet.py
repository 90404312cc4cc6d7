"""The slimmable supernets: shared weights, real costs and accuracies, a disk cache that holds.

The first run trains the digits proxy (well under a minute) into the shared cache; later
runs read it. The XR-size supernet is costed from its own sub-networks and carries the
proxy's measured accuracies.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from devices.cost import cost_table
from devices.hardware import HardwareConfig
from sim.errors import ConfigError
from sim.kernel import torch_generator
from workloads import supernet
from workloads.supernet import (
    SEED,
    SUPERNETS,
    WIDTHS,
    build_model,
    cache_path,
    channels,
    digits,
    load_supernet,
    trained_model,
    width_index,
)


@pytest.fixture(scope="module")
def net():
    return load_supernet()


def _outputs(model, x):
    with torch.no_grad():
        return [model(x, w) for w in WIDTHS]


def test_widths_share_one_set_of_weights():
    model = build_model(seed=1).eval()
    x = torch.randn(4, 1, 32, 32, generator=torch_generator(1, "test/supernet/x"))
    before = _outputs(model, x)
    with torch.no_grad():
        model.convs[0].weight[0] += 1.0  # first channel: active at every width
    after = _outputs(model, x)
    assert all(not torch.allclose(b, a) for b, a in zip(before, after))
    with torch.no_grad():
        model.convs[0].weight[-1] += 1.0  # last channel: only the full width uses it
    last = _outputs(model, x)
    assert all(torch.equal(a, c) for a, c in zip(after[:-1], last[:-1]))
    assert not torch.allclose(after[-1], last[-1])


def test_static_subnetwork_computes_what_the_supernet_computes():
    model = trained_model()
    data = digits(SEED)
    x = data.images[data.test[:64]]
    for w in WIDTHS:
        with torch.no_grad():
            torch.testing.assert_close(model.static(w)(x), model(x, w), rtol=1e-4, atol=1e-4)


def test_layers_are_the_width_s_real_sub_network(net):
    macs = [sum(layer.macs for layer in v.layers) for v in net.variants]
    assert all(a < b for a, b in zip(macs, macs[1:]))
    assert 5e6 <= macs[-1] <= 20e6
    for v in net.variants:
        convs = [layer for layer in v.layers if layer.op == "conv"]
        full = [c for c in supernet.RECIPE["channels"] for _ in range(2)]
        assert [layer.out_channels for layer in convs] == [channels(c, v.width) for c in full]


def test_accuracies_are_real_and_the_full_width_beats_chance(net):
    assert net.widths == WIDTHS == tuple(sorted(net.widths))
    assert [v.width for v in net.variants] == list(net.widths)
    for v in net.variants:
        assert 0.0 <= v.accuracy <= 1.0
        assert v.accuracy > 0.5
    assert net.variants[-1].accuracy > 0.9


def test_predictions_replay_accuracy_and_the_model(net):
    assert net.test_labels.dtype == np.int64 and net.test_predictions.dtype == np.int64
    assert net.test_predictions.shape == (len(WIDTHS), len(net.test_labels))
    for i, v in enumerate(net.variants):
        assert (net.test_predictions[i] == net.test_labels).mean() == v.accuracy
    data = digits(SEED)
    assert np.array_equal(net.test_labels, data.labels[data.test].numpy())
    model = trained_model()
    with torch.no_grad():
        full = model(data.images[data.test], 1.0).argmax(1).numpy()
    assert np.array_equal(full, net.test_predictions[-1])


def test_splits_are_disjoint_cover_the_data_and_follow_the_seed():
    data = digits(SEED)
    parts = (data.train, data.validation, data.test)
    assert [len(p) for p in parts] == [1078, 359, 360]
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(1797))
    assert not np.array_equal(digits(SEED + 1).test, data.test)


def test_second_process_reads_the_disk_cache(net):
    path = cache_path()
    mtime = os.stat(path).st_mtime_ns
    code = (
        "from workloads import supernet\n"
        "def no_training(seed):\n"
        "    raise AssertionError('trained again despite the disk cache')\n"
        "supernet._train = no_training\n"
        "print(supernet.load_supernet().variants[-1].accuracy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert float(out.stdout) == net.variants[-1].accuracy
    assert os.stat(path).st_mtime_ns == mtime


def test_load_is_cached_in_process(net):
    assert load_supernet() is net
    assert load_supernet("digits_slimmable") is net


def test_unknown_supernet_lists_known_ones():
    assert SUPERNETS == ("digits_slimmable", "xr_slimmable")
    known = "known supernets: digits_slimmable, xr_slimmable"
    with pytest.raises(ConfigError, match=f"unknown supernet 'cifar'; {known}"):
        load_supernet("cifar")


@pytest.fixture(scope="module")
def xr_net():
    return load_supernet("xr_slimmable")


def test_xr_supernet_is_xr_size_and_carries_the_proxy_s_measured_accuracies(net, xr_net):
    convs = [layer for layer in xr_net.variants[-1].layers if layer.op == "conv"]
    assert convs[0].in_channels == 3 and convs[0].out_pixels == 128 * 128
    macs = [sum(layer.macs for layer in v.layers) for v in xr_net.variants]
    assert all(a < b for a, b in zip(macs, macs[1:]))
    assert 3e9 <= macs[-1] <= 4e9  # XRBench hand tracking: about 3.7 GMAC at 3x128x128
    assert macs[0] < macs[-1] / 10  # channels at width 0.25: MACs about 1/16
    assert xr_net.accuracy_from == "digits_slimmable" == net.accuracy_from
    assert [v.accuracy for v in xr_net.variants] == [v.accuracy for v in net.variants]
    assert np.array_equal(xr_net.test_predictions, net.test_predictions)


@pytest.mark.parametrize("dataflow", ["WS", "OS"])
def test_narrower_xr_widths_really_cut_latency_and_energy_on_the_accelerators(xr_net, dataflow):
    system = HardwareConfig(preset="Dual_4K", dataflow=dataflow).build()
    costs = [cost_table(f"xr@{v.width}", v.layers, system) for v in xr_net.variants]
    latency = [float(lat[0].sum()) for lat, _ in costs]
    energy = [float(en[0].sum()) for _, en in costs]
    assert all(a < b for a, b in zip(latency, latency[1:])), latency
    assert latency[0] < 0.3 * latency[-1], latency
    assert energy[0] < 0.1 * energy[-1], energy


def test_bad_width_lists_widths(net):
    assert width_index(net, 0.75) == 2
    message = "width 0.3 is not a width of supernet digits_slimmable; widths: 0.25, 0.5, 0.75, 1.0"
    with pytest.raises(ConfigError) as err:
        width_index(net, 0.3)
    assert str(err.value) == message
