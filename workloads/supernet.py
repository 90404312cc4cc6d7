"""Slimmable supernets: the ``xr`` scenario's accuracy-for-schedulability trade.

:class:`SlimmableCNN` follows Yu et al., "Slimmable Neural Networks" (ICLR 2019): every
convolution keeps one weight tensor, and at width ``w`` a layer uses its first
``round(w * C)`` output channels (and the previous layer's active channels as input).
Batch normalisation is switchable, one ``BatchNorm2d`` per width, because the statistics
of a 4-channel and a 16-channel slice of the same layer differ and shared BN would
leave the narrow networks badly calibrated (the paper's finding).

Two supernets share the architecture family (:data:`ARCHITECTURES`):

- ``digits_slimmable`` (16/32/64 channels, 1x32x32 input, 9.6 MMAC at full width) is
  *trained* here, on scikit-learn's bundled digits (8x8, upsampled bilinearly to 32x32)
  with the sandwich rule and in-place distillation (Yu & Huang, "Universally Slimmable
  Networks", ICCV 2019): each step trains the largest width on the labels, and the
  smallest plus one random middle width on the largest width's soft predictions. The
  1,797 digits are split 60/20/20 into train, validation (picks the epoch) and test
  (reports accuracy) by a permutation seeded from ``SEED``. Its accuracies are measured.
- ``xr_slimmable`` (64/128/256/512 channels, 3x128x128 input as XRBench's hand
  tracking, 3.35 GMAC at full width) is the XR-size supernet whose *costs* the
  scheduler trades: each width's layers are traced from its own sub-network, so the
  cost model sees the width's real MACs and bytes. It cannot be trained on CPU in
  this project, so its per-width accuracies and per-sample predictions are those
  *measured on the digits proxy* (``Supernet.accuracy_from`` says so); they stand
  for "narrower is somewhat less accurate", not for an XR task's accuracy.

The proxy's weights are trained once and cached on disk next to the XR models' traced
layers; a :class:`Supernet` then holds, per width, the accuracy, the per-sample layers
of the static sub-network (for the cost model) and the prediction for every proxy test
sample, so a simulation replays real correctness by sample index instead of running
the model.
"""

from __future__ import annotations

import ast
import copy
import functools
import hashlib
import json
import math
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

from devices.cost import Layer, extract_layers
from sim.errors import ConfigError
from sim.kernel import numpy_rng, torch_generator
from workloads.cache import cache_dir, load_torch, pinned_threads, save_torch
from workloads.supernet_names import WIDTHS
from workloads.supernet_names import check_name as _check_name

SEED = 0
# Everything that shapes the trained weights; part of the cache key.
RECIPE: dict[str, object] = {
    "channels": [16, 32, 64],  # per stage at width 1.0; two 3x3 convs per stage
    "image_px": 32,
    "split": [0.6, 0.2, 0.2],  # train, validation, test
    "epochs": 12,
    "batch": 64,
    "lr": 0.1,  # SGD with Nesterov momentum, cosine decay to 0 over all steps
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "threads": 2,  # pinned so that weights and predictions do not depend on the caller's setting
}
PROXY = "digits_slimmable"  # the supernet trained in-repo; its accuracies are measured


@dataclass(frozen=True)
class Architecture:
    """A slimmable CNN's shape: channels per stage at width 1.0, input channels and pixels."""

    stage_channels: tuple[int, ...]
    in_channels: int
    image_px: int
    classes: int = 10


ARCHITECTURES: dict[str, Architecture] = {
    PROXY: Architecture(tuple(RECIPE["channels"]), 1, RECIPE["image_px"]),
    "xr_slimmable": Architecture((64, 128, 256, 512), 3, 128),
}
SUPERNETS: tuple[str, ...] = tuple(ARCHITECTURES)


def channels(full: int, width: float) -> int:
    """Active channels of a layer of ``full`` channels at ``width``: the first ``round(width * full)``."""
    return max(1, round(width * full))


