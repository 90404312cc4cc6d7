"""Layer extraction, the analytic cost model, profile tables and hardware presets."""

import math
import re

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from devices.cost import (
    AnalyticAssumptions,
    AnalyticCostModel,
    Layer,
    ProfileTable,
    cost_table,
    extract_layers,
    pe_grid,
    tiling_efficiency,
)
from devices.hardware import (
    PRESET_NAMES,
    AcceleratorSpec,
    HardwareConfig,
    SystemSpec,
    preset,
)
from sim.config import validate
from sim.errors import ConfigError


def _meta(build, *shape):
    with torch.device("meta"):
        return build(), torch.empty(*shape)


class _Attention(nn.Module):
    def __init__(self, dim=32, heads=4):
        super().__init__()
        self.heads, self.qkv, self.out = heads, nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = (q @ k.transpose(-2, -1)).softmax(-1) @ v
        return self.out(a.transpose(1, 2).reshape(b, n, d))


class _Mixed(nn.Module):
    """A small CNN followed by attention over its pixels, for property tests."""

    def __init__(self):
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(3, 24, 3, 2, 1),
            nn.ReLU(),
            nn.Conv2d(24, 24, 3, 1, 1, groups=24),
            nn.Conv2d(24, 96, 1),
            nn.ReLU(),
            nn.Conv2d(96, 32, 3, 2, 1),
        )
        self.attn = _Attention()
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = self.convs(x).flatten(2).transpose(1, 2)
        return self.fc(self.attn(x).mean(1))


@pytest.fixture(scope="module")
def mixed_layers():
    return extract_layers(*_meta(_Mixed, 1, 3, 64, 64))


def test_conv_layer_matches_hand_formula():
    (layer,) = extract_layers(*_meta(lambda: nn.Conv2d(8, 16, 3, 2, 1), 1, 8, 32, 32))
    assert (layer.op, layer.out_channels, layer.in_channels, layer.kernel_elems) == ("conv", 16, 8, 9)
    assert layer.out_pixels == 16 * 16 and layer.out_rows == 16 and layer.kernel_rows == 3
    assert layer.macs == 16 * 16 * 16 * 8 * 9 and layer.flops == 2 * layer.macs
    assert layer.weight_bytes == 16 * 8 * 9 + 16
    assert (layer.input_bytes, layer.output_bytes) == (8 * 32 * 32, 16 * 16 * 16)


def test_depthwise_conv_counts_one_input_channel_per_group():
    (layer,) = extract_layers(*_meta(lambda: nn.Conv2d(8, 8, 3, padding=1, groups=8), 1, 8, 10, 10))
    assert (layer.in_channels, layer.groups) == (1, 8)
    assert layer.macs == 10 * 10 * 8 * 1 * 9


def test_linear_layer_matches_hand_formula_and_scales_bytes():
    model, x = _meta(lambda: nn.Linear(64, 10), 1, 5, 64)
    (layer,) = extract_layers(model, x, bytes_per_elem=2)
    assert layer.op == "linear" and layer.macs == 5 * 64 * 10
    assert (layer.out_pixels, layer.in_channels, layer.out_channels) == (5, 64, 10)
    assert layer.weight_bytes == 2 * (64 * 10 + 10) and layer.input_bytes == 2 * 5 * 64


def test_attention_matmuls_are_counted_and_total_matches_flop_counter(mixed_layers):
    matmuls = [layer for layer in mixed_layers if layer.op == "matmul"]
    assert [m.name for m in matmuls] == ["attn.matmul0", "attn.matmul1"]
    tokens, head_dim = 16 * 16, 8
    assert matmuls[0].macs == 4 * tokens * tokens * head_dim
    model, x = _meta(_Mixed, 1, 3, 64, 64)
    with FlopCounterMode(display=False) as counter:
        model(x)
    assert sum(layer.flops for layer in mixed_layers if layer.op != "other") == (counter.get_total_flops())


def test_other_layers_count_output_elements_and_no_macs():
    (layer,) = extract_layers(*_meta(nn.ReLU, 2, 3, 4))
    assert (layer.op, layer.macs, layer.flops) == ("other", 0.0, 24.0)


def test_module_called_twice_gets_distinct_names():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return self.fc(self.fc(x))

    assert [layer.name for layer in extract_layers(*_meta(Twice, 1, 4))] == ["fc", "fc#1"]


def test_extraction_leaves_training_mode_and_global_rng_alone():
    model, x = _meta(_Mixed, 1, 3, 64, 64)
    model.train()
    state = torch.random.get_rng_state()
    extract_layers(model, x)
    assert model.training and torch.equal(state, torch.random.get_rng_state())


def test_tiling_efficiency_rule():
    assert tiling_efficiency(64, 64) == 1.0
    assert tiling_efficiency(65, 64) == 65 / 128
    assert tiling_efficiency(3, 64) == 3 / 64
    for n in range(1, 300):
        assert tiling_efficiency(n, 64) == n / (math.ceil(n / 64) * 64)


