"""Accelerator and multi-accelerator system specs, and the XRBench hardware presets.

An :class:`AcceleratorSpec` describes one DNN accelerator the way the analytic cost
model (:mod:`devices.cost`) sees it: a PE array with a dataflow, a clock, an on-chip
shared buffer (L2), a per-PE local buffer (L1), a NoC between them, and its share of
off-chip bandwidth. A :class:`SystemSpec` is a list of them.

Presets follow the XRBench evaluation (Kwon et al., MLSys 2023). The reference gives
Single_4K (4096 PEs, 4 MiB, 8 KiB per PE, NoC 256), Single_8K (8192 PEs, 8 MiB,
16 KiB per PE) and Dual_4K (2 x 2048 PEs, 2 MiB each, NoC 128); the rest is filled in
by the rules these three obey:

- shared buffer (L2): 1 KiB per PE;
- NoC: 1 byte/cycle per 16 PEs;
- L1: 8 KiB per PE in the 4K family, 16 KiB per PE in the 8K family;
- off-chip: the reference's "128" read as 128 bytes/cycle at 1 GHz (128 GB/s) for
  the whole system, split statically in proportion to PE count. There is no dynamic
  contention: an idle accelerator's share is not lent to a busy one.
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

from sim.errors import ConfigError

Dataflow = Literal["WS", "OS", "RS"]
DATAFLOWS: tuple[str, ...] = ("WS", "OS", "RS")

KIB = 1024
MIB = 1024 * KIB
SYSTEM_OFFCHIP_BYTES_PER_CYCLE = 128.0


class EnergyCoefficients(BaseModel):
    """Per-access energy weights of the reference cost model.

    energy_j = (L2 accesses * l2_access + L1 accesses * l1_access + MACs * mac) * unit_j,
    which with the defaults is XRBench's (L2 x 6 + L1 x 0.55 + MACs) x 0.00288 nJ.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    l2_access: float = Field(6.0, ge=0)
    l1_access: float = Field(0.55, ge=0)
    mac: float = Field(1.0, ge=0)
    unit_j: float = Field(0.00288e-9, gt=0)


class AcceleratorSpec(BaseModel):
    """One accelerator: PE array, dataflow, clock, buffers and bandwidths.

    Bandwidths are bytes per clock cycle of this accelerator. ``idle_power_w`` is the
    static power drawn while idle; it defaults to 0 because the reference energy model
    counts only per-layer dynamic energy.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    num_pes: int = Field(gt=0)
    dataflow: Dataflow = "WS"
    clock_hz: float = Field(1e9, gt=0)
    l2_bytes: int = Field(gt=0)
    l1_bytes_per_pe: int = Field(gt=0)
    noc_bytes_per_cycle: float = Field(gt=0)
    offchip_bytes_per_cycle: float = Field(gt=0)
    idle_power_w: float = Field(0.0, ge=0)
    energy: EnergyCoefficients = EnergyCoefficients()


class SystemSpec(BaseModel):
    """Accelerators sharing one off-chip memory; their static shares must fit in it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    accelerators: list[AcceleratorSpec] = Field(min_length=1)
    offchip_bytes_per_cycle: float = Field(SYSTEM_OFFCHIP_BYTES_PER_CYCLE, gt=0)

    @model_validator(mode="after")
    def _check(self) -> SystemSpec:
        problem = _system_problem(self.accelerators, self.offchip_bytes_per_cycle)
        if problem:
            raise ValueError(problem)
        return self


def _system_problem(accelerators: list[AcceleratorSpec], offchip_bytes_per_cycle: float) -> str | None:
    names = [a.name for a in accelerators]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        return f"accelerator names must be unique; repeated: {', '.join(dupes)}"
    share = sum(a.offchip_bytes_per_cycle for a in accelerators)
    if share > offchip_bytes_per_cycle * (1 + 1e-9):
        return (
            f"accelerators' offchip_bytes_per_cycle sum to {share:g}, more than the "
            f"system's offchip_bytes_per_cycle {offchip_bytes_per_cycle:g}"
        )
    return None


