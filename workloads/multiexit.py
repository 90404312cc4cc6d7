"""Multi-exit networks trained in-repo: the ``edge`` scenario's early-exit workloads.

Each network is a backbone of four stages with an exit head after every stage (the
last head is the final classifier), trained jointly on a weighted sum of the exit
losses, as in BranchyNet (Teerapittayanon et al., ICPR 2016) and Shallow-Deep Networks
(Kaya et al., ICML 2019). Two backbones: a small ResNet (one basic block per stage) and
a MobileNet-style stack of depthwise-separable blocks (two per stage).

Two datasets ship with scikit-learn and need no download:

- ``digits``: the 1,797 8x8 grey digits, upsampled bilinearly to 16x16, 10 classes.
- ``patches``: the two bundled photographs (``load_sample_images``: a temple above a
  lake, a dahlia), 427x640 RGB, cut into non-overlapping 16x16 colour patches (2,080),
  each labelled by the region of its photograph it comes from (a 2x3 grid per photo,
  12 classes). It is the only other real image data scikit-learn carries, and it is
  the hard counterpart to digits: natural colour texture (sky, roof tiles, foliage,
  water, petals, blurred leaves) where many patches are ambiguous (sky, or blurred
  background, looks alike in neighbouring regions), so accuracy tops out near 60% and
  confidence spreads widely over samples. Neighbouring patches are correlated, so its
  test accuracy is optimistic for unseen photographs.

Each dataset is split once by a permutation drawn from ``SEED`` (stream
``multiexit/<dataset>/split``): 60% ``train`` (the only samples any model learns
from), 20% ``calib`` (for calibrating exit thresholds and training exit predictors)
and 20% ``test``; disjoint, covering, each in ascending index order. No split picks an
epoch: every model keeps its weights after the last step of a cosine schedule.

Two deployment variants of the digits ResNet: ``student_digits``, a quarter-MAC ResNet
distilled from its final exit's soft labels (Hinton et al., 2015), and
``pruned_resnet_digits``, whose residual blocks keep the half of their first
convolution's filters with the largest L1 norms (Li et al., "Pruning Filters for
Efficient ConvNets", ICLR 2017, which prunes ResNets inside blocks only so the residual
stream keeps its shape), then fine-tuned briefly.

After training, every exit's softmax on every ``calib`` and ``test`` sample is computed
once in batches (the inference cache), so a simulation replays real outputs by sample
index. Weights and inference cache live in one file per model in :func:`cache_dir`,
keyed by this file's source, the data bytes, the recipe and the torch version.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits, load_sample_images
from torch import nn

from devices.cost import Layer, extract_layers
from sim import registry
from sim.errors import ConfigError
from sim.kernel import numpy_rng, torch_generator
from workloads import user_models
from workloads.cache import cache_dir, load_torch, pinned_threads, save_torch
from workloads.shapes import make_shapes

SEED = 0
# Everything that shapes the trained weights besides the per-model specs; part of the cache key.
RECIPE: dict[str, object] = {
    "digits_px": 16,  # 8x8 digits upsampled bilinearly
    "patch_px": 16,  # side of the non-overlapping photo patches
    "patch_grid": [2, 3],  # regions per photograph (rows, columns); a region is a class
    "split": [0.6, 0.2, 0.2],  # train, calib, test (``shapes``: its own, below)
    "shapes_n": 8000,  # samples of make_shapes(n, SEED, **shapes_knobs)
    "shapes_knobs": {"difficulty_b": 4.0},  # more easy samples than the default Beta(1.5, 1.5)
    "shapes_split": [0.5, 0.25, 0.25],  # 4,000 train, 2,000 calib, 2,000 test
    "exit_weights": [0.25, 0.5, 0.75, 1.0],  # loss weight per exit, growing with depth (SDN)
    "head_channels": 32,  # 1x1 conv width of every exit head
    "head_pool": 2,  # exit heads average-pool to head_pool x head_pool before the classifier
    "epochs": 15,
    "batch": 64,
    "lr": 0.1,  # SGD with Nesterov momentum, cosine decay to 0 over all steps
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "distill_temperature": 4.0,
    "distill_alpha": 0.7,  # weight of the soft-label term; the hard labels get the rest
    "prune_keep": 0.5,  # share of each residual block's inner channels kept
    "finetune_epochs": 4,
    "finetune_lr": 0.01,
    "mirror_datasets": ["patches"],  # random left-right flips in training; a mirrored digit is no digit
    "threads": 1,  # pinned so that weights and outputs do not depend on the caller's setting
    # fine-grained networks (an exit after every layer or block, on shapes): lighter heads,
    # exit loss weights rising linearly from 1/n to 1, few epochs so they train in about a minute
    "fine_head_pool": 2,  # a fine head: average pool to 2x2, then the linear classifier
    "fine_epochs": 10,
    "fine_lr": 0.1,
}
# Per model: dataset, backbone and stage widths, and what it derives from.
_SPECS: dict[str, dict[str, object]] = {
    "resnet_digits": {"dataset": "digits", "arch": "resnet", "widths": [16, 32, 64, 128]},
    "mobilenet_digits": {"dataset": "digits", "arch": "mobilenet", "widths": [32, 64, 128, 256]},
    "resnet_patches": {"dataset": "patches", "arch": "resnet", "widths": [16, 32, 64, 128]},
    "mobilenet_patches": {"dataset": "patches", "arch": "mobilenet", "widths": [32, 64, 128, 256]},
    "student_digits": {
        "dataset": "digits",
        "arch": "resnet",
        "widths": [8, 16, 32, 64],
        "teacher": "resnet_digits",
    },
    "pruned_resnet_digits": {
        "dataset": "digits",
        "arch": "resnet",
        "widths": [16, 32, 64, 128],
        "pruned_from": "resnet_digits",
    },
}
# Fine-grained networks: (width, downsample first) per layer (VGG) or per block (ResNet).
_SPECS["vgg_shapes"] = {
    "dataset": "shapes",
    "arch": "vgg",
    "layers": [
        [16, 0],
        [16, 1],
        [16, 0],
        [24, 0],
        [24, 1],
        [24, 0],
        [32, 0],
        [32, 0],
        [32, 0],
        [32, 0],
        [32, 0],
        [32, 0],
    ],
}
# The ResNet downsamples at blocks 0 and 3, so shallow blocks already see most of a figure;
# with the second downsampling at block 4 (widths 10 / 20) its accuracy leapt from 41 % at
# exit 4 to 81 % at exit 5 and one exit took 63 % of the inputs under calibrated entropy.
# It trains at half the VGG's learning rate: at 0.1 its final exit reached 82 %, at 0.05 88 %.
_SPECS["resnet_shapes"] = {
    "dataset": "shapes",
    "arch": "resnet_fine",
    "lr": 0.05,
    "layers": [
        [12, 1],
        [12, 0],
        [12, 0],
        [20, 1],
        [20, 0],
        [20, 0],
        [20, 0],
        [20, 0],
        [20, 0],
        [20, 0],
        [20, 0],
        [20, 0],
    ],
}
EXIT_MODELS: tuple[str, ...] = tuple(_SPECS)
FINE_ARCHS = ("vgg", "resnet_fine")


# --- data ------------------------------------------------------------------------------


@functools.cache
def _raw(dataset: str) -> tuple[np.ndarray, np.ndarray]:
    """Inputs, channels first, and int64 labels as they ship (digits: 0-16, patches: uint8 RGB)."""
    if dataset == "digits":
        data = load_digits()
        return data.images[:, None], data.target.astype(np.int64)
    if dataset == "shapes":
        shapes = make_shapes(RECIPE["shapes_n"], SEED, **RECIPE["shapes_knobs"])
        return shapes.images, shapes.labels
    p, (grid_rows, grid_cols) = RECIPE["patch_px"], RECIPE["patch_grid"]
    patches, labels = [], []
    for i, image in enumerate(load_sample_images().images):
        rows, cols = image.shape[0] // p, image.shape[1] // p
        cut = image[: rows * p, : cols * p].reshape(rows, p, cols, p, 3).transpose(0, 2, 4, 1, 3)
        row_cell = np.arange(rows)[:, None] * grid_rows // rows
        col_cell = np.arange(cols) * grid_cols // cols
        patches.append(cut.reshape(-1, 3, p, p))
        labels.append((row_cell * grid_cols + col_cell).ravel() + i * grid_rows * grid_cols)
    return np.concatenate(patches), np.concatenate(labels).astype(np.int64)


@dataclass(frozen=True)
class _Data:
    """A dataset's inputs scaled to [-1, 1] and its seeded train/calib/test indices."""

    images: torch.Tensor  # [n, channels, px, px] float32
    labels: torch.Tensor  # [n] int64
    n_classes: int
    train: np.ndarray
    calib: np.ndarray
    test: np.ndarray


