"""Dynamic channel pruning: targets, gated forward, per-sample MACs, the edge kind's charge, bad input."""

import numpy as np
import pytest
import torch
from torch import nn

from devices.cost import extract_layers
from sim.errors import ConfigError
from sim.runner import load_spec, run
from workloads import dynamic_pruning as dp
from workloads.multiexit import MultiExitNet


def test_targets_are_the_top_k_holding_the_mass_fraction():
    # peaks (max |a| over the map) 1, 5, 3, 1 of a total of 10; the 5 is negative
    act = torch.zeros(2, 4, 2, 2)
    act[0, 0, 0, 0], act[0, 1, 1, 1], act[0, 2, 0, 1], act[0, 3, 1, 0] = 1.0, -5.0, 3.0, 1.0
    expected = {
        0.5: [0, 1, 0, 0],  # 5 holds 50 %
        0.8: [0, 1, 1, 0],  # 5 + 3 hold 80 %
        0.81: [1, 1, 1, 0],  # one more: the tie of 1 and 1 goes to the lower index
        1.0: [1, 1, 1, 1],
    }
    for fraction, mask in expected.items():
        got = dp.mask_targets(act, fraction)
        assert got[0].tolist() == [bool(m) for m in mask], fraction
        assert got[1].tolist() == [True, False, False, False]  # no activation at all: one filter


def _tiny_net() -> MultiExitNet:
    """Two VGG stages (3 -> 4 channels at 8x8, max pool, 4 -> 6 at 4x4), fine heads, 5 classes."""
    gen = torch.Generator().manual_seed(0)
    stages = [
        nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU()),
        nn.Sequential(
            nn.MaxPool2d(2), nn.Conv2d(4, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6), nn.ReLU()
        ),
    ]
    heads = [nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(c * 4, 5)) for c in (4, 6)]
    net = MultiExitNet(nn.Identity(), stages, heads)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    return net.eval()


