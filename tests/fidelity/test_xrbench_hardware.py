"""The hardware presets are XRBench's ``hw_configs/*.m``, field by field."""

from __future__ import annotations

from pathlib import Path

import pytest

from devices.hardware import PRESET_ALIASES, PRESET_NAMES, preset
from devices.maestro import read_accelerators

HW_CONFIGS = Path(__file__).resolve().parents[2] / ".." / "shared" / "reference" / "xrbench" / "hw_configs"

pytestmark = pytest.mark.skipif(
    not HW_CONFIGS.is_dir(), reason="../shared/reference/xrbench is not beside the repo"
)


def test_every_reference_config_is_a_preset():
    assert sorted(PRESET_NAMES) == sorted(p.stem for p in HW_CONFIGS.glob("*.m"))


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_preset_equals_the_reference_file_field_by_field(name):
    reference = read_accelerators(HW_CONFIGS / f"{name}.m")
    accels = preset(name).accelerators
    assert len(accels) == len(reference)
    for ours, ref in zip(accels, reference, strict=True):
        assert ref["top_noc_bw"] == ref["col_noc_bw"]  # one NoC bandwidth models both
        assert (
            ours.num_pes,
            ours.offchip_bytes_per_cycle,
            ours.noc_bytes_per_cycle,
            ours.l2_bytes,
            ours.l1_bytes_per_pe,
        ) == (
            ref["num_pes"],
            ref["offchip_bw"],
            ref["top_noc_bw"],
            ref["global_shared_memory"],
            ref["PE_local_memory"],
        )


@pytest.mark.parametrize(("alias", "name"), PRESET_ALIASES.items())
def test_aliases_build_the_same_accelerators(alias, name):
    assert preset(alias, "OS").accelerators == preset(name, "OS").accelerators