@functools.cache
def _dataset(dataset: str) -> _Data:
    inputs, labels = _raw(dataset)
    if dataset == "digits":
        px = RECIPE["digits_px"]
        x = torch.from_numpy(inputs.astype(np.float32) / 16.0)
        images = F.interpolate(x, size=(px, px), mode="bilinear", align_corners=False) * 2 - 1
    elif dataset == "shapes":  # already in [-1, 1]
        images = torch.from_numpy(inputs)
    else:
        images = torch.from_numpy(inputs.astype(np.float32) / 127.5 - 1)
    n = len(labels)
    rng = numpy_rng(SEED, f"multiexit/{dataset}/split")
    order = rng.permutation(n)
    split = RECIPE["shapes_split" if dataset == "shapes" else "split"]
    n_train, n_calib = round(split[0] * n), round(split[1] * n)
    return _Data(
        images=images,
        labels=torch.from_numpy(labels),
        n_classes=int(labels.max()) + 1,
        train=np.sort(order[:n_train]),
        calib=np.sort(order[n_train : n_train + n_calib]),
        test=np.sort(order[n_train + n_calib :]),
    )


# --- networks --------------------------------------------------------------------------


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 conv-BN (``mid`` channels between them) plus the input,
    through a strided 1x1 conv-BN projection where the shape changes; then ReLU."""

    def __init__(self, cin: int, mid: int, cout: int, stride: int):
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(cin, mid, 3, stride)
        self.conv2, self.bn2 = _conv_bn(mid, cout, 3)
        self.skip = (
            nn.Sequential(*_conv_bn(cin, cout, 1, stride)) if stride > 1 or cin != cout else nn.Identity()
        )
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(y + self.skip(x))


def _separable(cin: int, cout: int, stride: int) -> nn.Sequential:
    """MobileNet block: 3x3 depthwise conv-BN-ReLU6, then 1x1 pointwise conv-BN-ReLU6."""
    return nn.Sequential(
        *_conv_bn(cin, cin, 3, stride, groups=cin), nn.ReLU6(), *_conv_bn(cin, cout, 1), nn.ReLU6()
    )


def _head(cin: int, classes: int) -> nn.Sequential:
    """Exit head: 1x1 conv-BN-ReLU to ``head_channels``, average pool to ``head_pool`` squared
    cells (keeping coarse layout, which shallow features need), linear classifier."""
    h, cells = RECIPE["head_channels"], RECIPE["head_pool"]
    return nn.Sequential(
        *_conv_bn(cin, h, 1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(cells),
        nn.Flatten(),
        nn.Linear(h * cells**2, classes),
    )


class MultiExitNet(nn.Module):
    """A stem and four stages, with an exit head after each stage; ``forward`` returns the
    logits of every exit, shallowest first."""

    def __init__(self, stem: nn.Module, stages: list[nn.Module], heads: list[nn.Module]):
        super().__init__()
        self.stem = stem
        self.stages = nn.ModuleList(stages)
        self.heads = nn.ModuleList(heads)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        exits = []
        for stage, head in zip(self.stages, self.heads, strict=True):
            x = stage(x)
            exits.append(head(x))
        return exits


def _mids(name: str) -> list[int]:
    """The inner channels of each residual block: the stage width, or the pruned share of it."""
    spec = _SPECS[name]
    keep = RECIPE["prune_keep"] if "pruned_from" in spec else 1.0
    return [max(1, round(keep * w)) for w in spec["widths"]]


def _build(name: str) -> MultiExitNet:
    """Model ``name``'s architecture on ``meta`` (shapes only)."""
    spec, data = _SPECS[name], _dataset(_SPECS[name]["dataset"])
    cin = data.images.shape[1]
    if spec["arch"] == "user":
        given = {"input_shape": tuple(data.images.shape[1:]), "num_classes": data.n_classes}
        return user_models.build(spec["factory"], spec["kwargs"], "model", "model_kwargs", **given)
    if spec["arch"] in FINE_ARCHS:
        return _build_fine(spec, cin, data.n_classes)
    widths, strides = spec["widths"], [1, 2, 2, 2]
    with torch.device("meta"):
        if spec["arch"] == "resnet":
            stem = nn.Sequential(*_conv_bn(cin, widths[0], 3), nn.ReLU())
            ins = [widths[0], *widths[:-1]]
            stages = [BasicBlock(*a) for a in zip(ins, _mids(name), widths, strides, strict=True)]
        else:
            stem = nn.Sequential(*_conv_bn(cin, 16, 3), nn.ReLU6())
            ins = [16, *widths[:-1]]
            stages = [
                nn.Sequential(_separable(i, w, s), _separable(w, w, 1))
                for i, w, s in zip(ins, widths, strides, strict=True)
            ]
        return MultiExitNet(stem, stages, [_head(w, data.n_classes) for w in widths])


