"""Figures for the ``xr`` scenario kind: latency CDFs, accelerator timeline, energy, misses.

Each figure is a :class:`~matplotlib.figure.Figure` built without pyplot state. Large
tables are reduced with NumPy before anything is drawn (CDFs downsampled, the Gantt
window masked first, one ``broken_barh`` per accelerator and model), so a run with a
million frames renders in seconds. Empty inputs give a figure that says so instead
of raising. A model keeps its colour across all figures.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from sim.report import mark_no_data

DEFAULT_WINDOW_S = (0.0, 0.2)
MAX_CDF_POINTS = 2000

COLUMNS = {
    "frames": [
        "model", "frame", "arrival_s", "deadline_s", "start_s", "finish_s",
        "status", "late", "latency_s", "energy_j", "accel",
    ],
    "segments": [
        "accel", "accel_name", "model", "frame", "block_start", "block_end",
        "start_s", "end_s", "energy_j",
    ],
    "models": [
        "model", "fps", "frames", "completed", "dropped", "late", "in_flight",
        "drop_rate", "deadline_miss_rate", "latency_p50_s", "latency_p99_s",
        "energy_j", "score",
    ],
    "accelerators": [
        "accel", "name", "num_pes", "dataflow", "busy_s", "utilisation",
        "busy_energy_j", "idle_energy_j", "energy_j",
    ],
}  # fmt: skip

_IDLE_COLOUR = "0.85"
_UNATTRIBUTED_COLOUR = "0.55"
# rate column -> (bar offset in units of bar width, colour)
_RATES = {"drop_rate": (-0.5, "#4c72b0"), "deadline_miss_rate": (0.5, "#dd8452")}


def xr_figures(
    tables: dict[str, pd.DataFrame],
    summary: dict[str, float],
    gantt_window_s: tuple[float, float] | None = None,
) -> dict[str, Figure]:
    """The ``xr`` report figures by name: ``latency_cdf``, ``timeline``, ``energy``, ``misses``.

    A missing table counts as empty. ``summary``'s ``drop_rate`` and
    ``deadline_miss_rate``, when present, are drawn as run-wide reference lines.
    The timeline shows ``gantt_window_s`` (default the first 0.2 s).
    """
    frames, segments, models, accels = (_table(tables, n) for n in COLUMNS)
    colours = _model_colours(models, frames, segments)
    return {
        "latency_cdf": latency_cdf_figure(frames, colours),
        "timeline": timeline_figure(segments, frames, accels, colours, gantt_window_s or DEFAULT_WINDOW_S),
        "energy": energy_figure(segments, accels, colours),
        "misses": misses_figure(models, summary),
    }


def latency_cdf_figure(frames: pd.DataFrame, colours: dict[str, tuple]) -> Figure:
    """Empirical CDF of completed frames' latency per model, with dashed deadline budgets."""
    title = "Latency CDF of completed frames"
    latency = frames["latency_s"].to_numpy(float)
    done = frames[(frames["status"] == "completed").to_numpy() & np.isfinite(latency)]
    if done.empty:
        return _no_data(title, "no completed frames")
    by_model = {m: s.to_numpy(float) for m, s in done.groupby("model", observed=True)["latency_s"]}
    budgets = _deadline_budgets(frames)

    fig = Figure(figsize=(7.5, 4.5), layout="constrained")
    ax = fig.add_subplot()
    for model, colour in colours.items():
        lat = np.sort(by_model.get(model, np.empty(0)))
        if not len(lat):
            ax.plot([], [], color=colour, alpha=0.4, label=f"{model} (no completed frames)")
            continue
        # evenly spaced ranks keep the tail: the last rank (max latency) is always drawn
        idx = np.unique(np.linspace(0, len(lat) - 1, min(len(lat), MAX_CDF_POINTS)).astype(int))
        ax.step(
            lat[idx] * 1e3,
            (idx + 1) / len(lat),
            where="post",
            color=colour,
            label=f"{model} (n={len(lat):,})",
        )
        if model in budgets:
            ax.axvline(budgets[model] * 1e3, color=colour, linestyle="--", linewidth=1)
    handles, _ = ax.get_legend_handles_labels()
    if budgets:
        handles.append(Line2D([], [], color="0.3", linestyle="--", label="deadline budget"))
    ax.legend(handles=handles, loc="lower right", fontsize="small")
    ax.set(title=title, xlabel="latency (ms)", ylabel="fraction of completed frames", ylim=(0, 1.02))
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    return fig


