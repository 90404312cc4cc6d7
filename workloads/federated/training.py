"""Local training of many federated clients at once, as one stacked model.

K clients with models of one architecture train as a single stacked model: every
parameter gets a leading client dimension ``[K, ...]``, the per-client gradient comes
from autograd through a ``torch.vmap``-ped :func:`torch.func.functional_call`, and one
vectorised optimiser update per global step index moves all clients together. Clients
differ in data size and hence in step count: clients are ordered by step count (most
first), so the clients still training at step ``t`` are a prefix of the stack, and a
step computes and updates only that prefix (parameters and optimiser state); a client
whose steps are over stays unchanged. A partial last batch is padded with copies of
its own first sample at weight 0, so its loss averages only its real samples. Every
minibatch ``[K, B, ...]`` is gathered by index from the one shared ``x``; no client's
data is copied beyond it.

What a client does is a :class:`~policies.federated.base.ClientFit` from the
aggregation policy: the optimiser phases each batch takes in order (which parameters,
SGD or Adam, learning rate; each phase keeps its own optimiser state), an extra
per-client loss term (vmapped over the clients) and per-client state ``[K, ...]`` it
reads. A client trains on its labelled samples (with ``owned``, samples of classes it
does not own are unlabelled and left out) plus any ``extra`` (pseudo-labelled) samples.

:func:`train_clients_loop` is the straightforward reference (one ``nn.Module`` and one
``torch.optim`` optimiser per phase and client, batch by batch) over the same batch
orders from :func:`batch_orders`; both give the same results within floating-point
tolerance. Both run torch on one thread (:func:`pinned_threads`), so equal inputs give
bit-identical outputs on any machine.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, vmap
from torch.optim.adam import adam
from torch.utils.flop_counter import FlopCounterMode

from policies.federated.base import ClientFit, Phase
from sim.errors import ConfigError
from workloads.cache import cache_dir, pinned_threads, write_atomic
from workloads.federated.models import LABEL_PREFIX
from workloads.user_models import source_digest

# Rows per forward when scoring or evaluating many samples: bounds the memory of a gather.
CHUNK_ROWS = 1024
ADAM = {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8}  # torch.optim.Adam's defaults


@dataclass(frozen=True)
class LocalTraining:
    """A client's local training: ``epochs`` passes over its samples in minibatches of
    ``batch_size`` (the last one of an epoch may be smaller). ``optimizer`` and ``lr``
    make the default phase (:meth:`default_phase`) a policy may use or replace."""

    epochs: int = 1
    batch_size: int = 8
    lr: float = 0.1
    optimizer: Literal["sgd", "adam"] = "sgd"

    def __post_init__(self) -> None:
        if self.epochs < 0:
            raise ValueError(f"epochs must be >= 0, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {self.optimizer!r}")

    def default_phase(self) -> Phase:
        return Phase("all", self.optimizer, self.lr)


@dataclass
class ClientUpdates:
    """What K clients' local training returns, client ``k`` at index ``k``."""

    params: dict[str, Tensor]  # stacked [K, ...] trained parameters
    num_samples: np.ndarray  # [K] samples each client trained on (labelled + extra)
    steps: np.ndarray  # [K] minibatches each client took (each phase steps once per batch)
    pseudo_labelled: np.ndarray  # [K] of num_samples, those from ``extra``


Extra = list[tuple[np.ndarray, np.ndarray]]  # per client: extra rows of x and their targets


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


def check_stacked(tensors: dict[str, Tensor], k: int, what: str) -> None:
    """A policy hook's per-client tensors must stack K clients: one-line ConfigError if not."""
    for name, t in tensors.items():
        if not isinstance(t, Tensor) or t.dim() == 0 or len(t) != k:
            shape = list(t.shape) if isinstance(t, Tensor) else type(t).__name__
            raise ConfigError(
                f"aggregation: {what} {name!r} has shape {shape}; expected [{k}, ...] (one row per client)"
            )


