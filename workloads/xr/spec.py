"""The ``xr`` scenario file: models and their frame streams, hardware, scheduler, metrics.

Defaults are XRBench's VR gaming scenario on the Dual_4K system under EDF, so
``XRSpec()`` alone is a runnable study.
"""

from __future__ import annotations

import math
from typing import Literal

import networkx as nx
from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt, field_validator, model_validator

from devices.hardware import HardwareConfig
from sim.config import PolicyRef, StrictModel
from workloads.streams import ArrivalConfig, ServiceTimeConfig
from workloads.xr.models import TASKS


class SchedulerRef(PolicyRef):
    family = "scheduling"


class ModelStream(StrictModel):
    """One model of the scenario and the frames that feed it.

    A model with ``depends_on`` runs on its upstream models' output of the same frame:
    it has no arrivals of its own, exists for a frame with probability ``trigger_p`` per
    upstream edge, and becomes ready when all its upstream jobs of that frame are done.
    """

    name: str = Field(min_length=1)
    task: str | None = Field(None, description="model architecture; defaults to `name`")
    fps: PositiveFloat | None = None
    arrival: ArrivalConfig = Field(default_factory=ArrivalConfig)
    depends_on: list[str] = Field(default_factory=list)
    trigger_p: float = Field(1.0, ge=0.0, le=1.0)
    deadline: Literal["next_frame", "none"] | PositiveFloat = "next_frame"
    priority: NonNegativeFloat = 1.0

    @field_validator("depends_on", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @field_validator("task")
    @classmethod
    def _known_task(cls, task: str | None) -> str | None:
        if task is not None and task not in TASKS:
            raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
        return task

    @model_validator(mode="after")
    def _task_or_name(self) -> ModelStream:
        if self.task is None:
            if self.name not in TASKS:
                raise ValueError(
                    f"model {self.name!r} is not a known task; set `task` to one of: {', '.join(TASKS)}"
                )
            self.task = self.name
        if self.depends_on and self.arrival != ArrivalConfig():
            raise ValueError("a dependent model takes its frames from upstream; remove `arrival`")
        return self


class MetricsConfig(StrictModel):
    """Constants of the XRBench score and of UXCost (see docs/metrics.md)."""

    rt_k_per_ms: PositiveFloat = Field(15.0, description="steepness of the real-time score")
    energy_max_j: PositiveFloat = Field(
        1.5, description="per-inference energy with energy score 0 (XRBench Emax=1500, read as mJ)"
    )
    miss_penalty: NonNegativeFloat = Field(
        1.0, description="UXCost: a late frame's delay gains this many frame budgets"
    )
    drop_penalty: NonNegativeFloat = Field(
        2.0, description="UXCost: a dropped frame counts as this many frame budgets of delay"
    )


class ReportConfig(StrictModel):
    gantt_window_s: tuple[NonNegativeFloat, PositiveFloat] = (0.0, 0.2)


def _vr_gaming() -> list[ModelStream]:
    return [
        ModelStream(name="eye_segmentation", fps=60),
        ModelStream(name="gaze_estimation", depends_on=["eye_segmentation"]),
        ModelStream(name="hand_tracking", fps=45),
    ]


class XRSpec(StrictModel):
    """A real-time multi-model scenario on a multi-accelerator system (XRBench semantics)."""

    kind: Literal["xr"] = "xr"
    name: str = "vr_gaming"
    seed: int = Field(0, ge=0)
    duration_s: PositiveFloat = 2.0
    integer_ms_period: bool = Field(
        True, description="round frame periods down to whole ms, as XRBench's runtime does"
    )
    hardware: HardwareConfig = Field(default_factory=HardwareConfig)
    scheduler: SchedulerRef = Field(default_factory=lambda: SchedulerRef(name="edf"))
    granularity: Literal["model", "layer_block"] = "model"
    blocks_per_model: PositiveInt = Field(4, description="layer blocks per model at layer_block granularity")
    service_time: ServiceTimeConfig = Field(default_factory=ServiceTimeConfig)
    models: list[ModelStream] = Field(default_factory=_vr_gaming, min_length=1)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)

    @model_validator(mode="after")
    def _dependencies(self) -> XRSpec:
        names = [m.name for m in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"model names must be unique; repeated: {', '.join(dupes)}")
        graph = self.graph()
        for i, m in enumerate(self.models):
            for up in m.depends_on:
                if up not in names:
                    raise ValueError(
                        f"models.{i}.depends_on: unknown model {up!r}; known: {', '.join(names)}"
                    )
                if up == m.name:
                    raise ValueError(f"models.{i}.depends_on: {m.name!r} depends on itself")
        if not nx.is_directed_acyclic_graph(graph):
            cycle = " -> ".join(u for u, _ in nx.find_cycle(graph))
            raise ValueError(f"models: dependency cycle {cycle} -> {cycle.split(' -> ')[0]}")
        for i, m in enumerate(self.models):
            roots = self.roots_of(m.name)
            if len(roots) > 1:
                raise ValueError(
                    f"models.{i}.depends_on: {m.name!r} descends from several sources "
                    f"({', '.join(roots)}); a dependency group must have one root"
                )
            if m.depends_on:
                root_fps = self.stream(roots[0]).fps
                if m.fps is not None and not math.isclose(m.fps, root_fps):
                    raise ValueError(
                        f"models.{i}.fps: {m.fps} differs from its root {roots[0]!r} ({root_fps}); "
                        "a dependent model runs once per upstream frame"
                    )
            elif m.fps is None:
                raise ValueError(f"models.{i}.fps: a model without depends_on needs fps > 0")
        return self

    def graph(self) -> nx.DiGraph:
        """Dependency DAG: an edge ``up -> down`` with attribute ``p`` (trigger probability)."""
        graph = nx.DiGraph()
        graph.add_nodes_from(m.name for m in self.models)
        for m in self.models:
            for up in m.depends_on:
                graph.add_edge(up, m.name, p=m.trigger_p)
        return graph

    def roots_of(self, name: str) -> list[str]:
        graph = self.graph()
        return sorted(n for n in nx.ancestors(graph, name) | {name} if graph.in_degree(n) == 0)

    def stream(self, name: str) -> ModelStream:
        return next(m for m in self.models if m.name == name)

    def period_s(self, name: str) -> float:
        """Frame period of a model (its root's), in whole ms if ``integer_ms_period``."""
        fps = self.stream(self.roots_of(name)[0]).fps
        if self.integer_ms_period:
            return math.floor(1000.0 / fps) / 1000.0 if fps <= 1000 else 1.0 / fps
        return 1.0 / fps
