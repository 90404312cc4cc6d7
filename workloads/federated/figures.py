"""Figures of a ``federated`` run: accuracy over simulated time and rounds, losses over
rounds, a client timeline."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure

PHASES = (("start_s", "download_end_s", "tab:blue"), ("download_end_s", "compute_end_s", "tab:orange"))
OUTCOME_MARKS = {"dropped": ("x", "tab:red"), "straggler": ("|", "tab:purple"), "late": ("|", "tab:brown")}


def federated_figures(
    tables: dict[str, pd.DataFrame], summary: dict[str, float], target_accuracy: float, rounds_shown: int = 6
) -> dict[str, Figure]:
    curve, trips = tables["curve"], tables["participation"]
    figures = {}
    for x, label in (("time_s", "simulated time (s)"), ("round", "round (aggregations)")):
        fig = Figure(figsize=(5, 3.2), layout="constrained")
        ax = fig.subplots()
        ax.plot(curve[x], curve["accuracy"], marker="o", ms=3)
        ax.axhline(target_accuracy, color="grey", ls=":", lw=1, label=f"target {target_accuracy:g}")
        ax.set_xlabel(label)
        ax.set_ylabel("test accuracy")
        ax.set_title(f"accuracy against {label.split(' (')[0]}")
        ax.legend(fontsize=8)
        figures[f"accuracy_vs_{x.removesuffix('_s')}"] = fig

    fig = Figure(figsize=(5, 3.2), layout="constrained")
    ax = fig.subplots()
    ax.plot(curve["round"], curve["test_loss"], marker="o", ms=3, label="test")
    ax.plot(curve["round"], curve["train_loss"], marker="s", ms=3, label="clients (model downloaded)")
    ax.set_xlabel("round (aggregations)")
    ax.set_ylabel("cross-entropy loss")
    ax.set_title("loss against round")
    ax.legend(fontsize=8)
    figures["loss_vs_round"] = fig

    shown = trips[trips["version"] < rounds_shown].reset_index(drop=True)
    fig = Figure(figsize=(7, 0.6 + 0.045 * max(len(shown), 20)), layout="constrained")
    ax = fig.subplots()
    rows = range(len(shown))
    end = shown[["arrive_s", "drop_s"]].min(axis=1)
    for begin, finish, colour in PHASES:
        stop = shown[finish].clip(upper=end)
        _bars(ax, rows, shown[begin], (stop - shown[begin]).clip(lower=0), colour)
    upload = (end - shown["compute_end_s"]).clip(lower=0)
    _bars(ax, rows, shown["compute_end_s"], upload, "tab:green")
    ax.autoscale_view()
    for outcome, (marker, colour) in OUTCOME_MARKS.items():
        hit = shown["outcome"] == outcome
        ax.scatter(end[hit], shown.index[hit], marker=marker, color=colour, s=18, label=outcome, zorder=3)
    for t in curve["time_s"].iloc[1 : rounds_shown + 1]:
        ax.axvline(t, color="black", lw=0.6, ls="--")
    ax.invert_yaxis()
    ax.set_yticks([])
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel("participations")
    ax.set_title(
        f"first {rounds_shown} rounds: download (blue), training (orange), upload (green); "
        "dashed: aggregations",
        fontsize=8,
    )
    ax.legend(fontsize=7, loc="lower right")
    figures["client_timeline"] = fig
    return figures


def _bars(ax, rows, left, width, colour: str, height: float = 0.8) -> None:
    """Horizontal bars as one collection: ``barh`` makes a patch per bar, and hundreds of
    participations then take seconds to add and draw."""
    y, x0 = np.asarray(rows, float), np.asarray(left, float)
    x1 = x0 + np.asarray(width, float)
    low, high = y - height / 2, y + height / 2
    corners = np.stack([np.c_[x0, low], np.c_[x0, high], np.c_[x1, high], np.c_[x1, low]], axis=1)
    ax.add_collection(PolyCollection(corners, facecolors=colour, edgecolors="none"))