def _phase_names(model: nn.Module, phases: tuple[Phase, ...]) -> list[list[str]]:
    names = [n for n, _ in model.named_parameters()]
    label = {n for n in names if n.startswith(LABEL_PREFIX)}
    if any(p.params != "all" for p in phases) and not label:
        raise ValueError(f"phases over 'data'/'label' parameters need parameters named {LABEL_PREFIX}*")
    pick = {"all": lambda n: True, "data": lambda n: n not in label, "label": lambda n: n in label}
    return [[n for n in names if pick[p.params](n)] for p in phases]


def _setup(
    model: nn.Module,
    start: dict[str, Tensor],
    x: Tensor,
    y: Tensor,
    client_indices: list[np.ndarray],
    seeds: np.ndarray,
    owned: np.ndarray | None,
    fit: ClientFit,
    extra: Extra | None,
) -> tuple[bool, list[tuple[np.ndarray, np.ndarray]]]:
    """Checks; whether ``start`` is stacked; each client's training rows and targets."""
    k = len(client_indices)
    if any(True for _ in model.buffers()):
        raise ValueError("models with buffers (e.g. BatchNorm) are not supported: parameters only")
    if x.dtype != torch.float32 or x.dim() < 2:
        raise ValueError(f"x must be [N, ...] float32, got {list(x.shape)} {x.dtype}")
    if y.dtype != torch.int64 or y.shape != x.shape[:1]:
        raise ValueError(f"y must be [N] int64 with N = {len(x)}, got {list(y.shape)} {y.dtype}")
    if len(seeds) != k:
        raise ValueError(f"need one seed per client: {k} clients, {len(seeds)} seeds")
    if owned is not None and (owned.dtype != bool or owned.ndim != 2 or len(owned) != k):
        raise ValueError(f"owned must be [K, C] bool with K = {k}, got {owned.shape}")
    if extra is not None and len(extra) != k:
        raise ValueError(f"extra must have one entry per client: {k} clients, {len(extra)} entries")
    check_stacked(fit.state, k, "client state")
    y_np = y.numpy()
    sets = []
    for j, r in enumerate(client_indices):
        r = np.asarray(r, dtype=np.int64)
        if owned is not None:
            r = r[owned[j][y_np[r]]]
        more_rows, more_targets = extra[j] if extra is not None else (r[:0], r[:0])
        sets.append(
            (
                np.concatenate([r, more_rows]).astype(np.int64),
                np.concatenate([y_np[r], more_targets]).astype(np.int64),
            )
        )
    return _is_stacked(model, start, k), sets


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


def _extra_counts(extra: Extra | None, k: int) -> np.ndarray:
    return np.array([len(rows) for rows, _ in extra] if extra is not None else [0] * k, dtype=np.int64)


# --- the batched path --------------------------------------------------------------------


def _rows(t: Tensor, index: Tensor) -> Tensor:
    """``t[index]`` for an integer ``index`` of any shape, by ``index_select`` (several times
    faster than advanced indexing on CPU, on stacked and on expanded tensors alike)."""
    return t.index_select(0, index.flatten()).view(*index.shape, *t.shape[1:])


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
    ``[K, B, ...]`` inputs give ``[K, B, C]`` logits."""
    return vmap(lambda params, xb: functional_call(model, params, (xb,)))


def _checked_term(values: Tensor, shape: tuple[int, ...]) -> Tensor:
    """A loss term's value must have ``shape`` (one scalar per client): one-line ConfigError if not."""
    if not isinstance(values, Tensor) or values.shape != shape:
        got = list(values.shape) if isinstance(values, Tensor) else type(values).__name__
        raise ConfigError(
            f"aggregation: client loss term gives {got} for {list(shape)}; expected one scalar per client"
        )
    return values.sum()


def _loss_terms(
    fit: ClientFit, params: dict[str, Tensor], start: dict[str, Tensor], stacked: bool, state, n: int
) -> Tensor:
    """The sum of the policy's loss term over the first ``n`` clients, vmapped over them."""
    values = vmap(fit.loss_term, in_dims=(0, 0 if stacked else None, 0))(params, start, state)
    return _checked_term(values, (n,))


