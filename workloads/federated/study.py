"""Sweep comparisons for ``federated`` studies: final accuracy by partition and aggregation.

A *cell* is one combination of the factors other than the aggregation and the seed
(partition, selection, dropout, ...). The headline table compares ``label_anchored``
with FedAvg cell by cell, paired by seed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from sim.compare import ci95

AGG, SCHEME = "aggregation.name", "partition.scheme"


def sweep_figures(done: pd.DataFrame, factors: list[str]) -> dict[str, Figure]:
    if AGG not in factors or SCHEME not in factors:
        return {}
    per_seed = done.groupby([SCHEME, AGG, "seed"])["final_accuracy"].mean().reset_index()
    stats = per_seed.groupby([SCHEME, AGG])["final_accuracy"].agg(["mean", ci95]).reset_index()
    schemes, aggs = list(dict.fromkeys(stats[SCHEME])), list(dict.fromkeys(stats[AGG]))
    fig = Figure(figsize=(1.6 + 1.4 * len(schemes), 3.4), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(aggs)
    for i, agg in enumerate(aggs):
        sub = stats[stats[AGG] == agg].set_index(SCHEME).reindex(schemes)
        x = np.arange(len(schemes)) + i * width
        ax.bar(x, sub["mean"], width, yerr=sub["ci95"], label=agg, capsize=2)
    ax.set_xticks(np.arange(len(schemes)) + 0.4 - width / 2, schemes)
    ax.set_ylabel("final test accuracy")
    ax.set_title("final accuracy by partition and aggregation (95% CI over seeds)", fontsize=9)
    ax.legend(fontsize=7)
    return {"accuracy_by_partition": fig}


def headline(
    done: pd.DataFrame, factors: list[str], ours: str = "label_anchored", base: str = "fedavg"
) -> pd.DataFrame:
    """Per cell: mean final accuracy of ``ours`` and ``base``, and their paired difference's 95% CI."""
    cell = [f for f in factors if f != AGG]
    pair = done[done[AGG].isin([ours, base])].pivot_table(
        index=[*cell, "seed"], columns=AGG, values="final_accuracy", aggfunc="mean"
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
    if AGG not in factors:
        return {}
    table = headline(done, factors)
    return {"label_anchored vs fedavg: final accuracy (paired by seed)": table} if len(table) else {}
