"""Dynamic (per-input) channel pruning of the fine-grained shapes networks, and its static L1 baseline.

A reconstruction of "Fire Together Wire Together" (FTWT; Elkerdawy et al., CVPR 2022):
before each gated layer, a small **mask predictor** (global average pool of the layer's
input, then a linear layer with one logit per filter) decides which of the layer's
filters run for this input; a filter whose sigmoid is at most ``keep_threshold`` is not
computed (its channel is zero), which saves its own MACs and the next layer's MACs on
that channel. In ``vgg_shapes`` a layer's filters are gated and its input is the
previous layer's gated activation; in ``resnet_shapes`` each residual block's first
convolution is gated, inside the block (Li et al.'s scheme), so the residual stream keeps
its shape. The predictor is trained as self-supervised binary classification: the
target of a filter is 1 if it is among the top-k of the gated activation (dense) for this
input, filters ranked by the peak ``max |a|`` of their map (FTWT's criterion), with k per
input the smallest number whose peaks hold at least ``mass_fraction`` of the layer's
total (FTWT keeps filters while the running share stays at or below the threshold; we
include the filter that crosses it, so ``mass_fraction=1`` keeps every active filter).

Assumed where the paper differs or is silent (each a field of :class:`PruningConfig`):
by default the task network is not retrained (the issue asks for predictors trained
separately; FTWT's "decoupled" mode trains them on detached inputs but also trains the
backbone under the masks, which ``dynamic_finetune_epochs`` adds, with the predictors
frozen); the predictors are trained one layer after the other on the inputs that the
already-gated earlier layers produce; the VGG's first layer is dense (its predictor would
see only the image's three channel means); at least one filter always runs.

The static baseline is L1 filter pruning (Li et al., ICLR 2017): every gated layer keeps
the same share of its filters with the largest L1 norms, chosen so that its MACs match
the dynamic model's mean on the calib split, then the network is fine-tuned with the
parent's exit-weighted loss. Both are served by the ``edge`` kind like any exit model;
each test sample carries the MACs and bytes of its own mask (:func:`gated_costs`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt
from torch import nn

from devices.cost import Layer, extract_layers
from sim.config import StrictModel, validate
from sim.errors import ConfigError
from sim.kernel import torch_generator
from workloads import multiexit
from workloads.cache import cache_dir, load_torch, pinned_threads, save_torch
from workloads.multiexit import ExitModel, MultiExitNet

SEED = 0


class PruningConfig(StrictModel):
    """Every constant of the mask predictors and of the matched static baseline."""

    mass_fraction: float = Field(0.9, gt=0, le=1)  # share of a layer's activation mass the top-k hold
    keep_threshold: float = Field(0.5, gt=0, lt=1)  # a filter runs if its predicted probability exceeds this
    first_gated_layer: NonNegativeInt = 1  # layers before it are dense
    epochs: PositiveInt = 30  # predictor training, per layer
    batch: PositiveInt = 256
    lr: PositiveFloat = 0.01  # Adam
    finetune_epochs: PositiveInt = 3  # static baseline: fine-tuning after L1 pruning
    finetune_lr: PositiveFloat = 0.01
    # dynamic: epochs of fine-tuning the network under its frozen predictors' masks (0: none)
    dynamic_finetune_epochs: NonNegativeInt = 0


# Models the edge kind can select: name -> (parent exit model, dynamic or static, constants).
MODELS: dict[str, tuple[str, str, dict[str, float]]] = {
    "vgg_shapes_dynprune": ("vgg_shapes", "dynamic", {}),
    "vgg_shapes_l1prune": ("vgg_shapes", "static", {}),  # MACs matched to vgg_shapes_dynprune
    "resnet_shapes_dynprune": ("resnet_shapes", "dynamic", {"first_gated_layer": 0}),
    "resnet_shapes_l1prune": ("resnet_shapes", "static", {"first_gated_layer": 0}),
}


def settings(**values: float) -> PruningConfig:
    """A :class:`PruningConfig`; a bad value is a one-line ConfigError naming ``pruning.<field>``."""
    return validate(PruningConfig, values, prefix="pruning")


# --- masks -----------------------------------------------------------------------------


def mask_targets(activation: torch.Tensor, mass_fraction: float) -> torch.Tensor:
    """Per sample and filter of ``activation`` ``[n, C, H, W]``: True if the filter is among
    the k with the largest ``max |a|`` over its map, k the smallest count whose peaks hold at
    least ``mass_fraction`` of the sum of all peaks (ties rank the lower index first; k >= 1)."""
    peak = activation.abs().amax((2, 3))
    order = torch.argsort(peak, dim=1, descending=True, stable=True)
    share = torch.gather(peak, 1, order).cumsum(1) / peak.sum(1, keepdim=True)
    k = ((share < mass_fraction - 1e-6).sum(1) + 1).clamp(max=peak.shape[1])  # no mass: k = 1
    rank = torch.argsort(order, dim=1)
    return rank < k[:, None]


def _predictor(cin: int, cout: int) -> nn.Sequential:
    """Mask predictor: global average pool of the layer's input, one logit per output filter."""
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, cout))