def train_clients(
    model: nn.Module,
    start: dict[str, Tensor],
    x: Tensor,
    y: Tensor,
    client_indices: list[np.ndarray],
    cfg: LocalTraining,
    seeds: np.ndarray,
    owned: np.ndarray | None = None,
    fit: ClientFit | None = None,
    extra: Extra | None = None,
) -> ClientUpdates:
    """Train K clients' local models as one stacked model (see the module docstring).

    ``model`` gives the architecture only; ``start`` the parameters, either one set for all
    clients or ``[K, ...]`` stacked (clients that started from different global versions).
    ``x`` ``[N, ...]`` float32 and ``y`` ``[N]`` int64 are the one shared dataset;
    ``client_indices[k]`` are client ``k``'s rows of it, ``seeds[k]`` seeds its batch order,
    ``owned[k, c]`` says whether it knows the labels of class ``c`` (None: every class),
    ``fit`` what it does (None: ``cfg``'s default phase), ``extra[k]`` more (rows, targets)."""
    fit = fit or ClientFit((cfg.default_phase(),))
    with pinned_threads(1):
        stacked, sets = _setup(model, start, x, y, client_indices, seeds, owned, fit, extra)
        k_all = len(sets)
        base = start if stacked else {n: t.expand(k_all, *t.shape) for n, t in start.items()}
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
        anchor = {n: _rows(t, perm) if stacked else t for n, t in start.items()}
        state = {n: _rows(t, perm) for n, t in fit.state.items()}
        phase_names = _phase_names(model, fit.phases)
        moments = [
            {n: (torch.zeros_like(params[n]), torch.zeros_like(params[n]), torch.zeros(())) for n in names}
            if phase.optimizer == "adam"
            else {}
            for phase, names in zip(fit.phases, phase_names)
        ]
        forward = _stacked_forward(model)
        for t in range(n_steps):
            n = int(active[t])
            xb, targets, weights = _rows(x, rows_t[t, :n]), targets_t[t, :n], weights_t[t, :n]
            for phase, names, moment in zip(fit.phases, phase_names, moments):
                # leaves sharing the prefix's storage: updating them updates ``params``
                trainable = {name: params[name][:n].detach().requires_grad_() for name in names}
                current = {name: p[:n] for name, p in params.items()} | trainable
                logits = forward(current, xb)
                # classes on dim 1: this build's log_softmax is several times slower over a
                # short last dim (10 classes) than over a middle one
                per_sample = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
                # clients' parameters are independent, so the gradient of the sum of their
                # losses is every client's own gradient
                loss = (weights * per_sample).sum()
                if fit.loss_term is not None:
                    prefix = {name: a[:n] for name, a in anchor.items()} if stacked else anchor
                    loss = loss + _loss_terms(
                        fit, current, prefix, stacked, {s: v[:n] for s, v in state.items()}, n
                    )
                grads = torch.autograd.grad(loss, list(trainable.values()))
                with torch.no_grad():
                    _step(phase, list(trainable.values()), list(grads), [moment.get(nm) for nm in names], n)
        inverse = torch.from_numpy(np.argsort(order))
        return ClientUpdates(
            params={n: _rows(p, inverse) for n, p in params.items()},
            num_samples=sizes,
            steps=steps,
            pseudo_labelled=_extra_counts(extra, len(sets)),
        )


def _step(phase: Phase, params: list[Tensor], grads: list[Tensor], moments: list, n: int) -> None:
    """One optimiser step of the first ``n`` clients (views into the stacked storage)."""
    if phase.optimizer == "sgd":
        for p, g in zip(params, grads):
            p.add_(g, alpha=-phase.lr)
        return
    # Adam is elementwise, so one call over the stacked prefix is every client's own Adam;
    # the active clients have all taken the same number of steps, so one counter serves
    exp_avgs = [m[0][:n] for m in moments]
    exp_avg_sqs = [m[1][:n] for m in moments]
    adam(
        params,
        grads,
        exp_avgs,
        exp_avg_sqs,
        [],
        [m[2] for m in moments],
        foreach=False,
        amsgrad=False,
        beta1=ADAM["beta1"],
        beta2=ADAM["beta2"],
        lr=phase.lr,
        weight_decay=0.0,
        eps=ADAM["eps"],
        maximize=False,
    )


