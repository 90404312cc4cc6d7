"""The ``edge`` scenario file: multi-exit inference requests on DVFS edge devices."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt, model_validator

from devices.edge import EdgeDeviceConfig
from sim.config import SUBFIELD_MARK, PolicyRef, StrictModel
from sim.errors import ConfigError
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

    server_macs_per_s: PositiveFloat = Field(
        2e11, description="the edge server's compute rate, in MACs per second"
    )
    bandwidth_bytes_per_s: PositiveFloat = Field(
        12.5e6, description="bandwidth of each device's link to the server, in bytes/s"
    )
    latency_s: NonNegativeFloat = Field(
        1e-3, description="one-way latency of each device's link to the server, in seconds"
    )
    radio_power_w: NonNegativeFloat = Field(
        0.5, description="power a device draws while uploading an input, in watts"
    )
    policy: OffloadRef = Field(
        default_factory=lambda: OffloadRef(name="queue_threshold"),
        description="offload policy: which requests go to the server",
    )


class DeviceGroup(StrictModel):
    """``count`` identical devices, each with its own request stream (``rate_hz``, deadline)."""

    name: str = Field(
        min_length=1,
        description=(
            "the group's name, unique in the scenario (its devices are <name>0, <name>1, ... when count > 1)"
        ),
    )
    count: PositiveInt = Field(
        1, description="identical devices in the group, each with its own request stream"
    )
    device: EdgeDeviceConfig = Field(
        default_factory=lambda: EdgeDeviceConfig(preset="jetson_nano_gpu"),
        description="the device: a DVFS preset or an explicit table of operating points",
    )
    rate_hz: PositiveFloat = Field(50.0, description="mean requests per second arriving at each device")
    arrival: ArrivalConfig = Field(
        default_factory=lambda: ArrivalConfig(process="poisson"),
        description="arrival process of each device's requests (default poisson)",
    )
    deadline_s: PositiveFloat = Field(
        0.02, description="each request's deadline, in seconds after its arrival (a late one still runs)"
    )


class EdgeSpec(StrictModel):
    """Inference requests with deadlines on battery-powered DVFS devices running a multi-exit network.

    Each request carries a real test sample of the model's dataset; where it exits and
    whether it is right come from the inference cache (docs/multiexit.md). Requests
    queue first-come first-served on their device; a late request still runs (it counts
    as a deadline miss). A depleted device stops serving.
    """

    kind: Literal["edge"] = Field("edge", description="scenario kind")
    name: str = Field(
        "edge_digits", description="the run's name (default output folder runs/<name>-seed<seed>)"
    )
    seed: int = Field(0, ge=0, description="run seed: every random stream derives from it")
    duration_s: PositiveFloat = Field(
        10.0, description="simulated seconds; requests not done by then count as unserved"
    )
    model: str = Field(
        "resnet_digits",
        description="the multi-exit network: a built-in name, a name registered in the 'model' family, "
        "or module:factory (docs/extending.md)",
    )
    model_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="keyword arguments of a user model's factory"
    )
    dataset: Literal["digits", "patches", "shapes"] | None = Field(
        None, description="what a user model trains and is tested on (default digits); built-ins have theirs"
    )
    exit_policy: ExitPolicyRef = Field(
        default_factory=lambda: ExitPolicyRef(name="predictive_exit"),
        description="exit policy: at which exit each request leaves",
    )
    dvfs: GovernorRef = Field(
        default_factory=lambda: GovernorRef(name="predictive"),
        description="DVFS governor: the operating point of each request",
    )
    devices: list[DeviceGroup] = Field(
        default_factory=lambda: [DeviceGroup(name="nano")],
        min_length=1,
        description="groups of devices, each with its request stream",
    )
    offload: OffloadConfig | None = Field(
        None,
        description="an edge server requests may be offloaded to (unset: every request runs on its device)",
    )

    @model_validator(mode="after")
    def _known_model(self) -> EdgeSpec:
        from workloads.edge.models import EXIT_MODELS, PRUNED_MODELS, check_user_model

        if self.model in EXIT_MODELS + PRUNED_MODELS:  # built-in: known without torch
            if self.model_kwargs:
                raise ValueError(f"@model_kwargs: built-in model {self.model!r} takes none")
            if self.dataset is not None:
                raise ValueError(f"@dataset: built-in model {self.model!r} has its own; leave dataset out")
            return self
        try:
            check_user_model(self.model, self.model_kwargs, self.dataset or "digits")
        except ConfigError as exc:
            raise ValueError("; ".join(SUBFIELD_MARK + p for p in exc.problems)) from None
        return self

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
