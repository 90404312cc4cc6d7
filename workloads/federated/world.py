"""The ``federated`` world: rounds of selection, download, local training, upload, aggregation.

Simulated time comes from the device models only; the real PyTorch training runs
when an aggregation needs the updates, all of its clients as one stacked model
(``workloads.federated.training``). Per participation the world works out, from the
client's speed, bandwidths and availability, when each phase ends and whether the
client drops, straggles or delivers; only delivered updates are trained. A drop is
noticed by the server when it happens (a lost connection), not at a timeout.

No run hangs or ends silently: clients without labelled data are never selected (a
warning says how many); when nobody can be selected for ``patience``, or
``max_time_s`` comes before ``rounds``, the run stops, says why on stderr and in its
``stop`` table, and flags it in the summary.
"""

from __future__ import annotations

import math
import multiprocessing
import sys
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.func import functional_call
from tqdm import tqdm

from devices.clients import ClientPopulation
from policies.federated.base import ClientView, Selection
from sim.errors import bad_decision
from sim.kernel import Kernel
from workloads.cache import pinned_threads
from workloads.federated.anchors import label_anchors
from workloads.federated.data import Dataset, load_dataset, partition
from workloads.federated.models import CNN, MLP, Anchored
from workloads.federated.spec import BUILT_IN_ARCHS, MODEL_FIELDS, FederatedSpec, ModelConfig
from workloads.federated.training import (
    LocalTraining,
    check_stacked,
    flops_per_sample,
    forward_flops_per_sample,
    model_bytes,
    pseudo_labels,
    train_clients,
)
from workloads.user_models import build_stackable, materialise, seeded_init

OUTCOMES = ("kept", "dropped", "straggler", "late", "stale")
KEPT, DROPPED, STRAGGLER, LATE, STALE = range(5)


@dataclass
class Trips:
    """Participations started together (arrays over their clients): phase ends and drops."""

    clients: np.ndarray
    version: np.ndarray
    start_s: np.ndarray
    download_end_s: np.ndarray
    compute_end_s: np.ndarray
    arrive_s: np.ndarray
    drop_s: np.ndarray  # inf where the client does not drop

    @property
    def delivers(self) -> np.ndarray:
        return self.drop_s > self.arrive_s

    def take(self, which: np.ndarray | int) -> Trips:
        return Trips(*(np.atleast_1d(getattr(self, f.name)[which]) for f in fields(self)))

    @staticmethod
    def concat(parts: list[Trips]) -> Trips:
        return Trips(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Trips)))


def build_model(cfg: ModelConfig, head: str, data: Dataset, kernel: Kernel) -> torch.nn.Module:
    """The model clients train (encoder ``cfg.arch``, ``head``), initialised from the run's seed."""
    generator = kernel.torch_generator("init")
    n_out = cfg.rep_dim if head == "anchored" else data.num_classes
    if cfg.arch == "cnn":
        encoder = CNN(data.input_shape, tuple(cfg.channels), n_out, generator=generator)
    elif cfg.arch == "mlp":
        encoder = MLP(math.prod(data.input_shape), tuple(cfg.hidden), n_out, generator=generator)
    else:  # a user's model (checked when the scenario was validated)
        model = build_stackable(cfg.arch, cfg.kwargs, MODEL_FIELDS, BUILT_IN_ARCHS, data.input_shape, n_out)
        encoder = seeded_init(materialise(model), generator)
    if head == "linear":
        return encoder
    anchors = label_anchors(cfg.anchors, data.name, data.class_names)
    return Anchored(encoder, cfg.rep_dim, anchors, generator=generator)


def _checked_selection(policy: object, chosen: Any, view: ClientView) -> Selection:
    """A selection policy's decision, or a PolicyError: distinct available clients, a
    ``keep_first`` of at least 1 and a positive ``deadline_s`` (where given)."""
    need = "a Selection of distinct available client indices (keep_first >= 1, deadline_s > 0)"
    if not isinstance(chosen, Selection):
        raise bad_decision(policy, "select", chosen, need)
    clients = np.asarray(chosen.clients)
    if clients.size == 0:
        clients = clients.astype(int)
    ok = clients.ndim == 1 and clients.dtype.kind in "iu"
    ok = ok and bool(np.all((clients >= 0) & (clients < len(view.available))))
    ok = ok and len(np.unique(clients)) == clients.size and bool(view.available[clients].all())
    keep, deadline = chosen.keep_first, chosen.deadline_s
    ok = ok and (keep is None or (isinstance(keep, (int, np.integer)) and keep >= 1))
    ok = ok and (deadline is None or (isinstance(deadline, (int, float, np.number)) and deadline > 0))
    if not ok:
        raise bad_decision(policy, "select", chosen, need)
    return chosen


