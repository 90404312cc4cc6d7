"""Scenario kind ``market``: competing predictors that buy data to win users."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sim.kernel import Kernel
from sim.registry import deferred, register
from workloads.market.spec import MarketSpec

if TYPE_CHECKING:  # the world (torch) and the study (matplotlib) are imported when used
    from workloads.market.world import MarketWorld


@register("scenario", "market")
class MarketKind:
    """Competing PyTorch predictors that learn from their users and buy data (Kwon et al., TMLR 2022)."""

    Spec = MarketSpec
    run_modules = ("workloads.market.world",)  # imported before a run's clock starts
    report_tables = ("predictors", "market_over_time")
    headline_metrics = (
        "overall_quality",
        "qoe",
        "diversity",
        "market_share_hhi",
        "purchases",
        "budget_spent",
    )
    # which way each metric is better; diversity, purchases and budget spent have none
    # (spending nothing is not better, and diversity is a property, not a goal)
    metric_directions = {
        "market_share_hhi": "lower",
        **dict.fromkeys(("overall_quality", "qoe", "user_accuracy"), "higher"),
    }

    sweep_figures = staticmethod(deferred("workloads.market.study:sweep_figures"))
    sweep_tables = staticmethod(deferred("workloads.market.study:sweep_tables"))

    @staticmethod
    def prepare(spec: MarketSpec) -> None:
        """Read and check the data once, so a bad file stops a sweep before its workers start."""
        from workloads.market.data import load_data
        from workloads.market.world import check_fits, horizon

        check_fits(spec, load_data(spec.data))
        horizon(spec)

    @staticmethod
    def build(spec: MarketSpec, kernel: Kernel) -> MarketWorld:
        from workloads.market.world import MarketWorld

        return MarketWorld(spec, kernel)

    @staticmethod
    def figures(tables: dict[str, Any], summary: dict[str, float], spec: MarketSpec) -> dict[str, Any]:
        from workloads.market.figures import market_figures

        return market_figures(tables, summary)
