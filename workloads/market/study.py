"""Sweep comparisons for ``market`` studies: quality and QoE against budget, per purchase policy.

The budget factor is the one whose key ends in ``budget`` (e.g. ``predictors.0.budget``),
the policy factor the one ending in ``purchase.name``; every other factor (such as
``scenario``) makes a separate cell. Changes from the smallest to the largest budget
are paired by seed: a seed fixes the seed data, the users and the initial parameters,
so the difference isolates the budget.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from sim.compare import ci95

METRICS = ("overall_quality", "qoe", "diversity")


def _roles(factors: list[str]) -> tuple[str | None, str | None, list[str]]:
    budget = next((f for f in factors if f.endswith("budget")), None)
    policy = next((f for f in factors if f.endswith("purchase.name")), None)
    return budget, policy, [f for f in factors if f not in (budget, policy)]


def _cells(done: pd.DataFrame, cell: list[str]) -> list[tuple[str, pd.DataFrame]]:
    if not cell:
        return [("all", done)]
    return [
        (", ".join(map(str, key if isinstance(key, tuple) else (key,))), part)
        for key, part in done.groupby(cell)
    ]


def sweep_figures(done: pd.DataFrame, factors: list[str]) -> dict[str, Figure]:
    budget, policy, cell = _roles(factors)
    if budget is None:
        return {}
    cells = _cells(done, cell)
    fig = Figure(figsize=(3.6 * len(METRICS), 2.9 * len(cells)), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(cells), len(METRICS)))
    for row, (name, part) in zip(axes, cells):
        series = list(part.groupby(policy)) if policy else [("all", part)]
        span = float(part[budget].max() - part[budget].min()) or 1.0
        for k, (label, runs) in enumerate(series):
            shift = (k - (len(series) - 1) / 2) * 0.012 * span  # side by side, so the bars stay legible
            for ax, metric in zip(row, METRICS):
                per_seed = runs.groupby([budget, "seed"])[metric].mean().reset_index()
                stats = per_seed.groupby(budget)[metric].agg(["mean", ci95]).reset_index()
                ax.errorbar(
                    stats[budget] + shift,
                    stats["mean"],
                    yerr=stats["ci95"].fillna(0),
                    marker="o",
                    capsize=3,
                    label=label,
                )
        for ax, metric in zip(row, METRICS):
            ax.set_title(f"{name}: {metric}", fontsize=9)
            ax.set_xlabel("budget per predictor")
        row[0].legend(fontsize=7, title=policy, title_fontsize=7)
    fig.suptitle("quality, QoE and diversity against budget (mean, 95% CI over seeds)", fontsize=10)
    return {"budget": fig}


def budget_effect(done: pd.DataFrame, factors: list[str]) -> pd.DataFrame:
    """Per cell and policy: each metric at the smallest and the largest budget, and the change
    between them (mean over seeds of the per-seed difference, with its 95% CI)."""
    budget, policy, cell = _roles(factors)
    rows = []
    for name, part in _cells(done, cell):
        low, high = part[budget].min(), part[budget].max()
        for label, runs in part.groupby(policy) if policy else [("all", part)]:
            per_seed = runs.groupby([budget, "seed"])[list(METRICS)].mean()
            if low not in per_seed.index or high not in per_seed.index:
                continue
            diff = (per_seed.loc[high] - per_seed.loc[low]).dropna()
            row = {"cell": name, "policy": label, "budgets": f"{low:g} -> {high:g}", "seeds": len(diff)}
            for metric in METRICS:
                row[f"{metric} at {low:g}"] = round(per_seed.loc[low][metric].mean(), 4)
                row[f"{metric} at {high:g}"] = round(per_seed.loc[high][metric].mean(), 4)
                row[f"{metric} change"] = f"{diff[metric].mean():+.4f} ± {ci95(diff[metric]):.4f}"
            rows.append(row)
    return pd.DataFrame(rows)


def sweep_tables(done: pd.DataFrame, factors: list[str]) -> dict[str, pd.DataFrame]:
    budget, _, _ = _roles(factors)
    if budget is None:
        return {}
    return {
        "change from the smallest to the largest budget (95% CI over seeds)": budget_effect(done, factors)
    }
