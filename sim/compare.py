"""Comparison report of a sweep: metrics by factor with confidence intervals over seeds,
policies ranked per scenario, improvement against a baseline, links to every run, and
whatever the scenario kind adds (its ``sweep_figures`` / ``sweep_tables`` hooks, given
the done runs and the factor names).

Confidence intervals are 95% Student-t intervals over seeds (each seed's value first
averaged over the factors not shown). "Scenario" means one combination of the
factors other than the compared policy.
"""

from __future__ import annotations

import ast
import math
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from matplotlib.figure import Figure
from scipy import stats

from sim.config import closest, load_yaml, path_safe
from sim.errors import ConfigError
from sim.report import plain_text, render_report
from sim.sweep import factor_keys, policy_factor


def ci95(values: pd.Series | np.ndarray) -> float:
    """Half-width of the 95% t-interval of the mean (NaN with fewer than two values)."""
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    if values.size < 2:
        return float("nan")
    return float(stats.t.ppf(0.975, values.size - 1) * values.std(ddof=1) / math.sqrt(values.size))


def _readable(value: Any) -> Any:
    """A dict-valued factor (e.g. ``hardware: {preset: Quad_4K}``) as ``k=v, k=v``; else unchanged."""
    if isinstance(value, str) and value.startswith("{"):
        try:
            value = ast.literal_eval(value)  # summary.csv holds a dict's repr
        except (ValueError, SyntaxError):
            return value
    if isinstance(value, dict):
        return ", ".join(f"{k}={_readable(v)}" for k, v in value.items())
    return value


def label_policies(table: pd.DataFrame, factors: list[str], policy: str | None) -> list[str]:
    """Make factor values readable in place; return the factors as the report shows them.

    With a ``P.params`` factor beside the policy factor ``P.name`` (zipped), each pair is a
    policy of its own, labelled ``name`` or ``name(k=v, ...)``: ablations of one policy
    then compare like any other policy.
    """
    for factor in factors:
        table[factor] = table[factor].map(_readable)
    params = f"{policy[: -len('name')]}params" if policy and policy.endswith(".name") else None
    if params not in factors:
        return factors
    table[policy] = [f"{n}({p})" if p else n for n, p in zip(table[policy], table[params])]
    return [f for f in factors if f != params]


def fold_zip(
    table: pd.DataFrame, sweep: dict[str, Any], factors: list[str], policy: str | None
) -> tuple[list[str], str | None, dict[str, Any]]:
    """Show a zip's keys, which vary together, as one factor: its first key.

    The first key's values become the labels of the zip's rows (with the other keys'
    values added where the first alone does not tell two rows apart), so a figure or a
    ranking never averages two zipped arms that share, say, an aggregation name. A policy
    factor, baseline or highlight that named another key of the zip is carried over to
    the first key. Returns the factors, the policy factor and ``{"baseline": ..,
    "highlight": ..}`` as the report should use them.
    """
    keys = [k for k in sweep.get("zip", {}) if k in factors]
    baseline = (sweep.get("baseline") or {}).get(policy)
    marks = {"baseline": baseline, "highlight": sweep.get("highlight")}
    if len(keys) < 2:
        return factors, policy, marks
    head, rest = keys[0], keys[1:]
    rows = table[keys].astype(str).drop_duplicates()
    if rows[head].duplicated().any():
        varying = [k for k in rest if rows[k].nunique() > 1]
        table[head] = [
            ", ".join([str(values[0]), *(f"{k}={v}" for k, v in zip(varying, values[1:]))])
            for values in zip(table[head], *(table[k] for k in varying))
        ]
    if policy in rest:
        for mark, value in marks.items():
            match = table.loc[table[policy].astype(str) == str(value), head]
            marks[mark] = match.iloc[0] if len(match) else value
        policy = head
    return [f for f in factors if f not in rest], policy, marks


def _tick_label(value: object, width: int = 18) -> str:
    """A factor level on at most three lines, so long labels never squeeze the axes away."""
    return textwrap.fill(str(value), width, max_lines=3, placeholder=" ...")


