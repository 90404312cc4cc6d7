"""Accelerator and multi-accelerator system specs, and the XRBench hardware presets.

An :class:`AcceleratorSpec` describes one DNN accelerator the way the analytic cost
model (:mod:`devices.cost`) sees it: a PE array with a dataflow, a clock, an on-chip
shared buffer (L2), a per-PE local buffer (L1), a NoC between them, and its share of
off-chip bandwidth. A :class:`SystemSpec` is a list of them.

Presets are XRBench's ``hw_configs/*.m`` (Kwon et al., MLSys 2023) field by field:
``num_pes``, ``offchip_bw`` (128 bytes/cycle, every accelerator its *own* link),
``top_noc_bw``/``col_noc_bw`` (equal in every file: one NoC bandwidth),
``global_shared_memory`` (L2 per accelerator) and ``PE_local_memory`` (L1 per PE).
The files' NoC latency (1 cycle) and multicast (on) are not modelled: the analytic
model already counts a broadcast operand once per L2 read. A test reads the files
and compares every preset.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from sim.config import check_file, did_you_mean
from sim.errors import ConfigError

Dataflow = Literal["WS", "OS", "RS"]
DATAFLOWS: tuple[str, ...] = ("WS", "OS", "RS")

KIB = 1024
MIB = 1024 * KIB


class EnergyCoefficients(BaseModel):
    """Per-access energy weights of the reference cost model.

    energy_j = (L2 accesses * l2_access + L1 accesses * l1_access + MACs * mac) * unit_j,
    which with the defaults is XRBench's (L2 x 6 + L1 x 0.55 + MACs) x 0.00288 nJ.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    l2_access: float = Field(
        6.0, ge=0, description="energy weight of one shared-buffer (L2) access, in units of unit_j"
    )
    l1_access: float = Field(
        0.55, ge=0, description="energy weight of one PE-local buffer (L1) access, in units of unit_j"
    )
    mac: float = Field(1.0, ge=0, description="energy weight of one multiply-accumulate, in units of unit_j")
    unit_j: float = Field(
        0.00288e-9, gt=0, description="joules per unit of the weights above (XRBench: 0.00288 nJ)"
    )


class AcceleratorSpec(BaseModel):
    """One accelerator: PE array, dataflow, clock, buffers and bandwidths.

    Bandwidths are bytes per clock cycle of this accelerator. ``idle_power_w`` is the
    static power drawn while idle; it defaults to 0 because the reference energy model
    counts only per-layer dynamic energy.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str = Field(
        min_length=1,
        description="the accelerator's name, unique in the system (schedulers and tables use it)",
    )
    num_pes: int = Field(gt=0, description="processing elements in the PE array")
    dataflow: Dataflow = Field(
        "WS", description="dataflow of the array: WS (weight), OS (output) or RS (row) stationary"
    )
    clock_hz: float = Field(1e9, gt=0, description="clock frequency, in Hz")
    l2_bytes: int = Field(gt=0, description="on-chip shared buffer (L2) size, in bytes")
    l1_bytes_per_pe: int = Field(gt=0, description="local buffer (L1) size of each PE, in bytes")
    noc_bytes_per_cycle: float = Field(
        gt=0, description="NoC bandwidth between L2 and the PEs, in bytes per cycle"
    )
    offchip_bytes_per_cycle: float = Field(
        gt=0, description="this accelerator's off-chip memory bandwidth, in bytes per cycle"
    )
    idle_power_w: float = Field(
        0.0,
        ge=0,
        description=(
            "static power drawn while idle, in watts (0: only per-layer dynamic energy, as XRBench)"
        ),
    )
    energy: EnergyCoefficients = Field(
        EnergyCoefficients(), description="per-access energy coefficients of the analytic cost model"
    )


class SystemSpec(BaseModel):
    """Named accelerators; ``offchip_bytes_per_cycle``, if given, caps their links' sum.

    Unset (the default, as in XRBench), every accelerator has its own off-chip link.
    Set, it is one shared memory split statically: the accelerators' shares must fit.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str = Field(min_length=1)
    accelerators: list[AcceleratorSpec] = Field(min_length=1)
    offchip_bytes_per_cycle: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _check(self) -> SystemSpec:
        problem = _system_problem(self.accelerators, self.offchip_bytes_per_cycle)
        if problem:
            raise ValueError(problem)
        return self


