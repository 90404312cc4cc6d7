"""Local training of many federated clients at once, as one stacked model.

K clients with models of one architecture train as a single stacked model: every
parameter gets a leading client dimension ``[K, ...]``, the per-client gradient comes
from autograd through a ``torch.vmap``-ped :func:`torch.func.functional_call`,
and one vectorised SGD update per global step index moves all clients together.
Clients differ in data size and hence in step count: clients are ordered by step count
(most first), so the clients still training at step ``t`` are a prefix of the stack and
a step only computes that prefix; a client whose steps are over stays unchanged. A
partial last batch is padded with copies of its own first sample at weight 0, so its
loss averages only its real samples. Every minibatch ``[K, B, F]`` is gathered by index
from the one shared ``x``; no client's data is copied beyond it.

:func:`train_clients_loop` is the straightforward reference (one ``nn.Module`` and
``torch.optim.SGD`` per client, client by client, batch by batch) over the same batch
orders from :func:`batch_orders`; both give the same results within floating-point
tolerance. Both run torch on one thread (:func:`pinned_threads`), so equal inputs give
bit-identical outputs on any machine.

Objectives:

- ``cross_entropy`` (FedAvg, FedProx): a client trains on the samples it has labels
  for; with ``owned`` (exclusive-class partitions) samples of classes it does not own
  are unlabelled and left out of its loss (and of its sample count).
- ``label_anchored``: FedAlign's local training (Zhang et al., KDD 2023), reconstructed
  from the paper's description; the rules marked *assumed* are ours. Needs a model whose
  label-side parameter names start with ``label_`` (:class:`~workloads.federated.models.AnchoredMLP`).

  1. At the start of local training each client scores its unlabelled samples with the
     start (global) model: a softmax over the logits (similarities of ``f(x)`` to the
     global anchors ``g(label_embedding)``) restricted to the classes it does *not* own;
     a sample whose top probability exceeds ``pseudo_label_threshold`` takes that class
     as pseudo-label (*assumed*: the threshold, 0.8 by default, and the restriction to
     non-owned classes by masking the softmax).
  2. Local training alternates the two encoders (*assumed rule*): steps ``s`` with
     ``(s // alternate_steps)`` even update the data encoder (every parameter not named
     ``label_*``) with the label side frozen, odd ones the label encoder and
     ``label_embedding`` with the data encoder frozen.
  3. The loss is cross-entropy over the client's labelled and pseudo-labelled samples.

``prox_mu`` adds FedProx's proximal term ``(mu/2) * ||w - w_start||^2`` for either
objective, each client against its own start parameters.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, vmap
from torch.utils.flop_counter import FlopCounterMode

from workloads.cache import pinned_threads
from workloads.federated.models import LABEL_PREFIX

OBJECTIVES = ("cross_entropy", "label_anchored")
# Rows per forward when scoring or evaluating many samples: bounds the memory of a gather.
CHUNK_ROWS = 1024


@dataclass(frozen=True)
class LocalTraining:
    """A client's local training: ``epochs`` passes of plain SGD over its samples in
    minibatches of ``batch_size`` (the last one of an epoch may be smaller).

    ``pseudo_label_threshold`` and ``alternate_steps`` apply to ``label_anchored`` only."""

    epochs: int = 1
    batch_size: int = 8
    lr: float = 0.1
    prox_mu: float = 0.0
    objective: str = "cross_entropy"
    pseudo_label_threshold: float = 0.8
    alternate_steps: int = 1

    def __post_init__(self) -> None:
        if self.epochs < 0:
            raise ValueError(f"epochs must be >= 0, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not self.prox_mu >= 0:
            raise ValueError(f"prox_mu must be >= 0, got {self.prox_mu}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if not 0 <= self.pseudo_label_threshold <= 1:
            raise ValueError(f"pseudo_label_threshold must be in [0, 1], got {self.pseudo_label_threshold}")
        if self.alternate_steps < 1:
            raise ValueError(f"alternate_steps must be >= 1, got {self.alternate_steps}")


@dataclass
class ClientUpdates:
    """What K clients' local training returns, client ``k`` at index ``k``."""

    params: dict[str, Tensor]  # stacked [K, ...] trained parameters
    num_samples: np.ndarray  # [K] samples each client trained on (labelled + pseudo-labelled)
    steps: np.ndarray  # [K] optimiser steps each client took
    pseudo_labelled: np.ndarray  # [K] of num_samples, those pseudo-labelled (label_anchored)


