"""Figures of an ``edge`` run: latency CDF, where requests exit, time at each frequency."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from sim.report import mark_no_data


def edge_figures(tables: dict[str, pd.DataFrame], summary: dict[str, float]) -> dict[str, Figure]:
    req, exits, points = tables["requests"], tables["exits"], tables["points"]
    figures = {}

    fig = Figure(figsize=(5, 3.2), layout="constrained")
    ax = fig.subplots()
    if len(req):
        for name, group in req.groupby("device_name", observed=True):
            values = np.sort(group["latency_s"].to_numpy()) * 1e3
            keep = np.unique(np.linspace(0, values.size - 1, min(values.size, 2000)).astype(int))
            ax.plot(values[keep], (keep + 1) / values.size, label=str(name))
        ax.legend(fontsize=8)
    else:
        mark_no_data(ax, "no completed requests")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("share of requests")
    ax.set_title("request latency CDF")
    figures["latency_cdf"] = fig

    fig = Figure(figsize=(5, 3.2), layout="constrained")
    ax = fig.subplots()
    if len(exits):
        share = exits["requests"] / exits["requests"].sum()
        ax.bar(exits["exit"], share, color="#4c72b0")
        for x, s, acc in zip(exits["exit"], share, exits["accuracy"]):
            ax.text(x, s, f"acc {acc:.2f}", ha="center", va="bottom", fontsize=8)
        ax.set_xticks(exits["exit"])
    else:
        mark_no_data(ax, "no completed requests")
    ax.set_xlabel("exit index")
    ax.set_ylabel("share of requests")
    ax.set_title(f"where requests exit (accuracy {summary.get('accuracy', float('nan')):.3f})")
    figures["exits"] = fig

    fig = Figure(figsize=(5, 3.2), layout="constrained")
    ax = fig.subplots()
    if len(points) and points["busy_s"].sum() > 0:
        for name, group in points.groupby("device", sort=False):
            ax.plot(group["freq_hz"] / 1e6, group["busy_s"], marker="o", label=str(name))
        ax.legend(fontsize=8)
    else:
        mark_no_data(ax, "no busy time")
    ax.set_xlabel("frequency (MHz)")
    ax.set_ylabel("busy time (s)")
    ax.set_title("time busy at each operating point")
    figures["frequencies"] = fig
    return figures