# name -> (PEs per accelerator, L1 bytes per PE)
_PRESETS: dict[str, tuple[tuple[int, ...], int]] = {
    "Single_4K": ((4096,), 8 * KIB),
    "Single_8K": ((8192,), 16 * KIB),
    "Dual_4K": ((2048, 2048), 8 * KIB),
    "Dual_8K": ((4096, 4096), 16 * KIB),
    "Quad_4K": ((1024,) * 4, 8 * KIB),
    "Quad_8K": ((2048,) * 4, 16 * KIB),
    "Dual_4K_bl": ((3072, 1024), 8 * KIB),
    "Dual_8K_bl": ((6144, 2048), 16 * KIB),
}
PRESET_NAMES: tuple[str, ...] = tuple(_PRESETS)
L2_BYTES_PER_PE = 1 * KIB
PES_PER_NOC_BYTE = 16


def _unknown_preset(name: Any) -> str:
    return f"unknown preset {name!r}; known presets: {', '.join(PRESET_NAMES)}"


def _bad_dataflow(value: Any) -> str | None:
    if value in DATAFLOWS:
        return None
    return f"unknown dataflow {value!r}; allowed: {', '.join(DATAFLOWS)}"


def _dataflow_count_problem(name: str, dataflow: str | list[str]) -> str | None:
    n = len(_PRESETS[name][0])
    if isinstance(dataflow, str) or len(dataflow) == n:
        return None
    return (
        f"{len(dataflow)} dataflows given for preset {name} with {n} accelerator(s); "
        f"give one for all or exactly {n}"
    )


def preset(name: str, dataflow: str | list[str] = "WS") -> SystemSpec:
    """The XRBench hardware preset ``name``; ``dataflow`` is one for all or one per accelerator.

    Accelerators are named ``acc0``, ``acc1``, ... (big first in big.LITTLE presets).
    """
    if name not in _PRESETS:
        raise ConfigError(f"preset: {_unknown_preset(name)}")
    flows = [dataflow] if isinstance(dataflow, str) else list(dataflow)
    problems = [f"dataflow: {p}" for p in map(_bad_dataflow, flows) if p]
    count = _dataflow_count_problem(name, dataflow)
    if count:
        problems.append(f"dataflow: {count}")
    if problems:
        raise ConfigError(problems)
    pes, l1 = _PRESETS[name]
    if isinstance(dataflow, str):
        flows = [dataflow] * len(pes)
    total = sum(pes)
    accels = [
        AcceleratorSpec(
            name=f"acc{i}",
            num_pes=n,
            dataflow=flow,
            l2_bytes=n * L2_BYTES_PER_PE,
            l1_bytes_per_pe=l1,
            noc_bytes_per_cycle=n / PES_PER_NOC_BYTE,
            offchip_bytes_per_cycle=SYSTEM_OFFCHIP_BYTES_PER_CYCLE * n / total,
        )
        for i, (n, flow) in enumerate(zip(pes, flows, strict=True))
    ]
    return SystemSpec(name=name, accelerators=accels)


class HardwareConfig(BaseModel):
    """The ``hardware:`` section of a scenario: a preset, or a list of accelerators.

    With neither given it is ``preset: Dual_4K, dataflow: WS``. ``profile_csv`` names a
    table of measured per-layer costs (see :class:`devices.cost.ProfileTable`) that
    overrides the analytic model where it has a row.
    """

    model_config = ConfigDict(extra="forbid")

    preset: str | None = None
    dataflow: str | list[str] | None = None
    accelerators: list[AcceleratorSpec] | None = None
    name: str | None = None
    offchip_bytes_per_cycle: float | None = Field(None, gt=0)
    profile_csv: str | None = None

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
        if value is not None and value not in _PRESETS:
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
    def _one_source(self) -> HardwareConfig:
        if self.preset is not None and self.accelerators is not None:
            raise ValueError("give either preset (with dataflow) or accelerators, not both")
        if self.preset is not None:
            if self.name is not None or self.offchip_bytes_per_cycle is not None:
                raise ValueError("name and offchip_bytes_per_cycle go with accelerators, not with a preset")
        else:
            if self.dataflow is not None:
                raise ValueError("dataflow goes with a preset; set it per accelerator instead")
            problem = _system_problem(self.accelerators, self._offchip())
            if problem:
                raise ValueError(problem)
        return self

    def _offchip(self) -> float:
        return self.offchip_bytes_per_cycle or SYSTEM_OFFCHIP_BYTES_PER_CYCLE

    def build(self) -> SystemSpec:
        """The system this section describes."""
        if self.preset is not None:
            return preset(self.preset, self.dataflow or "WS")
        return SystemSpec(
            name=self.name or "custom",
            accelerators=self.accelerators,
            offchip_bytes_per_cycle=self._offchip(),
        )