def _keep(logits: torch.Tensor, threshold: float) -> torch.Tensor:
    """Filters whose probability exceeds ``threshold``, and the most probable one always."""
    keep = logits.sigmoid() > threshold
    keep[torch.arange(len(logits)), logits.argmax(1)] = True
    return keep


def _stage(stage: nn.Module, x: torch.Tensor, keep: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Stage output with its gated channels multiplied by ``keep`` (None: dense), and the gated
    channels' dense activation: a VGG layer's output, or a residual block's first
    conv-BN-ReLU (pruned inside the block, as Li et al. do, so the residual stream keeps its shape)."""
    if isinstance(stage, multiexit.BasicBlock):
        inner = stage.relu(stage.bn1(stage.conv1(x)))
        gated = inner if keep is None else inner * keep[:, :, None, None]
        return stage.relu(stage.bn2(stage.conv2(gated)) + stage.skip(x)), inner
    y = stage(x)
    return (y if keep is None else y * keep[:, :, None, None]), y


class GatedNet(nn.Module):
    """A trained :class:`MultiExitNet` whose gated layers run only the filters of a mask.

    Stage k's gated channels (:func:`_stage`) are multiplied by a mask: ``masks[k]`` (a
    fixed ``[C_k]`` vector: static pruning) where given, else the keep decision of
    ``predictors[k]`` on the stage's input (dynamic pruning), else ones. :meth:`forward`
    returns every exit's logits and records the masks it used in ``self.kept`` (bool
    ``[n, C_k]`` per stage).
    """

    def __init__(
        self,
        net: MultiExitNet,
        predictors: dict[int, nn.Module],
        masks: dict[int, torch.Tensor],
        threshold: float,
    ):
        super().__init__()
        self.net = net
        self.predictors = nn.ModuleDict({str(k): p for k, p in predictors.items()})
        self.masks = masks
        self.threshold = threshold
        self.widths = _widths(net)
        self.kept: list[torch.Tensor] = []

    @property
    def heads(self) -> nn.ModuleList:
        return self.net.heads

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.net.stem(x)
        exits, self.kept = [], []
        for k, (stage, head) in enumerate(zip(self.net.stages, self.net.heads, strict=True)):
            keep = None
            if k in self.masks:
                keep = self.masks[k].expand(len(x), -1)
            elif str(k) in self.predictors:
                keep = _keep(self.predictors[str(k)](x), self.threshold)
            x, _ = _stage(stage, x, keep)
            self.kept.append(torch.ones(len(x), self.widths[k], dtype=torch.bool) if keep is None else keep)
            exits.append(head(x))
        return exits


def _conv(stage: nn.Module) -> nn.Conv2d:
    """The stage's gated convolution: its first (a VGG layer's only one, a block's ``conv1``)."""
    return next(m for m in stage.modules() if isinstance(m, nn.Conv2d))


def _widths(net: MultiExitNet) -> list[int]:
    """Per stage, the filters a mask gates."""
    return [_conv(stage).out_channels for stage in net.stages]