def _system_problem(accelerators: list[AcceleratorSpec], offchip_bytes_per_cycle: float | None) -> str | None:
    names = [a.name for a in accelerators]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        return f"accelerator names must be unique; repeated: {', '.join(dupes)}"
    share = sum(a.offchip_bytes_per_cycle for a in accelerators)
    if offchip_bytes_per_cycle is not None and share > offchip_bytes_per_cycle * (1 + 1e-9):
        return (
            f"accelerators' offchip_bytes_per_cycle sum to {share:g}, more than the "
            f"system's offchip_bytes_per_cycle {offchip_bytes_per_cycle:g}"
        )
    return None


# XRBench's hw_configs/*.m, accelerator by accelerator in file order:
# (num_pes, top/col NoC bytes per cycle, global_shared_memory bytes, PE_local_memory bytes)
_4K_2M = (2048, 128, 2 * MIB, 8 * KIB)
_8K_4M = (4096, 256, 4 * MIB, 16 * KIB)
_PRESETS: dict[str, tuple[tuple[int, int, int, int], ...]] = {
    "Single_4K": ((4096, 256, 4 * MIB, 8 * KIB),),
    "Single_8K": ((8192, 256, 8 * MIB, 16 * KIB),),
    "Dual_4K": (_4K_2M, _4K_2M),
    "Dual_4K_BigLittle": ((3072, 128, 2 * MIB, 8 * KIB), (1024, 128, 2 * MIB, 8 * KIB)),
    "Dual_4K_LittleBig": ((1024, 128, 2 * MIB, 8 * KIB), (3072, 128, 2 * MIB, 8 * KIB)),
    "Dual_8K": (_8K_4M, _8K_4M),
    "Dual_8K_BigLittle": ((6144, 256, 4 * MIB, 16 * KIB), (2048, 256, 4 * MIB, 16 * KIB)),
    "Dual_8K_LittleBig": ((2048, 256, 4 * MIB, 16 * KIB), (6144, 256, 4 * MIB, 16 * KIB)),
    "Quad_4K": ((1024, 128, 2 * MIB, 8 * KIB),) * 4,
    "Quad_8K": ((2048, 256, 4 * MIB, 8 * KIB),) * 4,
}
# earlier names, kept so that existing scenario files keep working
PRESET_ALIASES: dict[str, str] = {"Dual_4K_bl": "Dual_4K_BigLittle", "Dual_8K_bl": "Dual_8K_BigLittle"}
PRESET_NAMES: tuple[str, ...] = tuple(_PRESETS)
# XRBench's offchip_bw: every accelerator has its own link of this many bytes per cycle
OFFCHIP_BYTES_PER_CYCLE = 128.0


def _unknown_preset(name: Any) -> str:
    aliases = ", ".join(f"{k} (= {v})" for k, v in PRESET_ALIASES.items())
    hint = did_you_mean(name, (*PRESET_NAMES, *PRESET_ALIASES))
    return f"unknown preset {name!r}{hint}; known presets: {', '.join(PRESET_NAMES)}; aliases: {aliases}"


def _canonical(name: str) -> str:
    return PRESET_ALIASES.get(name, name)


def _bad_dataflow(value: Any) -> str | None:
    if value in DATAFLOWS:
        return None
    return f"unknown dataflow {value!r}; allowed: {', '.join(DATAFLOWS)}"


def _dataflow_count_problem(name: str, dataflow: str | list[str]) -> str | None:
    n = len(_PRESETS[_canonical(name)])
    if isinstance(dataflow, str) or len(dataflow) == n:
        return None
    return (
        f"{len(dataflow)} dataflows given for preset {name} with {n} accelerator(s); "
        f"give one for all or exactly {n}"
    )