def summarise(table: pd.DataFrame, by: list[str], metric: str) -> pd.DataFrame:
    """Mean and CI of ``metric`` per ``by`` group, over seeds (other factors averaged per seed)."""
    per_seed = table.groupby([*by, "seed"], dropna=False)[metric].mean().reset_index()
    grouped = per_seed.groupby(by, dropna=False)[metric]
    return pd.DataFrame(
        {"mean": grouped.mean(), "ci95": grouped.agg(ci95), "n": grouped.size()}
    ).reset_index()


def ranking(table: pd.DataFrame, policy: str, scenario: list[str], metric: str, lower: bool) -> pd.DataFrame:
    """Policies ranked per scenario by the mean of ``metric`` over seeds."""
    stats_ = summarise(table, [*scenario, policy], metric)
    stats_["rank"] = (
        stats_.groupby(scenario, dropna=False)["mean"].rank(ascending=lower, method="min")
        if scenario
        else stats_["mean"].rank(ascending=lower, method="min")
    )
    return stats_.sort_values([*scenario, "rank"]).reset_index(drop=True)


def metric_directions(kind: Any, sweep: dict[str, Any]) -> dict[str, str]:
    """Which way each metric is better (``"lower"`` / ``"higher"``): the kind's declaration
    (``metric_directions``), overridden by the sweep's ``lower_is_better`` and
    ``higher_is_better`` lists. A metric in neither has no direction."""
    out = dict(getattr(kind, "metric_directions", {}))
    out.update(dict.fromkeys(sweep.get("lower_is_better") or (), "lower"))
    out.update(dict.fromkeys(sweep.get("higher_is_better") or (), "higher"))
    return out


def verdict(change: float, direction: str | None, resolved: bool = True) -> str:
    """``"better"``, ``"worse"``, ``"same"`` or ``"not resolved"`` for a relative change of a metric
    whose better direction is ``direction`` (empty when it has none)."""
    if direction is None:
        return ""
    if not resolved:
        return "not resolved"
    if abs(change) < 1e-12:
        return "same"
    return "better" if (change < 0) == (direction == "lower") else "worse"


def improvement(
    table: pd.DataFrame,
    policy: str,
    baseline: Any,
    scenario: list[str],
    metrics: list[str],
    directions: dict[str, str],
) -> pd.DataFrame:
    """Per policy: geometric-mean ratio to the baseline over scenarios, as % change per metric,
    worded better or worse by the metric's direction."""
    rows = []
    means = table.groupby([*scenario, policy], dropna=False)[metrics].mean().reset_index()
    base = means[means[policy] == baseline].drop(columns=policy)
    merged = (
        means.merge(base, on=scenario, suffixes=("", "_base"))
        if scenario
        else means.assign(**{f"{m}_base": base[m].iloc[0] for m in metrics})
    )
    for name, group in merged.groupby(policy, sort=False):
        row: dict[str, Any] = {policy: name}
        for m in metrics:
            ratio = group[m] / group[f"{m}_base"]
            ok = np.isfinite(ratio) & (ratio > 0)
            if not ok.any():
                row[f"{m} vs {baseline}"] = "—"
                continue
            change = math.exp(np.log(ratio[ok]).mean()) - 1
            word = verdict(round(change, 3), directions.get(m))
            row[f"{m} vs {baseline}"] = f"{100 * change:+.1f}%" + (f", {word}" if word else "")
        rows.append(row)
    return pd.DataFrame(rows)


