"""Federated datasets and their partitions into clients, as index views into one copy.

Datasets ship with scikit-learn or are generated (nothing is downloaded).
``digits_shifted`` adds the eight one-pixel shifts of every digits image (9x the
samples, about 13,000 for training) so that thousands of clients still hold data.
Tabular features are standardised (z-scored) by the training part's mean and standard
deviation (constant features only centred). ``shapes`` is :mod:`workloads.shapes`'s
32x32 colour images of ten figure classes (``[N, 3, 32, 32]``), :data:`SHAPES_TRAIN`
training and :data:`SHAPES_TEST` test samples from a fixed seed, each image standardised
on its own (:func:`standardise_images`).

The prepared arrays of a tabular dataset are cached on disk (:class:`workloads.cache.ArrayStore`,
checksummed, keyed by this file, the split and scikit-learn's version), so a run reads them
instead of importing scikit-learn; ``shapes`` images are cached by :mod:`workloads.shapes`.

A partition is one permutation of the training indices plus per-client offsets:
client ``k``'s data is ``x[indices(k)]``, a view of the shared tensors, so memory does not
grow with the number of clients.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field, PositiveFloat, model_validator

from sim.config import StrictModel

if TYPE_CHECKING:  # torch is imported when a dataset is loaded; validation needs only the shapes
    import torch

DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
DATASETS = ("digits", "digits_shifted", "wine", "breast_cancer", "shapes")
SHAPES_TRAIN, SHAPES_TEST, SHAPES_CHUNK = 20000, 1000, 1000
# Easier than make_shapes' defaults (mean difficulty 0.2, not 0.5): at the defaults a small
# CNN needs thousands of SGD steps to leave chance accuracy, more than federated rounds give.
SHAPES_KNOBS = {"difficulty_a": 1.0, "difficulty_b": 4.0}
# (sample shape, classes) of the tabular datasets, for validation without loading them
# (a test checks them against the loaded data)
TABULAR_SHAPES: dict[str, tuple[tuple[int, ...], int]] = {
    "digits": ((64,), 10),
    "digits_shifted": ((64,), 10),
    "wine": ((13,), 3),
    "breast_cancer": ((30,), 2),
}


@dataclass(frozen=True)
class Dataset:
    """One shared copy of a dataset, split into train and test tensors."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    class_names: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One sample's shape: ``(features,)`` or ``(channels, height, width)``."""
        return tuple(self.x_train.shape[1:])


def _shifted(images: np.ndarray) -> np.ndarray:
    """The image and its eight one-pixel shifts (zero fill), stacked: [9, N, 8, 8]."""
    out = []
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            moved = np.zeros_like(images)
            src = images[:, max(0, -dy) : 8 - max(0, dy), max(0, -dx) : 8 - max(0, dx)]
            moved[:, max(0, dy) : 8 - max(0, -dy), max(0, dx) : 8 - max(0, -dx)] = src
            out.append(moved)
    return np.stack(out)


@lru_cache(maxsize=4)
def load_dataset(name: str, test_fraction: float = 0.2) -> Dataset:
    """A bundled scikit-learn dataset, standardised by its training part, split by a fixed shuffle.

    The split is fixed (seeded by the dataset's name, not the run's seed), so every
    run evaluates on the same test samples; for ``digits_shifted`` the shifts of a
    test image stay in the test part.
    """
    if name == "shapes":
        return _shapes()
    import torch

    from workloads.cache import ArrayStore

    store, key = ArrayStore("federated-data"), _cache_key(name, test_fraction)
    try:
        arrays = store[key]
    except KeyError:  # not cached yet, damaged or unreadable: prepare it again
        arrays = store[key] = _prepare(name, test_fraction)
    x_train, y_train, x_test, y_test, names = arrays
    tensors = (torch.from_numpy(a) for a in (x_train, y_train, x_test, y_test))
    return Dataset(name, *tensors, tuple(str(n) for n in names))