class SlimmableConv2d(nn.Conv2d):
    """A 3x3 convolution (no bias) that runs on the first channels of its weights."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor, out_channels: int) -> torch.Tensor:
        return F.conv2d(x, self.weight[:out_channels, : x.shape[1]], None, self.stride, self.padding)


class SlimmableCNN(nn.Module):
    """Stages of two conv-BN-ReLU blocks (max-pool between stages), global average pool,
    linear classifier; the image channels in and the class logits out are never slimmed."""

    def __init__(
        self,
        stage_channels: tuple[int, ...],
        widths: tuple[float, ...],
        classes: int = 10,
        in_channels: int = 1,
    ):
        super().__init__()
        self.widths = widths
        self.in_channels = in_channels
        full = [c for c in stage_channels for _ in range(2)]
        self.convs = nn.ModuleList(
            SlimmableConv2d(cin, cout) for cin, cout in zip([in_channels, *full[:-1]], full, strict=True)
        )
        self.bns = nn.ModuleList(nn.ModuleList(nn.BatchNorm2d(channels(c, w)) for w in widths) for c in full)
        self.fc = nn.Linear(full[-1], classes)

    def forward(self, x: torch.Tensor, width: float) -> torch.Tensor:
        i = self.widths.index(width)
        for j, (conv, bns) in enumerate(zip(self.convs, self.bns, strict=True)):
            x = F.relu(bns[i](conv(x, bns[i].num_features)))
            if j % 2 and j < len(self.convs) - 1:
                x = F.max_pool2d(x, 2)
        x = x.mean((2, 3))
        return F.linear(x, self.fc.weight[:, : x.shape[1]], self.fc.bias)

    def static(self, width: float) -> nn.Sequential:
        """The sub-network at ``width`` as plain modules with copies of its weight slices.

        Computes what ``forward(x, width)`` computes (in eval mode); it exists so that
        :func:`extract_layers` counts the width's real MACs and bytes.
        """
        i = self.widths.index(width)
        mods: dict[str, nn.Module] = {}
        cin = self.in_channels
        for j, (conv, bns) in enumerate(zip(self.convs, self.bns, strict=True), 1):
            cout = bns[i].num_features
            plain = nn.Conv2d(cin, cout, 3, padding=1, bias=False, device="meta")
            plain.weight = nn.Parameter(conv.weight[:cout, :cin].detach().clone())
            mods |= {f"conv{j}": plain, f"bn{j}": copy.deepcopy(bns[i]), f"relu{j}": nn.ReLU()}
            if j % 2 == 0 and j < len(self.convs):
                mods[f"pool{j // 2}"] = nn.MaxPool2d(2)
            cin = cout
        fc = nn.Linear(cin, self.fc.out_features, device="meta")
        fc.weight = nn.Parameter(self.fc.weight[:, :cin].detach().clone())
        fc.bias = nn.Parameter(self.fc.bias.detach().clone())
        mods |= {"avgpool": nn.AdaptiveAvgPool2d(1), "flatten": nn.Flatten(), "fc": fc}
        return nn.Sequential(OrderedDict(mods)).eval()


def shapes(name: str) -> SlimmableCNN:
    """Supernet ``name``'s modules on ``meta``: shapes only, for tracing its widths' layers."""
    arch = ARCHITECTURES[name]
    with torch.device("meta"):
        return SlimmableCNN(arch.stage_channels, WIDTHS, arch.classes, arch.in_channels)


def build_model(seed: int = SEED, device: str | torch.device = "cpu") -> SlimmableCNN:
    """A freshly initialised proxy supernet: He-normal convs, default BN, small uniform
    classifier, all drawn from ``seed``'s generator (never global RNG); on ``meta``, shapes only."""
    model = shapes(PROXY)
    if torch.device(device).type == "meta":
        return model
    model.to_empty(device=device)
    gen = torch_generator(seed, "supernet/digits_slimmable/init")
    with torch.no_grad():
        for conv in model.convs:
            conv.weight.normal_(0.0, math.sqrt(2.0 / conv.weight[0].numel()), generator=gen)
        bound = 1 / math.sqrt(model.fc.in_features)
        model.fc.weight.uniform_(-bound, bound, generator=gen)
        model.fc.bias.zero_()
        for bns in model.bns:
            for bn in bns:
                bn.reset_parameters()
    return model


