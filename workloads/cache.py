"""The on-disk cache of in-repo work (traced layers, trained weights, inference caches).

Files are keyed by their callers with a hash of code and data; writes go through a
temporary file renamed into place, so concurrent processes (a sweep's workers) read a
whole file or none. A read-only cache only costs recomputation.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch


def cache_dir() -> Path:
    """``$TESTBED_CACHE`` or ``~/.cache/ml-testbed``."""
    return Path(os.environ.get("TESTBED_CACHE") or Path.home() / ".cache" / "ml-testbed")


def write_atomic(path: Path, write: Callable[[IO[Any]], None], text: bool = False) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it over ``path``."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            "w" if text else "wb", dir=path.parent, delete=False, suffix=".tmp"
        ) as f:
            try:
                write(f)
            except BaseException:
                os.unlink(f.name)
                raise
        os.replace(f.name, path)
    except OSError:
        pass  # a read-only cache only costs recomputation next time


@contextlib.contextmanager
def pinned_threads(n: int) -> Iterator[None]:
    """Run torch on ``n`` threads inside the block, then restore the caller's setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class ArrayStore:
    """Tuples of arrays kept on disk by key (one ``.npz`` each under ``cache_dir()/name``).

    Supports ``key in store``, ``store[key]`` and ``store[key] = arrays``; writes are
    atomic, and an unreadable entry counts as missing.
    """

    def __init__(self, name: str):
        self.root = cache_dir() / name

    def _path(self, key: str) -> Path:
        return self.root / f"{key}.npz"

    def __contains__(self, key: str) -> bool:
        return self._path(key).is_file()

    def __getitem__(self, key: str) -> tuple[np.ndarray, ...]:
        try:
            with np.load(self._path(key)) as saved:
                return tuple(saved[f"arr_{i}"] for i in range(len(saved.files)))
        except (OSError, ValueError, KeyError):
            raise KeyError(key) from None

    def __setitem__(self, key: str, arrays: tuple[np.ndarray, ...]) -> None:
        write_atomic(self._path(key), lambda f: np.savez(f, *arrays))