def test_pe_grid_is_near_square():
    assert pe_grid(4096) == (64, 64)
    assert pe_grid(2048) == (32, 64)
    assert pe_grid(6144) == (64, 96)


def _accel(num_pes=4096, dataflow="WS", clock_hz=1e9):
    return AcceleratorSpec(
        name="a",
        num_pes=num_pes,
        dataflow=dataflow,
        clock_hz=clock_hz,
        l2_bytes=4 << 20,
        l1_bytes_per_pe=8 << 10,
        noc_bytes_per_cycle=256,
        offchip_bytes_per_cycle=128,
    )


PE_COUNTS = (1024, 2048, 3072, 4096, 6144, 8192)  # the preset sizes


@pytest.mark.parametrize("dataflow", ["WS", "OS", "RS"])
def test_utilisation_is_in_unit_interval(mixed_layers, dataflow):
    model = AnalyticCostModel()
    for layer in mixed_layers:
        if layer.op != "other":
            for n in (*PE_COUNTS, 1000, 997):
                assert 0 < model.utilisation(layer, _accel(n, dataflow)) <= 1


@pytest.mark.parametrize("dataflow", ["WS", "OS", "RS"])
def test_latency_never_grows_with_pes_or_clock(mixed_layers, dataflow):
    model = AnalyticCostModel()
    for layer in mixed_layers:
        by_pes = [model.layer_cost(layer, _accel(n, dataflow))[0] for n in PE_COUNTS]
        assert all(a >= b for a, b in zip(by_pes, by_pes[1:], strict=False)), layer.name
        by_clock = [model.layer_cost(layer, _accel(4096, dataflow, f))[0] for f in (5e8, 1e9, 2e9)]
        assert by_clock[0] > by_clock[1] > by_clock[2]


def test_energy_and_latency_match_hand_computed_ws_case():
    layer = Layer(
        name="c",
        op="conv",
        macs=100 * 64 * 64 * 9,
        flops=2 * 100 * 64 * 64 * 9,
        weight_bytes=64 * 64 * 9,
        input_bytes=6400,
        output_bytes=6400,
        out_channels=64,
        in_channels=64,
        kernel_elems=9,
        out_pixels=100,
    )
    latency_s, energy_j = AnalyticCostModel().layer_cost(layer, _accel())
    # WS on 64x64: weights once, inputs MACs/64, one reduction fold -> outputs once
    l2 = 36864 + 3686400 / 64 + 6400
    l1 = 2 * 3686400 + l2
    assert energy_j == pytest.approx((l2 * 6 + l1 * 0.55 + 3686400) * 0.00288e-9, rel=1e-12)
    # compute 3686400 / 4096 = 900 cycles beats NoC (l2 / 256) and off-chip (49664 / 128)
    assert latency_s == pytest.approx(900e-9, rel=1e-12)


def test_ws_kernel_spatial_assumption_raises_utilisation_of_thin_convs():
    layer = Layer(
        "c", "conv", 1e6, 2e6, 1, 1, 1, out_channels=32, in_channels=32, kernel_elems=9, out_pixels=1000
    )
    spatial = AnalyticCostModel(AnalyticAssumptions(ws_kernel_spatial=True))
    assert AnalyticCostModel().utilisation(layer, _accel()) == 0.5 * 0.5
    assert spatial.utilisation(layer, _accel()) == 0.5 * tiling_efficiency(288, 64)


def test_layers_larger_than_the_buffer_refetch_from_offchip():
    small = Layer("s", "linear", 1, 2, 1 << 20, 1 << 10, 1 << 10, 1, 1, 1, 1)
    big = Layer("b", "linear", 1, 2, 8 << 20, 1 << 20, 1 << 10, 1, 1, 1, 1)
    model = AnalyticCostModel()
    assert model.offchip_bytes(small, _accel()) == (1 << 20) + 2048
    # 8 MiB of weights in 2 MiB tiles: the 1 MiB input is read 4 times
    assert model.offchip_bytes(big, _accel()) == (8 << 20) + 4 * (1 << 20) + 1024


def _profile(tmp_path, text):
    path = tmp_path / "profile.csv"
    path.write_text(text)
    return path


