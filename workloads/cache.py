"""The on-disk cache of in-repo work (traced layers, trained weights, inference caches).

Files are keyed by their callers with a hash of code and data; writes go through a
temporary file renamed into place, so concurrent processes (a sweep's workers) read a
whole file or none. A read-only cache only costs recomputation. An entry written by
:func:`save_checked` carries the SHA-256 of its payload and the key (file name) it was
made for; a truncated, edited or misplaced entry reads as missing and is rebuilt.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from sim.config import cache_dir as cache_dir  # the engine's setting; re-exported for the workloads


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
    import torch  # here, not at the top: array entries are read without torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


_MAGIC = b"testbed-cache-1\n"


def save_checked(path: Path, payload: bytes) -> None:
    """Write ``payload`` with a header holding its checksum and the entry's key (its file name)."""
    header = json.dumps({"key": path.name, "sha256": hashlib.sha256(payload).hexdigest()}).encode()
    write_atomic(path, lambda f: f.write(_MAGIC + header + b"\n" + payload))


def load_checked(path: Path) -> bytes | None:
    """The payload saved at ``path``, or None if absent, unreadable, for another key or damaged."""
    try:
        data = path.read_bytes()
        if not data.startswith(_MAGIC):
            return None
        header, _, payload = data[len(_MAGIC) :].partition(b"\n")
        meta = json.loads(header)
    except (OSError, ValueError):
        return None
    if meta.get("key") != path.name or meta.get("sha256") != hashlib.sha256(payload).hexdigest():
        return None
    return payload


def save_torch(path: Path, obj: Any) -> None:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    save_checked(path, buf.getvalue())


def load_torch(path: Path) -> Any | None:
    """A checked entry written by :func:`save_torch` (``weights_only``), or None."""
    import torch

    payload = load_checked(path)
    if payload is None:
        return None
    try:
        return torch.load(io.BytesIO(payload), weights_only=True)
    except Exception:  # noqa: BLE001 - a checksum-valid but unloadable entry is missing too
        return None


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
        try:
            self[key]
        except KeyError:
            return False
        return True

    def __getitem__(self, key: str) -> tuple[np.ndarray, ...]:
        payload = load_checked(self._path(key))
        if payload is None:
            raise KeyError(key)
        try:
            with np.load(io.BytesIO(payload)) as saved:
                return tuple(saved[f"arr_{i}"] for i in range(len(saved.files)))
        except (OSError, ValueError, KeyError, EOFError):
            raise KeyError(key) from None

    def __setitem__(self, key: str, arrays: tuple[np.ndarray, ...]) -> None:
        buf = io.BytesIO()
        np.savez(buf, *arrays)
        save_checked(self._path(key), buf.getvalue())
