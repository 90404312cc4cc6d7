"""Metrics of a ``market`` run (definitions in docs/market.md), on the held-out test points.

With ``q`` the share of predictors right on a test point: overall quality is the mean
of ``q``; QoE the mean of ``q e^alpha / (q e^alpha + 1 - q)``, the chance that the
predictor a user picks by the reference rule is right; diversity the mean entropy
(nats) of the predicted labels across predictors, 0 where they all agree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from policies.acquisition.base import entropy

if TYPE_CHECKING:
    from workloads.market.world import MarketWorld

LLOYD_ITERATIONS = 10


def market_quality(pred: np.ndarray, labels: np.ndarray, alpha: float, n_classes: int) -> dict[str, float]:
    """Overall quality, QoE and diversity of predicted labels ``pred`` ``[M, N]``."""
    q = (pred == labels[None, :]).mean(0)
    # q e^a / (q e^a + 1 - q), written so that a large alpha cannot overflow
    qoe = np.where(q > 0, q / np.maximum(q + (1 - q) * np.exp(-alpha), 1e-300), 0.0)
    share = np.stack([(pred == c).mean(0) for c in range(n_classes)])
    diversity = entropy(share, axis=0)
    return {
        "overall_quality": float(q.mean()),
        "qoe": float(qoe.mean()),
        "diversity": float(diversity.mean()),
    }


def hhi(wins: np.ndarray) -> float:
    """Herfindahl-Hirschman index of market shares: 1/M when equal, 1 for a monopoly."""
    total = wins.sum()
    return float(((wins / total) ** 2).sum()) if total else float("nan")


def regions(x: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Region of each row of ``x``: k-means (Lloyd, from ``count`` random rows) in plain
    NumPy sums, so the answer cannot depend on a BLAS thread count."""
    count = min(count, len(x))
    centers = x[rng.choice(len(x), count, replace=False)].astype(np.float64)
    for _ in range(LLOYD_ITERATIONS):
        nearest = ((x[:, None, :] - centers[None]) ** 2).sum(-1).argmin(1)
        for r in range(count):
            members = x[nearest == r]
            if len(members):
                centers[r] = members.mean(0)
    return ((x[:, None, :] - centers[None]) ** 2).sum(-1).argmin(1)


def _accuracy_by(names: list[str], correct: np.ndarray, groups: np.ndarray, by: str) -> list[dict]:
    rows = []
    for value in np.unique(groups):
        members = groups == value
        for name, acc in zip(names, correct[:, members].mean(1)):
            rows.append(
                {
                    "predictor": name,
                    "by": by,
                    "group": int(value),
                    "points": int(members.sum()),
                    "accuracy": acc,
                }
            )
    return rows


def market_results(world: MarketWorld) -> tuple[dict[str, float], dict[str, pd.DataFrame]]:
    spec, data, names = world.spec, world.data, world.names
    pred = world.final_pred
    correct = pred == data.test_y[None, :]
    accuracy = correct.mean(1)
    users = world.users.to_frame()
    latency = users["latency_s"].to_numpy()
    spent = world.budget - world.budget_left
    summary = {
        **market_quality(pred, data.test_y, spec.alpha, data.n_classes),
        "purchases": float(world.purchases.sum()),
        "budget_spent": float(spent.sum()),
        "market_share_hhi": hhi(world.wins),
        "users": float(len(users)),
        "user_accuracy": float(users["correct"].mean()) if len(users) else float("nan"),
        "accuracy_min": float(accuracy.min()),
        "accuracy_max": float(accuracy.max()),
        "latency_mean_s": float(latency.mean()) if len(users) else float("nan"),
        "latency_p99_s": float(np.quantile(latency, 0.99)) if len(users) else float("nan"),
        "retrains": float(world.retrains.sum()),
    }
    group_of = [world.local[i][0].spec for i in range(len(names))]
    served = users.groupby("predictor")["latency_s"].mean().reindex(range(len(names)))
    predictors = pd.DataFrame(
        {
            "predictor": names,
            "group": [g.name for g in group_of],
            "arch": [g.model.arch for g in group_of],
            "purchase": [g.purchase.name for g in group_of],
            "budget": world.budget,
            "budget_spent": spent,
            "purchases": world.purchases,
            "wins": world.wins,
            "market_share": world.wins / max(len(users), 1),
            "data_points": [len(r) for r in world.rows],
            "retrains": world.retrains,
            "accuracy": accuracy,
            "latency_mean_s": served.to_numpy(),
        }
    )
    over_time = pd.DataFrame(
        [
            {
                "users": c["users"],
                "time_s": c["time_s"],
                "predictor": name,
                "wins": int(c["wins"][i]),
                "market_share": c["wins"][i] / c["users"],
                "accuracy": c["accuracy"][i],
                "data_points": int(c["data_points"][i]),
                "budget_left": c["budget_left"][i],
            }
            for c in world.checkpoints
            for i, name in enumerate(names)
        ],
        columns=[
            "users",
            "time_s",
            "predictor",
            "wins",
            "market_share",
            "accuracy",
            "data_points",
            "budget_left",
        ],
    )
    market_over_time = pd.DataFrame(
        [
            {
                "users": c["users"],
                "time_s": c["time_s"],
                "overall_quality": c["overall_quality"],
                "qoe": c["qoe"],
                "diversity": c["diversity"],
                "market_share_hhi": hhi(c["wins"]),
            }
            for c in world.checkpoints
        ],
        columns=["users", "time_s", "overall_quality", "qoe", "diversity", "market_share_hhi"],
    )
    region = regions(data.test_x, spec.regions, world.kernel.rng("market/regions"))
    specialisation = pd.DataFrame(
        _accuracy_by(names, correct, data.test_y, "class") + _accuracy_by(names, correct, region, "region")
    )
    tables = {
        "users": users,
        "predictors": predictors,
        "over_time": over_time,
        "market_over_time": market_over_time,
        "specialisation": specialisation,
    }
    return summary, tables
