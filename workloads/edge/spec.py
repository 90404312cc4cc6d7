"""The ``edge`` scenario file: multi-exit inference requests on DVFS edge devices."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt, field_validator, model_validator

from devices.edge import EdgeDeviceConfig
from sim.config import SUBFIELD_MARK, PolicyRef, StrictModel
from workloads.streams import ArrivalConfig


class ExitPolicyRef(PolicyRef):
    family = "exit"


class GovernorRef(PolicyRef):
    family = "dvfs"


class OffloadRef(PolicyRef):
    family = "offload"


class OffloadConfig(StrictModel):
    """An edge server every device reaches over its own network link (a networkx graph).

    An offloaded request uploads its input (link latency + bytes / bandwidth), waits for
    the server (first come, first served), runs the full network there and comes back
    after one more link latency. The device spends ``radio_power_w`` while uploading.
    """

    server_macs_per_s: PositiveFloat = 2e11
    bandwidth_bytes_per_s: PositiveFloat = 12.5e6
    latency_s: NonNegativeFloat = 1e-3
    radio_power_w: NonNegativeFloat = 0.5
    policy: OffloadRef = Field(default_factory=lambda: OffloadRef(name="queue_threshold"))


class DeviceGroup(StrictModel):
    """``count`` identical devices, each with its own request stream (``rate_hz``, deadline)."""

    name: str = Field(min_length=1)
    count: PositiveInt = 1
    device: EdgeDeviceConfig = Field(default_factory=lambda: EdgeDeviceConfig(preset="jetson_nano_gpu"))
    rate_hz: PositiveFloat = 50.0
    arrival: ArrivalConfig = Field(default_factory=lambda: ArrivalConfig(process="poisson"))
    deadline_s: PositiveFloat = 0.02


class EdgeSpec(StrictModel):
    """Inference requests with deadlines on battery-powered DVFS devices running a multi-exit network.

    Each request carries a real test sample of the model's dataset; where it exits and
    whether it is right come from the inference cache (docs/multiexit.md). Requests
    queue first-come first-served on their device; a late request still runs (it counts
    as a deadline miss). A depleted device stops serving.
    """

    kind: Literal["edge"] = "edge"
    name: str = "edge_digits"
    seed: int = Field(0, ge=0)
    duration_s: PositiveFloat = 10.0
    model: str = "resnet_digits"
    exit_policy: ExitPolicyRef = Field(default_factory=lambda: ExitPolicyRef(name="predictive_exit"))
    dvfs: GovernorRef = Field(default_factory=lambda: GovernorRef(name="predictive"))
    devices: list[DeviceGroup] = Field(default_factory=lambda: [DeviceGroup(name="nano")], min_length=1)
    offload: OffloadConfig | None = None

    @field_validator("model")
    @classmethod
    def _known_model(cls, name: str) -> str:
        from workloads.edge.models import EXIT_MODELS, PRUNED_MODELS

        if name not in EXIT_MODELS + PRUNED_MODELS:
            raise ValueError(
                f"unknown multi-exit model {name!r}; known: {', '.join(EXIT_MODELS + PRUNED_MODELS)}"
            )
        return name

    @model_validator(mode="after")
    def _unique_names(self) -> EdgeSpec:
        names = [g.name for g in self.devices]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"devices: names must be unique; repeated: {', '.join(dupes)}")
        problems = [
            g.arrival.period_problem(1.0 / g.rate_hz, self.duration_s, f"devices.{i}.arrival")
            for i, g in enumerate(self.devices)
        ]
        if any(problems):
            raise ValueError("; ".join(SUBFIELD_MARK + p for p in problems if p))
        return self