def _train_predictors(
    net: MultiExitNet, images: torch.Tensor, cfg: PruningConfig
) -> tuple[dict[int, nn.Module], dict[str, list[float]]]:
    """One predictor per gated stage, trained in order: stage k's on the inputs the gated
    stages before it produce, against :func:`mask_targets` of its dense output. Also, per
    gated stage on these training inputs: the share of filter decisions equal to the target,
    the share of target filters kept (recall), and the shares of filters kept and targeted."""
    widths, predictors = _widths(net), {}
    quality: dict[str, list[float]] = {"agreement": [], "recall": [], "kept_share": [], "target_share": []}
    shuffle = torch_generator(SEED, "dynamic_pruning/shuffle")
    with torch.no_grad():
        x = net.stem(images)
    for k, stage in enumerate(net.stages):
        with torch.no_grad():
            y, inner = _stage(stage, x, None)
        if k >= cfg.first_gated_layer:
            cin = x.shape[1]
            pred = _predictor(cin, widths[k])
            gen = torch_generator(SEED, f"dynamic_pruning/init/{k}")
            with torch.no_grad():
                bound = 1 / cin**0.5
                pred[-1].weight.uniform_(-bound, bound, generator=gen)
                pred[-1].bias.zero_()
                pooled = x.mean((2, 3))
            target = mask_targets(inner, cfg.mass_fraction).float()
            opt = torch.optim.Adam(pred.parameters(), lr=cfg.lr)
            for _ in range(cfg.epochs):
                for idx in torch.randperm(len(x), generator=shuffle).split(cfg.batch):
                    loss = F.binary_cross_entropy_with_logits(pred[-1](pooled[idx]), target[idx])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
            predictors[k] = pred.eval()
            with torch.no_grad():
                keep = _keep(pred(x), cfg.keep_threshold)
                y, _ = _stage(stage, x, keep)
            wanted = target.bool()
            quality["agreement"].append(float((keep == wanted).float().mean()))
            quality["recall"].append(float((keep & wanted).sum() / wanted.sum()))
            quality["kept_share"].append(float(keep.float().mean()))
            quality["target_share"].append(float(target.mean()))
        x = y
    return predictors, quality


# --- costs -----------------------------------------------------------------------------


def _block_role(layer: Layer, k: int) -> tuple[int, int]:
    """Share columns of a residual block's layer: ``conv1`` makes the gated channels, its BN and
    first ReLU see them, ``conv2`` reads them; the stem, the skip path, the sum and the last
    ReLU are the residual stream, never pruned (column 0)."""
    name = layer.name.removeprefix(f"stages.{k}.")
    if name == "conv1":
        return 0, k + 1
    if name in ("bn1", "relu"):
        return k + 1, k + 1
    return (k + 1, 0) if name == "conv2" else (0, 0)


def _roles(segments, heads) -> tuple[list[tuple[Layer, int, int]], list[int]]:
    """Each layer with the share columns of its input and output channels (column k + 1: stage
    k's gated share; column 0: always 1), and its part (segment k, or ``n_exits + k`` for head
    k). In a VGG stage, layers before the convolution (pooling, the mask predictor) see the
    input's channels (column k), the convolution maps input to output channels, later layers
    and the exit head see the output's; a linear layer's logits are never pruned. Residual
    blocks: :func:`_block_role`."""
    n_exits = len(segments)
    roles, part = [], []
    for k, layers in enumerate(segments):
        block = any(x.name == f"stages.{k}.conv1" for x in layers)
        col = k
        for layer in layers:
            if block:
                roles.append((layer, *_block_role(layer, k)))
            elif layer.op == "conv":
                roles.append((layer, k, k + 1))
                col = k + 1
            else:
                roles.append((layer, col, 0 if layer.op == "linear" else col))
            part.append(k)
        for layer in heads[k]:
            col = 0 if block else k + 1
            roles.append((layer, col, 0 if layer.op == "linear" else col))
            part.append(n_exits + k)
    return roles, part