def versus(
    table: pd.DataFrame,
    policy: str,
    highlight: Any,
    scenario: list[str],
    metric: str,
    direction: str | None,
) -> pd.DataFrame:
    """``highlight`` against every other policy: geometric mean over scenario cells of the
    ratio of ``metric``, as a % change with its 95% CI over seeds, a verdict by the metric's
    direction (``not resolved`` when the CI includes 0), and the shares of cells
    (scenario x seed) where ``highlight`` is better, the same, or worse (lower, the same,
    or higher for a metric without a direction)."""
    cells = table.groupby([*scenario, "seed", policy], dropna=False)[metric].mean().unstack(policy)
    worse_if_higher = direction != "higher"
    shares = "better / tied / worse" if direction else "lower / tied / higher"
    rows = []
    for other in cells.columns:
        if other == highlight:
            continue
        log_ratio = np.log(cells[highlight] / cells[other]).replace([np.inf, -np.inf], np.nan).dropna()
        if log_ratio.empty:
            continue
        per_seed = 100 * (np.exp(log_ratio.groupby(level="seed").mean()) - 1)
        change, ci = 100 * (math.exp(log_ratio.mean()) - 1), ci95(per_seed)
        low, high = (log_ratio < -1e-12).mean(), (log_ratio > 1e-12).mean()
        better, worse = (low, high) if worse_if_higher else (high, low)
        rows.append(
            {
                "versus": other,
                f"{metric} change % (geomean)": round(change, 2),
                "ci95 over seeds (points)": round(ci, 2),
                "verdict": verdict(change, direction, resolved=not abs(change) <= ci),
                "seeds": int(per_seed.size),
                f"cells {shares}": f"{better:.0%} / {(log_ratio.abs() <= 1e-12).mean():.0%} / {worse:.0%}",
            }
        )
    return pd.DataFrame(rows)


def by_scenario(table: pd.DataFrame, policy: str, metric: str) -> pd.DataFrame:
    """Mean of ``metric`` per scenario (rows) and policy (columns), with an overall row."""
    pivot = table.pivot_table(index="scenario", columns=policy, values=metric, aggfunc="mean")
    pivot.loc["overall"] = table.groupby(policy)[metric].mean()
    return pivot.reset_index()


def _metric_figures(
    table: pd.DataFrame, factors: list[str], policy: str | None, metrics: list[str]
) -> dict[str, Figure]:
    figures = {}
    for factor in factors:
        if table[factor].nunique() < 2 and factor != policy:
            continue
        series = policy if policy and policy != factor else None
        ncols = min(3, len(metrics))
        nrows = math.ceil(len(metrics) / ncols)
        fig = Figure(figsize=(3.6 * ncols, 2.9 * nrows), layout="constrained")
        axes = np.atleast_1d(fig.subplots(nrows, ncols)).ravel()
        for ax in axes[len(metrics) :]:
            ax.set_visible(False)
        levels = list(dict.fromkeys(table[factor].astype(str)))
        for ax, metric in zip(axes, metrics):
            s = summarise(
                table.assign(**{factor: table[factor].astype(str)}),
                [factor] + ([series] if series else []),
                metric,
            )
            groups = s.groupby(series, sort=False) if series else [(None, s)]
            width = 0.8 / (len(groups) if series else 1)
            for k, (label, g) in enumerate(groups):
                x = np.array([levels.index(v) for v in g[factor]]) + (k - (len(groups) - 1) / 2) * width
                ax.errorbar(
                    x,
                    g["mean"],
                    yerr=g["ci95"].fillna(0),
                    fmt="o",
                    capsize=3,
                    label=_tick_label(label, 40) if series else None,
                )
            ax.set_xticks(
                range(len(levels)), [_tick_label(v) for v in levels], rotation=30, ha="right", fontsize=7
            )
            ax.set_xlim(-0.6, len(levels) - 0.4)
            ax.set_title(metric, fontsize=9)
            ax.set_xlabel(factor, fontsize=8)
        if series:
            handles, labels = axes[0].get_legend_handles_labels()
            fig.legend(handles, labels, loc="outside right upper", fontsize=7, title=series, title_fontsize=7)
        fig.suptitle(f"metrics by {factor} (mean, 95% CI over seeds)", fontsize=10)
        figures[path_safe(f"by_{factor.replace('.', '_')}", limit=120)] = fig
    return figures