def _cache_key(name: str, test_fraction: float) -> str:
    """Changes with this file, the dataset, the split and scikit-learn's version (its data)."""
    h = hashlib.sha256(Path(__file__).read_bytes())
    h.update(f"{name}/{test_fraction!r}/{version('scikit-learn')}/{np.__version__}".encode())
    return f"{name}-{h.hexdigest()[:16]}"


def _prepare(name: str, test_fraction: float) -> tuple[np.ndarray, ...]:
    """``x_train, y_train, x_test, y_test, class_names`` of a scikit-learn dataset, prepared."""
    from sklearn import datasets

    from sim.kernel import numpy_rng

    loader = {
        "digits": datasets.load_digits,
        "digits_shifted": datasets.load_digits,
        "wine": datasets.load_wine,
        "breast_cancer": datasets.load_breast_cancer,
    }[name]
    bunch = loader()
    x, y = bunch.data.astype(np.float32), bunch.target.astype(np.int64)
    order = numpy_rng(0, f"split/{name}").permutation(len(y))
    n_test = int(round(test_fraction * len(y)))
    test, train = order[:n_test], order[n_test:]
    if name == "digits_shifted":
        images = _shifted(x[train].reshape(-1, 8, 8))
        x_train, y_train = images.reshape(-1, 64), np.tile(y[train], 9)
    else:
        x_train, y_train = x[train], y[train]
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    scale = lambda a: ((a - mean) / np.where(std > 0, std, 1.0)).astype(np.float32)  # noqa: E731
    names = DIGIT_NAMES if name.startswith("digits") else tuple(str(c) for c in bunch.target_names)
    return scale(x_train), y_train, scale(x[test]), y[test], np.array(names)


def standardise_images(images: np.ndarray) -> np.ndarray:
    """Per-image standardisation: each channel centred on its own mean, then the image
    divided by its standard deviation. A shapes image's background is a random colour
    and its figure differs from it by a random sign per channel; centring removes the
    background, which otherwise keeps a small CNN at chance accuracy for several epochs."""
    centred = images - images.mean(axis=(2, 3), keepdims=True)
    return (centred / centred.std(axis=(1, 2, 3), keepdims=True).clip(1e-6)).astype(np.float32)


def dataset_shape(name: str) -> tuple[tuple[int, ...], int]:
    """A dataset's sample shape and number of classes, without generating ``shapes``
    (about 20,000 images; validating a scenario needs only these two facts)."""
    if name == "shapes":
        from workloads.shapes import CLASSES, PX

        return (3, PX, PX), len(CLASSES)
    return TABULAR_SHAPES[name]


def _shapes() -> Dataset:
    import torch

    from workloads.shapes import CLASSES, make_shapes

    # in chunks of SHAPES_CHUNK samples (chunk i from seed i): generation's float64
    # intermediates then peak at a chunk's size, not the whole set's
    chunks = [
        make_shapes(SHAPES_CHUNK, seed=i, **SHAPES_KNOBS)
        for i in range((SHAPES_TRAIN + SHAPES_TEST) // SHAPES_CHUNK)
    ]
    images = np.concatenate([standardise_images(c.images) for c in chunks])
    x, y = torch.from_numpy(images), torch.from_numpy(np.concatenate([c.labels for c in chunks]))
    return Dataset("shapes", x[:SHAPES_TRAIN], y[:SHAPES_TRAIN], x[SHAPES_TRAIN:], y[SHAPES_TRAIN:], CLASSES)


class PartitionConfig(StrictModel):
    """How training samples are dealt to clients (every sample to at most one client).

    ``iid``: a uniform random deal. ``dirichlet``: per class, shares drawn from
    Dirichlet(``alpha``) over clients (smaller alpha, more skew). ``exclusive``: each
    client owns ``classes_per_client`` random classes; a class's samples go to its
    owners, except ``unlabelled_share`` of them, dealt to non-owners, who hold them
    without labels (FedAlign's setting: clients see samples of classes they do not
    annotate).
    """

    scheme: Literal["iid", "dirichlet", "exclusive"] = Field(
        "iid",
        description=(
            "iid: uniform deal; dirichlet: per-class Dirichlet(alpha) shares; exclusive: "
            "classes_per_client classes each"
        ),
    )
    alpha: PositiveFloat = Field(0.5, description="dirichlet: concentration (smaller: more skewed clients)")
    classes_per_client: int = Field(
        3, ge=1, description="exclusive: classes each client owns (at most the dataset's classes)"
    )
    unlabelled_share: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="exclusive: share of a class's samples dealt unlabelled to non-owners, in [0, 1)",
    )

    @model_validator(mode="after")
    def _scheme_fields(self) -> PartitionConfig:
        if self.scheme != "exclusive" and self.unlabelled_share:
            raise ValueError(f"unlabelled_share only applies to scheme 'exclusive', not {self.scheme!r}")
        return self


