"""The ``market`` world: users arrive over simulated time and competing predictors serve and learn.

Per user, as in the environment of Kwon, Ginart and Zou (TMLR 2022): every predictor
predicts the user's point; predictors with budget left decide whether to buy it; if
any does, one buyer drawn uniformly gets the user and pays ``price``; otherwise the
user picks a predictor by the choice rule. The chosen predictor's device serves the
user (first come, first served on its servers), and the predictor adds the point to
its data and takes one Adam step on it; every ``retrain_every`` new points it
re-initialises and retrains on all its data. Learning takes no simulated time;
serving does. Every random draw comes from a named stream, so both engines (and any
worker) see the same users, seed data, initial parameters and minibatch orders.
"""

from __future__ import annotations

import functools
import math
import multiprocessing
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from policies.acquisition.base import PurchaseView
from policies.user_choice.base import ChoiceView
from sim.errors import ConfigError, bad_decision
from sim.kernel import Kernel
from sim.recorder import Table
from workloads.cache import pinned_threads
from workloads.market.data import MarketData, load_data
from workloads.market.metrics import market_quality
from workloads.market.predictors import (
    LoopGroup,
    ModuleGroup,
    Pool,
    RetrainJob,
    StackedGroup,
    init_layers,
    layer_sizes,
)
from workloads.market.spec import BUILT_IN_ARCHS, MarketSpec, PredictorGroup, fit_problems
from workloads.streams import arrivals, read_trace

USER_COLUMNS = {
    "user": "i8",
    "arrival_s": "f8",
    "row": "i8",
    "label": "i2",
    "predictor": "i2",
    "bought": "b",
    "correct": "b",
    "n_correct": "i2",
    "latency_s": "f8",
}


@dataclass
class Group:
    """One group of predictors: its config, engine, purchase policy and global indices."""

    spec: PredictorGroup
    init: Callable[[np.random.Generator], list[np.ndarray]]  # one predictor's fresh parameters
    engine: Any  # StackedGroup, LoopGroup or ModuleGroup
    policy: Any
    rng: np.random.Generator
    part: slice
    able: int  # predictors of the group with budget left for a point


def check_fits(spec: MarketSpec, data: MarketData) -> None:
    """Problems between the scenario and the data that only show once the data is read."""
    problems = fit_problems(spec, len(data.pool_y), data.n_classes)
    if problems:
        raise ConfigError(problems)


def horizon(spec: MarketSpec) -> int:
    """Users in the run: ``users``, or fewer if an arrival trace ends first."""
    cfg = spec.arrival
    if cfg.process != "trace":
        return spec.users
    times = cfg.times_s if cfg.times_s is not None else read_trace(cfg.trace_csv, "arrival.trace_csv")
    if len(times) == 0:
        raise ConfigError("arrival: the trace holds no arrival times")
    return min(spec.users, len(times))


def _purchases(policy: object, wants: Any, n: int) -> np.ndarray:
    """An acquisition policy's decision as a bool array of its ``n`` predictors, or a PolicyError."""
    if wants.__class__ is np.ndarray and wants.dtype == bool and wants.shape == (n,):
        return wants  # what the shipped policies return: no copy, no scan
    decision = np.asarray(wants)
    if decision.shape != (n,) or not (decision.dtype == bool or np.isin(decision, (0, 1)).all()):
        raise bad_decision(policy, "decide", wants, f"{n} booleans, one per predictor of its group")
    return decision.astype(bool)