def preset(name: str, dataflow: str | list[str] = "WS") -> SystemSpec:
    """The XRBench hardware preset ``name`` (or an alias); ``dataflow`` is one for all or
    one per accelerator.

    Accelerators are named ``acc0``, ``acc1``, ... in the order of XRBench's file (big
    first in BigLittle, little first in LittleBig). The system keeps the name asked for.
    """
    if _canonical(name) not in _PRESETS:
        raise ConfigError(f"preset: {_unknown_preset(name)}")
    flows = [dataflow] if isinstance(dataflow, str) else list(dataflow)
    problems = [f"dataflow: {p}" for p in map(_bad_dataflow, flows) if p]
    count = _dataflow_count_problem(name, dataflow)
    if count:
        problems.append(f"dataflow: {count}")
    if problems:
        raise ConfigError(problems)
    table = _PRESETS[_canonical(name)]
    if isinstance(dataflow, str):
        flows = [dataflow] * len(table)
    accels = [
        AcceleratorSpec(
            name=f"acc{i}",
            num_pes=pes,
            dataflow=flow,
            l2_bytes=l2,
            l1_bytes_per_pe=l1,
            noc_bytes_per_cycle=noc,
            offchip_bytes_per_cycle=OFFCHIP_BYTES_PER_CYCLE,
        )
        for i, ((pes, noc, l2, l1), flow) in enumerate(zip(table, flows, strict=True))
    ]
    return SystemSpec(name=name, accelerators=accels)


class HardwareConfig(BaseModel):
    """The ``hardware:`` section of a scenario: a preset, or a list of accelerators.

    With neither given it is ``preset: Dual_4K, dataflow: WS``. ``profile_csv`` names a
    table of measured per-layer costs (see :class:`devices.cost.ProfileTable`) that
    overrides the analytic model where it has a row.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    preset: str | None = Field(
        None,
        description=(
            "an XRBench system: Single_4K, Single_8K, Dual_4K, Dual_8K, their "
            "BigLittle/LittleBig variants, Quad_4K or Quad_8K (default Dual_4K)"
        ),
    )
    dataflow: str | list[str] | None = Field(
        None,
        description=(
            "with a preset: WS, OS or RS for every accelerator, or a list with one per "
            "accelerator (default WS)"
        ),
    )
    accelerators: list[AcceleratorSpec] | None = Field(
        None, description="an explicit list of accelerators instead of a preset"
    )
    name: str | None = Field(None, description="with accelerators: the system's name")
    offchip_bytes_per_cycle: float | None = Field(
        None,
        gt=0,
        description=(
            "with accelerators: one shared off-chip bandwidth their links must fit in, "
            "bytes per cycle (unset: each its own link)"
        ),
    )
    profile_csv: str | None = Field(
        None,
        description=(
            "CSV of measured per-layer costs overriding the analytic model where it has a"
            " row (see testbed profile)"
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _default_preset(cls, data: Any) -> Any:
        unset = isinstance(data, dict) and data.get("preset") is None
        if unset and data.get("accelerators") is None:
            return {**data, "preset": "Dual_4K"}
        return data

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, value: str | None) -> str | None:
        if value is not None and _canonical(value) not in _PRESETS:
            raise ValueError(_unknown_preset(value))
        return value

    @field_validator("dataflow")
    @classmethod
    def _known_dataflow(cls, value: str | list[str] | None, info: ValidationInfo) -> str | list[str] | None:
        flows = [value] if isinstance(value, str) else value or []
        for flow in flows:
            problem = _bad_dataflow(flow)
            if problem:
                raise ValueError(problem)
        name = info.data.get("preset")
        problem = _dataflow_count_problem(name, value) if name and value is not None else None
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _readable_profile(self) -> HardwareConfig:
        if self.profile_csv is not None:
            check_file(self.profile_csv, "profile_csv", _read_profile)
        return self

    @model_validator(mode="after")
    def _one_source(self) -> HardwareConfig:
        if self.preset is not None and self.accelerators is not None:
            raise ValueError("give either preset (with dataflow) or accelerators, not both")
        if self.preset is not None:
            if self.name is not None or self.offchip_bytes_per_cycle is not None:
                raise ValueError("name and offchip_bytes_per_cycle go with accelerators, not with a preset")
        else:
            if self.dataflow is not None:
                raise ValueError("dataflow goes with a preset; set it per accelerator instead")
            problem = _system_problem(self.accelerators, self.offchip_bytes_per_cycle)
            if problem:
                raise ValueError(problem)
        return self

    def build(self) -> SystemSpec:
        """The system this section describes."""
        if self.preset is not None:
            return preset(self.preset, self.dataflow or "WS")
        return SystemSpec(
            name=self.name or "custom",
            accelerators=self.accelerators,
            offchip_bytes_per_cycle=self.offchip_bytes_per_cycle,
        )


def _read_profile(path: str, field: str) -> None:
    from devices.cost import ProfileTable

    ProfileTable.from_csv(path)
