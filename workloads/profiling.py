"""Measured per-layer latency of a real ``nn.Module`` on this machine, shared by the kinds'
``testbed profile`` hooks (``workloads/xr/profile.py``, ``workloads/edge/profile.py``).

Layers are the ones :func:`devices.cost.extract_layers` lists, under the same names, so a
kind's profile CSV matches the layers its simulation prices. Each layer's time is the
median over ``repeats`` timed passes (after ``warmup`` untimed ones) of the summed wall
time of its aten ops, synchronised on CUDA. Energy is not measured: each kind's CSV
derives it from the active power the user states for the device.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from devices.cost import Layer, trace_layers
from sim.errors import ConfigError
from workloads.cache import pinned_threads


@dataclass(frozen=True)
class LayerProfile:
    """One profiled model: its layers, each one's median latency, and a plain forward's."""

    model: str
    device: str
    layers: tuple[Layer, ...]
    latency_s: list[float]
    forward_s: float  # median wall time of an uninstrumented forward pass


def check_device(device: str) -> None:
    """Refuse ``--device cuda`` on a machine without CUDA, before any model is built."""
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device: cuda is not available on this machine; use cpu")


def _clock(device: torch.device) -> Callable[[], float]:
    if device.type == "cuda":

        def synced() -> float:
            torch.cuda.synchronize(device)
            return time.perf_counter()

        return synced
    return time.perf_counter


def profile_model(
    name: str,
    model: nn.Module,
    example_input: torch.Tensor,
    *,
    device: str = "cpu",
    batch: int = 1,
    threads: int = 1,
    warmup: int = 3,
    repeats: int = 10,
) -> LayerProfile:
    """Time ``model`` layer by layer on ``device`` with a batch of ``batch`` copies of ``example_input``."""
    where = torch.device(device)
    model = model.to(where).eval()
    x = example_input.to(where).expand(batch, *example_input.shape[1:]).contiguous()
    clock = _clock(where)
    per_layer: list[list[float]] = []
    forward: list[float] = []
    layers: tuple[Layer, ...] = ()
    with pinned_threads(threads), torch.no_grad():
        for k in range(warmup + repeats):
            layers, times_s = trace_layers(model, x, clock=clock)
            started = clock()
            model(x)
            elapsed_s = clock() - started
            if k >= warmup:
                per_layer.append(times_s)
                forward.append(elapsed_s)
    latency_s = [statistics.median(column) for column in zip(*per_layer)]
    return LayerProfile(name, str(where), layers, latency_s, statistics.median(forward))


def summary_line(prof: LayerProfile, out: object, batch: int, threads: int, repeats: int) -> str:
    """The line ``testbed profile`` prints: what was written, and the layers' sum against a plain forward."""
    return (
        f"wrote {out}: {len(prof.layers)} layers of {prof.model} on {prof.device}, batch {batch}, "
        f"{threads} thread(s); layers sum to {sum(prof.latency_s) * 1e3:.3f} ms, a plain forward "
        f"takes {prof.forward_s * 1e3:.3f} ms (median of {repeats})"
    )
