"""Simulation kernel: a SimPy environment plus named, independent random streams.

Every random source asks the kernel for a stream by a stable name ("arrivals/eye_seg",
"service/gaze"). Streams are spawned from one ``SeedSequence`` by a hash of the name,
so adding a stream never shifts the numbers of another, and no code touches global
RNG state.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np
import simpy

if TYPE_CHECKING:  # torch is imported only by the runs that draw from a torch generator
    import torch


def _name_key(name: str) -> tuple[int, ...]:
    digest = hashlib.sha256(name.encode()).digest()
    return tuple(int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4))


def seed_sequence(seed: int, name: str) -> np.random.SeedSequence:
    """The seed sequence of stream ``name`` under run seed ``seed``."""
    return np.random.SeedSequence(entropy=seed, spawn_key=_name_key(name))


class Kernel:
    """One simulation: ``env`` (a :class:`simpy.Environment`) and its random streams."""

    def __init__(self, seed: int = 0):
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.seed = seed
        self.env = simpy.Environment()
        self._streams: dict[str, np.random.Generator] = {}

    @property
    def now(self) -> float:
        return self.env.now

    def rng(self, name: str) -> np.random.Generator:
        """The NumPy generator of stream ``name`` (created on first use, then shared)."""
        gen = self._streams.get(name)
        if gen is None:
            gen = self._streams[name] = numpy_rng(self.seed, name)
        return gen

    def torch_generator(self, name: str) -> torch.Generator:
        """A fresh CPU ``torch.Generator`` seeded from stream ``name``."""
        return torch_generator(self.seed, name)


def numpy_rng(seed: int, name: str) -> np.random.Generator:
    """A NumPy generator seeded from ``(seed, name)``, for draws outside a run's kernel."""
    return np.random.Generator(np.random.PCG64(seed_sequence(seed, name)))


def torch_generator(seed: int, name: str) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded from ``(seed, name)``, independent of global state."""
    import torch

    state = seed_sequence(seed, name).generate_state(2, dtype=np.uint32)
    gen = torch.Generator()
    gen.manual_seed(int(state[0]) << 32 | int(state[1]))
    return gen
