"""What federated policies see and return: client views, selections, aggregation inputs.

A selection policy gets a read-only ``ClientView`` of the whole population (arrays,
one entry per client) and returns a ``Selection``. An aggregation policy turns the
clients' trained parameters (stacked along a leading client axis) into the next
global model, and says which local objective and proximal term clients train with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

Params = dict[str, torch.Tensor]


@dataclass(frozen=True)
class ClientView:
    """The population as the server knows it when it selects (arrays of length N).

    ``expected_round_s`` is the server's estimate of download + local training +
    upload from each device's profile; ``last_loss`` is the mean training loss a client
    reported when it last took part (NaN if never), ``last_round`` that round (-1 if never).
    """

    now_s: float
    round: int
    available: np.ndarray
    expected_round_s: np.ndarray
    num_samples: np.ndarray
    last_loss: np.ndarray
    last_round: np.ndarray


@dataclass(frozen=True)
class Selection:
    """Clients to start, and when a synchronous round closes.

    ``keep_first``: close once this many updates arrived (over-commit drops the rest).
    ``deadline_s``: close at most this long after the round started (late ones dropped).
    Async mode starts the clients and ignores both.
    """

    clients: np.ndarray
    keep_first: int | None = None
    deadline_s: float | None = None


class SelectionPolicy(Protocol):
    def select(self, view: ClientView, k: int, rng: np.random.Generator) -> Selection: ...


class AggregationPolicy(Protocol):
    objective: str
    prox_mu: float

    def aggregate(
        self, global_params: Params, stacked: Params, weights: np.ndarray, owned: np.ndarray | None
    ) -> Params: ...


def random_available(view: ClientView, n: int, rng: np.random.Generator) -> np.ndarray:
    """Up to ``n`` distinct available clients, uniformly at random (sorted ids)."""
    pool = np.flatnonzero(view.available)
    return np.sort(rng.choice(pool, size=min(n, len(pool)), replace=False))


def weighted_average(stacked: Params, weights: np.ndarray) -> Params:
    """FedAvg's core: ``sum_k w_k * params[k] / sum_k w_k`` for every stacked parameter,
    accumulated in float64 and returned in the parameters' dtype."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or (w < 0).any() or not w.sum() > 0:
        raise ValueError(f"weights must be [K] non-negative with a positive sum, got {weights}")
    share = torch.from_numpy(w / w.sum())
    out = {}
    for name, value in stacked.items():
        if len(value) != len(w):
            raise ValueError(f"{name} stacks {len(value)} clients, weights has {len(w)}")
        out[name] = torch.tensordot(share, value.double(), dims=1).to(value.dtype)
    return out


class FedAvgBase:
    """Clients minimise cross-entropy; the server takes the sample-weighted mean."""

    objective = "cross_entropy"
    prox_mu = 0.0

    def aggregate(
        self, global_params: Params, stacked: Params, weights: np.ndarray, owned: np.ndarray | None
    ) -> Params:
        return weighted_average(stacked, weights)
