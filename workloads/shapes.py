"""``shapes``: a procedural 32x32 colour image dataset with per-sample difficulty.

Ten classes of geometric figures (disk, square, triangle, plus, ring, diamond, two
bars, ellipse, saltire, hollow square), each drawn with soft edges at a random position,
scale, small rotation and colour on a random background. Every sample has a difficulty
``d`` in [0, 1] drawn from Beta(``difficulty_a``, ``difficulty_b``); ``d`` lowers the
figure's contrast and size and raises pixel noise, clutter (distractor blobs) and
occlusion (a background-coloured rectangle), so easy samples are recognised by the
first layers of a network and hard ones need its depth: the spread early exits need.

It exists because nothing larger than 8x8 digits or two photographs ships inside an
installed package and nothing may be downloaded. Generation is pure NumPy, vectorised
over samples, and deterministic in ``(seed, n, knobs)``: the same call gives the same
bytes everywhere. Every knob is a keyword of :func:`make_shapes` (defaults in
:data:`DEFAULTS`). Generated sets are cached on disk (:class:`workloads.cache.ArrayStore`,
checksummed, keyed by this file, ``n``, ``seed``, the knobs and NumPy's version): 20,000
images take about 20 s to draw and a fraction of a second to read.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sim.kernel import numpy_rng

CLASSES: tuple[str, ...] = (
    "disk",
    "square",
    "triangle",
    "plus",
    "ring",
    "diamond",
    "bars",
    "ellipse",
    "saltire",
    "frame",
)
PX = 32
DEFAULTS: dict[str, float] = {
    "difficulty_a": 1.5,  # Beta shape of the per-sample difficulty
    "difficulty_b": 1.5,
    "scale_px": 9.0,  # half-size of the figure at difficulty 0, in pixels
    "scale_shrink": 0.45,  # share of the size lost at difficulty 1
    "scale_jitter": 0.15,  # relative random size variation
    "max_rotation_rad": 0.35,  # uniform in +-this; small, so square and diamond stay apart
    "contrast": 0.7,  # figure-background colour distance per channel at difficulty 0
    "contrast_loss": 0.6,  # share of the contrast lost at difficulty 1
    "noise_std": 0.04,  # pixel noise (images in [0, 1]) at difficulty 0 ...
    "noise_gain": 0.22,  # ... plus this much at difficulty 1
    "clutter_blobs": 5.0,  # mean number of distractor blobs at difficulty 1 (Poisson)
    "occlusion_px": 14.0,  # side of the occluding rectangle at difficulty 1
    "edge_px": 0.8,  # softness of figure edges
}


@dataclass(frozen=True)
class Shapes:
    """Images in [-1, 1] (``[n, 3, 32, 32]`` float32), int64 labels and float32 difficulty."""

    images: np.ndarray
    labels: np.ndarray
    difficulty: np.ndarray


def _field(k: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Signed distance-like field of figure ``k`` in its own frame (< 0 inside)."""
    au, av, r = np.abs(u), np.abs(v), np.hypot(u, v)
    s3 = np.sqrt(3.0)
    if k == 0:
        return r - 1.0
    if k == 1:
        return np.maximum(au, av) - 0.85
    if k == 2:
        return np.maximum.reduce([-v - 0.55, (s3 * u + v) / 2 - 0.55, (-s3 * u + v) / 2 - 0.55])
    if k in (3, 8):  # plus; a saltire is a plus turned by 45 degrees
        if k == 8:
            au, av = np.abs(u + v) / np.sqrt(2.0), np.abs(u - v) / np.sqrt(2.0)
        return np.minimum(np.maximum(au - 0.32, av - 1.0), np.maximum(au - 1.0, av - 0.32))
    if k == 4:
        return np.abs(r - 0.72) - 0.24
    if k == 5:
        return au + av - 1.15
    if k == 6:
        return np.maximum(au - 1.0, np.abs(av - 0.55) - 0.2)
    if k == 7:
        return np.hypot(u / 1.1, v / 0.45) - 1.0
    return np.abs(np.maximum(au, av) - 0.72) - 0.2