class MarketWorld:
    """One built ``market`` scenario, ready to :meth:`run`."""

    def __init__(self, spec: MarketSpec, kernel: Kernel):
        self.spec, self.kernel, self.env = spec, kernel, kernel.env
        self.data = data = load_data(spec.data)
        check_fits(spec, data)
        self.horizon = horizon(spec)
        pool = Pool(data.pool_x, data.pool_y, data.n_classes)
        self.labels = data.pool_y.tolist()
        self.test_x = torch.from_numpy(np.array(data.test_x))
        engine = StackedGroup if spec.engine == "stacked" else LoopGroup
        self.groups: list[Group] = []
        self.names = spec.predictor_names()
        self.local: list[tuple[Group, int]] = []  # each predictor's group and index in it
        for g in spec.predictors:
            if g.model.arch in BUILT_IN_ARCHS:
                sizes = layer_sizes(g.model, data.n_features, data.n_classes)
                built = engine(sizes, g.count, pool, spec.training.lr)
                init = functools.partial(init_layers, sizes=sizes)
            else:  # a user's module (checked at validation), on the general stacked path
                built = ModuleGroup.of(
                    g.model, data.n_features, data.n_classes, g.count, pool, spec.training.lr
                )
                init = built.init
            part = slice(len(self.local), len(self.local) + g.count)
            group = Group(
                g,
                init,
                built,
                g.purchase.build(),
                kernel.rng(f"market/purchase/{g.name}"),
                part,
                g.count if g.budget >= spec.price else 0,
            )
            self.groups.append(group)
            self.local += [(group, k) for k in range(g.count)]
        n = len(self.names)
        group_of = [group.spec for group, _ in self.local]  # each predictor's group config
        self.budget = np.array([g.budget for g in group_of], float)
        self.budget_left = self.budget.copy()
        self.service_s = np.array([g.device.service_s for g in group_of])
        servers = np.array([g.device.servers for g in group_of])
        # when each server of each predictor's device is next free; missing servers never are
        self.free_at = np.where(np.arange(servers.max())[None, :] < servers[:, None], 0.0, np.inf)
        rng = kernel.rng
        self.rows = [
            rng(f"market/seed/{name}").choice(len(self.labels), g.seed_points, replace=False).tolist()
            for name, g in zip(self.names, group_of)
        ]
        self._init_rng = [rng(f"market/init/{name}") for name in self.names]
        self._batch_rng = [rng(f"market/batches/{name}") for name in self.names]
        self._buyer_rng, self._choice_rng = rng("market/buyer"), rng("market/choice")
        passes = math.ceil(self.horizon / len(self.labels))
        users_rng = rng("market/users")
        self.user_rows = np.concatenate([users_rng.permutation(len(self.labels)) for _ in range(passes)])
        self.user_rows = self.user_rows[: self.horizon].tolist()
        self.wins, self.purchases, self.retrains = np.zeros(n, int), np.zeros(n, int), np.zeros(n, int)
        self.choice = spec.choice.build()
        self.users = Table(USER_COLUMNS)
        self._row = tuple(self.users.appender(c) for c in USER_COLUMNS)
        marks = np.linspace(0, self.horizon, spec.checkpoints + 1)[1:]
        self.checkpoint_users = sorted({int(round(m)) for m in marks} - {0})
        self.checkpoints: list[dict[str, Any]] = []
        self.final_pred: np.ndarray | None = None
        # the stacked engine writes its gradients out: run it in inference mode, which skips
        # autograd's bookkeeping on every operator (about 15 % of a retrain step)
        self.no_autograd = all(isinstance(g.engine, StackedGroup) for g in self.groups)

    # -- learning ------------------------------------------------------------------
    def _batches(self, i: int) -> np.ndarray:
        """Predictor ``i``'s minibatches for one retrain: a fresh shuffle per epoch, padded with -1."""
        rows = np.array(self.rows[i])
        n, cfg = len(rows), self.spec.training
        epochs = min(cfg.epochs, math.ceil(cfg.max_samples / n))
        size = cfg.batch_size
        out = np.full((epochs, math.ceil(n / size) * size), -1, np.int64)
        for e in range(epochs):
            out[e, :n] = rows[self._batch_rng[i].permutation(n)]
        return out.reshape(-1, size)

    def _retrain(self, indices: list[int]) -> None:
        """Retrain these predictors from scratch, each group's in one batched call."""
        for group in self.groups:
            mine = [i for i in indices if group.part.start <= i < group.part.stop]
            if not mine:
                continue
            jobs = [
                RetrainJob(i - group.part.start, group.init(self._init_rng[i]), self._batches(i))
                for i in mine
            ]
            group.engine.retrain(jobs)
            self.retrains[mine] += 1

    def _predict(self, row: int) -> np.ndarray:
        if len(self.groups) == 1:
            return self.groups[0].engine.predict(row)
        return np.concatenate([g.engine.predict(row) for g in self.groups])

    def evaluate(self) -> np.ndarray:
        """Predicted test labels ``[M, n_test]`` of every predictor now."""
        return np.concatenate([g.engine.evaluate(self.test_x).argmax(-1) for g in self.groups])

    # -- users ---------------------------------------------------------------------
    def _buyers(self, t: int, probs: np.ndarray) -> list[int]:
        """Global indices of the predictors that buy this user's point."""
        price, found = self.spec.price, []
        for g in self.groups:
            if not g.able:
                continue
            left = self.budget_left[g.part]
            view = PurchaseView(
                probs[g.part].astype(np.float64), left, self.budget[g.part], price, t, self.horizon
            )
            wants = _purchases(g.policy, g.policy.decide(view, g.rng), len(left)) & (left >= price)
            found += (np.flatnonzero(wants) + g.part.start).tolist()
        return found

    def _pick(self, given: Any) -> int:
        """Draw a predictor with probability ``softmax(scores)``; scores that are not one number
        per predictor, or whose softmax is undefined (a NaN, +inf, or all -inf), are a PolicyError."""
        scores = np.asarray(given)
        if scores.shape != (len(self.names),) or scores.dtype.kind not in "biuf":
            raise bad_decision(self.choice, "scores", given, f"{len(self.names)} numbers, one per predictor")
        weights = np.cumsum(np.exp(scores - scores.max()))
        if not (weights[-1] > 0 and math.isfinite(weights[-1])):  # cheaper than a check per score
            need = f"{len(self.names)} numbers, none NaN or +inf, not all -inf"
            raise bad_decision(self.choice, "scores", given, need)
        k = int(np.searchsorted(weights, self._choice_rng.random() * weights[-1], side="right"))
        return min(k, len(weights) - 1)

    def _serve(self, t: int, row: int) -> None:
        now = self.env.now
        probs = self._predict(row)
        label = self.labels[row]
        correct = probs.argmax(1) == label
        buyers = self._buyers(t, probs)
        if buyers:
            winner = buyers[0] if len(buyers) == 1 else buyers[self._buyer_rng.integers(len(buyers))]
            self.budget_left[winner] -= self.spec.price
            self.purchases[winner] += 1
        else:
            latency = np.maximum(self.free_at.min(1) - now, 0.0) + self.service_s
            view = ChoiceView(correct, probs.max(1), latency, self.spec.alpha)
            winner = self._pick(self.choice.scores(view))
        group, local = self.local[winner]
        if buyers and self.budget_left[winner] < self.spec.price:
            group.able -= 1
        server = int(self.free_at[winner].argmin())
        done = max(now, self.free_at[winner, server]) + self.service_s[winner]
        self.free_at[winner, server] = done
        self.wins[winner] += 1
        self.rows[winner].append(row)
        group.engine.step(local, row)
        if self.wins[winner] % self.spec.training.retrain_every == 0:  # every N new points
            self._retrain([winner])
        user, arrival, prow, plabel, pred, bought, ok, n_ok, lat = self._row
        user(t)
        arrival(now)
        prow(row)
        plabel(label)
        pred(winner)
        bought(bool(buyers))
        ok(bool(correct[winner]))
        n_ok(int(np.count_nonzero(correct)))
        lat(done - now)

    def _checkpoint(self, served: int) -> None:
        pred = self.evaluate()
        self.checkpoints.append(
            {
                "users": served,
                "time_s": self.env.now,
                "accuracy": (pred == self.data.test_y).mean(1),
                "wins": self.wins.copy(),
                "data_points": np.array([len(r) for r in self.rows]),
                "budget_left": self.budget_left.copy(),
                **market_quality(pred, self.data.test_y, self.spec.alpha, self.data.n_classes),
            }
        )

    def _users(self, bar: tqdm):
        env, marks = self.env, set(self.checkpoint_users)
        times = arrivals(self.spec.arrival, 1.0 / self.spec.rate_hz, self.kernel.rng("market/arrivals"))
        for t, row in enumerate(self.user_rows):
            arrival = next(times)[0]
            if arrival > env.now:
                yield env.timeout(arrival - env.now)
            self._serve(t, row)
            bar.update()
            if t + 1 in marks:
                self._checkpoint(t + 1)

    def run(self) -> None:
        everyone = list(range(len(self.names)))
        # a bar over users on a terminal, not in tests, pipes or sweep workers
        shown = sys.stderr.isatty() and multiprocessing.parent_process() is None
        bar = tqdm(total=self.horizon, desc="users", leave=False, disable=not shown)
        with pinned_threads(1), torch.inference_mode(self.no_autograd), bar:  # threads must not change a bit
            self._retrain(everyone)  # train on the seed data
            self.env.process(self._users(bar))
            self.env.run()
            if self.spec.training.final_retrain:
                self._retrain(everyone)
            self.final_pred = self.evaluate()

    def results(self) -> tuple[dict[str, float], dict[str, pd.DataFrame]]:
        from workloads.market.metrics import market_results

        return market_results(self)