def test_gated_forward_with_every_filter_kept_is_the_plain_forward():
    net = _tiny_net()
    x = torch.randn(7, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    plain = net(x)
    ones = dp.GatedNet(net, {}, {0: torch.ones(4, dtype=torch.bool), 1: torch.ones(6, dtype=torch.bool)}, 0.5)
    keen = dp._predictor(4, 6)  # a predictor sure of every filter
    with torch.no_grad():
        keen[-1].weight.zero_()
        keen[-1].bias.fill_(10.0)
    predicted = dp.GatedNet(net, {1: keen}, {}, 0.5)
    for gated in (ones, predicted):
        with torch.no_grad():
            out = gated(x)
        assert all(torch.equal(a, b) for a, b in zip(out, plain, strict=True))
        assert [k.sum(1).tolist() for k in gated.kept] == [[4] * 7, [6] * 7]
    # a pruned filter's channel is zero downstream, whatever its weights
    half = dp.GatedNet(net, {}, {0: torch.tensor([True, False, True, False])}, 0.5)
    with torch.no_grad():
        pruned = half(x)
        net.stages[0][0].weight[[1, 3]] = 0.0
        net.stages[0][1].bias[[1, 3]] = -1e9  # BN: the channel is zero after ReLU
        assert torch.allclose(pruned[-1], net(x)[-1])


def _parts(net: MultiExitNet, predicted: list[int] = ()):
    layers = extract_layers(net, torch.zeros(1, 3, 8, 8))
    segments = [tuple(x for x in layers if x.name.startswith(f"stages.{k}.")) for k in range(2)]
    heads = tuple(tuple(x for x in layers if x.name.startswith(f"heads.{k}.")) for k in range(2))
    return dp._with_predictors(net, segments, (3, 8, 8), list(predicted)), heads


def test_per_sample_macs_and_bytes_under_a_mask_equal_a_hand_count():
    net = _tiny_net()
    segments, heads = _parts(net)
    shares = np.array([[2 / 4, 3 / 6], [1.0, 1.0]])  # sample 0: 2 of 4 and 3 of 6 filters; sample 1: dense
    seg_macs, seg_bytes, head_macs, head_bytes = dp.gated_costs(segments, heads, shares)
    # stage 0: 8x8 pixels x 2 filters x 3 input channels x 3x3; head 0: 2 channels x 4 cells x 5 logits
    # stage 1: 4x4 pixels x 3 filters x 2 input channels x 3x3; head 1: 3 x 4 x 5
    assert seg_macs[0].tolist() == [64 * 2 * 3 * 9, 16 * 3 * 2 * 9]
    assert head_macs[0].tolist() == [2 * 4 * 5, 3 * 4 * 5]
    assert seg_macs[1].tolist() == [64 * 4 * 3 * 9, 16 * 6 * 4 * 9]
    # stage 1, bytes (int8): max pool reads 2 x 8x8, writes 2 x 4x4; the conv reads 3x2x9 weights and
    # 2 x 4x4 inputs, writes 3 x 4x4; BN reads 3 x 4x4 and 4 parameters per channel, writes 3 x 4x4;
    # ReLU reads and writes 3 x 4x4
    assert (
        seg_bytes[0, 1]
        == (2 * 64 + 2 * 16) + (3 * 2 * 9 + 2 * 16 + 3 * 16) + (3 * 16 + 3 * 4 + 3 * 16) + 2 * 48
    )
    # head 1: the pool reads 3 x 4x4 and writes 3 x 4 cells; the linear layer reads 3x4x5 weights,
    # 5 biases and 12 inputs, writes 5 logits
    assert head_bytes[0, 1] == (48 + 12) + (60 + 5 + 12 + 5)
    # with stage 1's mask predictor: pool over stage 0's 2 live channels, 2 x 6 MACs for its logits
    segments, heads = _parts(net, predicted=[1])
    with_pred, _, _, _ = dp.gated_costs(segments, heads, shares)
    assert with_pred[0, 1] - seg_macs[0, 1] == 2 * 6
    assert with_pred[1, 1] - seg_macs[1, 1] == 4 * 6


def test_a_residual_block_is_pruned_inside_and_counted_by_hand():
    from workloads.multiexit import BasicBlock

    stem = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU())
    stages = [BasicBlock(4, 4, 4, 1), BasicBlock(4, 6, 6, 2)]  # the second: strided, 1x1 projection
    heads = [nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(c * 4, 5)) for c in (4, 6)]
    net = MultiExitNet(stem, stages, heads).eval()
    x = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        gated = dp.GatedNet(net, {}, {0: torch.ones(4, dtype=torch.bool)}, 0.5)
        assert all(torch.equal(a, b) for a, b in zip(gated(x), net(x), strict=True))
    layers = extract_layers(net, torch.zeros(1, 3, 8, 8))
    segments = [
        tuple(y for y in layers if y.name.startswith(("stem", "stages.0"))),
        tuple(y for y in layers if y.name.startswith("stages.1")),
    ]
    heads = tuple(tuple(y for y in layers if y.name.startswith(f"heads.{k}.")) for k in range(2))
    seg_macs, _, head_macs, _ = dp.gated_costs(tuple(segments), heads, np.array([[1 / 4, 3 / 6]]))
    # stem 64 px x 4 x 3 x 9; block 0: conv1 1 of 4 filters, conv2 reads 1 channel (64 px x 4 x 1 x 9)
    assert seg_macs[0, 0] == 64 * 4 * 3 * 9 + 64 * 1 * 4 * 9 + 64 * 4 * 1 * 9
    # block 1 at 4x4: conv1 3 of 6 filters from 4 channels, conv2 reads 3, 1x1 projection 4 -> 6 (dense)
    assert seg_macs[0, 1] == 16 * 3 * 4 * 9 + 16 * 6 * 3 * 9 + 16 * 6 * 4
    assert head_macs[0].tolist() == [4 * 4 * 5, 6 * 4 * 5]  # the residual stream is never pruned


def test_predictor_training_is_deterministic_and_learns_the_targets():
    net = _tiny_net()
    x = torch.randn(300, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    cfg = dp.settings(mass_fraction=0.9, epochs=5, batch=64)
    first, quality = dp._train_predictors(net, x, cfg)
    second, _ = dp._train_predictors(net, x, cfg)
    assert list(first) == [1]  # layer 0 dense by default
    assert all(
        torch.equal(a, b) for a, b in zip(first[1].state_dict().values(), second[1].state_dict().values())
    )
    assert quality["agreement"][0] > 0.5 and 0 < quality["kept_share"][0] <= 1


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"mass_fraction": 0.0}, "pruning.mass_fraction: Input should be greater than 0 (got 0.0)"),
        ({"mass_fraction": 1.5}, "pruning.mass_fraction: Input should be less than or equal to 1 (got 1.5)"),
        ({"keep_threshold": 1.0}, "pruning.keep_threshold: Input should be less than 1 (got 1.0)"),
        (
            {"mass_fractions": 0.9},
            "pruning.mass_fractions: unknown key (got 0.9); did you mean 'mass_fraction'?",
        ),
    ],
)
def test_bad_constants_are_one_line_errors_naming_the_field(values, expected):
    with pytest.raises(ConfigError) as err:
        dp.settings(**values)
    assert str(err.value) == expected


