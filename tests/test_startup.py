"""Fast start: `testbed validate`, `list` and `describe` import neither torch nor scikit-learn,
and the caches that make it so are right (descriptions, dataset arrays, shapes images)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, shipped

HEAVY = ("torch", "sklearn", "matplotlib", "scipy")
PROBE = (
    "import json, sys\nfrom sim.cli import main\ncode = main(sys.argv[1:])\n"
    f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
    'print(json.dumps({"code": code, "heavy": heavy}))\n'
)


def _heavy_imports(*argv: str, cache: Path) -> list[str]:
    """The heavy modules a fresh ``testbed ARGV`` process imported (it must exit 0)."""
    env = {"PYTHONPATH": str(ROOT), "TESTBED_CACHE": str(cache), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["code"] == 0
    return result["heavy"]


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory) -> Path:
    """A cache folder in which `list` has run once (it imports everything the first time)."""
    cache = tmp_path_factory.mktemp("cache")
    _heavy_imports("list", cache=cache)
    return cache


@pytest.mark.parametrize("path", shipped("scenario") + shipped("sweep"), ids=lambda p: p.stem)
def test_validate_imports_no_torch(path, tmp_path):
    assert _heavy_imports("validate", str(path), cache=tmp_path) == []


@pytest.mark.parametrize(
    "argv", [["list"], ["describe", "federated"], ["describe", "model", "keyword_detection"]], ids=" ".join
)
def test_list_and_describe_import_no_torch(argv, warm_cache):
    assert _heavy_imports(*argv, cache=warm_cache) == []


def test_cached_descriptions_equal_the_live_ones(warm_cache, monkeypatch):
    """What `list` and `describe` print from the cache is what the imported classes say."""
    from sim import registry
    from sim.describe import _lines, _provided, catalog, describe

    monkeypatch.setenv("TESTBED_CACHE", str(warm_cache))
    cached = _provided()
    assert set(cached) >= {"scenario", "model", "scheduling", "aggregation"}
    for family, entries in cached.items():
        for name, entry in entries.items():
            cls = registry.get(family, name)
            assert entry == {"description": registry.describe(cls), "lines": _lines(family, name, cls)}
    assert describe(["model", "keyword_detection"]) == cached["model"]["keyword_detection"]["lines"]
    assert catalog()["scenario"]["xr"] == registry.describe(registry.get("scenario", "xr"))


def test_a_damaged_description_cache_is_rebuilt(tmp_path, monkeypatch):
    from sim.describe import _provided

    monkeypatch.setenv("TESTBED_CACHE", str(tmp_path))
    first = _provided()
    (entry,) = (tmp_path / "registry").glob("describe-*.json")
    saved = json.loads(entry.read_text())
    saved["entries"]["scenario"]["xr"]["description"] = "tampered"
    entry.write_text(json.dumps(saved))  # the checksum no longer matches
    assert _provided() == first
    entry.write_text(entry.read_text()[:20])  # truncated
    assert _provided() == first


def test_names_and_shapes_known_without_torch_agree_with_the_real_ones():
    from workloads import supernet, supernet_names
    from workloads.federated.data import TABULAR_SHAPES, dataset_shape, load_dataset

    assert supernet.SUPERNETS == tuple(supernet.ARCHITECTURES) == supernet_names.SUPERNETS
    assert supernet.WIDTHS == supernet_names.WIDTHS
    for name, shape in TABULAR_SHAPES.items():
        data = load_dataset(name)
        assert dataset_shape(name) == shape == (data.input_shape, data.num_classes)


def test_cached_dataset_arrays_are_the_prepared_ones_bit_for_bit(tmp_path, monkeypatch):
    import numpy as np

    from workloads.federated import data

    monkeypatch.setenv("TESTBED_CACHE", str(tmp_path))
    fresh = data._prepare("wine", 0.2)
    data.load_dataset.cache_clear()
    written = data.load_dataset("wine")  # prepares and writes the entry
    (entry,) = (tmp_path / "federated-data").glob("wine-*.npz")
    data.load_dataset.cache_clear()
    read = data.load_dataset("wine")  # from the entry
    for got in (written, read):
        tensors = (got.x_train, got.y_train, got.x_test, got.y_test)
        for a, b in zip(tensors, fresh[:4], strict=True):
            assert a.numpy().dtype == b.dtype and np.array_equal(a.numpy(), b)
        assert got.class_names == tuple(fresh[4])
    entry.write_bytes(entry.read_bytes()[:-10])  # a truncated entry reads as missing and is rebuilt
    data.load_dataset.cache_clear()
    assert np.array_equal(data.load_dataset("wine").x_train.numpy(), fresh[0])
    data.load_dataset.cache_clear()


def test_cached_shapes_are_the_generated_ones_bit_for_bit(tmp_path, monkeypatch):
    from workloads import shapes

    monkeypatch.setenv("TESTBED_CACHE", str(tmp_path))
    drawn = shapes._draw(300, 5, {**shapes.DEFAULTS, "difficulty_a": 1.0})
    written = shapes.make_shapes(300, 5, difficulty_a=1.0)  # drawn now and cached
    (entry,) = (tmp_path / "shapes").glob("*.npz")
    read = shapes.make_shapes(300, 5, difficulty_a=1.0)  # from the entry
    entry.write_bytes(entry.read_bytes()[:100])  # a damaged entry is drawn again
    redrawn = shapes.make_shapes(300, 5, difficulty_a=1.0)
    for got in (written, read, redrawn):
        for field in ("images", "labels", "difficulty"):
            a, b = getattr(got, field), getattr(drawn, field)
            assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    shapes.make_shapes(300, 5, difficulty_a=2.0)
    shapes.make_shapes(300, 6, difficulty_a=1.0)
    assert len(list((tmp_path / "shapes").glob("*.npz"))) == 3  # other knobs or seed: other entries
