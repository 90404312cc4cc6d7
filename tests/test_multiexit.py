"""Multi-exit networks: real exits, real costs, an inference cache that replays the model.

The first run trains all eight models into the shared cache (a few minutes on idle
cores); later runs read it.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from sim.errors import ConfigError
from workloads import multiexit
from workloads.multiexit import (
    EXIT_MODELS,
    cache_path,
    exit_macs,
    exit_macs_with_heads,
    load_exit_model,
    trained_model,
)


@pytest.fixture(scope="module")
def models():
    return {name: load_exit_model(name) for name in EXIT_MODELS}


def test_every_model_has_four_or_more_exits_with_layers(models):
    assert set(EXIT_MODELS) >= {"resnet_digits", "mobilenet_digits", "student_digits", "pruned_resnet_digits"}
    for m in models.values():
        n = len(m.segments)
        assert n >= 4 and len(m.heads) == n == len(m.exit_accuracy)
        assert all(m.segments) and all(m.heads)
        channels = multiexit._dataset(m.dataset).images.shape[1]
        first = m.segments[0][0]
        assert first.op == "conv" and first.in_channels == channels  # segment 0 starts at the input
        for head in m.heads:
            assert head[-1].op == "linear" and head[-1].out_channels == m.n_classes


def test_later_exits_are_at_least_as_accurate_and_digits_are_learnt(models):
    for m in models.values():
        assert all(0.0 <= a <= 1.0 for a in m.exit_accuracy)
        assert np.mean(m.exit_accuracy[1:]) >= m.exit_accuracy[0]
        assert m.exit_accuracy[-1] > 2.5 / m.n_classes  # well above chance
        if m.dataset == "digits":
            assert m.exit_accuracy[-1] > 0.9


def test_splits_are_disjoint_cover_the_data_and_match_the_models(models):
    for dataset in {m.dataset for m in models.values()}:
        data = multiexit._dataset(dataset)
        parts = (data.train, data.calib, data.test)
        assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(len(data.labels)))
        split = multiexit.RECIPE["shapes_split" if dataset == "shapes" else "split"]
        assert all(abs(len(p) - share * len(data.labels)) <= 1 for p, share in zip(parts, split))
    for m in models.values():
        data = multiexit._dataset(m.dataset)
        assert m.calib_index.dtype == m.test_index.dtype == np.int64
        assert np.array_equal(m.calib_index, data.calib) and np.array_equal(m.test_index, data.test)
        assert np.array_equal(m.calib_labels, data.labels.numpy()[m.calib_index])
        assert np.array_equal(m.test_labels, data.labels.numpy()[m.test_index])
        assert m.calib_labels.dtype == m.test_labels.dtype == np.int64


def test_inference_cache_holds_probabilities_and_replays_the_model(models):
    for m in models.values():
        n = len(m.segments)
        assert m.calib_probs.shape == (n, len(m.calib_index), m.n_classes)
        assert m.test_probs.shape == (n, len(m.test_index), m.n_classes)
        for probs in (m.calib_probs, m.test_probs):
            assert probs.dtype == np.float32 and (probs >= 0).all()
            np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
        accuracy = (m.test_probs.argmax(-1) == m.test_labels).mean(1)
        assert tuple(float(a) for a in accuracy) == m.exit_accuracy
    for name in ("mobilenet_patches", "pruned_resnet_digits"):
        m = models[name]
        images = multiexit.test_inputs(name)  # imported as is, pytest would collect it
        assert torch.equal(images, multiexit._dataset(m.dataset).images[m.test_index])
        with torch.no_grad():
            exits = trained_model(name)(images[:32])
        for k, logits in enumerate(exits):
            np.testing.assert_allclose(logits.softmax(-1).numpy(), m.test_probs[k, :32], atol=1e-5)


def test_exit_macs_increase_and_heads_on_the_way_cost_extra(models):
    for m in models.values():
        plain, with_heads = exit_macs(m), exit_macs_with_heads(m)
        assert (np.diff(plain) > 0).all() and (np.diff(with_heads) > 0).all()
        assert plain[0] == with_heads[0] and (with_heads[1:] > plain[1:]).all()
        backbone = sum(layer.macs for seg in m.segments for layer in seg)
        assert plain[-1] == backbone + sum(layer.macs for layer in m.heads[-1])


FINE = ("vgg_shapes", "resnet_shapes")


@pytest.mark.parametrize("name", FINE)
def test_fine_grained_networks_on_shapes_are_not_saturated(models, name):
    m = models[name]
    assert len(m.heads) >= 12 and m.n_classes >= 10 and len(m.test_labels) >= 2000
    assert m.segments[0][0].in_channels == 3 and multiexit._dataset(m.dataset).images.shape[-2:] == (32, 32)
    assert 0.80 <= m.exit_accuracy[-1] <= 0.95
    assert m.exit_accuracy[0] < m.exit_accuracy[-1] - 0.3  # shallow exits really are weaker
    heads = sum(layer.macs for head in m.heads for layer in head)
    assert heads < 0.05 * sum(layer.macs for seg in m.segments for layer in seg)  # exits stay cheap


def _entropy_share(m, per_exit: bool) -> float:
    """The largest share of test samples one exit takes under the calibrated entropy rule
    (one threshold per exit, or one shared)."""
    from policies.exit.base import Calibration
    from sim.config import PolicyRef

    class Ref(PolicyRef):
        family = "exit"

    policy = Ref(name="entropy", params={"per_exit": per_exit}).build()
    segments, heads = (
        [sum(layer.macs for layer in part) for part in parts] for parts in (m.segments, m.heads)
    )
    policy.fit(Calibration(m.calib_probs, m.calib_labels, np.array(segments), np.array(heads)))
    return np.bincount(policy.plan(m.test_probs).exit_index, minlength=len(m.heads)).max() / len(
        m.test_labels
    )


@pytest.mark.parametrize("name", FINE)
@pytest.mark.parametrize("per_exit", [False, True])
def test_no_exit_takes_most_samples_under_calibrated_entropy(models, name, per_exit):
    assert _entropy_share(models[name], per_exit) <= 0.60


def test_variants_cost_less_than_their_teacher(models):
    teacher = exit_macs(models["resnet_digits"])
    assert (exit_macs(models["pruned_resnet_digits"]) < teacher).all()
    assert (exit_macs(models["student_digits"]) < teacher).all()


def test_pruning_keeps_the_filters_with_the_largest_l1_norms():
    parent = trained_model("resnet_digits")
    pruned = multiexit._prune("pruned_resnet_digits", parent)
    for big, small in zip(parent.stages, pruned.stages):
        norms = big.conv1.weight.abs().sum((1, 2, 3))
        kept = norms.topk(small.conv1.out_channels).indices.sort().values
        torch.testing.assert_close(small.conv1.weight, big.conv1.weight[kept])
        torch.testing.assert_close(small.conv2.weight, big.conv2.weight[:, kept])
        torch.testing.assert_close(small.skip.state_dict(), big.skip.state_dict())
        assert small.conv1.out_channels == big.conv1.out_channels // 2


def test_second_process_reads_the_disk_cache(models):
    mtimes = {name: os.stat(cache_path(name)).st_mtime_ns for name in EXIT_MODELS}
    code = (
        "from workloads import multiexit\n"
        "def no_training(name):\n"
        "    raise AssertionError('trained again despite the disk cache')\n"
        "multiexit._train = no_training\n"
        "for name in multiexit.EXIT_MODELS:\n"
        "    print(multiexit.load_exit_model(name).exit_accuracy[-1])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert [float(a) for a in out.stdout.split()] == [models[name].exit_accuracy[-1] for name in EXIT_MODELS]
    assert {name: os.stat(cache_path(name)).st_mtime_ns for name in EXIT_MODELS} == mtimes


def test_load_is_cached_in_process(models):
    assert all(load_exit_model(name) is m for name, m in models.items())


@pytest.mark.parametrize("function", [load_exit_model, trained_model, multiexit.test_inputs, cache_path])
def test_unknown_model_lists_known_ones(function):
    known = ", ".join(EXIT_MODELS)
    with pytest.raises(ConfigError) as err:
        function("vgg_digits")
    assert str(err.value) == f"model: unknown exit model 'vgg_digits'; known exit models: {known}"


def test_exit_model_names_known_without_torch_are_the_built_in_models():
    from workloads import multiexit
    from workloads.edge.models import EXIT_MODELS

    assert EXIT_MODELS == multiexit.EXIT_MODELS
