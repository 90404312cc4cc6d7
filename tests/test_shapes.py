"""The procedural ``shapes`` dataset: deterministic, balanced, in range, difficulty that bites."""

import numpy as np
import pytest

from workloads.shapes import CLASSES, make_shapes


def test_same_seed_same_bytes_and_seeds_differ():
    a, b, c = make_shapes(200, 0), make_shapes(200, 0), make_shapes(200, 1)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.images, c.images)


def test_balanced_shaped_and_scaled():
    s = make_shapes(1000, 3)
    assert s.images.shape == (1000, 3, 32, 32) and s.images.dtype == np.float32
    assert np.bincount(s.labels, minlength=len(CLASSES)).tolist() == [100] * len(CLASSES)
    assert s.images.min() >= -1 and s.images.max() <= 1
    assert s.difficulty.min() >= 0 and s.difficulty.max() <= 1


def test_hard_samples_are_noisier():
    """Pixel-to-pixel variation (noise, clutter) grows with the difficulty draw."""
    s = make_shapes(2000, 0)
    roughness = np.abs(np.diff(s.images, axis=-1)).mean(axis=(1, 2, 3))
    assert np.corrcoef(s.difficulty, roughness)[0, 1] > 0.8


def test_unknown_knob_is_named():
    with pytest.raises(ValueError, match="noise_sdt"):
        make_shapes(10, 0, noise_sdt=0.1)