def gated_costs(
    segments: tuple[tuple[Layer, ...], ...], heads: tuple[tuple[Layer, ...], ...], shares: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per sample, the MACs and bytes moved of each segment and head (``[n, n_exits]`` each)
    when stage k computes the share ``shares[:, k]`` of its filters (1.0: dense).

    A pruned filter saves its convolution's MACs and weights, its share of the per-channel
    layers that follow (BN, ReLU, pooling, the next mask predictor, the exit head) and its
    input channel of the next convolution or linear layer; biases and logits are never
    pruned. A VGG stage is [pooling,] [mask predictor,] one convolution, then per-channel
    layers; a residual block prunes inside (:func:`_block_role`)."""
    roles, part = _roles(segments, heads)
    full = np.hstack([np.ones((len(shares), 1)), shares])
    f_in = full[:, [i for _, i, _ in roles]]
    f_out = full[:, [o for _, _, o in roles]]
    layers = [layer for layer, _, _ in roles]
    macs, weights, inputs, outputs = (
        np.array([getattr(x, a) for x in layers], float)
        for a in ("macs", "weight_bytes", "input_bytes", "output_bytes")
    )
    bias = np.array(
        [
            x.weight_bytes - x.out_channels * x.in_channels * x.kernel_elems * x.bytes_per_elem
            if x.macs
            else 0.0
            for x in layers
        ]
    )
    both = f_in * f_out
    layer_macs = macs * both
    layer_bytes = (weights - bias) * both + bias * f_out + inputs * f_in + outputs * f_out
    onehot = np.zeros((len(layers), 2 * len(segments)))
    onehot[np.arange(len(layers)), part] = 1.0
    part_macs, part_bytes = layer_macs @ onehot, layer_bytes @ onehot
    n = len(segments)
    return part_macs[:, :n], part_bytes[:, :n], part_macs[:, n:], part_bytes[:, n:]


def _with_predictors(net: MultiExitNet, segments, image_shape: tuple[int, ...], gated: list[int]):
    """``segments`` with each gated stage's mask predictor (traced on ``meta``, named
    ``predictors.k.*``) in front of the stage's layers."""
    x, out, widths = torch.zeros(1, *image_shape), [], _widths(net)
    with torch.no_grad():
        x = net.stem(x)
        for k, (stage, layers) in enumerate(zip(net.stages, segments, strict=True)):
            if k in gated:
                with torch.device("meta"):
                    pred = _predictor(x.shape[1], widths[k])
                traced = extract_layers(pred, torch.zeros(x.shape, device="meta"))
                layers = (*(replace(t, name=f"predictors.{k}.{t.name}") for t in traced), *layers)
            out.append(tuple(layers))
            x = stage(x)
    return tuple(out)


# --- models and cache ------------------------------------------------------------------


@dataclass(frozen=True)
class GatedExitModel(ExitModel):
    """An :class:`ExitModel` whose test samples each cost their own mask's work.

    ``test_part_costs``: per test sample, MACs and bytes of each segment and head, ``[n_test,
    n_exits]`` each (:func:`gated_costs`); the edge kind charges them in place of the dense
    costs of ``segments`` and ``heads``. ``test_kept[j, k]``: filters stage k computed for
    test sample j (``calib_kept`` likewise); ``widths[k]``: stage k's filters.
    """

    test_part_costs: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    test_kept: np.ndarray  # int64 [n_test, n_stages]
    calib_kept: np.ndarray  # int64 [n_calib, n_stages]
    widths: tuple[int, ...]
    log: dict


def _check_name(name: str) -> None:
    if name not in MODELS:
        raise ConfigError(f"model: unknown pruned model {name!r}; known pruned models: {', '.join(MODELS)}")