def timeline_figure(
    segments: pd.DataFrame,
    frames: pd.DataFrame,
    accelerators: pd.DataFrame,
    colours: dict[str, tuple],
    window_s: tuple[float, float],
) -> Figure:
    """Gantt chart of execution per accelerator in ``window_s``, drops on their own row."""
    lo, hi = (float(t) for t in window_s)
    if not hi > lo:
        raise ValueError(f"gantt window {window_s} must end after it starts")
    scale, unit = (1e3, "ms") if hi - lo <= 2.0 else (1.0, "s")
    title = f"Accelerator timeline, {lo * scale:g}–{hi * scale:g} {unit}"

    start = segments["start_s"].to_numpy(float)
    end = segments["end_s"].to_numpy(float)
    seg = segments[(end > lo) & (start < hi)]
    finish = frames["finish_s"].to_numpy(float)
    drops = frames[(frames["status"] == "dropped").to_numpy() & (finish >= lo) & (finish <= hi)]

    names = _accel_names(accelerators, segments)
    if not names:
        return _no_data(title, "no accelerators")
    row = {accel: i for i, accel in enumerate(names)}
    drop_row = len(names)

    fig = Figure(figsize=(10, 1.0 + 0.55 * (len(names) + 1)), layout="constrained")
    ax = fig.add_subplot()
    seg_lo = np.clip(seg["start_s"].to_numpy(float), lo, hi) * scale
    seg_hi = np.clip(seg["end_s"].to_numpy(float), lo, hi) * scale
    for (accel, model), idx in seg.groupby(["accel", "model"], observed=True).indices.items():
        colour = colours[str(model)]
        # a same-colour edge keeps segments narrower than a pixel visible
        ax.broken_barh(
            np.column_stack((seg_lo[idx], seg_hi[idx] - seg_lo[idx])),
            (row[accel] - 0.4, 0.8),
            facecolors=colour,
            edgecolors=colour,
            linewidth=0.5,
        )
    drop_t = drops["finish_s"].to_numpy(float) * scale
    for model, idx in drops.groupby("model", observed=True).indices.items():
        ax.scatter(drop_t[idx], np.full(len(idx), drop_row), marker="x", s=25, color=colours[str(model)])

    ax.set_yticks(range(drop_row + 1), [*names.values(), "dropped"])
    ax.set_ylim(drop_row + 0.6, -0.6)
    ax.set_xlim(lo * scale, hi * scale)
    ax.set(title=title, xlabel=f"simulated time ({unit})")
    ax.grid(axis="x", alpha=0.3)
    if seg.empty and drops.empty:
        ax.text(
            0.5,
            0.5,
            "no execution or drops in this window",
            transform=ax.transAxes,
            ha="center",
            va="center",
            color="0.4",
        )
    handles = [Patch(color=c, label=m) for m, c in colours.items()]
    handles.append(Line2D([], [], color="0.3", marker="x", linestyle="", label="dropped frame"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    return fig


def energy_figure(segments: pd.DataFrame, accelerators: pd.DataFrame, colours: dict[str, tuple]) -> Figure:
    """Stacked energy per accelerator: busy energy per model, then idle energy.

    Busy energy the accelerators table records beyond what its segments account for
    is shown as "busy, unattributed", so each bar totals the accelerator's energy.
    """
    title = "Energy by accelerator"
    names = _accel_names(accelerators, segments, detail=True)
    if not names:
        return _no_data(title, "no accelerators")
    accels = list(names)
    busy = (
        segments.assign(energy_j=segments["energy_j"].astype(float))
        .groupby(["accel", "model"], observed=True)["energy_j"]
        .sum()
        .unstack(fill_value=0.0)
        .reindex(index=accels, fill_value=0.0)
    )
    acc = accelerators.set_index("accel")
    idle = acc["idle_energy_j"].astype(float).reindex(accels, fill_value=0.0).to_numpy()
    recorded = acc["busy_energy_j"].astype(float).reindex(accels, fill_value=0.0).to_numpy()
    attributed = busy.sum(axis=1).to_numpy() if busy.size else np.zeros(len(accels))
    unattributed = np.clip(recorded - attributed, 0.0, None)

    stacks = [(m, busy[m].to_numpy(), c) for m, c in colours.items() if m in busy.columns]
    total = attributed + idle
    if unattributed.max(initial=0.0) > 1e-9 * max(total.max(initial=0.0), 1e-30):
        stacks.append(("busy, unattributed", unattributed, _UNATTRIBUTED_COLOUR))
        total = total + unattributed
    stacks.append(("idle", idle, _IDLE_COLOUR))
    if not total.any():
        return _no_data(title, "no energy recorded")
    factor, unit = _energy_unit(float(total.max()))

    fig = Figure(figsize=(max(6.0, 1.4 * len(accels) + 3.0), 4.5), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(accels))
    bottom = np.zeros(len(accels))
    for label, values, colour in stacks:
        ax.bar(
            x,
            values * factor,
            0.6,
            bottom=bottom,
            color=colour,
            label=label,
            hatch="//" if label == "idle" else None,
            edgecolor="white",
            linewidth=0.5,
        )
        bottom += values * factor
    ax.bar_label(ax.containers[-1], labels=[f"{v:.3g}" for v in total * factor], fontsize="small")
    ax.set_xticks(x, list(names.values()), fontsize="small")
    ax.set(title=title, ylabel=f"energy ({unit})")
    ax.margins(y=0.1)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    return fig


def misses_figure(models: pd.DataFrame, summary: dict[str, float]) -> Figure:
    """Per-model drop rate and deadline-miss rate, with run-wide rates as dotted lines."""
    title = "Drops and deadline misses per model"
    if models.empty:
        return _no_data(title, "no models")
    fig = Figure(figsize=(max(6.0, 1.1 * len(models) + 3.0), 4.5), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(models))
    width = 0.38
    top = 0.0
    for key, (offset, colour) in _RATES.items():
        pct = models[key].to_numpy(float) * 100
        label = key.replace("_", " ")
        bars = ax.bar(x + offset * width, np.nan_to_num(pct), width, color=colour, label=label)
        ax.bar_label(bars, labels=["—" if np.isnan(v) else f"{v:.3g}%" for v in pct], fontsize="small")
        overall = summary.get(key)
        if overall is not None and np.isfinite(overall):
            ax.axhline(overall * 100, color=colour, linestyle=":", label=f"run {label}")
            top = max(top, overall * 100)
        top = max(top, np.nanmax(pct, initial=0.0))
    ax.set_xticks(
        x,
        models["model"].astype(str).tolist(),
        rotation=30 if len(models) > 6 else 0,
        ha="right" if len(models) > 6 else "center",
    )
    ax.set_ylim(0, max(top * 1.15, 1.0))
    ax.set(title=title, ylabel="% of frames")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def _table(tables: dict[str, pd.DataFrame], name: str) -> pd.DataFrame:
    """Table ``name``, or an empty one with its columns; a missing column is an error."""
    df = tables.get(name)
    if df is None:
        return pd.DataFrame(columns=COLUMNS[name])
    missing = [c for c in COLUMNS[name] if c not in df.columns]
    if missing:
        raise ValueError(f"table {name!r} lacks columns {missing}")
    return df


def _model_colours(*tables: pd.DataFrame) -> dict[str, tuple]:
    """One colour per model, in first-seen order over the given tables."""
    models = list(dict.fromkeys(m for t in tables for m in t["model"].astype(str).unique()))
    cmap = colormaps["tab10" if len(models) <= 10 else "tab20"]
    return {m: cmap(i % cmap.N) for i, m in enumerate(models)}


def _deadline_budgets(frames: pd.DataFrame) -> dict[str, float]:
    """Median relative deadline (deadline - arrival) per model, over finite deadlines."""
    budget = frames["deadline_s"].to_numpy(float) - frames["arrival_s"].to_numpy(float)
    finite = np.isfinite(budget)
    if not finite.any():
        return {}
    med = pd.Series(budget[finite]).groupby(frames["model"].to_numpy()[finite]).median()
    return {str(m): float(v) for m, v in med.items()}


def _accel_names(accelerators: pd.DataFrame, segments: pd.DataFrame, detail: bool = False) -> dict[int, str]:
    """Row labels by accelerator id, sorted; from the accelerators table, else segments."""
    names: dict[int, str] = {}
    for r in accelerators.itertuples(index=False):
        label = f"{r.accel}: {r.name}"
        names[int(r.accel)] = f"{label}\n{r.dataflow}, {r.num_pes} PEs" if detail else label
    pairs = segments[["accel", "accel_name"]].drop_duplicates("accel")
    for accel, name in pairs.itertuples(index=False):
        names.setdefault(int(accel), f"{accel}: {name}")
    return dict(sorted(names.items()))


def _energy_unit(peak_j: float) -> tuple[float, str]:
    """A factor and unit that keep the largest bar between 1 and 1000."""
    for factor, unit in ((1e-6, "MJ"), (1e-3, "kJ"), (1.0, "J"), (1e3, "mJ")):
        if peak_j * factor >= 1.0:
            return factor, unit
    return 1e6, "µJ"


def _no_data(title: str, note: str) -> Figure:
    fig = Figure(figsize=(6, 3), layout="constrained")
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.set_title(title)
    mark_no_data(ax, note)
    return fig
