"""Figures of a ``market`` run: market share over time, quality over time, and specialisation.

Margins are set in inches from the widest predictor name (font metrics, no drawing)
instead of by a layout engine: constrained layout draws each figure twice, which was
about 40 % of a one-episode report's time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.textpath import text_to_path

from sim.report import mark_no_data

MAX_POINTS = 400  # points per curve over the users
POINT_IN = 1 / 72


def _width_in(texts: list[str], size: float) -> float:
    """Width in inches of the widest of ``texts`` at font ``size`` points."""
    prop = FontProperties(size=size)
    widths = [text_to_path.get_text_width_height_descent(t, prop, ismath=False)[0] for t in texts]
    return max(widths, default=0.0) * POINT_IN


def _legend_in(names: list[str], size: float, ncol: int) -> float:
    """Width in inches of a legend of ``names`` in ``ncol`` columns at font ``size`` beside its
    axes: matplotlib's default handle length, paddings and column spacing."""
    return _width_in(names, size) * ncol + size * POINT_IN * (2.8 * ncol + 2.0 * (ncol - 1) + 1.3)


def _margins(
    fig: Figure, left: float, right: float, bottom: float, top: float, cols: int = 1, wspace: float = 0.0
) -> None:
    """Place a row of ``cols`` subplots ``left``, ``right``, ``bottom`` and ``top`` inches from
    the figure's edges, ``wspace`` inches apart."""
    width, height = fig.get_size_inches()
    axes_in = (width - left - right - wspace * (cols - 1)) / cols
    fig.subplots_adjust(
        left=left / width,
        right=1 - right / width,
        bottom=bottom / height,
        top=1 - top / height,
        wspace=wspace / max(axes_in, 0.1),
    )


def market_share_figure(users: pd.DataFrame, names: list[str]) -> Figure:
    """Cumulative share of users won by each predictor, over the users (stacked)."""
    fig = Figure(figsize=(6, 3.4))
    ax = fig.subplots()
    legend = len(users) > 0 and len(names) <= 20
    _margins(fig, 0.6, _legend_in(names, 6, 2) + 0.1 if legend else 0.2, 0.5, 0.3)
    if len(users):
        chosen = users["predictor"].to_numpy()
        won = np.zeros((len(names), len(chosen)))
        won[chosen, np.arange(len(chosen))] = 1
        keep = np.unique(np.linspace(0, len(chosen) - 1, min(len(chosen), MAX_POINTS)).astype(int))
        share = won.cumsum(1)[:, keep] / (keep + 1)
        ax.stackplot(keep + 1, share, labels=names)
        ax.set_xlim(1, len(chosen))
        ax.set_ylim(0, 1)
        if legend:
            ax.legend(fontsize=6, ncol=2, loc="center left", bbox_to_anchor=(1.0, 0.5))
    else:
        mark_no_data(ax, "no users")
    ax.set_xlabel("users so far")
    ax.set_ylabel("cumulative market share")
    ax.set_title("market share over time")
    return fig


def quality_figure(market: pd.DataFrame, over_time: pd.DataFrame, summary: dict[str, float]) -> Figure:
    """Overall quality, QoE and diversity at the checkpoints, and each predictor's accuracy."""
    fig = Figure(figsize=(9, 3.4))
    left, right = fig.subplots(1, 2)
    _margins(fig, 0.65, 0.15, 0.5, 0.3, cols=2, wspace=1.4)  # the gap holds the diversity axis
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
    fig = Figure(figsize=(9, 0.8 + 0.22 * max(len(names), 4)))
    axes = fig.subplots(1, 2, sharey=True)
    _margins(fig, _width_in(names, 6) + 0.25, 0.75, 0.45, 0.3, cols=2, wspace=0.15)
    image = None
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
    if image is not None:
        fig.colorbar(image, ax=axes, fraction=0.03, pad=0.015, label="test accuracy")
    return fig


def market_figures(tables: dict[str, pd.DataFrame], summary: dict[str, float]) -> dict[str, Figure]:
    names = tables["predictors"]["predictor"].astype(str).tolist()
    return {
        "market_share": market_share_figure(tables["users"], names),
        "quality": quality_figure(tables["market_over_time"], tables["over_time"], summary),
        "specialisation": specialisation_figure(tables["specialisation"], names),
    }
