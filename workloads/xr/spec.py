"""The ``xr`` scenario file: models and their frame streams, hardware, scheduler, metrics.

Defaults are XRBench's VR gaming scenario on the Dual_4K system under EDF, so
``XRSpec()`` alone is a runnable study.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Literal

import networkx as nx
from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt, field_validator, model_validator

from devices.hardware import HardwareConfig
from sim import registry
from sim.config import SUBFIELD_MARK, PolicyRef, StrictModel
from sim.errors import ConfigError
from workloads.streams import ArrivalConfig, VariationConfig
from workloads.xr.tasks import TASKS


@functools.lru_cache(maxsize=64)
def _roots(deps: tuple[tuple[str, tuple[str, ...]], ...]) -> dict[str, list[str]]:
    """Each model's source models in the dependency DAG ``(model, depends_on)``; a ValueError
    names a cycle. Cached: a sweep validates one dependency structure thousands of times."""
    graph = nx.DiGraph()
    graph.add_nodes_from(name for name, _ in deps)
    graph.add_edges_from((up, name) for name, ups in deps for up in ups)
    if not nx.is_directed_acyclic_graph(graph):
        cycle = " -> ".join(u for u, _ in nx.find_cycle(graph))
        raise ValueError(f"models: dependency cycle {cycle} -> {cycle.split(' -> ')[0]}")
    return {
        name: sorted(n for n in nx.ancestors(graph, name) | {name} if graph.in_degree(n) == 0)
        for name, _ in deps
    }


class SchedulerRef(PolicyRef):
    family = "scheduling"


class MaestroRef(StrictModel):
    """A network of a MAESTRO ``.m`` model file (:mod:`devices.maestro`), costed layer by layer."""

    file: str = Field(min_length=1, description="path of the .m file (relative to the working directory)")
    network: str = Field(min_length=1, description="name of a `Network` block in it")

    @model_validator(mode="after")
    def _readable(self) -> MaestroRef:
        from devices.maestro import network_layers

        network_layers(self.file, self.network)
        return self


class ModelStream(StrictModel):
    """One model of the scenario and the frames that feed it.

    A model with ``depends_on`` runs on its upstream models' output of the same frame:
    it has no arrivals of its own, exists for a frame with probability ``trigger_p`` per
    upstream edge, and becomes ready when all its upstream jobs of that frame are done.

    A model is a task architecture (``task``), a network of a MAESTRO file
    (``maestro: {file, network}``) or a slimmable ``supernet``, served at
    ``width`` unless the scheduler chooses a width per frame. ``samples_per_frame``
    inputs are processed per frame (cost scales with it), and ``work`` varies the
    amount of input work from frame to frame (scaling latency and energy).
    """

    name: str = Field(
        min_length=1, description="the model's name in the run; a task name unless `task` is set"
    )
    task: str | None = Field(
        None,
        description="model: a registered model name or a module:factory path; defaults to `name`",
    )
    task_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="keyword arguments of the task's factory"
    )
    input_shape: list[PositiveInt] | None = Field(
        None, description="input shape with batch 1, for a model that declares none"
    )
    supernet: str | None = Field(None, description="a slimmable supernet instead of a task")
    maestro: MaestroRef | None = Field(None, description="a network of a MAESTRO .m file instead of a task")
    width: PositiveFloat | None = Field(None, description="supernet width served by default (largest)")
    samples_per_frame: PositiveInt = Field(1, description="inputs processed per frame (cost scales with it)")
    work: VariationConfig = Field(
        default_factory=VariationConfig, description="per-frame input work factor (scales latency and energy)"
    )
    fps: PositiveFloat | None = Field(
        None, description="frames per second (before load_scale); a dependent model takes its root's"
    )
    arrival: ArrivalConfig = Field(default_factory=ArrivalConfig, description="how the frames arrive")
    depends_on: list[str] = Field(
        default_factory=list, description="upstream models whose output of the same frame this one runs on"
    )
    trigger_p: float = Field(
        1.0, ge=0.0, le=1.0, description="probability per upstream edge that a frame triggers this model"
    )
    deadline: Literal["next_frame", "none"] | PositiveFloat = Field(
        "next_frame", description="next_frame: the next frame's arrival; none; or seconds after arrival"
    )
    priority: NonNegativeFloat = Field(1.0, description="read by priority-aware schedulers")

    @field_validator("depends_on", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @field_validator("supernet")
    @classmethod
    def _known_supernet(cls, name: str | None) -> str | None:
        from workloads.supernet_names import SUPERNETS

        if name is not None and name not in SUPERNETS:
            raise ValueError(f"unknown supernet {name!r}; known: {', '.join(SUPERNETS)}")
        return name

    @model_validator(mode="after")
    def _task_or_name(self) -> ModelStream:
        if self.maestro is not None:
            if self.task is not None or self.supernet is not None or self.width is not None:
                raise ValueError("give maestro alone, without task, supernet or width")
            return self
        if self.supernet is not None:
            from workloads.supernet_names import supernet_widths

            if self.task is not None:
                raise ValueError("give either task or supernet, not both")
            widths = supernet_widths(self.supernet)
            if self.width is not None and self.width not in widths:
                raise ValueError(
                    f"width {self.width} is not a width of supernet {self.supernet}; "
                    f"widths: {', '.join(map(str, widths))}"
                )
            return self
        if self.width is not None:
            raise ValueError("width applies to a supernet model only")
        if self.task is None:
            if self.name not in TASKS and self.name not in registry.names("model"):
                raise ValueError(
                    f"model {self.name!r} is not a known task; set `task` to one of: "
                    f"{', '.join(registry.names('model'))} or a module:factory path"
                )
            self.__dict__["task"] = self.name  # a known name: no need to re-validate the whole model
        if self.task not in TASKS or self.task_kwargs or self.input_shape:  # a user's model: build and run it
            from workloads.xr.models import check_model

            try:
                check_model(
                    self.task, self.task_kwargs, tuple(self.input_shape) if self.input_shape else None
                )
            except ConfigError as exc:  # "task: ..." lines: fields of this model
                raise ValueError("; ".join(SUBFIELD_MARK + p for p in exc.problems)) from None
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
    drop_penalty: PositiveFloat = Field(
        1.0,
        description="UXCost: a dropped frame's delay is its latest completion plus this many frame budgets",
    )


class ReportConfig(StrictModel):
    gantt_window_s: tuple[NonNegativeFloat, PositiveFloat] = Field(
        (0.0, 0.2), description="[start, end] seconds of the run shown in the report's Gantt chart"
    )


def _vr_gaming() -> list[ModelStream]:
    return [
        ModelStream(name="eye_segmentation", fps=60),
        ModelStream(name="gaze_estimation", depends_on=["eye_segmentation"]),
        ModelStream(name="hand_tracking", fps=45),
    ]


class Phase(StrictModel):
    """At ``at_s``, models join (``add``) or leave (``remove``) the running set.

    A removed model's frames stop, and so do those of the models depending on it.
    """

    at_s: PositiveFloat = Field(
        description="seconds into the run, after the previous phase and before the end"
    )
    add: list[ModelStream] = Field(default_factory=list, description="models that start at at_s")
    remove: list[str] = Field(
        default_factory=list, description="running models that stop at at_s (with those depending on them)"
    )


class XRSpec(StrictModel):
    """A real-time multi-model scenario on a multi-accelerator system (XRBench semantics)."""

    kind: Literal["xr"] = Field("xr", description="scenario kind")
    name: str = Field(
        "vr_gaming", description="the run's name (default output folder runs/<name>-seed<seed>)"
    )
    seed: int = Field(0, ge=0, description="run seed: every random stream derives from it")
    duration_s: PositiveFloat = Field(2.0, description="simulated seconds of frame arrivals")
    integer_ms_period: bool = Field(
        True, description="round frame periods down to whole ms, as XRBench's runtime does"
    )
    runtime: Literal["exact", "xrbench"] = Field(
        "exact",
        description="frame injection: `exact` at each frame's own arrival; `xrbench` as the reference "
        "runtime: only at a tick of the fastest stream or a completion, no jitter, per-model queues "
        "served in name order, queued work drained after duration_s (docs/scenarios.md)",
    )
    load_scale: PositiveFloat = Field(
        1.0, description="multiplies every stream's fps (1.5: every model asks for 50% more frames)"
    )
    hardware: HardwareConfig = Field(
        default_factory=HardwareConfig, description="the accelerators (a preset or explicit list)"
    )
    scheduler: SchedulerRef = Field(
        default_factory=lambda: SchedulerRef(name="edf"),
        description="scheduling policy: which job runs where",
    )
    granularity: Literal["model", "layer_block"] = Field(
        "model", description="model: a started job runs to the end; layer_block: rescheduled after each block"
    )
    blocks_per_model: PositiveInt = Field(4, description="layer blocks per model at layer_block granularity")
    context_switch_s: NonNegativeFloat = Field(
        1e-5,
        description="cost of resuming a partly run job whose state left the accelerator (another job "
        "ran there since, or it moves): saving and restoring a block boundary's activations, "
        "assumed 2 x 640 KiB over one 128 B/cycle off-chip link at 1 GHz = 10 us",
    )
    service_time: VariationConfig = Field(
        default_factory=VariationConfig, description="per-job variation of the service time"
    )
    models: list[ModelStream] = Field(
        default_factory=_vr_gaming, min_length=1, description="the models running from the start"
    )
    phases: list[Phase] = Field(default_factory=list, description="times at which models join or leave")
    metrics: MetricsConfig = Field(
        default_factory=MetricsConfig, description="constants of the XRBench score and UXCost"
    )
    report: ReportConfig = Field(default_factory=ReportConfig, description="what the run's report shows")

    def streams(self) -> list[ModelStream]:
        """Every model of the run: the initial ones, then those the phases add, in order."""
        return [*self.models, *(m for phase in self.phases for m in phase.add)]

    def _where(self, name: str) -> str:
        """Field path of a model, for error messages."""
        for i, m in enumerate(self.models):
            if m.name == name:
                return f"models.{i}"
        for k, phase in enumerate(self.phases):
            for i, m in enumerate(phase.add):
                if m.name == name:
                    return f"phases.{k}.add.{i}"
        return "models"

    @model_validator(mode="after")
    def _dependencies(self) -> XRSpec:
        streams = self.streams()
        names = [m.name for m in streams]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"models: model names must be unique; repeated: {', '.join(dupes)}")
        for m in streams:
            for up in m.depends_on:
                if up not in names:
                    raise ValueError(
                        f"{self._where(m.name)}.depends_on: unknown model {up!r}; known: {', '.join(names)}"
                    )
                if up == m.name:
                    raise ValueError(f"{self._where(m.name)}.depends_on: {m.name!r} depends on itself")
        roots_by_model = _roots(tuple((m.name, tuple(m.depends_on)) for m in streams))
        for m in streams:
            roots = roots_by_model[m.name]
            where = self._where(m.name)
            if len(roots) > 1:
                raise ValueError(
                    f"{where}.depends_on: {m.name!r} descends from several sources "
                    f"({', '.join(roots)}); a dependency group must have one root"
                )
            if m.depends_on:
                root_fps = self.stream(roots[0]).fps
                if m.fps is not None and not math.isclose(m.fps, root_fps):
                    raise ValueError(
                        f"{where}.fps: {m.fps} differs from its root {roots[0]!r} ({root_fps}); "
                        "a dependent model runs once per upstream frame"
                    )
            elif m.fps is None:
                raise ValueError(f"{where}.fps: a model without depends_on needs fps > 0")
        self._check_phases()
        self._check_scheduler()
        self._check_simulable()
        return self

    def _check_simulable(self) -> None:
        """Frame streams the engine can run: jitter below the period, a bounded number of frames."""
        problems = [
            m.arrival.period_problem(
                self._period_of(m.fps), self.duration_s, f"{self._where(m.name)}.arrival"
            )
            for m in self.streams()
            if not m.depends_on
        ]
        problems = [p for p in problems if p]
        if problems:
            raise ValueError("; ".join(SUBFIELD_MARK + p for p in problems))

    def _check_phases(self) -> None:
        running = {m.name for m in self.models}
        last = 0.0
        for k, phase in enumerate(self.phases):
            if phase.at_s <= last or phase.at_s >= self.duration_s:
                raise ValueError(
                    f"phases.{k}.at_s: {phase.at_s} must be after the previous phase ({last}) "
                    f"and before duration_s ({self.duration_s})"
                )
            last = phase.at_s
            for name in phase.remove:
                if name not in running:
                    raise ValueError(
                        f"phases.{k}.remove: {name!r} is not running at {phase.at_s} s "
                        f"(running: {', '.join(sorted(running)) or 'none'})"
                    )
                running.discard(name)
            for m in phase.add:
                missing = [up for up in m.depends_on if up not in running]
                if missing:
                    where = self._where(m.name)
                    names = ", ".join(missing)
                    raise ValueError(f"{where}.depends_on: {names} not running at {phase.at_s} s")
                running.add(m.name)

    def _check_scheduler(self) -> None:
        """Let the scheduler check its params against this scenario (e.g. a placement table)."""
        check = getattr(registry.get("scheduling", self.scheduler.name), "check", None)
        if check is None:
            return
        policy = registry.get("scheduling", self.scheduler.name)
        params = policy.Params.model_validate(self.scheduler.params)
        accelerators = [a.name for a in self.hardware.build().accelerators]
        problems = check(params, accelerators, [m.name for m in self.streams()])
        if problems:
            raise ValueError("; ".join(f"{SUBFIELD_MARK}scheduler.params.{p}" for p in problems))

    def window_s(self, name: str) -> tuple[float, float]:
        """When a model runs: from its start (0 or its phase) until it or its root is removed."""
        start, stop = 0.0, math.inf
        for phase in self.phases:
            if any(m.name == name for m in phase.add):
                start = phase.at_s
            if name in phase.remove and phase.at_s >= start:
                stop = min(stop, phase.at_s)
        return start, stop

    def graph(self) -> nx.DiGraph:
        """Dependency DAG: an edge ``up -> down`` with attribute ``p`` (trigger probability)."""
        graph = nx.DiGraph()
        streams = self.streams()
        graph.add_nodes_from(m.name for m in streams)
        for m in streams:
            for up in m.depends_on:
                graph.add_edge(up, m.name, p=m.trigger_p)
        return graph

    def roots_of(self, name: str) -> list[str]:
        """The source models ``name`` descends from (itself if it has no ``depends_on``)."""
        return list(_roots(tuple((m.name, tuple(m.depends_on)) for m in self.streams()))[name])

    def stream(self, name: str) -> ModelStream:
        return next(m for m in self.streams() if m.name == name)

    def period_s(self, name: str) -> float:
        """Frame period of a model (its root's) at ``load_scale``, in whole ms if ``integer_ms_period``."""
        return self._period_of(self.stream(self.roots_of(name)[0]).fps)

    def _period_of(self, fps: float) -> float:
        fps *= self.load_scale
        if self.integer_ms_period:
            return math.floor(1000.0 / fps) / 1000.0 if fps <= 1000 else 1.0 / fps
        return 1.0 / fps