# --- the reference loop ------------------------------------------------------------------


def _optimiser(phase: Phase, params: list[Tensor]) -> torch.optim.Optimizer:
    if phase.optimizer == "sgd":
        return torch.optim.SGD(params, lr=phase.lr)
    return torch.optim.Adam(params, lr=phase.lr, betas=(ADAM["beta1"], ADAM["beta2"]), eps=ADAM["eps"])


def train_clients_loop(
    model: nn.Module,
    start: dict[str, Tensor],
    x: Tensor,
    y: Tensor,
    client_indices: list[np.ndarray],
    cfg: LocalTraining,
    seeds: np.ndarray,
    owned: np.ndarray | None = None,
    fit: ClientFit | None = None,
    extra: Extra | None = None,
) -> ClientUpdates:
    """:func:`train_clients`, the straightforward way: per client a copy of ``model`` and one
    ``torch.optim`` optimiser per phase, batch by batch. The reference the batched path
    is checked against, and the baseline of ``benchmarks/federated.py``."""
    fit = fit or ClientFit((cfg.default_phase(),))
    with pinned_threads(1):
        stacked, sets = _setup(model, start, x, y, client_indices, seeds, owned, fit, extra)
        phase_names = _phase_names(model, fit.phases)
        trained: list[dict[str, Tensor]] = []
        steps = []
        for k, (train_rows, targets) in enumerate(sets):
            net = copy.deepcopy(model)
            start_k = {n: t[k] if stacked else t for n, t in start.items()}
            state_k = {n: t[k] for n, t in fit.state.items()}
            net.load_state_dict(start_k)
            (order,) = batch_orders([len(train_rows)], cfg.epochs, seeds[k : k + 1])
            params = dict(net.named_parameters())
            optimisers = [
                _optimiser(p, [params[n] for n in names]) for p, names in zip(fit.phases, phase_names)
            ]
            batches = 0
            for epoch in order:
                for lo in range(0, len(epoch), cfg.batch_size):
                    batch = epoch[lo : lo + cfg.batch_size]
                    xb, tb = x[torch.from_numpy(train_rows[batch])], torch.from_numpy(targets[batch])
                    for optimiser in optimisers:
                        loss = F.cross_entropy(net(xb), tb)
                        if fit.loss_term is not None:
                            loss = loss + _checked_term(fit.loss_term(params, start_k, state_k), ())
                        net.zero_grad()
                        loss.backward()
                        optimiser.step()
                    batches += 1
            trained.append({n: p.detach() for n, p in params.items()})
            steps.append(batches)
        return ClientUpdates(
            params={n: torch.stack([t[n] for t in trained]) for n in start},
            num_samples=np.array([len(s[0]) for s in sets], dtype=np.int64),
            steps=np.array(steps, dtype=np.int64),
            pseudo_labelled=_extra_counts(extra, len(sets)),
        )


# --- pseudo-labels, evaluation and costs -------------------------------------------------


def similarities(model: nn.Module, params: dict[str, Tensor], x: Tensor) -> Tensor:
    """``[N, C]`` cosines of an anchored model's data representations ``f(x)`` and label
    representations ``g(e_c)``, under one (unstacked) parameter set, in chunks of rows."""
    sub = lambda prefix: {n[len(prefix) :]: p for n, p in params.items() if n.startswith(prefix)}  # noqa: E731
    with torch.no_grad():
        labels = functional_call(model.label_encoder, sub("label_encoder."), (params["label_embedding"],))
        labels = F.normalize(labels, dim=-1)
        data = [
            F.normalize(functional_call(model.encoder, sub("encoder."), (x[lo : lo + CHUNK_ROWS],)), dim=-1)
            for lo in range(0, len(x), CHUNK_ROWS)
        ]
    return torch.cat(data) @ labels.T if data else x.new_zeros(0, len(labels))