def _fine_head(cin: int, classes: int) -> nn.Sequential:
    """A fine-grained exit: average pool to ``fine_head_pool`` squared cells and a linear
    classifier, so that an exit after every layer stays a small share of the work."""
    cells = RECIPE["fine_head_pool"]
    return nn.Sequential(nn.AdaptiveAvgPool2d(cells), nn.Flatten(), nn.Linear(cin * cells**2, classes))


def _build_fine(spec: dict, cin: int, classes: int) -> MultiExitNet:
    """A fine-grained network on ``meta``: VGG-style (each layer a 3x3 conv-BN-ReLU, max-pooled
    first where it downsamples) or ResNet-style (a 3x3 conv-BN-ReLU stem, then basic blocks,
    strided where they downsample), with an exit after every layer or block."""
    stages, widths = [], []
    with torch.device("meta"):
        if spec["arch"] == "vgg":
            stem = nn.Identity()
            for width, down in spec["layers"]:
                stages.append(
                    nn.Sequential(*([nn.MaxPool2d(2)] if down else []), *_conv_bn(cin, width, 3), nn.ReLU())
                )
                cin = width
                widths.append(width)
        else:
            stem_width = spec["layers"][0][0]
            stem = nn.Sequential(*_conv_bn(cin, stem_width, 3), nn.ReLU())
            cin = stem_width
            for width, down in spec["layers"]:
                stages.append(BasicBlock(cin, width, width, 2 if down else 1))
                cin = width
                widths.append(width)
        return MultiExitNet(stem, stages, [_fine_head(w, classes) for w in widths])