def _distance(label: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Each sample's figure field, computed per class on that class's rows only."""
    out = np.empty_like(u)
    for k in range(len(CLASSES)):
        rows = label == k
        out[rows] = _field(k, u[rows], v[rows])
    return out


def make_shapes(n: int, seed: int, **knobs: float) -> Shapes:
    """``n`` samples of the dataset, balanced over classes, drawn from stream ``shapes``
    (read from the disk cache when this call was made before, else drawn and cached)."""
    from workloads.cache import ArrayStore

    unknown = set(knobs) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown shapes knob(s) {sorted(unknown)}; allowed: {sorted(DEFAULTS)}")
    k = {**DEFAULTS, **knobs}
    store, key = ArrayStore("shapes"), _cache_key(n, seed, k)
    try:
        return Shapes(*store[key])
    except KeyError:  # not cached yet, damaged or unreadable: draw it
        drawn = _draw(n, seed, k)
    store[key] = (drawn.images, drawn.labels, drawn.difficulty)
    return drawn


def _cache_key(n: int, seed: int, knobs: dict[str, float]) -> str:
    h = hashlib.sha256(Path(__file__).read_bytes())
    h.update(
        json.dumps({"n": n, "seed": seed, "knobs": knobs, "numpy": np.__version__}, sort_keys=True).encode()
    )
    return f"n{n}-seed{seed}-{h.hexdigest()[:16]}"


def _draw(n: int, seed: int, k: dict[str, float]) -> Shapes:
    """Generate the set (see :func:`make_shapes`); ``k`` holds every knob."""
    rng = numpy_rng(seed, "shapes")
    labels = rng.permutation(np.arange(n) % len(CLASSES)).astype(np.int64)
    d = rng.beta(k["difficulty_a"], k["difficulty_b"], n).astype(np.float32)
    col = lambda a: a[:, None, None]  # noqa: E731  broadcast a per-sample value over pixels

    size = k["scale_px"] * (1 - k["scale_shrink"] * d) * (1 + k["scale_jitter"] * rng.uniform(-1, 1, n))
    centre = rng.uniform(-1, 1, (n, 2)) * (PX / 2 - size[:, None] - 1).clip(0) + PX / 2 - 0.5
    angle = rng.uniform(-1, 1, n) * k["max_rotation_rad"]
    y, x = np.mgrid[0:PX, 0:PX].astype(np.float32)
    dx, dy = x - col(centre[:, 0]), y - col(centre[:, 1])
    cos, sin = col(np.cos(angle)), col(np.sin(angle))
    u, v = (cos * dx + sin * dy) / col(size), (-sin * dx + cos * dy) / col(size)
    edge = k["edge_px"] / col(size)
    figure = 1 / (1 + np.exp(np.clip(_distance(labels, u, v) / edge, -30, 30)))

    background = rng.uniform(0.15, 0.85, (n, 3))
    sign = rng.choice([-1.0, 1.0], (n, 3))
    delta = sign * (k["contrast"] * (1 - k["contrast_loss"] * d))[:, None]
    foreground = np.clip(background + delta, 0, 1)
    fg, bg = foreground[:, :, None, None], background[:, :, None, None]
    images = bg + (fg - bg) * figure[:, None]

    blobs = rng.poisson(k["clutter_blobs"] * d)
    for b in range(int(blobs.max(initial=0))):
        c, radius, colour = rng.uniform(0, PX, (n, 2)), rng.uniform(1.0, 2.5, n), rng.uniform(0, 1, (n, 3))
        rows = np.flatnonzero(blobs > b)
        blob = np.hypot(x - col(c[rows, 0]), y - col(c[rows, 1])) < col(radius[rows])
        images[rows] = np.where(blob[:, None], colour[rows, :, None, None], images[rows])

    side = k["occlusion_px"] * d
    corner = rng.uniform(0, 1, (n, 2)) * (PX - side[:, None])
    inside = (
        (x >= col(corner[:, 0]))
        & (x < col(corner[:, 0] + side))
        & (y >= col(corner[:, 1]))
        & (y < col(corner[:, 1] + side))
    )
    images = np.where(inside[:, None], bg, images)

    noise_std = k["noise_std"] + k["noise_gain"] * d
    images = images + rng.standard_normal(images.shape) * noise_std[:, None, None, None]
    images = (np.clip(images, 0, 1) * 2 - 1).astype(np.float32)
    return Shapes(images=images, labels=labels, difficulty=d)
