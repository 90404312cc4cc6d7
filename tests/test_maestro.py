"""The MAESTRO ``.m`` reader: layers as the cost model sees them, streams, and its errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from devices.cost import cost_table
from devices.hardware import preset
from devices.maestro import layer_from_dims, network_layers, read_accelerators, read_networks
from sim import load_spec, run
from sim.cli import main
from sim.errors import ConfigError

XRBENCH = Path(__file__).resolve().parents[1] / ".." / "shared" / "reference" / "xrbench"

NETWORK = """\
// two networks; the second runs on the first's output
Network Cam {
FPS: 30
Layer stem {
    Type: CONV
    Dimensions: { N: 1, K: 16, C: 3, Y: 32, X: 24, R: 3, S: 3 }
}
Layer dw {
    Type: DWCONV
    Dimensions: { N: 1, K: 16, C: 16, Y: 16, X: 12, R: 5, S: 5 }
}
Layer fc {
    Type: FC
    Dimensions: { N: 1, K: 10, C: 16, Y: 1, X: 1, R: 1, S: 1 }
}
}

Network Head {
Dependency: {
    Cam
}
Probability: 0.25
FPS: 30
Layer fc { Type: CONV Dimensions: { N: 2, K: 4, C: 8, Y: 3, X: 1, R: 1, S: 1 } }
}
"""


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "net.m"
    path.write_text(NETWORK)
    return path


def test_networks_streams_and_layer_dimensions(model_file):
    nets = read_networks(model_file)
    assert list(nets) == ["Cam", "Head"]
    cam, head = nets["Cam"], nets["Head"]
    assert (cam.fps, cam.depends_on, cam.trigger_p) == (30.0, (), None)
    assert (head.depends_on, head.trigger_p) == (("Cam",), 0.25)
    stem, dw, fc = cam.layers
    # MAESTRO: Y x X is the input plane; stride 1, no padding
    assert stem.macs == 16 * 3 * 9 * 30 * 22
    assert (stem.input_bytes, stem.output_bytes, stem.weight_bytes) == (3 * 32 * 24, 16 * 30 * 22, 16 * 3 * 9)
    assert (stem.out_channels, stem.in_channels, stem.kernel_elems, stem.kernel_rows) == (16, 3, 9, 3)
    assert (stem.out_pixels, stem.out_rows) == (30 * 22, 30)
    # one filter per channel
    assert (dw.groups, dw.in_channels, dw.out_channels, dw.macs) == (16, 1, 16, 16 * 25 * 12 * 8)
    assert fc.macs == 10 * 16 and fc.kernel_elems == 1
    assert head.layers[0].out_pixels == 6 and head.layers[0].macs == 2 * 4 * 8 * 3
    # "same": Y x X is the output plane of a conv over an input padded by R-1, S-1
    same = read_networks(model_file, padding="same")["Cam"].layers[0]
    assert (same.macs, same.input_bytes, same.out_pixels) == (16 * 3 * 9 * 32 * 24, 3 * 34 * 26, 32 * 24)


def test_a_kernel_larger_than_its_input_yields_one_output():
    layer = layer_from_dims("late", "CONV", dict(N=1, K=8, C=8, Y=5, X=4, R=5, S=5))
    assert (layer.out_pixels, layer.out_rows, layer.macs) == (1, 1, 8 * 8 * 25)


def test_layers_are_what_the_cost_model_costs(model_file):
    layers = network_layers(model_file, "Cam")
    latency, energy = cost_table("Cam", layers, preset("Single_4K"))
    assert latency.shape == (1, 3) and (latency > 0).all() and (energy > 0).all()
    # a MAESTRO CONV and a hand-built layer of the same dimensions cost the same
    same = layer_from_dims("stem", "CONV", dict(N=1, K=16, C=3, Y=32, X=24, R=3, S=3))
    assert cost_table("Cam", (same,), preset("Single_4K"))[0][0, 0] == latency[0, 0]


BAD = {  # (text replaced in the stem's dimensions line, line 6), message
    "bad dimension value": (
        "Y: 32",
        "Y: 0",
        "line 6: layer stem: dimension Y: '0' is not a positive integer",
    ),
    "unknown dimension": (
        "Y: 32",
        "Y: 32, Q: 2",
        "line 6: layer stem: bad dimension 'Q'; allowed: N, K, C, Y, X",
    ),
    "missing dimension": ("N: 1, K: 16, ", "", "line 6: layer stem: missing dimension(s) N, K"),
    "not a mapping": ("C: 3", "C 3", "line 6: layer stem: bad dimension 'C'"),
}


@pytest.mark.parametrize(("old", "new", "message"), BAD.values(), ids=BAD)
def test_malformed_layer_is_one_line_naming_file_and_line(tmp_path, old, new, message):
    path = tmp_path / "bad.m"
    path.write_text(NETWORK.replace(old, new, 1))
    with pytest.raises(ConfigError) as err:
        read_networks(path)
    assert err.value.problems == [str(err.value)] and "\n" not in str(err.value)
    assert str(err.value).startswith(f"{path}, {message}")


def test_unknown_type_and_unclosed_block(tmp_path):
    path = tmp_path / "bad.m"
    path.write_text(NETWORK.replace("DWCONV", "POOL"))
    with pytest.raises(ConfigError, match=r"line 8: layer dw: Type 'POOL'; allowed: CONV, DWCONV, FC"):
        read_networks(path)
    path.write_text(NETWORK.rsplit("}", 1)[0])
    with pytest.raises(ConfigError, match="is never closed"):
        read_networks(path)


def _scenario(tmp_path, model_file, network="Cam"):
    path = tmp_path / "s.yaml"
    path.write_text(
        "kind: xr\nduration_s: 0.2\nhardware: {preset: Single_4K}\nmodels:\n"
        f"  - {{name: cam, maestro: {{file: {model_file}, network: {network}}}, fps: 30}}\n"
    )
    return path


def test_a_maestro_network_runs_as_an_xr_workload(tmp_path, model_file):
    result = run(load_spec(_scenario(tmp_path, model_file)))
    frames = result.tables["frames"]
    expected = cost_table("Cam", network_layers(model_file, "Cam"), preset("Single_4K"))[1].sum()
    assert len(frames) == 7 and np.allclose(frames["energy_j"], expected)


def test_cli_exits_2_with_one_line_for_a_malformed_file(tmp_path, model_file, capsys):
    model_file.write_text(NETWORK.replace("R: 3", "R: three", 1))
    assert main(["run", str(_scenario(tmp_path, model_file)), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"models.0.maestro: {model_file}, line 6: layer stem: dimension R: 'three'" in err


def test_unknown_network_lists_the_known_ones(tmp_path, model_file, capsys):
    assert main(["run", str(_scenario(tmp_path, model_file, "Nope")), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "models.0.maestro: maestro.network: 'Nope' is not in" in err and "networks there: Cam, Head" in err


def test_hardware_file_fields_and_unknown_field(tmp_path):
    path = tmp_path / "hw.m"
    fields = "num_pes: 64 offchip_bw: 8 top_noc_bw: 4 top_noc_latency: 1 top_noc_multicast: True"
    fields += " col_noc_bw: 4 col_noc_latency: 1 col_noc_multicast: False"
    fields += " global_shared_memory: 4096 // bytes\n PE_local_memory: 512"
    path.write_text(f"Accelerator A {{ {fields} }}\n")
    (acc,) = read_accelerators(path)
    assert (acc["name"], acc["num_pes"], acc["col_noc_multicast"], acc["PE_local_memory"]) == (
        "A",
        64,
        False,
        512,
    )
    path.write_text(f"Accelerator A {{ {fields}\n clock: 2 }}\n")
    with pytest.raises(
        ConfigError, match=r"hw\.m, line 3: accelerator A: unknown field 'clock'; allowed: num_pes"
    ):
        read_accelerators(path)


@pytest.mark.skipif(not XRBENCH.is_dir(), reason="../shared/reference/xrbench is not beside the repo")
def test_every_reference_scenario_reads():
    files = sorted((XRBENCH / "usage_scenarios").glob("*.m")) + sorted(
        (XRBENCH / "probability_sweep").glob("*.m")
    )
    assert len(files) == 11
    for path in files:
        nets = read_networks(path)
        assert nets and all(net.fps and net.layers for net in nets.values()), path.name
    vr = read_networks(XRBENCH / "usage_scenarios" / "VR_gaming.m")
    assert {n: len(net.layers) for n, net in vr.items()} == {
        "ES_RITNet": 42,
        "GE_FBNet_C": 63,
        "HT_hand_graph_cnn_half": 224,
    }
    assert vr["GE_FBNet_C"].depends_on == ("ES_RITNet",)