@dataclass(frozen=True)
class DigitsSplit:
    """The digits as 32x32 images scaled to [-1, 1], and the seeded train/validation/test indices."""

    images: torch.Tensor  # [1797, 1, 32, 32] float32
    labels: torch.Tensor  # [1797] int64
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray


@functools.cache
def digits(seed: int = SEED) -> DigitsSplit:
    """scikit-learn's digits, upsampled, split by a permutation drawn from ``seed``."""
    data = load_digits()
    raw = torch.from_numpy(data.images.astype(np.float32) / 16.0).unsqueeze(1)
    px = RECIPE["image_px"]
    images = F.interpolate(raw, size=(px, px), mode="bilinear", align_corners=False) * 2 - 1
    n = len(raw)
    rng = numpy_rng(seed, "supernet/digits_slimmable/split")
    order = rng.permutation(n)
    n_train, n_val = round(RECIPE["split"][0] * n), round(RECIPE["split"][1] * n)
    return DigitsSplit(
        images=images,
        labels=torch.from_numpy(data.target.astype(np.int64)),
        train=np.sort(order[:n_train]),
        validation=np.sort(order[n_train : n_train + n_val]),
        test=np.sort(order[n_train + n_val :]),
    )


def _predict(model: SlimmableCNN, images: torch.Tensor, width: float, batch: int = 128) -> torch.Tensor:
    """Predicted labels at ``width``, in eval mode and in batches."""
    model.eval()
    with torch.no_grad():
        return torch.cat(
            [model(images[i : i + batch], width).argmax(1) for i in range(0, len(images), batch)]
        )


def _train(seed: int) -> tuple[dict[str, torch.Tensor], dict[str, object]]:
    """Sandwich-rule training; returns the weights of the best epoch (mean validation
    accuracy over widths) and a log (seconds, best epoch, validation accuracy per width)."""
    from tqdm import tqdm

    start = time.perf_counter()
    data = digits(seed)
    model = build_model(seed)
    x_train, y_train = data.images[data.train], data.labels[data.train]
    x_val, y_val = data.images[data.validation], data.labels[data.validation]
    batch, epochs = RECIPE["batch"], RECIPE["epochs"]
    steps = epochs * math.ceil(len(x_train) / batch)
    opt = torch.optim.SGD(
        model.parameters(),
        lr=RECIPE["lr"],
        momentum=RECIPE["momentum"],
        weight_decay=RECIPE["weight_decay"],
        nesterov=True,
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5 * (1 + math.cos(math.pi * step / steps)))
    shuffle = torch_generator(seed, "supernet/digits_slimmable/shuffle")
    middle = numpy_rng(seed, "supernet/digits_slimmable/sandwich")
    largest, smallest, middles = WIDTHS[-1], WIDTHS[0], WIDTHS[1:-1]
    best: tuple[float, int, dict[str, torch.Tensor], list[float]] = (-1.0, -1, {}, [])
    for epoch in tqdm(range(epochs), desc="training supernet", leave=False, disable=not sys.stderr.isatty()):
        model.train()
        for idx in torch.randperm(len(x_train), generator=shuffle).split(batch):
            x, y = x_train[idx], y_train[idx]
            opt.zero_grad()
            logits = model(x, largest)
            loss = F.cross_entropy(logits, y)
            soft = logits.detach().softmax(1)
            for width in (smallest, middles[middle.integers(len(middles))]):
                loss = loss + F.cross_entropy(model(x, width), soft)
            loss.backward()
            opt.step()
            sched.step()
        val = [float((_predict(model, x_val, w) == y_val).float().mean()) for w in WIDTHS]
        if np.mean(val) > best[0]:
            best = (float(np.mean(val)), epoch, copy.deepcopy(model.state_dict()), val)
    log = {"train_s": time.perf_counter() - start, "best_epoch": best[1], "validation_accuracy": best[3]}
    return best[2], log


