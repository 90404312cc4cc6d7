"""Scenario kind ``federated``: clients on heterogeneous devices train a real model in rounds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sim.kernel import Kernel
from sim.registry import deferred, register
from workloads.federated.spec import FederatedSpec

if TYPE_CHECKING:  # the world (torch, pandas) and the study hooks are imported when used
    from workloads.federated.world import FederatedWorld


@register("scenario", "federated")
class FederatedKind:
    """Federated learning as a system: selection, download, local training, upload, aggregation."""

    Spec = FederatedSpec
    run_modules = ("workloads.federated.world", "networkx")  # imported before a run's clock starts
    report_tables = ("curve", "stop")
    headline_metrics = (
        "final_accuracy",
        "time_to_target_s",
        "sim_time_s",
        "client_energy_j",
        "bytes_up",
        "dropped_updates",
    )
    # which way each metric is better; rounds and participations have none
    metric_directions = {
        **dict.fromkeys(
            (
                "time_to_target_s",
                "sim_time_s",
                "mean_round_s",
                "bytes_up",
                "bytes_down",
                "dropped_updates",
                "client_energy_j",
            ),
            "lower",
        ),
        **dict.fromkeys(("final_accuracy", "best_accuracy"), "higher"),
    }

    sweep_figures = staticmethod(deferred("workloads.federated.study:sweep_figures"))
    sweep_tables = staticmethod(deferred("workloads.federated.study:sweep_tables"))

    @staticmethod
    def build(spec: FederatedSpec, kernel: Kernel) -> FederatedWorld:
        from workloads.federated.world import FederatedWorld

        return FederatedWorld(spec, kernel)

    @staticmethod
    def figures(tables: dict[str, Any], summary: dict[str, float], spec: FederatedSpec) -> dict[str, Any]:
        from workloads.federated.figures import federated_figures

        return federated_figures(tables, summary, spec.target_accuracy)