def render_sweep_report(sweep_dir: str | Path) -> Path:
    """Write ``report.html`` (+ PNGs) for a sweep folder from its ``summary.csv``."""
    sweep_dir = Path(sweep_dir)
    if not (sweep_dir / "summary.csv").is_file():
        raise ConfigError(f"{sweep_dir}: not a sweep folder (no summary.csv)")
    sweep = load_yaml(sweep_dir / "sweep.yaml")
    try:
        table = pd.read_csv(sweep_dir / "summary.csv")
        if not {"id", "status", "seed", "wall_time_s"} <= set(table.columns) or not isinstance(
            sweep.get("base"), (dict, list)
        ):
            raise ValueError("columns or base missing")
    except (OSError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
        raise ConfigError(f"{sweep_dir}: cannot read its summary.csv or sweep.yaml ({first})") from None
    with plain_text():
        return _render_sweep(sweep_dir, sweep, table)


def _render_sweep(sweep_dir: Path, sweep: dict[str, Any], table: pd.DataFrame) -> Path:
    from sim.runner import kind_of

    factors = factor_keys(sweep)
    policy = policy_factor(sweep, factors)
    factors = label_policies(table, factors, policy)
    factors, policy, marks = fold_zip(table, sweep, factors, policy)
    done = table[table["status"] == "done"].copy()
    first_base = sweep["base"][0] if isinstance(sweep["base"], list) else sweep["base"]
    kind = kind_of(first_base.get("kind"))
    wanted = sweep.get("metrics") or getattr(kind, "headline_metrics", ())
    metrics = [m for m in wanted if m in done.columns]
    directions = metric_directions(kind, sweep)
    scenario = [f for f in factors if f != policy]
    tables: dict[str, pd.DataFrame] = {}
    if policy and metrics and len(done):
        objective = metrics[0]
        direction = directions.get(objective)
        overall = summarise(done, [policy], objective)
        if direction:
            lower = direction == "lower"
            tables[f"ranking by {objective} ({direction} is better)"] = ranking(
                done, policy, scenario, objective, lower
            )
            overall = overall.sort_values("mean", ascending=lower)
        tables[f"overall {objective}"] = overall.reset_index(drop=True)
        baseline = marks["baseline"]
        if baseline is not None:
            tables[f"change vs {baseline} (geomean over scenarios)"] = improvement(
                done, policy, baseline, scenario, metrics, directions
            )
        highlight = marks["highlight"]
        if highlight is not None and highlight in set(done[policy]):
            tables[f"{highlight} against every other {policy}"] = versus(
                done, policy, highlight, scenario, objective, direction
            )
        if "scenario" in factors:
            for metric in metrics:
                tables[f"{metric} by scenario"] = by_scenario(done, policy, metric)
    failed = table[table["status"] == "failed"]
    if len(failed):
        tables["failed runs"] = failed.assign(
            error=failed["error"].astype(str).str.strip().str.split("\n").str[-1]
        )[["id", *factors, "seed", "error"]]
    pending = table[table["status"] == "pending"]
    if len(pending):
        tables["runs not done (pending)"] = pending[["id", *factors, "seed"]]
    unknown = [m for m in wanted if m not in done.columns] if len(done) else []
    if unknown:
        known = [c for c in done.columns if c not in (*factors, "id", "seed", "status", "error")]
        tables["unknown metrics (not in the runs' summaries)"] = pd.DataFrame(
            {"metric": unknown, "did you mean": [closest(m, known) or "" for m in unknown]}
        )
    figures = _metric_figures(done, factors, policy, metrics) if len(done) and metrics else {}
    if len(done):  # a kind may add its own comparisons (e.g. Pareto fronts)
        for hook, into in (("sweep_figures", figures), ("sweep_tables", tables)):
            extra = getattr(kind, hook, None)
            if extra is not None:
                into.update(extra(done, factors))
    links = {}
    for _, row in table.iterrows():
        label = ", ".join(f"{f}={row[f]}" for f in factors)
        links[f"{row['id']} ({label}, seed {row['seed']})"] = _run_link(sweep_dir, row["id"])
    counts = table["status"].value_counts()
    summary = {
        "runs": float(len(table)),
        "done": float(counts.get("done", 0)),
        "failed": float(counts.get("failed", 0)),
        "pending": float(counts.get("pending", 0)),
        "wall_time_s (sum)": float(table["wall_time_s"].sum()),
    }
    return render_report(
        sweep_dir,
        title=f"sweep · {sweep.get('name', '')}",
        summary=summary,
        config_yaml=yaml.safe_dump(sweep, sort_keys=False),
        figures=figures,
        tables=tables,
        links=links,
    )


def _run_link(sweep_dir: Path, rid: str) -> str:
    report = sweep_dir / "runs" / rid / "report.html"
    return f"runs/{rid}/report.html" if report.exists() else f"runs/{rid}/"