def _cache_key(seed: int) -> str:
    """Changes with the code that shapes the proxy's weights and predictions (not with the
    rest of this file, so adding a supernet or a docstring does not retrain), the digits,
    the widths, seed and recipe, and torch."""
    data = load_digits()
    source = Path(__file__).read_text()
    trains = {"SlimmableConv2d", "SlimmableCNN", "shapes", "build_model", "digits", "_predict", "_train"}
    h = hashlib.sha256()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and node.name in trains:
            h.update(ast.get_source_segment(source, node).encode())
    h.update(data.data.tobytes() + data.target.tobytes())
    h.update(json.dumps({"widths": WIDTHS, "seed": seed, **RECIPE}, sort_keys=True).encode())
    h.update(torch.__version__.encode())
    return h.hexdigest()[:16]


def cache_path() -> Path:
    """The file that holds the proxy supernet's weights and test predictions."""
    return cache_dir() / f"supernet-{PROXY}-{_cache_key(SEED)}.pt"


@functools.cache
def _trained() -> dict[str, object]:
    """Weights, test predictions (one row per width) and training log: read from
    :func:`cache_path`, else trained and predicted now and written there. The file is
    written under a temporary name and renamed, so a concurrent reader sees all or nothing."""
    path = cache_path()
    cached = load_torch(path)  # None if not cached yet, damaged or for another key: train
    if cached is not None:
        return cached
    data = digits(SEED)
    with pinned_threads(RECIPE["threads"]):
        weights, log = _train(SEED)
        model = build_model(SEED)
        model.load_state_dict(weights)
        predictions = torch.stack([_predict(model, data.images[data.test], w) for w in WIDTHS])
    saved = {"weights": weights, "test_predictions": predictions, "log": log}
    save_torch(path, saved)
    return saved


def trained_model() -> SlimmableCNN:
    """The trained proxy supernet in eval mode (trained on first use, then cached)."""
    model = build_model(SEED)
    model.load_state_dict(_trained()["weights"])
    return model.eval()


@dataclass(frozen=True)
class SupernetVariant:
    """One width of a supernet: its test accuracy (measured on ``Supernet.accuracy_from``)
    and the per-sample layers of its own sub-network."""

    width: float
    accuracy: float
    layers: tuple[Layer, ...]


@dataclass(frozen=True)
class Supernet:
    """A supernet's widths (ascending), their variants, and an inference cache:
    ``test_predictions[i, j]`` is width ``i``'s predicted label for test sample ``j`` of
    ``accuracy_from`` (the trained proxy), whose true label is ``test_labels[j]``."""

    name: str
    accuracy_from: str
    widths: tuple[float, ...]
    variants: tuple[SupernetVariant, ...]
    test_labels: np.ndarray
    test_predictions: np.ndarray


def load_supernet(name: str = "digits_slimmable") -> Supernet:
    """The supernet ``name``, trained or read from the disk cache once per process."""
    return _supernet(name)  # one in-process cache entry whether or not ``name`` is passed


@functools.cache
def _supernet(name: str) -> Supernet:
    _check_name(name)
    predictions = _trained()["test_predictions"].numpy()
    data = digits(SEED)
    labels = data.labels[data.test].numpy()
    model, arch = shapes(name), ARCHITECTURES[name]
    example = torch.zeros(1, arch.in_channels, arch.image_px, arch.image_px, device="meta")
    variants = tuple(
        SupernetVariant(
            width=w,
            accuracy=float((predictions[i] == labels).mean()),
            layers=extract_layers(model.static(w), example),
        )
        for i, w in enumerate(WIDTHS)
    )
    return Supernet(name, PROXY, WIDTHS, variants, labels, predictions)


def width_index(net: Supernet, width: float) -> int:
    """The index of ``width`` in ``net.widths`` (and ``net.variants``)."""
    if width not in net.widths:
        allowed = ", ".join(str(w) for w in net.widths)
        raise ConfigError(f"width {width} is not a width of supernet {net.name}; widths: {allowed}")
    return net.widths.index(width)
