"""Sweep comparisons for ``xr`` studies: the scheduler table, the method against every
baseline per load, its ablations, and the cells where it loses.

The compared policy is the ``scheduler.name`` factor (labelled with its params when the
study zips ``scheduler.params`` beside it, see :func:`sim.compare.label_policies`); the
method under study is the policy that has ablation variants (``name(k=v)`` labels).
Every other factor makes a cell. Changes are geometric means over cells of the ratio
to the other policy, paired by seed, with 95 % t-intervals over seeds.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from sim.compare import ci95, summarise

POLICY = "scheduler.name"
METRICS = ("uxcost", "xrbench_score", "drop_rate", "energy_per_completed_j")
LOAD = "load_scale"


def _mean_ci(done: pd.DataFrame, by: list[str], metric: str) -> pd.Series:
    s = summarise(done, by, metric)
    return pd.Series(
        [f"{m:.4g} ± {c:.2g}" if np.isfinite(c) else f"{m:.4g}" for m, c in zip(s["mean"], s["ci95"])],
        index=pd.MultiIndex.from_frame(s[by]) if len(by) > 1 else s[by[0]],
    )


RELATIVE = {"uxcost": True, "energy_per_completed_j": True, "xrbench_score": False, "drop_rate": False}


def change(done: pd.DataFrame, method: str, other: str, cells: list[str], metric: str) -> str:
    """``method`` against ``other`` on ``metric``, paired by cell and seed: mean and 95 % CI over seeds.

    Ratio metrics (UXCost, energy) as the % change of the geometric mean over cells; the
    score and the drop rate, which can be 0, as a mean difference in points.
    """
    pivot = done.groupby([*cells, "seed", POLICY], dropna=False)[metric].mean().unstack(POLICY)
    if RELATIVE.get(metric, True):
        ratio = (pivot[method] / pivot[other]).replace([np.inf, -np.inf], np.nan)
        log_ratio = np.log(ratio[ratio > 0]).dropna()
        if log_ratio.empty:
            return "—"
        per_seed = 100 * (np.exp(log_ratio.groupby(level="seed").mean()) - 1)
        mean, unit = 100 * (math.exp(log_ratio.mean()) - 1), "%"
    else:
        scale = 100.0 if metric == "drop_rate" else 1.0  # a rate's points are percentage points
        diff = (scale * (pivot[method] - pivot[other])).dropna()
        if diff.empty:
            return "—"
        per_seed = diff.groupby(level="seed").mean()
        mean, unit = float(diff.mean()), " pt"
    ci = ci95(per_seed)
    return f"{mean:+.1f}{unit} ± {ci:.1f}" if np.isfinite(ci) else f"{mean:+.1f}{unit}"


def _method(policies: list[str]) -> str | None:
    """The policy that has ablation variants in the study (labels ``name(...)``)."""
    variants = [p for p in policies if "(" in p]
    return variants[0].split("(")[0] if variants else None


def sweep_tables(done: pd.DataFrame, factors: list[str]) -> dict[str, pd.DataFrame]:
    if POLICY not in factors or not len(done):
        return {}
    cells = [f for f in factors if f != POLICY]
    tables = {
        "schedulers (mean ± 95% CI over seeds)": pd.DataFrame(
            {m: _mean_ci(done, [POLICY], m) for m in METRICS if m in done}
        ).reset_index()
    }
    if "scenario" in factors:
        tables["schedulers per scenario (mean over cells and seeds)"] = (
            done.groupby(["scenario", POLICY])[[m for m in METRICS if m in done]].mean().reset_index()
        )
    policies = list(dict.fromkeys(done[POLICY]))
    method = _method(policies)
    if method is None or method not in policies:
        return tables
    loads = sorted(done[LOAD].unique()) if LOAD in cells else []
    rows = []
    for other in policies:
        if other == method:
            continue
        row = {"versus": other, "uxcost, all cells": change(done, method, other, cells, "uxcost")}
        for load in loads:
            part = done[done[LOAD] == load]
            row[f"uxcost, load {load:g}x"] = change(part, method, other, cells, "uxcost")
        for metric in METRICS[1:]:
            if metric in done:
                row[metric] = change(done, method, other, cells, metric)
        rows.append(row)
    tables[
        f"{method} against every other scheduler "
        "(uxcost, energy: % change of the geomean over cells; score, drops: points)"
    ] = pd.DataFrame(rows)
    ablations = [p for p in policies if p.startswith(f"{method}(")]
    tables[
        f"{method} ablations: each variant against the full {method} "
        "(positive uxcost change: the mechanism helps)"
    ] = pd.DataFrame(
        [
            {"variant": a, **{m: change(done, a, method, cells, m) for m in METRICS if m in done}}
            for a in ablations
        ]
    )
    tables[f"cells where {method} loses to the best other scheduler (mean uxcost over seeds)"] = _losses(
        done, method, ablations, cells
    )
    return tables


def _losses(done: pd.DataFrame, method: str, ablations: list[str], cells: list[str]) -> pd.DataFrame:
    means = done.groupby([*cells, POLICY], dropna=False)["uxcost"].mean().unstack(POLICY)
    others = [p for p in means.columns if p != method and p not in ablations]
    best = means[others].idxmin(axis=1)
    best_value = means[others].min(axis=1)
    lose = means[method] > best_value * (1 + 1e-9)
    out = pd.DataFrame(
        {
            "best other": best[lose],
            "its uxcost": best_value[lose],
            f"{method} uxcost": means.loc[lose, method],
            "worse by %": 100 * (means.loc[lose, method] / best_value[lose] - 1),
        }
    ).reset_index()
    return out.sort_values("worse by %", ascending=False).reset_index(drop=True)
