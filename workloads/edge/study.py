"""Sweep comparisons for ``edge`` studies: Pareto fronts and Predictive Exit's headline reductions.

Policies are compared within a *cell*: one combination of the factors other than the
exit policy, the governor and the seed (device preset, load, ...), averaged over seeds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import stats

EXIT, DVFS = "exit_policy.name", "dvfs.name"
PREDICTIVE = ("predictive_exit", "predictive")
OURS = (PREDICTIVE, ("predictive_exit", "performance"))  # Predictive Exit with its DVFS and without
CLASSIC = ("entropy", "max_softmax", "patience", "budgeted")
METRICS = ["accuracy", "energy_per_inference_j", "flops_per_inference", "deadline_miss_rate"]


def _cells(done: pd.DataFrame, factors: list[str]) -> tuple[pd.DataFrame, list[str]]:
    cell = [f for f in factors if f not in (EXIT, DVFS)]
    means = done.groupby([*cell, EXIT, DVFS], dropna=False)[METRICS].mean().reset_index()
    return means, cell


def pareto(points: pd.DataFrame, x: str) -> pd.Series:
    """True for points no other point beats on both ``x`` (lower) and accuracy (higher)."""
    xs, ys = points[x].to_numpy(), points["accuracy"].to_numpy()
    dominated = (
        (xs[None, :] <= xs[:, None])
        & (ys[None, :] >= ys[:, None])
        & ((xs[None, :] < xs[:, None]) | (ys[None, :] > ys[:, None]))
    ).any(axis=1)
    return pd.Series(~dominated, index=points.index)


def sweep_figures(done: pd.DataFrame, factors: list[str]) -> dict[str, Figure]:
    if EXIT not in factors or DVFS not in factors:
        return {}
    means, cell = _cells(done, factors)
    groups = list(means.groupby(cell, dropna=False)) if cell else [("all", means)]
    figures = {}
    for x, label in (
        ("energy_per_inference_j", "energy per inference (mJ)"),
        ("flops_per_inference", "MFLOPs per inference"),
    ):
        scale = 1e3 if x.startswith("energy") else 1e-6
        fig = Figure(figsize=(4.2 * len(groups), 3.8), layout="constrained")
        axes = np.atleast_1d(fig.subplots(1, len(groups)))
        for ax, (key, points) in zip(axes, groups):
            front = pareto(points, x)
            for name, sub in points.groupby(EXIT):
                ax.scatter(sub[x] * scale, sub["accuracy"], label=name, s=22)
            ordered = points[front].sort_values(x)
            ax.plot(ordered[x] * scale, ordered["accuracy"], color="black", lw=0.8, ls="--")
            ax.set_xlabel(label)
            ax.set_title(str(key), fontsize=8)
        axes[0].set_ylabel("accuracy")
        axes[0].legend(fontsize=7)
        fig.suptitle(
            f"accuracy against {label}: every exit policy x governor (dashed: Pareto front)", fontsize=9
        )
        figures[f"pareto_{x}"] = fig
    return figures


def _seeds(runs: pd.DataFrame, exit_name: str, governor: str) -> pd.DataFrame:
    return runs[(runs[EXIT] == exit_name) & (runs[DVFS] == governor)]


def paired_change(ours: pd.DataFrame, other: pd.DataFrame, metric: str) -> tuple[float, float]:
    """Mean over seeds of ``100 * (ours / other - 1)`` for ``metric``, paired by seed, and the
    95 % t half-width (nan with fewer than two seeds in common)."""
    pairs = (
        ours.set_index("seed")[metric]
        .to_frame("ours")
        .join(other.set_index("seed")[metric].to_frame("other"), how="inner")
    )
    change = 100 * (pairs["ours"] / pairs["other"] - 1)
    n = len(change)
    half = stats.t.ppf(0.975, n - 1) * change.std(ddof=1) / np.sqrt(n) if n > 1 else np.nan
    return float(change.mean()), float(half)


def headline(
    done: pd.DataFrame, factors: list[str], accuracy_tol: float = 0.005, miss_tol: float = 0.005
) -> pd.DataFrame:
    """Per cell and per Predictive Exit variant (with its DVFS, and at ``performance``): its
    change in energy and FLOPs per inference against the plain network and against the
    lowest-energy classic early exit (any governor) whose mean accuracy is at least ours minus
    ``accuracy_tol`` and whose deadline-miss rate is at most ours plus ``miss_tol``; each change
    paired over seeds with its 95 % t interval (negative = ours is lower)."""
    means, cell = _cells(done, factors)
    by_cell = dict(iter(done.groupby(cell, dropna=False))) if cell else {}
    rows = []
    for key, points in means.groupby(cell, dropna=False) if cell else [("all", means)]:
        runs = by_cell[key] if cell else done

        for variant in OURS:
            ours = points[(points[EXIT] == variant[0]) & (points[DVFS] == variant[1])]
            if ours.empty:
                continue
            ours = ours.iloc[0]
            row = {
                "cell": str(key),
                "ours": "+".join(variant),
                "accuracy": round(ours["accuracy"], 4),
                "deadline_miss_rate": round(ours["deadline_miss_rate"], 4),
            }
            pools = (
                (
                    "plain (none, performance)",
                    points[(points[EXIT] == "none") & (points[DVFS] == "performance")],
                ),
                (
                    "best classic at equal accuracy and misses",
                    points[
                        points[EXIT].str.split("(").str[0].isin(CLASSIC)  # budgeted(q=1.5) too
                        & (points["accuracy"] >= ours["accuracy"] - accuracy_tol)
                        & (points["deadline_miss_rate"] <= ours["deadline_miss_rate"] + miss_tol)
                    ],
                ),
            )
            for label, pool in pools:
                if pool.empty:
                    row[f"vs {label}"] = "no comparable run"
                    continue
                best = pool.loc[pool["energy_per_inference_j"].idxmin()]
                a, b = _seeds(runs, *variant), _seeds(runs, best[EXIT], best[DVFS])
                energy, flops = (
                    paired_change(a, b, m) for m in ("energy_per_inference_j", "flops_per_inference")
                )
                row[f"vs {label}"] = (
                    f"{best[EXIT]}+{best[DVFS]} (acc {best['accuracy']:.4f}, misses "
                    f"{best['deadline_miss_rate']:.4f}): ours energy {energy[0]:+.1f}% +-{energy[1]:.1f}, "
                    f"FLOPs {flops[0]:+.1f}% +-{flops[1]:.1f}"
                )
            rows.append(row)
    return pd.DataFrame(rows)


def sweep_tables(done: pd.DataFrame, factors: list[str]) -> dict[str, pd.DataFrame]:
    if EXIT not in factors or DVFS not in factors:
        return {}
    return {"predictive exit against plain and classic exits (paired over seeds)": headline(done, factors)}
