"""Sweep comparisons for ``edge`` studies: Pareto fronts and Predictive Exit's headline reductions.

Policies are compared within a *cell*: one combination of the factors other than the
exit policy, the governor and the seed (device preset, load, ...), averaged over seeds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

EXIT, DVFS = "exit_policy.name", "dvfs.name"
PREDICTIVE = ("predictive_exit", "predictive")
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


def headline(
    done: pd.DataFrame, factors: list[str], accuracy_tol: float = 0.005, miss_tol: float = 0.005
) -> pd.DataFrame:
    """Per cell: Predictive Exit + predictive DVFS against the plain network and against the
    lowest-energy classic early exit (any governor) whose accuracy is at least ours minus
    ``accuracy_tol`` and whose deadline-miss rate is at most ours plus ``miss_tol``: our change
    in energy and FLOPs per inference (negative = ours is lower)."""
    means, cell = _cells(done, factors)
    rows = []
    for key, points in means.groupby(cell, dropna=False) if cell else [("all", means)]:
        ours = points[(points[EXIT] == PREDICTIVE[0]) & (points[DVFS] == PREDICTIVE[1])]
        if ours.empty:
            continue
        ours = ours.iloc[0]
        row = {
            "cell": str(key),
            "accuracy": round(ours["accuracy"], 4),
            "deadline_miss_rate": round(ours["deadline_miss_rate"], 4),
        }
        for label, pool in (
            ("plain (none, performance)", points[(points[EXIT] == "none") & (points[DVFS] == "performance")]),
            (
                "best classic at equal accuracy and misses",
                points[
                    points[EXIT].isin(CLASSIC)
                    & (points["accuracy"] >= ours["accuracy"] - accuracy_tol)
                    & (points["deadline_miss_rate"] <= ours["deadline_miss_rate"] + miss_tol)
                ],
            ),
        ):
            if pool.empty:
                row[f"vs {label}"] = "no comparable run"
                continue
            best = pool.loc[pool["energy_per_inference_j"].idxmin()]
            energy = 100 * (ours["energy_per_inference_j"] / best["energy_per_inference_j"] - 1)
            flops = 100 * (ours["flops_per_inference"] / best["flops_per_inference"] - 1)
            row[f"vs {label}"] = (
                f"{best[EXIT]}+{best[DVFS]} (acc {best['accuracy']:.4f}, misses "
                f"{best['deadline_miss_rate']:.4f}): ours energy {energy:+.1f}%, FLOPs {flops:+.1f}%"
            )
        rows.append(row)
    return pd.DataFrame(rows)


def sweep_tables(done: pd.DataFrame, factors: list[str]) -> dict[str, pd.DataFrame]:
    if EXIT not in factors or DVFS not in factors:
        return {}
    return {"predictive exit + predictive DVFS: reductions": headline(done, factors)}