@dataclass(frozen=True)
class Partition:
    """Client ``k`` holds ``order[offsets[k]:offsets[k+1]]`` and knows labels of ``owned[k]``."""

    order: np.ndarray
    offsets: np.ndarray
    owned: np.ndarray | None

    @property
    def num_clients(self) -> int:
        return len(self.offsets) - 1

    def indices(self, client: int) -> np.ndarray:
        return self.order[self.offsets[client] : self.offsets[client + 1]]

    def sizes(self) -> np.ndarray:
        return np.diff(self.offsets)

    def labelled_sizes(self, labels: np.ndarray) -> np.ndarray:
        """Per client, how many of its samples carry a label it knows."""
        if self.owned is None:
            return self.sizes()
        client = np.repeat(np.arange(self.num_clients), self.sizes())
        known = self.owned[client, labels[self.order]]
        return np.bincount(client[known], minlength=self.num_clients)


def _deal(groups: list[np.ndarray], num_clients: int) -> Partition:
    """One Partition from per-client index arrays (concatenated into one ``order``)."""
    sizes = np.array([len(g) for g in groups])
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    order = np.concatenate(groups) if groups else np.empty(0, int)
    return Partition(order.astype(np.int64), offsets, None)


def _split_among(indices: np.ndarray, clients: np.ndarray, shares: np.ndarray, into: list[list]) -> None:
    cuts = (np.cumsum(shares)[:-1] * len(indices)).round().astype(int)
    for client, part in zip(clients, np.split(indices, cuts)):
        into[client].append(part)


def partition(
    cfg: PartitionConfig, labels: np.ndarray, num_clients: int, num_classes: int, rng: np.random.Generator
) -> Partition:
    """Deal ``len(labels)`` training samples to ``num_clients`` clients by ``cfg.scheme``."""
    if cfg.scheme == "iid":
        return _deal(np.array_split(rng.permutation(len(labels)), num_clients), num_clients)
    groups: list[list] = [[] for _ in range(num_clients)]
    everyone = np.arange(num_clients)
    owned = None
    if cfg.scheme == "exclusive":
        owned = np.zeros((num_clients, num_classes), bool)
        for k in range(num_clients):
            owned[k, rng.choice(num_classes, cfg.classes_per_client, replace=False)] = True
    for c in range(num_classes):
        members = rng.permutation(np.flatnonzero(labels == c))
        if cfg.scheme == "dirichlet":
            _split_among(members, everyone, rng.dirichlet(np.full(num_clients, cfg.alpha)), groups)
            continue
        owners = np.flatnonzero(owned[:, c])
        others = np.flatnonzero(~owned[:, c])
        if len(owners) == 0:  # nobody annotates this class: all its samples are unlabelled
            owners, others = others, owners
        n_unlabelled = int(round(cfg.unlabelled_share * len(members))) if len(others) else 0
        labelled, unlabelled = members[n_unlabelled:], members[:n_unlabelled]
        _split_among(labelled, owners, np.full(len(owners), 1 / len(owners)), groups)
        if n_unlabelled:
            _split_among(unlabelled, others, np.full(len(others), 1 / len(others)), groups)
    dealt = _deal([np.concatenate(g) if g else np.empty(0, int) for g in groups], num_clients)
    return Partition(dealt.order, dealt.offsets, owned)
