"""Scenario kind ``edge``: inference requests with deadlines on DVFS edge devices, with early exits."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sim.kernel import Kernel
from sim.registry import deferred, register
from workloads.edge.models import EXIT_MODELS, PRUNED_MODELS
from workloads.edge.spec import EdgeSpec

if TYPE_CHECKING:  # the world (torch, pandas) and the study hooks are imported when used
    from workloads.edge.world import EdgeWorld


@register("scenario", "edge")
class EdgeKind:
    """Multi-exit inference on battery-powered DVFS edge devices (early exit, Predictive Exit)."""

    Spec = EdgeSpec
    run_modules = ("workloads.edge.world",)  # imported before a run's clock starts
    report_tables = ("devices", "exits")
    headline_metrics = (
        "energy_per_inference_j",
        "accuracy",
        "flops_per_inference",
        "deadline_miss_rate",
        "latency_p99_s",
        "mean_exit_index",
    )
    # which way each metric is better; the exit index, the accuracy interval's width and
    # counts of requests have none
    metric_directions = {
        **dict.fromkeys(
            (
                "energy_j",
                "energy_per_inference_j",
                "active_energy_per_inference_j",
                "idle_energy_per_inference_j",
                "flops_per_inference",
                "deadline_miss_rate",
                "latency_p50_s",
                "latency_p99_s",
                "unserved",
            ),
            "lower",
        ),
        **dict.fromkeys(("accuracy", "completed", "battery_depleted_at_s"), "higher"),
    }

    sweep_figures = staticmethod(deferred("workloads.edge.study:sweep_figures"))
    sweep_tables = staticmethod(deferred("workloads.edge.study:sweep_tables"))
    profile = staticmethod(deferred("workloads.edge.profile:profile_to_csv"))  # `testbed profile`
    profile_models = EXIT_MODELS + PRUNED_MODELS  # names `testbed profile` gives this kind unasked

    @staticmethod
    def prepare(spec: EdgeSpec) -> None:
        """Train the model and fill its inference cache once, before a sweep starts its workers."""
        from workloads.edge.models import load_model

        load_model(spec.model, spec.model_kwargs, spec.dataset)

    @staticmethod
    def build(spec: EdgeSpec, kernel: Kernel) -> EdgeWorld:
        from workloads.edge.world import EdgeWorld

        return EdgeWorld(spec, kernel)

    @staticmethod
    def figures(tables: dict[str, Any], summary: dict[str, float], spec: EdgeSpec) -> dict[str, Any]:
        from workloads.edge.figures import edge_figures

        return edge_figures(tables, summary)