def _initialised(name: str) -> MultiExitNet:
    """Model ``name`` on CPU with fresh weights from its own seeded stream (never global RNG):
    He-normal convs, uniform +-1/sqrt(fan_in) linear weights, zero biases, default BN."""
    model = _build(name).to_empty(device="cpu")
    gen = torch_generator(SEED, f"multiexit/{name}/init")
    if _SPECS[name]["arch"] == "user":
        return user_models.seeded_init(model, gen)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                module.weight.normal_(0.0, math.sqrt(2.0 / module.weight[0].numel()), generator=gen)
            elif isinstance(module, nn.Linear):
                bound = 1 / math.sqrt(module.in_features)
                module.weight.uniform_(-bound, bound, generator=gen)
                module.bias.zero_()
            elif isinstance(module, nn.BatchNorm2d):
                module.reset_parameters()
    return model


# --- training --------------------------------------------------------------------------


def _logits(model: MultiExitNet, images: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """Every exit's logits, ``[n_exits, n, classes]``, in eval mode and in batches."""
    model.eval()
    with torch.no_grad():
        return torch.cat([torch.stack(model(images[i : i + batch])) for i in range(0, len(images), batch)], 1)


def _exit_loss(logits: torch.Tensor, labels: torch.Tensor, teacher: torch.Tensor | None) -> torch.Tensor:
    """Cross-entropy on the labels; with teacher logits, Hinton's distillation loss instead:
    ``alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE``."""
    hard = F.cross_entropy(logits, labels)
    if teacher is None:
        return hard
    t, alpha = RECIPE["distill_temperature"], RECIPE["distill_alpha"]
    soft = F.kl_div(
        F.log_softmax(logits / t, 1), F.log_softmax(teacher / t, 1), reduction="batchmean", log_target=True
    )
    return alpha * t * t * soft + (1 - alpha) * hard


def _fit(model: MultiExitNet, name: str, epochs: int, lr: float, teacher: torch.Tensor | None = None) -> None:
    """Joint training on ``name``'s train split: each step minimises the exit-weighted sum
    of every exit's loss. SGD with Nesterov momentum, cosine decay to 0 over all steps;
    each image is mirrored left-right with probability 1/2 where the dataset allows it."""
    from tqdm import tqdm

    dataset = _SPECS[name]["dataset"]
    data = _dataset(dataset)
    x, y = data.images[data.train], data.labels[data.train]
    batch = RECIPE["batch"]
    steps = epochs * math.ceil(len(x) / batch)
    opt = torch.optim.SGD(
        model.parameters(),
        lr=lr,
        momentum=RECIPE["momentum"],
        weight_decay=RECIPE["weight_decay"],
        nesterov=True,
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5 * (1 + math.cos(math.pi * step / steps)))
    weights = RECIPE["exit_weights"]
    if _SPECS[name]["arch"] in (*FINE_ARCHS, "user"):
        weights = [(k + 1) / len(model.heads) for k in range(len(model.heads))]
    shuffle = torch_generator(SEED, f"multiexit/{name}/shuffle")
    flips = torch_generator(SEED, f"multiexit/{name}/flip") if dataset in RECIPE["mirror_datasets"] else None
    for _ in tqdm(range(epochs), desc=f"training {name}", leave=False, disable=not sys.stderr.isatty()):
        model.train()
        for idx in torch.randperm(len(x), generator=shuffle).split(batch):
            xb = x[idx]
            if flips is not None:
                mirror = torch.rand(len(idx), generator=flips) < 0.5
                xb = torch.where(mirror[:, None, None, None], xb.flip(-1), xb)
            exits = model(xb)
            loss = sum(
                w * _exit_loss(logits, y[idx], None if teacher is None else teacher[idx])
                for w, logits in zip(weights, exits, strict=True)
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()


def _prune(name: str, parent: MultiExitNet) -> MultiExitNet:
    """``parent``'s weights in model ``name``'s narrower blocks: per block, the ``conv1``
    filters with the largest L1 norms (ties to the lower index), their BN channels, and the
    matching input channels of ``conv2``."""
    state = dict(parent.state_dict())
    for i, (block, mid) in enumerate(zip(parent.stages, _mids(name), strict=True)):
        norms = block.conv1.weight.detach().abs().sum((1, 2, 3))
        keep = torch.argsort(norms, descending=True, stable=True)[:mid].sort().values
        p = f"stages.{i}."
        state[p + "conv1.weight"] = state[p + "conv1.weight"][keep]
        for key in ("weight", "bias", "running_mean", "running_var"):
            state[p + "bn1." + key] = state[p + "bn1." + key][keep]
        state[p + "conv2.weight"] = state[p + "conv2.weight"][:, keep]
    model = _build(name).to_empty(device="cpu")
    model.load_state_dict(state)
    return model


def _accuracy(logits: torch.Tensor, labels: torch.Tensor) -> list[float]:
    return (logits.argmax(-1) == labels).float().mean(1).tolist()


def _train(name: str) -> tuple[dict[str, torch.Tensor], dict[str, object]]:
    """Trains model ``name`` (a teacher or parent comes from its own cache first); returns
    its weights and a log (seconds, and for a pruned model its calib accuracy per exit
    before fine-tuning)."""
    spec = _SPECS[name]
    data = _dataset(spec["dataset"])
    if "pruned_from" in spec:
        parent = trained_model(spec["pruned_from"])
        start = time.perf_counter()
        model = _prune(name, parent)
        before = _accuracy(_logits(model, data.images[data.calib]), data.labels[data.calib])
        _fit(model, name, RECIPE["finetune_epochs"], RECIPE["finetune_lr"])
        return model.state_dict(), {"train_s": time.perf_counter() - start, "calib_accuracy_pruned": before}
    teacher = None
    if "teacher" in spec:
        teacher = _logits(trained_model(spec["teacher"]), data.images[data.train])[-1]  # final exit
    start = time.perf_counter()
    model = _initialised(name)
    fine = spec["arch"] in FINE_ARCHS  # a user's model trains with the four-stage recipe
    lr = spec.get("lr", RECIPE["fine_lr" if fine else "lr"])
    _fit(model, name, RECIPE["fine_epochs" if fine else "epochs"], lr, teacher)
    return model.state_dict(), {"train_s": time.perf_counter() - start}


# --- cache -----------------------------------------------------------------------------


def _check_name(name: str) -> None:
    if name not in _SPECS:
        raise ConfigError(f"model: unknown exit model {name!r}; known exit models: {', '.join(EXIT_MODELS)}")


@functools.cache
def _cache_key(name: str) -> str:
    """Changes with this file, the model's data, its spec, the recipe, torch, and the key of
    the model it derives from."""
    spec = _SPECS[name]
    h = hashlib.sha256(Path(__file__).read_bytes())
    for array in _raw(spec["dataset"]):
        h.update(np.ascontiguousarray(array).tobytes())
    h.update(json.dumps({"seed": SEED, "spec": spec, **RECIPE}, sort_keys=True).encode())
    h.update(torch.__version__.encode())
    for parent in (spec.get("teacher"), spec.get("pruned_from")):
        if parent:
            h.update(_cache_key(parent).encode())
    if spec["arch"] == "user":  # the user's source: an edited model is trained again
        h.update(user_models.source_digest(spec["factory"], _build(name)).encode())
    return h.hexdigest()[:16]


def cache_path(name: str) -> Path:
    """The file that holds exit model ``name``'s weights, inference cache and training log."""
    _check_name(name)
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:64]
    return cache_dir() / f"multiexit-{safe}-{_cache_key(name)}.pt"


@functools.cache
def _trained(name: str) -> dict[str, object]:
    """Weights, inference cache (every exit's softmax on calib and test) and training log:
    read from :func:`cache_path`, else trained and computed now and written there."""
    path = cache_path(name)
    cached = load_torch(path)  # None if not cached yet, damaged or for another key: train
    if cached is not None:
        return cached
    data = _dataset(_SPECS[name]["dataset"])
    with pinned_threads(RECIPE["threads"]):
        weights, log = _train(name)
        model = _build(name).to_empty(device="cpu")
        model.load_state_dict(weights)
        saved = {
            "weights": weights,
            "calib_probs": _logits(model, data.images[data.calib]).softmax(-1),
            "test_probs": _logits(model, data.images[data.test]).softmax(-1),
            "log": log,
        }
    save_torch(path, saved)
    return saved


def trained_model(name: str) -> MultiExitNet:
    """The trained network ``name`` on CPU in eval mode; it returns every exit's logits."""
    _check_name(name)
    model = _build(name).to_empty(device="cpu")
    model.load_state_dict(_trained(name)["weights"])
    return model.eval()


def test_inputs(name: str) -> torch.Tensor:
    """The inputs of model ``name``'s test split as it sees them, in ``test_index`` order."""
    _check_name(name)
    data = _dataset(_SPECS[name]["dataset"])
    return data.images[data.test]


# --- public view -----------------------------------------------------------------------


@dataclass(frozen=True)
class ExitModel:
    """A trained multi-exit network as the simulation sees it.

    ``segments[k]`` are the per-sample backbone layers from exit ``k-1`` to exit ``k``
    (segment 0 starts at the input), ``heads[k]`` the layers of exit head ``k``.
    ``calib_probs[k, j]`` is exit ``k``'s softmax on calib sample ``j`` (dataset index
    ``calib_index[j]``, label ``calib_labels[j]``); ``test_*`` likewise.
    """

    name: str
    dataset: str
    n_classes: int
    segments: tuple[tuple[Layer, ...], ...]
    heads: tuple[tuple[Layer, ...], ...]
    calib_probs: np.ndarray  # float32 [n_exits, n_calib, n_classes]
    test_probs: np.ndarray  # float32 [n_exits, n_test, n_classes]
    calib_labels: np.ndarray  # int64 [n_calib]
    test_labels: np.ndarray  # int64 [n_test]
    calib_index: np.ndarray  # int64 [n_calib]
    test_index: np.ndarray  # int64 [n_test]
    exit_accuracy: tuple[float, ...]


def _split_layers(layers: tuple[Layer, ...], n_exits: int) -> tuple[list[list[Layer]], list[list[Layer]]]:
    """Backbone segments and heads from the layers of one traced forward, in execution
    order: ``heads.k*`` go to head k, any other layer to the segment after the last head
    that ran before it (for the built-ins: the stem and ``stages.k`` to segment k)."""
    segments: list[list[Layer]] = [[] for _ in range(n_exits)]
    heads: list[list[Layer]] = [[] for _ in range(n_exits)]
    k = 0
    for layer in layers:
        part, _, rest = layer.name.partition(".")
        if part == "heads":
            j = int(rest.split(".")[0].split("#")[0])
            heads[j].append(layer)
            k = max(k, j + 1)
        else:
            segments[min(k, n_exits - 1)].append(layer)
    return segments, heads


def load_exit_model(name: str, kwargs: dict | None = None, dataset: str | None = None) -> ExitModel:
    """Exit model ``name`` (one of :data:`EXIT_MODELS`, or a user's model: a registered name
    or ``module:factory`` built with ``kwargs`` for ``dataset``), trained on first use,
    then read from the disk cache once per process."""
    if name not in EXIT_MODELS and (":" in name or name in registry.names("model")):
        name = user_model(name, kwargs or {}, dataset or "digits")
    _check_name(name)
    return _exit_model(name)


def user_model(ref: str, kwargs: dict, dataset: str) -> str:
    """The name under which a user's multi-exit model (``ref`` built with ``kwargs``, trained
    on ``dataset`` with the built-ins' recipe) is known here; see workloads/edge/models.py
    for what the module must declare."""
    name = ref + (json.dumps(kwargs, sort_keys=True) if kwargs else "") + f"@{dataset}"
    _SPECS.setdefault(name, {"dataset": dataset, "arch": "user", "factory": ref, "kwargs": kwargs})
    return name


@functools.cache
def _exit_model(name: str) -> ExitModel:
    dataset = _SPECS[name]["dataset"]
    data, saved = _dataset(dataset), _trained(name)
    shapes = _build(name)
    layers = extract_layers(shapes, torch.zeros(1, *data.images.shape[1:], device="meta"))
    segments, heads = _split_layers(layers, len(shapes.heads))
    test_probs, test_labels = saved["test_probs"].numpy(), data.labels[data.test].numpy()
    return ExitModel(
        name=name,
        dataset=dataset,
        n_classes=data.n_classes,
        segments=tuple(map(tuple, segments)),
        heads=tuple(map(tuple, heads)),
        calib_probs=saved["calib_probs"].numpy(),
        test_probs=test_probs,
        calib_labels=data.labels[data.calib].numpy(),
        test_labels=test_labels,
        calib_index=data.calib.astype(np.int64),
        test_index=data.test.astype(np.int64),
        exit_accuracy=tuple(float(a) for a in (test_probs.argmax(-1) == test_labels).mean(1)),
    )


def _macs(parts: tuple[tuple[Layer, ...], ...]) -> np.ndarray:
    return np.array([sum(layer.macs for layer in part) for part in parts])


def exit_macs(model: ExitModel) -> np.ndarray:
    """Per exit k, the MACs per sample to reach it running the backbone and only head k."""
    return np.cumsum(_macs(model.segments)) + _macs(model.heads)


def exit_macs_with_heads(model: ExitModel) -> np.ndarray:
    """Per exit k, the MACs per sample to reach it evaluating every head on the way."""
    return np.cumsum(_macs(model.segments)) + np.cumsum(_macs(model.heads))
