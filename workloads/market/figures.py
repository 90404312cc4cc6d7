"""Figures of a ``market`` run: market share over time, quality over time, and specialisation."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from sim.report import mark_no_data

MAX_POINTS = 400  # points per curve over the users


def market_share_figure(users: pd.DataFrame, names: list[str]) -> Figure:
    """Cumulative share of users won by each predictor, over the users (stacked)."""
    fig = Figure(figsize=(6, 3.4), layout="constrained")
    ax = fig.subplots()
    if len(users):
        chosen = users["predictor"].to_numpy()
        won = np.zeros((len(names), len(chosen)))
        won[chosen, np.arange(len(chosen))] = 1
        keep = np.unique(np.linspace(0, len(chosen) - 1, min(len(chosen), MAX_POINTS)).astype(int))
        share = won.cumsum(1)[:, keep] / (keep + 1)
        ax.stackplot(keep + 1, share, labels=names)
        ax.set_xlim(1, len(chosen))
        ax.set_ylim(0, 1)
        if len(names) <= 20:
            ax.legend(fontsize=6, ncol=2, loc="center left", bbox_to_anchor=(1.0, 0.5))
    else:
        mark_no_data(ax, "no users")
    ax.set_xlabel("users so far")
    ax.set_ylabel("cumulative market share")
    ax.set_title("market share over time")
    return fig


def quality_figure(market: pd.DataFrame, over_time: pd.DataFrame, summary: dict[str, float]) -> Figure:
    """Overall quality, QoE and diversity at the checkpoints, and each predictor's accuracy."""
    fig = Figure(figsize=(9, 3.4), layout="constrained")
    left, right = fig.subplots(1, 2)
    if len(market):
        for metric in ("overall_quality", "qoe"):
            left.plot(market["users"], market[metric], marker="o", ms=3, label=metric)
        # diversity is not a 0-1 quality: its own axis, its own label
        twin = left.twinx()
        twin.plot(
            market["users"], market["diversity"], marker="s", ms=3, ls="--", color="C2", label="diversity"
        )
        twin.set_ylabel("diversity (mean entropy, nats)", color="C2")
        handles = [*left.get_legend_handles_labels()[0], *twin.get_legend_handles_labels()[0]]
        left.legend(handles=handles, fontsize=7)
        for name, group in over_time.groupby("predictor", sort=False):
            right.plot(group["users"], group["accuracy"], lw=0.8, label=str(name))
    else:
        mark_no_data(left, "no checkpoints")
        mark_no_data(right, "no checkpoints")
    left.set_title(
        f"market on the test set (final quality {summary.get('overall_quality', np.nan):.3f}, "
        f"QoE {summary.get('qoe', np.nan):.3f})",
        fontsize=9,
    )
    left.set_xlabel("users so far")
    left.set_ylabel("quality, QoE (0-1)")
    right.set_title("test accuracy of each predictor", fontsize=9)
    right.set_xlabel("users so far")
    right.set_ylabel("accuracy")
    return fig


def specialisation_figure(table: pd.DataFrame, names: list[str]) -> Figure:
    """Accuracy of each predictor by class and by region of the input space (final models)."""
    fig = Figure(figsize=(9, 0.8 + 0.22 * max(len(names), 4)), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, by in zip(axes, ("class", "region")):
        part = table[table["by"] == by]
        if part.empty:
            mark_no_data(ax, f"no {by} data")
            continue
        grid = part.pivot(index="predictor", columns="group", values="accuracy").reindex(names)
        image = ax.imshow(grid.to_numpy(), aspect="auto", vmin=0, vmax=1, cmap="viridis")
        ax.set_xticks(range(grid.shape[1]), grid.columns, fontsize=7)
        ax.set_yticks(range(len(names)), names, fontsize=6)
        ax.set_xlabel(by)
        ax.set_title(f"accuracy by {by}", fontsize=9)
        fig.colorbar(image, ax=ax, shrink=0.8)
    return fig


def market_figures(tables: dict[str, pd.DataFrame], summary: dict[str, float]) -> dict[str, Figure]:
    names = tables["predictors"]["predictor"].astype(str).tolist()
    return {
        "market_share": market_share_figure(tables["users"], names),
        "quality": quality_figure(tables["market_over_time"], tables["over_time"], summary),
        "specialisation": specialisation_figure(tables["specialisation"], names),
    }