def _checked_params(policy: object, new: Any, old: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An aggregation policy's new global model, or a PolicyError: the same tensors as the old one."""
    fits = isinstance(new, dict) and new.keys() == old.keys()
    if not (fits and all(isinstance(new[k], torch.Tensor) and new[k].shape == old[k].shape for k in old)):
        shapes = {k: tuple(v.shape) for k, v in old.items()}
        raise bad_decision(policy, "aggregate", new, f"the global model's tensors {shapes}"[:200])
    return new


class FederatedWorld:
    """Clients train a real model in synchronous rounds or under a buffered async server."""

    def __init__(self, spec: FederatedSpec, kernel: Kernel):
        self.spec, self.env = spec, kernel.env
        self.data = data = load_dataset(spec.dataset)
        labels = data.y_train.numpy()
        self.partition = partition(
            spec.partition, labels, spec.clients.count, data.num_classes, kernel.rng("partition")
        )
        self.population = pop = ClientPopulation.build(spec.clients, kernel.rng("clients"))
        self.selection = spec.selection.build()
        self.aggregation = agg = spec.aggregation.build()
        self.local = LocalTraining(
            epochs=spec.local.epochs,
            batch_size=spec.local.batch_size,
            lr=spec.local.lr,
            optimizer=spec.local.optimizer,
        )
        self.model = build_model(spec.model, spec.model.head or agg.head, data, kernel)
        self.params = {name: p.detach() for name, p in self.model.named_parameters()}
        agg.setup(spec.clients.count, self.params)
        self.model_bytes = model_bytes(self.params)
        self.down_bytes, self.up_bytes = agg.transfer_bytes(self.model_bytes)
        # compute: each optimiser phase is a forward and backward pass per sample and epoch;
        # pseudo-labelling adds one forward pass over all of a client's samples
        phases = len(agg.phases(self.local.default_phase()))
        self.train_flops = flops_per_sample(self.model, data.input_shape) * phases * spec.local.epochs
        self.forward_flops = forward_flops_per_sample(self.model, data.input_shape)
        self.pseudo_labelling = agg.pseudo_label_percentile is not None and self.partition.owned is not None
        self.labelled = self.partition.labelled_sizes(labels)
        self.download_s = pop.download_s(self.down_bytes)
        self.upload_s = pop.upload_s(self.up_bytes)
        if spec.mode == "async" and pop.cfg.topology.edge_aggregators:
            self.upload_s = self.upload_s + pop.backhaul_s(self.up_bytes)[pop.aggregator]
        self.expected_s = (
            self.download_s + self._compute_s(np.arange(pop.count), self.labelled) + self.upload_s
        )
        n = spec.clients.count
        self.has_data = self.labelled > 0
        if not self.has_data.all():
            print(
                f"warning: {int((~self.has_data).sum())} of {n} clients hold no labelled samples; "
                "they are never selected",
                file=sys.stderr,
            )
        self.pseudo: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.pseudo_count = self.pseudo_correct = 0
        self.stop_reason = ""
        self._waiting_since: float | None = None
        self._retries = 0
        self.last_loss = np.full(n, np.nan)
        self.last_round = np.full(n, -1)
        self.busy = np.zeros(n, bool)
        self.flight_version = np.zeros(n, int)
        self._rng = {name: kernel.rng(name) for name in ("selection", "dropout", "shuffle")}
        self.version = 0
        self.versions = {0: self.params}
        self.buffer: list[Trips] = []  # async: delivered updates waiting for aggregation
        self.bytes_up = self.bytes_down = 0.0
        self.records: list[tuple[Trips, np.ndarray, np.ndarray]] = []  # (trips, outcome, energy_j)
        self.curve: list[tuple[int, float, float, float, float, int]] = []
        self.progress = None
        self._evaluate(0)

    # ---- the simulation ---------------------------------------------------------------------
    def run(self) -> None:
        """Simulate to the last aggregation or ``max_time_s``; torch on one thread, so any
        process (a sweep worker, a notebook) computes the same bits."""
        # a bar over aggregations on a terminal, not in tests, pipes or sweep workers
        shown = sys.stderr.isatty() and multiprocessing.parent_process() is None
        bar = tqdm(total=self.spec.rounds, desc="rounds", leave=False, disable=not shown)
        with pinned_threads(1), bar:
            self.progress = bar
            self._run()
        self.progress = None

    def _run(self) -> None:
        self.done = self.env.event()
        if self.spec.mode == "sync":
            self.env.process(self._sync_rounds())
        else:
            self._dispatch(self.spec.asynchronous.concurrency)
        self.env.run(until=self.env.any_of([self.done, self.env.timeout(self.spec.max_time_s)]))
        if self.version < self.spec.rounds and not self.stop_reason:
            self.stop_reason = f"reached max_time_s ({self.spec.max_time_s:g} s simulated)"
        if self.stop_reason:
            print(
                f"warning: federated run {self.spec.name!r} stopped after {self.version} of "
                f"{self.spec.rounds} rounds: {self.stop_reason}",
                file=sys.stderr,
            )

    def _compute_s(self, clients: np.ndarray, train_samples: np.ndarray) -> np.ndarray:
        """Local fit time of ``clients`` training on ``train_samples`` samples each."""
        work = train_samples * self.train_flops
        if self.pseudo_labelling:
            work = work + self.partition.sizes()[clients] * self.forward_flops
        return work / self.population.speed_flops_per_s[clients]

    def _nobody(self) -> bool:
        """Note a try in which nobody could be selected; True once patience has run out."""
        patience, now = self.spec.patience, self.env.now
        if self._waiting_since is None:
            self._waiting_since, self._retries = now, 0
        self._retries += 1
        waited_s = now - self._waiting_since
        if waited_s >= patience.time_s or (patience.retries is not None and self._retries > patience.retries):
            self.stop_reason = (
                f"no client could be selected for {waited_s:g} s of simulated time ({self._retries} tries; "
                f"patience.time_s={patience.time_s:g}, patience.retries={patience.retries})"
            )
            return True
        return False

    def _retry_in_s(self) -> float:
        """When to try selecting again: ``retry_s`` later, or sooner when a client comes online."""
        next_s = self.population.availability.next_online_s(self.env.now)
        return min(self.spec.retry_s, max(next_s - self.env.now, 1e-9))

    def _select(self, n: int):
        view = ClientView(
            now_s=self.env.now,
            round=self.version,
            available=self.population.availability.available(self.env.now) & ~self.busy & self.has_data,
            expected_round_s=self.expected_s,
            num_samples=self.labelled,
            last_loss=self.last_loss,
            last_round=self.last_round,
        )
        return _checked_selection(
            self.selection, self.selection.select(view, n, self._rng["selection"]), view
        )

    def _start(self, clients: np.ndarray) -> Trips:
        """Plan the participations of ``clients`` starting now: when each phase ends, who drops."""
        now, n, rng = self.env.now, len(clients), self._rng["dropout"]
        self._waiting_since = None
        train_samples = self.labelled[clients].copy()
        if self.pseudo_labelling:  # from the model the clients download now, as FedAlign does
            indices = [self.partition.indices(int(c)) for c in clients]
            found = pseudo_labels(
                self.model,
                self.params,
                self.data.x_train,
                self.data.y_train,
                indices,
                self.partition.owned[clients],
                self.aggregation.pseudo_label_percentile,
            )
            for c, extra in zip(clients.tolist(), found):
                self.pseudo[c] = extra
            train_samples += np.array([len(rows) for rows, _ in found], dtype=train_samples.dtype)
        download_end = now + self.download_s[clients]
        compute_end = download_end + self._compute_s(clients, train_samples)
        arrive = compute_end + self.upload_s[clients]
        offline_s = self.population.availability.online_until(now)[clients]
        quits = rng.random(n) < self.population.cfg.dropout_probability
        drop = np.where(quits, now + rng.random(n) * (arrive - now), np.inf)
        drop = np.where(offline_s < np.minimum(arrive, drop), offline_s, drop)
        relays = len(np.unique(self.population.aggregator[clients][self.population.aggregator[clients] >= 0]))
        self.bytes_down += self.down_bytes * (n + relays)
        self.busy[clients] = True
        self.flight_version[clients] = self.version
        version = np.full(n, self.version)
        return Trips(clients, version, np.full(n, now), download_end, compute_end, arrive, drop)

    def _sync_rounds(self):
        while self.version < self.spec.rounds:
            chosen = self._select(self.spec.clients_per_round)
            if len(chosen.clients) == 0:
                if self._nobody():
                    break
                yield self.env.timeout(self._retry_in_s())
                continue
            trips = self._start(chosen.clients)
            outcome = np.where(trips.delivers, KEPT, DROPPED)
            close = float(np.minimum(trips.arrive_s, trips.drop_s).max())
            if chosen.deadline_s is not None:
                close = min(close, self.env.now + chosen.deadline_s)
                outcome[trips.delivers & (trips.arrive_s > close)] = LATE
            if chosen.keep_first is not None and trips.delivers.sum() > chosen.keep_first:
                close = float(np.sort(trips.arrive_s[trips.delivers])[chosen.keep_first - 1])
                outcome[trips.delivers & (trips.arrive_s > close)] = STRAGGLER
            close = max(close, self._relayed_s(trips, outcome == KEPT))
            yield self.env.timeout(close - self.env.now)
            self._record(trips, outcome, close)
            self.busy[trips.clients] = False
            self._aggregate(trips.take(outcome == KEPT))
        self.done.succeed()

    def _relayed_s(self, trips: Trips, kept: np.ndarray) -> float:
        """With edge aggregators: each forwards one combined model after its last kept update."""
        pop = self.population
        if not pop.cfg.topology.edge_aggregators or not kept.any():
            return -math.inf
        last = pd.Series(trips.arrive_s[kept]).groupby(pop.aggregator[trips.clients[kept]]).max()
        self.bytes_up += self.up_bytes * len(last)
        hop_s = pop.backhaul_s(self.up_bytes)
        return float((last + hop_s[last.index.to_numpy()]).max())

    def _record(self, trips: Trips, outcome: np.ndarray, close_s: float) -> None:
        """Energy of each participation up to its end (delivery, drop, or the round closing)."""
        cfg = self.population.cfg
        end = np.minimum(np.minimum(trips.arrive_s, trips.drop_s), close_s)
        end = np.where(outcome == KEPT, trips.arrive_s, end)
        radio_s = np.clip(end, trips.start_s, trips.download_end_s) - trips.start_s
        radio_s += np.clip(end, trips.compute_end_s, trips.arrive_s) - trips.compute_end_s
        compute_s = np.clip(end, trips.download_end_s, trips.compute_end_s) - trips.download_end_s
        relayed = self.spec.mode == "async" and cfg.topology.edge_aggregators > 0
        self.bytes_up += self.up_bytes * (1 + relayed) * int((outcome == KEPT).sum())
        self.records.append((trips, outcome, cfg.radio_power_w * radio_s + cfg.compute_power_w * compute_s))

    # ---- async (FedBuff) ---------------------------------------------------------------------
    def _dispatch(self, slots: int) -> None:
        """Start up to ``slots`` clients now; retry later for the slots nobody could fill."""
        if slots <= 0 or self.done.triggered:
            return
        chosen = self._select(slots).clients
        missing = slots - len(chosen)
        if len(chosen) == 0 and not self.busy.any() and self._nobody():
            self.done.succeed()
            return
        if missing:
            self.env.timeout(self._retry_in_s()).callbacks.append(lambda _e: self._dispatch(missing))
        if len(chosen) == 0:
            return
        trips = self._start(chosen)
        for i in range(len(chosen)):
            one = trips.take(i)
            at = float(min(one.arrive_s[0], one.drop_s[0]))
            self.env.timeout(at - self.env.now).callbacks.append(lambda _e, one=one: self._returned(one))

    def _returned(self, one: Trips) -> None:
        if self.done.triggered:
            return
        self.busy[one.clients] = False
        if not one.delivers[0]:
            self._record(one, np.array([DROPPED]), math.inf)
            self._dispatch(1)
            return
        limit = self.spec.asynchronous.max_staleness
        if limit is not None and self.version - int(one.version[0]) > limit:
            self._record(one, np.array([STALE]), math.inf)
            self._dispatch(1)
            return
        self.buffer.append(one)
        if len(self.buffer) < self.spec.asynchronous.buffer:
            self._dispatch(1)
            return
        batch, self.buffer = Trips.concat(self.buffer), []
        self._record(batch, np.full(len(batch.clients), KEPT), math.inf)
        self._aggregate(batch)
        if self.version >= self.spec.rounds:
            self.done.succeed()
            return
        self._dispatch(self.spec.asynchronous.concurrency - int(self.busy.sum()))

    # ---- training, aggregation, evaluation --------------------------------------------------
    def _aggregate(self, kept: Trips) -> None:
        """Train the delivered updates (one stacked call), aggregate them, evaluate the new model."""
        staleness = self.version - kept.version
        decay = (1.0 + staleness) ** -self.spec.asynchronous.staleness_exponent
        weights = self.labelled[kept.clients] * decay
        useful = weights > 0
        train_loss = float("nan")
        if useful.any():
            kept, weights = kept.take(useful), weights[useful]
            start = self._start_params(kept.version)
            indices = [self.partition.indices(int(c)) for c in kept.clients]
            owned = None if self.partition.owned is None else self.partition.owned[kept.clients]
            seeds = self._rng["shuffle"].integers(0, 2**63, size=len(indices))
            fit = self.aggregation.configure_fit(kept.clients, self.params, self.local.default_phase())
            extra = [self.pseudo.pop(int(c)) for c in kept.clients] if self.pseudo_labelling else None
            if extra is not None:
                self.pseudo_count += sum(len(rows) for rows, _ in extra)
                self.pseudo_correct += sum(int((self.data.y_train.numpy()[r] == t).sum()) for r, t in extra)
            updates = train_clients(
                self.model,
                start,
                self.data.x_train,
                self.data.y_train,
                indices,
                self.local,
                seeds,
                owned,
                fit,
                extra,
            )
            uploads = self.aggregation.collect(kept.clients, start, updates.params, fit, updates.steps)
            check_stacked(uploads, len(indices), "upload")
            self.last_loss[kept.clients] = self._start_loss(kept, indices)
            self.last_round[kept.clients] = self.version
            train_loss = float(np.average(self.last_loss[kept.clients], weights=weights))
            trained = updates.params
            if (kept.version != self.version).any():  # async: apply each client's change to today's model
                trained = {n: trained[n] - start[n] + self.params[n] for n in trained}
            new = self.aggregation.aggregate(self.params, trained, weights, owned, uploads)
            self.params = _checked_params(self.aggregation, new, self.params)
        self.version += 1
        in_flight = {*self.flight_version[self.busy].tolist(), *(int(t.version[0]) for t in self.buffer)}
        self.versions = {v: p for v, p in self.versions.items() if v in in_flight}
        self.versions[self.version] = self.params
        self._evaluate(int(useful.sum()), train_loss)

    def _start_params(self, versions: np.ndarray) -> dict[str, torch.Tensor]:
        """The model each client downloaded: one set if all match, else stacked per client."""
        if (versions == versions[0]).all():
            return self.versions[int(versions[0])]
        return {name: torch.stack([self.versions[int(v)][name] for v in versions]) for name in self.params}

    def _start_loss(self, kept: Trips, indices: list[np.ndarray]) -> np.ndarray:
        """Each client's mean loss, under the model it downloaded, over its labelled samples."""
        losses = np.zeros(len(indices))
        owned = self.partition.owned
        with torch.no_grad():
            for version in np.unique(kept.version):
                rows = np.flatnonzero(kept.version == version)
                idx = np.concatenate([indices[r] for r in rows])
                who = np.repeat(rows, [len(indices[r]) for r in rows])
                logits = functional_call(self.model, self.versions[int(version)], (self.data.x_train[idx],))
                y = self.data.y_train[idx]
                loss = torch.nn.functional.cross_entropy(logits, y, reduction="none").double().numpy()
                known = np.ones(len(idx), bool) if owned is None else owned[kept.clients[who], y.numpy()]
                total = np.bincount(who[known], weights=loss[known], minlength=len(indices))
                count = np.bincount(who[known], minlength=len(indices))
                losses[rows] = (total / np.maximum(count, 1))[rows]
        return losses

    def _evaluate(self, updates: int, train_loss: float = float("nan")) -> None:
        """Test accuracy and loss of the current model, one ``curve`` row; ``train_loss`` is
        the aggregated clients' mean loss (weights as aggregated) under the model they downloaded."""
        with torch.no_grad():
            logits = functional_call(self.model, self.params, (self.data.x_test,))
            loss = torch.nn.functional.cross_entropy(logits, self.data.y_test).item()
            accuracy = (logits.argmax(1) == self.data.y_test).double().mean().item()
        self.curve.append((self.version, self.env.now, accuracy, loss, train_loss, updates))
        if self.progress is not None:
            self.progress.update(self.version - self.progress.n)

    def results(self) -> tuple[dict[str, float], dict[str, pd.DataFrame]]:
        from workloads.federated.metrics import summarise

        return summarise(self)