def test_profile_row_overrides_one_layer_and_leaves_the_rest(tmp_path, mixed_layers):
    system = preset("Dual_4K", ["WS", "OS"])
    target = mixed_layers[0].name
    path = _profile(tmp_path, f"model,layer,device,latency_s,energy_j\nm,{target},acc1,0.5,0.25\n")
    base_lat, base_en = cost_table("m", mixed_layers, system)
    lat, en = cost_table("m", mixed_layers, system, ProfileTable.from_csv(path))
    assert (lat[1, 0], en[1, 0]) == (0.5, 0.25)
    lat[1, 0], en[1, 0] = base_lat[1, 0], base_en[1, 0]
    assert (lat == base_lat).all() and (en == base_en).all()
    assert lat.shape == (2, len(mixed_layers))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model,layer,device,latency_s\nm,l,d,1\n", "missing column(s) energy_j"),
        (
            "model,layer,device,latency_s,energy_j\nm,l,d,1,1\nm,k,d,fast,1\n",
            "column latency_s, line 3: 'fast' is not a number",
        ),
        ("model,layer,device,latency_s,energy_j\nm,l,d,1,-2\n", "column energy_j, line 2: '-2' is negative"),
        ("model,layer,device,latency_s,energy_j\nm,l,d,1,1\nm,l,d,2,2\n", "line 3 repeats"),
    ],
)
def test_bad_profile_csv_names_file_column_and_line(tmp_path, text, message):
    path = _profile(tmp_path, text)
    with pytest.raises(ConfigError, match=f"profile.csv: .*{re.escape(message)}"):
        ProfileTable.from_csv(path)


def test_missing_profile_csv_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="nope.csv: no such file"):
        ProfileTable.from_csv(tmp_path / "nope.csv")


def test_presets_have_the_reference_pe_counts_and_one_link_each():
    pes = {name: [a.num_pes for a in preset(name).accelerators] for name in PRESET_NAMES}
    assert pes == {
        "Single_4K": [4096],
        "Single_8K": [8192],
        "Dual_4K": [2048, 2048],
        "Dual_4K_BigLittle": [3072, 1024],
        "Dual_4K_LittleBig": [1024, 3072],
        "Dual_8K": [4096, 4096],
        "Dual_8K_BigLittle": [6144, 2048],
        "Dual_8K_LittleBig": [2048, 6144],
        "Quad_4K": [1024] * 4,
        "Quad_8K": [2048] * 4,
    }
    quad = preset("Quad_4K").accelerators
    # XRBench: every accelerator has its own 128 B/cycle link, not a share of one
    assert [(a.l2_bytes, a.noc_bytes_per_cycle, a.offchip_bytes_per_cycle) for a in quad] == [
        (2 << 20, 128, 128)
    ] * 4
    assert preset("Dual_4K_bl").accelerators == preset("Dual_4K_BigLittle").accelerators


def test_preset_takes_one_dataflow_per_accelerator():
    assert [a.dataflow for a in preset("Quad_4K", ["WS", "OS", "WS", "OS"]).accelerators] == [
        "WS",
        "OS",
        "WS",
        "OS",
    ]


def test_unknown_preset_lists_known_names():
    with pytest.raises(
        ConfigError, match="preset: unknown preset 'Tri_4K'; known presets: Single_4K.*Dual_4K_bl"
    ):
        preset("Tri_4K")


def test_wrong_dataflow_count_is_a_config_error():
    with pytest.raises(ConfigError, match="dataflow: 3 dataflows given for preset Dual_4K"):
        preset("Dual_4K", ["WS", "OS", "RS"])


def test_hardware_config_errors_name_the_field_path():
    with pytest.raises(ConfigError, match=r"hardware\.preset: unknown preset 'X'"):
        validate(HardwareConfig, {"preset": "X"}, "hardware")
    with pytest.raises(ConfigError, match=r"hardware\.dataflow: unknown dataflow 'XS'; allowed: WS"):
        validate(HardwareConfig, {"dataflow": "XS"}, "hardware")
    with pytest.raises(ConfigError, match=r"hardware\.dataflow: 1 dataflows given for preset Dual_4K"):
        validate(HardwareConfig, {"dataflow": ["WS"]}, "hardware")
    with pytest.raises(ConfigError, match="hardware: give either preset .* or accelerators, not both"):
        validate(HardwareConfig, {"preset": "Dual_4K", "accelerators": []}, "hardware")
    with pytest.raises(ConfigError) as err:
        validate(HardwareConfig, {"preset": "Dual_4K", "l2_size": 1}, "hardware")
    assert err.value.problems == ["hardware.l2_size: unknown key (got 1)"]
    with pytest.raises(ConfigError) as err:
        validate(HardwareConfig, {"accelerators": [{**_accel().model_dump(), "pes": 4}]}, "hardware")
    assert err.value.problems == ["hardware.accelerators.0.pes: unknown key (got 4); did you mean 'num_pes'?"]


def test_hardware_config_default_and_custom_accelerators():
    assert HardwareConfig().build() == preset("Dual_4K", "WS")
    spec = _accel().model_dump()
    system = validate(HardwareConfig, {"accelerators": [spec], "name": "mine"}).build()
    assert system == SystemSpec(name="mine", accelerators=[_accel()])
    with pytest.raises(ConfigError, match="accelerator names must be unique; repeated: a"):
        validate(HardwareConfig, {"accelerators": [spec, spec]})
    with pytest.raises(ConfigError, match="sum to 128, more than the system's offchip_bytes_per_cycle 64"):
        validate(HardwareConfig, {"accelerators": [spec], "offchip_bytes_per_cycle": 64})
