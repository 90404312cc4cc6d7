"""Scenario kind ``xr``: real-time multi-model inference on a multi-accelerator system."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sim.kernel import Kernel
from sim.registry import deferred, register
from workloads.xr.spec import XRSpec

if TYPE_CHECKING:  # the world (torch, pandas) and the study (matplotlib) are imported when used
    from workloads.xr.world import XRWorld


@register("scenario", "xr")
class XRKind:
    """Real-time multi-model XR inference on multi-accelerator hardware (XRBench semantics)."""

    Spec = XRSpec
    run_modules = ("workloads.xr.world",)  # imported before a run's clock starts
    report_tables = ("models", "accelerators")
    sweep_tables = staticmethod(deferred("workloads.xr.study:sweep_tables"))
    profile = staticmethod(deferred("workloads.xr.profile:profile_to_csv"))  # `testbed profile`

    headline_metrics = (
        "uxcost",
        "xrbench_score",
        "deadline_miss_rate",
        "drop_rate",
        "energy_j",
        "latency_p99_s",
    )
    # which way each metric is better ("lower" or "higher"); counts and utilisation have none
    metric_directions = {
        **dict.fromkeys(
            (
                "uxcost",
                "edp",
                "deadline_miss_rate",
                "drop_rate",
                "energy_j",
                "energy_per_frame_j",
                "energy_per_completed_j",
                "latency_p50_s",
                "latency_p99_s",
                "latency_mean_s",
                "dropped",
                "late",
            ),
            "lower",
        ),
        **dict.fromkeys(("xrbench_score", "accuracy", "completed"), "higher"),
    }

    @staticmethod
    def prepare(spec: XRSpec) -> None:
        """Trace the models and train the supernets once, before a sweep starts its workers."""
        from workloads.supernet import load_supernet
        from workloads.xr.models import task_layers

        for stream in spec.streams():
            if stream.supernet is not None:
                load_supernet(stream.supernet)
            elif stream.task is not None:  # a MAESTRO network is read when the world is built
                task_layers(stream.task, stream.task_kwargs, stream.input_shape)

    @staticmethod
    def build(spec: XRSpec, kernel: Kernel) -> XRWorld:
        from workloads.xr.world import XRWorld

        return XRWorld(spec, kernel)

    @staticmethod
    def figures(tables: dict[str, Any], summary: dict[str, float], spec: XRSpec) -> dict[str, Any]:
        from workloads.xr.figures import xr_figures

        return xr_figures(tables, summary, spec.report.gantt_window_s)