def pseudo_labels(
    model: nn.Module,
    params: dict[str, Tensor],
    x: Tensor,
    y: Tensor,
    client_indices: list[np.ndarray],
    owned: np.ndarray,
    percentile: float,
) -> Extra:
    """FedAlign's anchor-guided pseudo-labels, per client, from the global ``params``: among
    a client's samples without a known label, those whose argmax similarity over all
    classes is a class ``c`` it lacks and whose similarity to ``c`` exceeds the client's
    ``percentile``-th percentile of similarities to ``c`` (over all its samples)."""
    rows = [np.asarray(r, dtype=np.int64) for r in client_indices]
    with pinned_threads(1):
        sims = similarities(model, params, x[torch.from_numpy(np.concatenate(rows))]).numpy()
    y_np, out, lo = y.numpy(), [], 0
    for k, r in enumerate(rows):
        s, lo = sims[lo : lo + len(r)], lo + len(r)
        if not len(r):
            out.append((r, r))
            continue
        lacks = ~owned[k]
        threshold = np.percentile(s, percentile, axis=0)
        top = s.argmax(1)
        unlabelled = ~owned[k][y_np[r]]
        picked = unlabelled & lacks[top] & (s[np.arange(len(r)), top] > threshold[top])
        out.append((r[picked], top[picked].astype(np.int64)))
    return out


def evaluate(model: nn.Module, params: dict[str, Tensor], x: Tensor, y: Tensor) -> float:
    """Accuracy of one (unstacked) parameter set on ``x``, ``y``, in chunks of rows."""
    correct = 0
    with pinned_threads(1), torch.no_grad():
        for lo in range(0, len(x), CHUNK_ROWS):
            logits = functional_call(model, params, (x[lo : lo + CHUNK_ROWS],))
            correct += int((logits.argmax(1) == y[lo : lo + CHUNK_ROWS]).sum())
    return correct / len(x)


def forward_flops_per_sample(model: nn.Module, input_shape: tuple[int, ...]) -> float:
    """Forward FLOPs per sample: 2 per multiply-accumulate of matmuls and convolutions
    (FlopCounterMode's count; elementwise ops left out), measured as the marginal cost of
    one more sample, so work done once per batch (an anchored model's label encoder) is
    not charged per sample. Cached on disk by architecture, parameter shapes, input shape
    and torch version: FlopCounterMode's first use in a process imports torch._dynamo,
    several seconds, more than a small run's whole simulation."""
    shapes = [(n, list(p.shape)) for n, p in model.named_parameters()]
    # the module classes' source: a user's model edited in place is counted again
    key = json.dumps([torch.__version__, list(input_shape), repr(model), shapes, source_digest(None, model)])
    path = cache_dir() / "federated-flops" / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"
    try:
        cached = json.loads(path.read_text())
        if cached["key"] == key:
            return float(cached["flops"])
    except (OSError, ValueError, KeyError, TypeError):
        pass  # absent or damaged: count again

    def flops(n: int) -> int:
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model(torch.zeros(n, *input_shape))
        return counter.get_total_flops()

    value = float(flops(2) - flops(1))
    write_atomic(path, lambda f: json.dump({"key": key, "flops": value}, f), text=True)
    return value


def flops_per_sample(model: nn.Module, input_shape: tuple[int, ...]) -> float:
    """Training FLOPs per sample and optimiser phase: 3x the forward (the backward pass
    costs about twice the forward: gradients for inputs and for weights)."""
    return 3.0 * forward_flops_per_sample(model, input_shape)


def model_bytes(params: dict[str, Tensor]) -> int:
    """Bytes of one parameter set, the size of a model upload or download."""
    return sum(t.numel() * t.element_size() for t in params.values())
