"""Sweep comparisons for ``federated`` studies: final accuracy by partition and aggregation.

The *arm* is the aggregation factor, or the factor that labels zipped arms (e.g. ``name``
beside ``aggregation.name`` in ``study_fl.yaml``, where FedAvg with and without the
anchored head share an aggregation name). A *cell* is one combination of the other
factors (partition, selection, dropout, ...). The headline table compares
``label_anchored`` with FedAvg cell by cell, paired by seed.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from sim.compare import ci95

AGG = "aggregation.name"


def _arm(done: pd.DataFrame, factors: list[str], ours: str, base: str) -> str | None:
    """The factor naming the compared arms: the aggregation, else one whose values hold both."""
    if AGG in factors:
        return AGG
    return next((f for f in factors if {ours, base} <= set(done[f].astype(str))), None)


def sweep_figures(done: pd.DataFrame, factors: list[str]) -> dict[str, Figure]:
    arm = _arm(done, factors, "label_anchored", "fedavg")
    scheme = next((f for f in factors if f.startswith("partition")), None)
    if arm is None or scheme is None:
        return {}
    per_seed = done.groupby([scheme, arm, "seed"], sort=False)["final_accuracy"].mean().reset_index()
    stats = per_seed.groupby([scheme, arm], sort=False)["final_accuracy"].agg(["mean", ci95]).reset_index()
    schemes, arms = list(dict.fromkeys(stats[scheme])), list(dict.fromkeys(stats[arm]))
    fig = Figure(figsize=(2.6 + 1.6 * len(schemes), 3.4), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(arms)
    for i, name in enumerate(arms):
        sub = stats[stats[arm] == name].set_index(scheme).reindex(schemes)
        x = np.arange(len(schemes)) + i * width
        ax.bar(x, sub["mean"], width, yerr=sub["ci95"], label=name, capsize=2)
    ax.set_xticks(np.arange(len(schemes)) + 0.4 - width / 2, [textwrap.fill(str(s), 24) for s in schemes])
    ax.tick_params(axis="x", labelsize=7)
    ax.set_ylabel("final test accuracy")
    ax.set_title(f"final accuracy by partition and {arm} (95% CI over seeds)", fontsize=9)
    fig.legend(loc="outside right upper", fontsize=7, title=arm, title_fontsize=7)
    return {"accuracy_by_partition": fig}


def headline(
    done: pd.DataFrame, factors: list[str], ours: str = "label_anchored", base: str = "fedavg"
) -> pd.DataFrame:
    """Per cell: mean final accuracy of ``ours`` and ``base``, and their paired difference's 95% CI."""
    arm = _arm(done, factors, ours, base)
    if arm is None:
        return pd.DataFrame()
    cell = [f for f in factors if f != arm]
    pair = done[done[arm].isin([ours, base])].pivot_table(
        index=[*cell, "seed"], columns=arm, values="final_accuracy", aggfunc="mean"
    )
    if ours not in pair or base not in pair:
        return pd.DataFrame()
    pair = pair.dropna().reset_index()
    rows = []
    for key, group in pair.groupby(cell, dropna=False) if cell else [("all", pair)]:
        diff = group[ours] - group[base]
        rows.append(
            {
                **dict(zip(cell, key if isinstance(key, tuple) else (key,))),
                base: round(group[base].mean(), 4),
                ours: round(group[ours].mean(), 4),
                "difference": round(diff.mean(), 4),
                "ci95": round(ci95(diff), 4),
                "seeds": len(group),
            }
        )
    return pd.DataFrame(rows)


def sweep_tables(done: pd.DataFrame, factors: list[str]) -> dict[str, pd.DataFrame]:
    table = headline(done, factors)
    return {"label_anchored vs fedavg: final accuracy (paired by seed)": table} if len(table) else {}