def batch_orders(sizes: Sequence[int] | np.ndarray, epochs: int, seeds: np.ndarray) -> list[np.ndarray]:
    """Each client's sample order: ``orders[k]`` is ``[epochs, sizes[k]]``, one permutation of
    its positions per epoch, drawn from a PCG64 generator seeded by ``seeds[k]``. An epoch's
    batches are consecutive runs of ``batch_size`` positions; both training paths use it."""
    if len(sizes) != len(seeds):
        raise ValueError(f"need one seed per client: {len(sizes)} sizes, {len(seeds)} seeds")
    orders = []
    for size, seed in zip(sizes, seeds):
        rng = np.random.Generator(np.random.PCG64(int(seed)))
        epochs_order = [rng.permutation(int(size)) for _ in range(epochs)]
        orders.append(np.array(epochs_order, dtype=np.int64).reshape(epochs, int(size)))
    return orders


# --- shared checks and set-up ------------------------------------------------------------


def _check(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    client_indices: list[np.ndarray],
    cfg: LocalTraining,
    seeds: np.ndarray,
    owned: np.ndarray | None,
) -> None:
    if any(True for _ in model.buffers()):
        raise ValueError("models with buffers (e.g. BatchNorm) are not supported: parameters only")
    if x.dtype != torch.float32 or x.dim() != 2:
        raise ValueError(f"x must be [N, F] float32, got {list(x.shape)} {x.dtype}")
    if y.dtype != torch.int64 or y.shape != x.shape[:1]:
        raise ValueError(f"y must be [N] int64 with N = {len(x)}, got {list(y.shape)} {y.dtype}")
    if len(seeds) != len(client_indices):
        raise ValueError(f"need one seed per client: {len(client_indices)} clients, {len(seeds)} seeds")
    if owned is not None and (owned.dtype != bool or owned.ndim != 2 or len(owned) != len(client_indices)):
        raise ValueError(f"owned must be [K, C] bool with K = {len(client_indices)}, got {owned.shape}")
    if cfg.objective == "label_anchored" and not any(
        n.startswith(LABEL_PREFIX) for n, _ in model.named_parameters()
    ):
        raise ValueError(
            f"objective 'label_anchored' needs parameters named {LABEL_PREFIX}* (an AnchoredMLP)"
        )


def _is_stacked(model: nn.Module, start: dict[str, Tensor], k: int) -> bool:
    """Whether ``start`` holds K stacked parameter sets (else one, broadcast to all)."""
    shapes = {name: p.shape for name, p in model.named_parameters()}
    if set(start) != set(shapes):
        raise ValueError(
            f"start must hold exactly the model's parameters {sorted(shapes)}, got {sorted(start)}"
        )
    if all(start[n].shape == s for n, s in shapes.items()):
        return False
    if all(start[n].shape == (k, *s) for n, s in shapes.items()):
        return True
    raise ValueError(f"start must hold one parameter set or {k} stacked ones")


def _labelled(rows: np.ndarray, y: np.ndarray, owned_k: np.ndarray | None) -> np.ndarray:
    """Which of a client's ``rows`` carry a label it knows (a class it owns)."""
    return np.ones(len(rows), bool) if owned_k is None else owned_k[y[rows]]


def _pseudo_label(logits: Tensor, owned: Tensor, threshold: float) -> tuple[Tensor, Tensor]:
    """Confident ones among unlabelled samples and their class, by the softmax of ``logits``
    ``[..., U, C]`` over the classes not ``owned`` ``[..., 1, C]``."""
    confidence, cls = torch.softmax(logits.masked_fill(owned, -math.inf), -1).max(-1)
    return confidence > threshold, cls


def _phases(model: nn.Module, cfg: LocalTraining) -> list[list[str]]:
    """The parameter names each phase of local training updates, in alternation."""
    names = [n for n, _ in model.named_parameters()]
    if cfg.objective == "cross_entropy":
        return [names]
    return [
        [n for n in names if not n.startswith(LABEL_PREFIX)],
        [n for n in names if n.startswith(LABEL_PREFIX)],
    ]