def _forward(gated: GatedNet, images: torch.Tensor, batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Every exit's softmax ``[n_exits, n, classes]`` and the filters each stage computed ``[n, stages]``."""
    gated.eval()
    probs, kept = [], []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            probs.append(torch.stack(gated(images[i : i + batch])).softmax(-1))
            kept.append(torch.stack([k.sum(1) for k in gated.kept], 1))
    return torch.cat(probs, 1), torch.cat(kept)


def _full_macs(segments, heads, shares: np.ndarray) -> np.ndarray:
    """Per sample, the MACs of the whole network through its final exit at ``shares``."""
    seg_macs, _, head_macs, _ = gated_costs(segments, heads, shares)
    return seg_macs.sum(1) + head_macs[:, -1]


def _static_masks(net: MultiExitNet, parent: ExitModel, cfg: PruningConfig, target_macs: float) -> dict:
    """Per gated stage, the filters with the largest L1 norms (ties to the lower index), one
    share of filters for every gated stage, the share whose MACs come closest to ``target_macs``."""
    widths = np.array(_widths(net))
    gated = np.arange(len(widths)) >= cfg.first_gated_layer
    candidates = []
    for share in np.linspace(0.0, 1.0, 201):
        counts = np.where(gated, np.clip(np.round(share * widths), 1, widths), widths)
        macs = _full_macs(parent.segments, parent.heads, (counts / widths)[None])[0]
        candidates.append((abs(macs - target_macs), counts.tolist()))
    counts = min(candidates)[1]
    masks = {}
    for k in np.flatnonzero(gated).tolist():
        norms = _conv(net.stages[k]).weight.detach().abs().sum((1, 2, 3))
        keep = torch.argsort(norms, descending=True, stable=True)[: int(counts[k])]
        masks[k] = torch.zeros(widths[k], dtype=torch.bool).index_fill_(0, keep, True)
    return masks


def _cache_key(name: str, cfg: PruningConfig) -> str:
    """Changes with this file, the parent model's cache entry, the constants and torch."""
    parent, kind, _ = MODELS[name]
    h = hashlib.sha256(Path(__file__).read_bytes())
    h.update(multiexit.cache_path(parent).name.encode())
    h.update(json.dumps({"seed": SEED, "kind": kind, **cfg.model_dump()}, sort_keys=True).encode())
    h.update(torch.__version__.encode())
    return h.hexdigest()[:16]


def cache_path(name: str, **constants: float) -> Path:
    """The file that holds pruned model ``name``'s predictors or weights, masks and outputs."""
    _check_name(name)
    cfg = settings(**{**MODELS[name][2], **constants})
    return cache_dir() / f"dynprune-{name}-{_cache_key(name, cfg)}.pt"


def _train(name: str, cfg: PruningConfig) -> dict:
    """Predictors (dynamic) or fine-tuned weights and masks (static), and every exit's
    softmax and kept filters on calib and test."""
    parent_name, kind, _ = MODELS[name]
    net = multiexit.trained_model(parent_name)
    data = multiexit._dataset(multiexit._SPECS[parent_name]["dataset"])  # the parent's own splits
    start = time.perf_counter()
    log: dict[str, object] = {}
    if kind == "dynamic":
        predictors, quality = _train_predictors(net, data.images[data.train], cfg)
        log.update(quality)
        gated = GatedNet(net, predictors, {}, cfg.keep_threshold)
        saved: dict = {"predictors": {str(k): p.state_dict() for k, p in predictors.items()}}
        if cfg.dynamic_finetune_epochs:
            gated.predictors.requires_grad_(False)
            multiexit._fit(gated, parent_name, cfg.dynamic_finetune_epochs, cfg.finetune_lr)
            saved["weights"] = net.state_dict()
    else:
        twin = next(n for n, (p, k, _) in MODELS.items() if p == parent_name and k == "dynamic")
        dynamic = _load(twin, cfg.model_dump_json())
        shares = dynamic.calib_kept / np.array(dynamic.widths)
        target = float(_full_macs(dynamic.segments, dynamic.heads, shares).mean())
        masks = _static_masks(net, multiexit.load_exit_model(parent_name), cfg, target)
        gated = GatedNet(net, {}, masks, cfg.keep_threshold)
        before, _ = _forward(gated, data.images[data.test])
        log["test_accuracy_before_finetune"] = float(
            (before[-1].argmax(-1) == data.labels[data.test]).float().mean()
        )
        multiexit._fit(gated, parent_name, cfg.finetune_epochs, cfg.finetune_lr)
        saved = {"weights": net.state_dict(), "masks": {str(k): m for k, m in masks.items()}}
    log["train_s"] = time.perf_counter() - start
    for split in ("calib", "test"):
        saved[f"{split}_probs"], saved[f"{split}_kept"] = _forward(gated, data.images[getattr(data, split)])
    return {**saved, "log": log}


def load_pruned_model(name: str, **constants: float) -> GatedExitModel:
    """Pruned model ``name`` (one of :data:`MODELS`) with :class:`PruningConfig` fields
    ``constants``: trained on first use (predictors: a few seconds; the static baseline's
    fine-tuning: about half a minute), then read from the disk cache."""
    _check_name(name)
    cfg = settings(**{**MODELS[name][2], **constants})
    n_stages = len(multiexit.load_exit_model(MODELS[name][0]).segments)
    if cfg.first_gated_layer >= n_stages:
        raise ConfigError(
            f"pruning.first_gated_layer: must be below the network's {n_stages} layers "
            f"(got {cfg.first_gated_layer})"
        )
    return _load(name, cfg.model_dump_json())


def _saved(name: str, cfg: PruningConfig) -> dict:
    """The cache entry of ``name`` at ``cfg``: read from disk, else trained and written now."""
    path = cache_path(name, **cfg.model_dump())
    saved = load_torch(path)
    if saved is None:
        with pinned_threads(multiexit.RECIPE["threads"]):
            saved = _train(name, cfg)
        save_torch(path, saved)
    return saved


@functools.cache
def _load(name: str, cfg_json: str) -> GatedExitModel:
    saved = _saved(name, PruningConfig.model_validate_json(cfg_json))
    parent_name, kind, _ = MODELS[name]
    parent = multiexit.load_exit_model(parent_name)
    net = multiexit.trained_model(parent_name)
    widths = np.array(_widths(net))
    segments = parent.segments
    if kind == "dynamic":
        gated = [int(k) for k in saved["predictors"]]
        shape = tuple(multiexit.test_inputs(parent_name).shape[1:])
        segments = _with_predictors(net, segments, shape, gated)
    test_kept, calib_kept = saved["test_kept"].numpy(), saved["calib_kept"].numpy()
    test_probs = saved["test_probs"].numpy()
    return GatedExitModel(
        name=name,
        dataset=parent.dataset,
        n_classes=parent.n_classes,
        segments=segments,
        heads=parent.heads,
        calib_probs=saved["calib_probs"].numpy(),
        test_probs=test_probs,
        calib_labels=parent.calib_labels,
        test_labels=parent.test_labels,
        calib_index=parent.calib_index,
        test_index=parent.test_index,
        exit_accuracy=tuple(float(a) for a in (test_probs.argmax(-1) == parent.test_labels).mean(1)),
        test_part_costs=gated_costs(segments, parent.heads, test_kept / widths),
        test_kept=test_kept,
        calib_kept=calib_kept,
        widths=tuple(widths.tolist()),
        log=saved["log"],
    )


def pruned_network(name: str, **constants: float) -> GatedNet:
    """The real gated network of pruned model ``name`` on CPU in eval mode (its forward
    returns every exit's logits and leaves the masks it used in ``kept``)."""
    load_pruned_model(name, **constants)  # checks the constants, trains if needed
    cfg = settings(**{**MODELS[name][2], **constants})
    saved, parent_name = _saved(name, cfg), MODELS[name][0]
    net = multiexit.trained_model(parent_name)
    if "weights" in saved:
        net.load_state_dict(saved["weights"])
    shapes = [(int(k), sd["2.weight"].shape) for k, sd in saved.get("predictors", {}).items()]
    predictors = {k: _predictor(shape[1], shape[0]) for k, shape in shapes}
    for k, pred in predictors.items():
        pred.load_state_dict(saved["predictors"][str(k)])
    masks = {int(k): m for k, m in saved.get("masks", {}).items()}
    return GatedNet(net, predictors, masks, cfg.keep_threshold).eval()


# --- accuracy against MACs -------------------------------------------------------------


def _wilson(correct: np.ndarray) -> tuple[float, float]:
    from scipy.stats import binomtest

    ci = binomtest(int(correct.sum()), len(correct)).proportion_ci(0.95, method="wilson")
    return ci.low, ci.high


def _paired_diff(a: np.ndarray, b: np.ndarray, name: str) -> tuple[float, float, float]:
    """``mean(a) - mean(b)`` and its 95 % percentile-bootstrap interval over the same test
    samples (resampled from a stream seeded by ``name``)."""
    from scipy.stats import bootstrap

    ci = bootstrap(
        (a.astype(float), b.astype(float)),
        lambda x, y, axis: x.mean(axis) - y.mean(axis),
        paired=True,
        vectorized=True,
        n_resamples=4000,
        method="percentile",
        rng=np.random.Generator(np.random.PCG64(int(hashlib.sha256(name.encode()).hexdigest()[:8], 16))),
    ).confidence_interval
    return float(a.mean() - b.mean()), ci.low, ci.high


def comparison(
    mass_fractions: tuple[float, ...], parent: str = "vgg_shapes", dynamic_finetune_epochs: int = 0
) -> list[dict[str, object]]:
    """Final-exit test accuracy (Wilson 95 % interval) and mean MACs per sample of the plain
    network, dynamic pruning at each mass fraction, and the static L1 baseline matched to it;
    each pruned row with its paired-bootstrap accuracy change against the plain network, and
    the dynamic row against its static twin."""
    plain = multiexit.load_exit_model(parent)
    labels = plain.test_labels
    plain_ok = plain.test_probs[-1].argmax(-1) == labels
    plain_macs = float(multiexit.exit_macs(plain)[-1])

    def row(label: str, model: ExitModel, ok: np.ndarray, macs: float) -> dict[str, object]:
        low, high = _wilson(ok)
        return {
            "model": label,
            "accuracy": ok.mean(),
            "ci": (low, high),
            "macs": macs,
            "macs_share": macs / plain_macs,
        }

    rows = [row(f"{parent} (plain)", plain, plain_ok, plain_macs)]
    dyn_name, static_name = (
        next(n for n, (p, k, _) in MODELS.items() if p == parent and k == kind)
        for kind in ("dynamic", "static")
    )
    for fraction in mass_fractions:
        found = {}
        for name in (dyn_name, static_name):
            model = load_pruned_model(
                name, mass_fraction=fraction, dynamic_finetune_epochs=dynamic_finetune_epochs
            )
            seg_macs, _, head_macs, _ = model.test_part_costs
            ok = model.test_probs[-1].argmax(-1) == labels
            found[name] = ok
            label = f"{name} mass_fraction={fraction}"
            if dynamic_finetune_epochs:
                label += f" dynamic_finetune_epochs={dynamic_finetune_epochs}"
            r = row(
                label,
                model,
                ok,
                float((seg_macs.sum(1) + head_macs[:, -1]).mean()),
            )
            r["vs_plain"] = _paired_diff(ok, plain_ok, f"{name}/{fraction}/plain")
            if "test_accuracy_before_finetune" in model.log:
                r["before_finetune"] = model.log["test_accuracy_before_finetune"]
            rows.append(r)
        rows[-2]["vs_static"] = _paired_diff(found[dyn_name], found[static_name], f"{fraction}/static")
    return rows


def _diff(r: dict[str, object], key: str) -> str:
    if key not in r:
        return ""
    est, low, high = r[key]
    return f"{100 * est:+.2f} [{100 * low:+.2f}, {100 * high:+.2f}]"


def _table(rows: list[dict[str, object]]) -> str:
    lines = [
        "| model | accuracy % [95 % CI] | MMAC/sample | MACs vs plain "
        "| vs plain, pt [95 % CI] | dynamic vs static, pt [95 % CI] |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        low, high = r["ci"]
        extra = f" (before fine-tuning: {100 * r['before_finetune']:.2f})" if "before_finetune" in r else ""
        lines.append(
            f"| {r['model']} | {100 * r['accuracy']:.2f} [{100 * low:.2f}, {100 * high:.2f}]{extra} "
            f"| {r['macs'] / 1e6:.3f} | {100 * r['macs_share']:.1f} % | {_diff(r, 'vs_plain')} "
            f"| {_diff(r, 'vs_static')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m workloads.dynamic_pruning [--mass-fractions F ...]``: the accuracy-MACs table."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--mass-fractions", type=float, nargs="+", default=[0.8, 0.9, 0.95])
    parents = sorted({p for p, _, _ in MODELS.values()}, reverse=True)
    parser.add_argument("--models", nargs="+", default=parents[:1], choices=parents)
    parser.add_argument("--dynamic-finetune-epochs", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        for fraction in args.mass_fractions:
            settings(mass_fraction=fraction, dynamic_finetune_epochs=args.dynamic_finetune_epochs)
        for parent in args.models:
            rows = comparison(tuple(args.mass_fractions), parent, args.dynamic_finetune_epochs)
            print(_table(rows) + "\n")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