def test_bad_mass_fraction_on_the_command_line_exits_2(capsys):
    assert dp.main(["--mass-fractions", "0.9", "1.2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: pruning.mass_fraction: Input should be less than or equal to 1 (got 1.2)"]


def test_pruned_names_known_without_torch_are_the_module_s():
    from workloads.edge.models import PRUNED_MODELS

    assert tuple(dp.MODELS) == PRUNED_MODELS
    with pytest.raises(ConfigError, match="model: unknown pruned model 'vgg_x'"):
        dp.load_pruned_model("vgg_x")


# --- on the trained vgg_shapes (read from the shared cache; trained once if absent) -----


@pytest.fixture(scope="module")
def dynprune():
    return dp.load_pruned_model("vgg_shapes_dynprune")


def test_first_gated_layer_beyond_the_network(dynprune):
    with pytest.raises(ConfigError) as err:
        dp.load_pruned_model("vgg_shapes_dynprune", first_gated_layer=12)
    assert str(err.value) == "pruning.first_gated_layer: must be below the network's 12 layers (got 12)"


def test_inference_cache_is_the_gated_network_s_real_output(dynprune):
    from workloads.multiexit import test_inputs

    gated = dp.pruned_network("vgg_shapes_dynprune")
    x = test_inputs("vgg_shapes")[:300]
    with torch.no_grad():
        probs = torch.stack(gated(x)).softmax(-1).numpy()
    kept = torch.stack([k.sum(1) for k in gated.kept], 1).numpy()
    assert np.allclose(probs, dynprune.test_probs[:, :300], atol=1e-6)
    assert np.array_equal(kept, dynprune.test_kept[:300])
    assert kept[:, 0].tolist() == [16] * 300 and (kept[:, 1:] < np.array(dynprune.widths[1:])).any()


def test_edge_kind_charges_each_sample_s_pruned_work(dynprune):
    # no per-layer overhead, so that the predictors' extra layers cannot hide the MACs saved
    sets = [
        "duration_s=0.3",
        "exit_policy.name=none",
        "dvfs.name=performance",
        "devices.0.device.layer_overhead_s=0",
    ]
    spec = "scenarios/edge/edge_shapes.yaml"
    plain = run(load_spec(spec, [*sets, "model=vgg_shapes"]), seed=0)
    pruned = run(load_spec(spec, [*sets, "model=vgg_shapes_dynprune"]), seed=0)
    seg_macs, _, head_macs, _ = dynprune.test_part_costs
    sample_macs = seg_macs.sum(1) + head_macs[:, -1]
    req = pruned.tables["requests"]
    assert np.array_equal(req["macs"].to_numpy(), sample_macs[req["sample"].to_numpy()])
    assert req["macs"].nunique() > 10  # per input, not one figure
    p, q = plain.summary, pruned.summary
    assert q["flops_per_inference"] < 0.8 * p["flops_per_inference"]
    assert q["active_energy_per_inference_j"] < p["active_energy_per_inference_j"]
    assert q["latency_p50_s"] < p["latency_p50_s"]


def test_a_measured_profile_is_refused_for_a_gated_model(tmp_path, capsys):
    from sim.cli import main

    path = tmp_path / "edge.yaml"
    profile = tmp_path / "profile.csv"
    profile.write_text("layer,freq_hz,latency_s,power_w\n")
    path.write_text(
        "kind: edge\nmodel: vgg_shapes_dynprune\nexit_policy: {name: none}\n"
        f"devices: [{{name: nano, device: {{preset: jetson_nano_gpu, profile_csv: {profile}}}}}]\n"
    )
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "devices.0.device.profile_csv: a measured profile times dense layers" in err, err