def _training_set(
    rows: np.ndarray, y: np.ndarray, labelled: np.ndarray, pseudo_rows: np.ndarray, pseudo_cls: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A client's training rows and their targets: its labelled rows, then the pseudo-labelled."""
    return (
        np.concatenate([rows[labelled], pseudo_rows]).astype(np.int64),
        np.concatenate([y[rows[labelled]], pseudo_cls]).astype(np.int64),
    )


def _setup(
    model: nn.Module,
    start: dict[str, Tensor],
    x: Tensor,
    y: Tensor,
    client_indices: list[np.ndarray],
    cfg: LocalTraining,
    seeds: np.ndarray,
    owned: np.ndarray | None,
) -> tuple[bool, list[np.ndarray], np.ndarray, list[np.ndarray]]:
    _check(model, x, y, client_indices, cfg, seeds, owned)
    rows = [np.asarray(r, dtype=np.int64) for r in client_indices]
    y_np = y.numpy()
    labelled = [_labelled(r, y_np, None if owned is None else owned[k]) for k, r in enumerate(rows)]
    return _is_stacked(model, start, len(rows)), rows, y_np, labelled


# --- the batched path --------------------------------------------------------------------


def _rows(t: Tensor, index: Tensor) -> Tensor:
    """``t[index]`` for an integer ``index`` of any shape, by ``index_select`` (several times
    faster than advanced indexing on CPU, on stacked and on expanded tensors alike)."""
    return t.index_select(0, index.flatten()).view(*index.shape, *t.shape[1:])


def _pad(a: np.ndarray, width: int, fill: int) -> np.ndarray:
    return np.concatenate([a, np.full(width - len(a), fill, dtype=a.dtype)])


def _stacked_pseudo_labels(
    model: nn.Module,
    params: dict[str, Tensor],
    x: Tensor,
    unlabelled: list[np.ndarray],
    owned: np.ndarray,
    threshold: float,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Step 1 of ``label_anchored`` for all clients at once: per client, its pseudo-labelled
    rows and their classes. ``params`` is stacked ``[K, ...]`` (an expanded view will do).
    Scores go in chunks of about :data:`CHUNK_ROWS` gathered rows over the clients."""
    out = [(r[:0], r[:0]) for r in unlabelled]
    sel = [k for k, r in enumerate(unlabelled) if len(r)]
    if not sel:
        return out
    index = torch.tensor(sel)
    sub = {n: _rows(p, index) for n, p in params.items()}
    forward = _stacked_forward(model)
    owned_sel = torch.from_numpy(owned[sel])[:, None, :]
    sizes = np.array([len(unlabelled[k]) for k in sel])
    width = max(1, CHUNK_ROWS // len(sel))
    keep: list[list[np.ndarray]] = [[] for _ in sel]
    classes: list[list[np.ndarray]] = [[] for _ in sel]
    for lo in range(0, int(sizes.max()), width):
        # a client short of rows repeats its first one; those columns are dropped below
        cols = np.stack([_pad(unlabelled[k][lo : lo + width], width, unlabelled[k][0]) for k in sel])
        with torch.no_grad():
            confident, cls = _pseudo_label(
                forward(sub, _rows(x, torch.from_numpy(cols))), owned_sel, threshold
            )
        for j, n in enumerate(np.clip(sizes - lo, 0, width)):
            keep[j].append(confident[j, :n].numpy())
            classes[j].append(cls[j, :n].numpy())
    for j, k in enumerate(sel):
        mask = np.concatenate(keep[j])
        out[k] = (unlabelled[k][mask], np.concatenate(classes[j])[mask])
    return out


def _step_tables(
    sets: list[tuple[np.ndarray, np.ndarray]], orders: list[np.ndarray], batch_size: int, n_steps: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Every step's minibatch of every client, ``[T, K, B]`` each: rows of ``x``, targets,
    and loss weights (1/real samples in the batch; 0 on padding, which repeats the batch's
    first row so that no other client's or unused row is read)."""
    k_all = len(sets)
    rows_t = np.zeros((n_steps, k_all, batch_size), np.int64)
    targets_t = np.zeros((n_steps, k_all, batch_size), np.int64)
    weights_t = np.zeros((n_steps, k_all, batch_size), np.float32)
    for j, ((rows, targets), order) in enumerate(zip(sets, orders)):
        if not len(rows):
            continue
        pos = np.full((len(order), -(-len(rows) // batch_size) * batch_size), -1)
        pos[:, : len(rows)] = order
        pos = pos.reshape(-1, batch_size)
        real = pos >= 0
        pos = np.where(real, pos, pos[:, :1])
        rows_t[: len(pos), j] = rows[pos]
        targets_t[: len(pos), j] = targets[pos]
        weights_t[: len(pos), j] = real / real.sum(1, keepdims=True)
    return torch.from_numpy(rows_t), torch.from_numpy(targets_t), torch.from_numpy(weights_t)


def _stacked_forward(model: nn.Module) -> Callable[[dict[str, Tensor], Tensor], Tensor]:
    """``model``'s forward vectorised over stacked clients: ``[K, ...]`` parameters and
    ``[K, B, F]`` inputs give ``[K, B, C]`` logits."""
    return vmap(lambda params, xb: functional_call(model, params, (xb,)))


def train_clients(
    model: nn.Module,
    start: dict[str, Tensor],
    x: Tensor,
    y: Tensor,
    client_indices: list[np.ndarray],
    cfg: LocalTraining,
    seeds: np.ndarray,
    owned: np.ndarray | None = None,
) -> ClientUpdates:
    """Train K clients' local models as one stacked model (see the module docstring).

    ``model`` gives the architecture only; ``start`` the parameters, either one set for all
    clients or ``[K, ...]`` stacked (clients that started from different global versions).
    ``x`` ``[N, F]`` float32 and ``y`` ``[N]`` int64 are the one shared dataset;
    ``client_indices[k]`` are client ``k``'s rows of it, ``seeds[k]`` seeds its batch order,
    ``owned[k, c]`` says whether it knows the labels of class ``c`` (None: every class)."""
    with pinned_threads(1):
        stacked, rows, y_np, labelled = _setup(model, start, x, y, client_indices, cfg, seeds, owned)
        k_all = len(rows)
        base = start if stacked else {n: t.expand(k_all, *t.shape) for n, t in start.items()}
        pseudo = [(r[:0], r[:0]) for r in rows]
        if cfg.objective == "label_anchored" and owned is not None:
            unlabelled = [r[~lab] for r, lab in zip(rows, labelled)]
            pseudo = _stacked_pseudo_labels(model, base, x, unlabelled, owned, cfg.pseudo_label_threshold)
        sets = [_training_set(r, y_np, lab, *p) for r, lab, p in zip(rows, labelled, pseudo)]
        sizes = np.array([len(s[0]) for s in sets], dtype=np.int64)
        orders = batch_orders(sizes, cfg.epochs, seeds)
        steps = cfg.epochs * -(-sizes // cfg.batch_size)
        # clients by step count, most first: those still training at step t are a prefix
        order = np.argsort(-steps, kind="stable")
        n_steps = int(steps.max(initial=0))
        rows_t, targets_t, weights_t = _step_tables(
            [sets[k] for k in order], [orders[k] for k in order], cfg.batch_size, n_steps
        )
        active = (steps[order][None, :] > np.arange(n_steps)[:, None]).sum(1)
        perm = torch.from_numpy(order)
        params = {n: _rows(t, perm) for n, t in base.items()}  # a copy, updated in place
        # each client's start, for the proximal term (one set broadcasts over the clients)
        anchor = {n: _rows(t, perm) if stacked else t for n, t in start.items()} if cfg.prox_mu else {}
        phases = _phases(model, cfg)
        forward = _stacked_forward(model)
        for t in range(n_steps):
            n = int(active[t])
            names = phases[(t // cfg.alternate_steps) % len(phases)]
            # leaves sharing the prefix's storage: updating them updates ``params``
            trainable = {name: params[name][:n].detach().requires_grad_() for name in names}
            frozen = {name: p[:n] for name, p in params.items() if name not in trainable}
            logits = forward(trainable | frozen, _rows(x, rows_t[t, :n]))
            # classes on dim 1: this build's log_softmax is several times slower over a
            # short last dim (10 classes) than over a middle one
            per_sample = F.cross_entropy(logits.transpose(1, 2), targets_t[t, :n], reduction="none")
            # clients' parameters are independent, so the gradient of the sum of their
            # losses is every client's own gradient
            loss = (weights_t[t, :n] * per_sample).sum()
            grads = torch.autograd.grad(loss, list(trainable.values()))
            with torch.no_grad():
                for (name, p), g in zip(trainable.items(), grads):
                    if cfg.prox_mu:
                        g = g + cfg.prox_mu * (p - (anchor[name][:n] if stacked else anchor[name]))
                    p.add_(g, alpha=-cfg.lr)
        inverse = torch.from_numpy(np.argsort(order))
        return ClientUpdates(
            params={n: _rows(p, inverse) for n, p in params.items()},
            num_samples=sizes,
            steps=steps,
            pseudo_labelled=np.array([len(p[0]) for p in pseudo], dtype=np.int64),
        )


# --- the reference loop ------------------------------------------------------------------


def train_clients_loop(
    model: nn.Module,
    start: dict[str, Tensor],
    x: Tensor,
    y: Tensor,
    client_indices: list[np.ndarray],
    cfg: LocalTraining,
    seeds: np.ndarray,
    owned: np.ndarray | None = None,
) -> ClientUpdates:
    """:func:`train_clients`, the straightforward way: per client a copy of ``model`` and a
    ``torch.optim.SGD`` (one per phase), batch by batch. The reference the batched path
    is checked against, and the baseline of ``benchmarks/federated.py``."""
    with pinned_threads(1):
        stacked, rows, y_np, labelled = _setup(model, start, x, y, client_indices, cfg, seeds, owned)
        trained: list[dict[str, Tensor]] = []
        sizes, steps, n_pseudo = [], [], []
        for k, (r, lab) in enumerate(zip(rows, labelled)):
            net = copy.deepcopy(model)
            start_k = {n: t[k] if stacked else t for n, t in start.items()}
            net.load_state_dict(start_k)
            pseudo_rows, pseudo_cls = r[:0], r[:0]
            if cfg.objective == "label_anchored" and owned is not None and not lab.all():
                unl = r[~lab]
                with torch.no_grad():
                    logits = torch.cat(
                        [net(x[torch.from_numpy(c)]) for c in np.array_split(unl, -(-len(unl) // CHUNK_ROWS))]
                    )
                confident, cls = _pseudo_label(logits, torch.from_numpy(owned[k]), cfg.pseudo_label_threshold)
                pseudo_rows, pseudo_cls = unl[confident.numpy()], cls[confident].numpy()
            train_rows, targets = _training_set(r, y_np, lab, pseudo_rows, pseudo_cls)
            (order,) = batch_orders([len(train_rows)], cfg.epochs, seeds[k : k + 1])
            params = dict(net.named_parameters())
            optimisers = [
                torch.optim.SGD([params[n] for n in names], lr=cfg.lr) for names in _phases(net, cfg)
            ]
            step = 0
            for epoch in order:
                for lo in range(0, len(epoch), cfg.batch_size):
                    batch = epoch[lo : lo + cfg.batch_size]
                    loss = F.cross_entropy(
                        net(x[torch.from_numpy(train_rows[batch])]), torch.from_numpy(targets[batch])
                    )
                    if cfg.prox_mu:
                        loss = loss + cfg.prox_mu / 2 * sum(
                            ((params[n] - start_k[n]) ** 2).sum() for n in params
                        )
                    net.zero_grad()
                    loss.backward()
                    optimisers[(step // cfg.alternate_steps) % len(optimisers)].step()
                    step += 1
            trained.append({n: p.detach() for n, p in params.items()})
            sizes.append(len(train_rows))
            steps.append(step)
            n_pseudo.append(len(pseudo_rows))
        return ClientUpdates(
            params={n: torch.stack([t[n] for t in trained]) for n in start},
            num_samples=np.array(sizes, dtype=np.int64),
            steps=np.array(steps, dtype=np.int64),
            pseudo_labelled=np.array(n_pseudo, dtype=np.int64),
        )


# --- evaluation, aggregation and costs ---------------------------------------------------


def evaluate(model: nn.Module, params: dict[str, Tensor], x: Tensor, y: Tensor) -> float:
    """Accuracy of one (unstacked) parameter set on ``x``, ``y``, in chunks of rows."""
    correct = 0
    with pinned_threads(1), torch.no_grad():
        for lo in range(0, len(x), CHUNK_ROWS):
            logits = functional_call(model, params, (x[lo : lo + CHUNK_ROWS],))
            correct += int((logits.argmax(1) == y[lo : lo + CHUNK_ROWS]).sum())
    return correct / len(x)


def flops_per_sample(model: nn.Module, n_features: int) -> float:
    """Training FLOPs per sample: 3x the forward FLOPs (the backward pass costs about twice
    the forward: gradients for inputs and for weights), forward FLOPs being 2 per
    multiply-accumulate of the matmuls (FlopCounterMode's count; elementwise ops are left
    out). Measured as the forward's marginal cost of one more sample, so work done once per
    batch (an anchored model's label encoder) is not charged per sample."""

    def forward_flops(n: int) -> int:
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model(torch.zeros(n, n_features))
        return counter.get_total_flops()

    return 3.0 * (forward_flops(2) - forward_flops(1))


def model_bytes(params: dict[str, Tensor]) -> int:
    """Bytes of one parameter set, the size of a model upload or download."""
    return sum(t.numel() * t.element_size() for t in params.values())
