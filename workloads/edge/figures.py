"""Figures of an ``edge`` run: latency CDF with the deadlines, where requests exit, time at each
frequency, and each device's energy and frequency over time."""

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
        deadlines = tables["devices"].get("deadline_s", pd.Series(dtype=float))
        for k, deadline_s in enumerate(sorted(deadlines.unique())):
            ax.axvline(
                deadline_s * 1e3,
                color="grey",
                ls=(0, (4, 2 + k)),
                lw=1,
                label=f"deadline {deadline_s * 1e3:g} ms",
            )
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
    figures["energy_frequency"] = _energy_frequency(tables.get("trace"))
    return figures


def _energy_frequency(trace: pd.DataFrame | None, shown: int = 8) -> Figure:
    """Each device's energy drawn so far (top) and operating frequency (bottom) over the run,
    from the run's probe (``trace`` table), for the first ``shown`` devices."""
    fig = Figure(figsize=(5, 4.2), layout="constrained")
    energy_ax, freq_ax = fig.subplots(2, 1, sharex=True)
    if trace is None or not len(trace):
        mark_no_data(energy_ax, "no trace recorded")
    else:
        names = list(dict.fromkeys(trace["device"]))
        for name in names[:shown]:
            rows = trace[trace["device"] == name]
            (line,) = energy_ax.plot(rows["time_s"], rows["energy_j"], label=str(name))
            freq_ax.step(rows["time_s"], rows["freq_hz"] / 1e6, where="post", color=line.get_color())
        energy_ax.legend(fontsize=8)
        more = f" (first {shown} of {len(names)})" if len(names) > shown else ""
        energy_ax.set_title(f"device energy and frequency over time{more}")
    energy_ax.set_ylabel("energy so far (J)")
    freq_ax.set_ylabel("frequency (MHz)")
    freq_ax.set_xlabel("simulated time (s)")
    return fig
