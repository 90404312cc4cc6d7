"""Demand streams: when requests arrive (periodic with jitter, Poisson, or a trace).

Arrival times are drawn in chunks from the stream's own named random stream, so a
stream's times depend only on the run seed and the stream's name.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field, NonNegativeFloat, PositiveFloat, model_validator

from sim.config import StrictModel
from sim.errors import ConfigError

CHUNK = 4096


class ArrivalConfig(StrictModel):
    """How a stream's requests arrive.

    ``periodic``: at ``offset_s + i * period`` plus a uniform jitter in ``[0, jitter_s)``
    (XRBench default 0.01 ms). ``poisson``: exponential gaps at the stream's rate.
    ``trace``: the times in ``times_s`` or in the ``arrival_s`` column of ``trace_csv``.
    """

    process: Literal["periodic", "poisson", "trace"] = "periodic"
    jitter_s: NonNegativeFloat = 1e-5
    offset_s: NonNegativeFloat = 0.0
    times_s: list[NonNegativeFloat] | None = None
    trace_csv: str | None = None

    @model_validator(mode="after")
    def _trace_source(self) -> ArrivalConfig:
        if self.process == "trace" and (self.times_s is None) == (self.trace_csv is None):
            raise ValueError("process 'trace' needs exactly one of times_s or trace_csv")
        if self.process != "trace" and (self.times_s is not None or self.trace_csv is not None):
            raise ValueError(f"times_s/trace_csv only apply to process 'trace', not {self.process!r}")
        if self.times_s is not None and any(np.diff(self.times_s) < 0):
            raise ValueError("times_s must be sorted in increasing order")
        return self


def read_trace(path: str | Path, field: str) -> np.ndarray:
    """Arrival times from the ``arrival_s`` column of a CSV; problems are ConfigErrors."""
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise ConfigError(f"{field}: no such file {str(path)!r}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{field}: cannot parse {str(path)!r} as CSV ({exc})") from None
    if "arrival_s" not in frame.columns:
        raise ConfigError(
            f"{field}: {str(path)!r} has no 'arrival_s' column (columns: {list(frame.columns)})"
        )
    times = pd.to_numeric(frame["arrival_s"], errors="coerce").to_numpy(float)
    bad = np.flatnonzero(~np.isfinite(times) | (times < 0))
    if bad.size:
        raise ConfigError(f"{field}: row {bad[0] + 2} of {str(path)!r}: arrival_s must be a number >= 0")
    if np.any(np.diff(times) < 0):
        raise ConfigError(f"{field}: arrival_s in {str(path)!r} must be sorted in increasing order")
    return times


def arrivals(
    cfg: ArrivalConfig, period_s: float, rng: np.random.Generator, field: str = "arrival"
) -> Iterator[tuple[float, float]]:
    """Yield ``(arrival_s, nominal_s)`` forever (or to the trace's end).

    ``nominal_s`` is the jitter-free slot time a periodic frame belongs to (its deadline
    is measured from it); for Poisson and trace arrivals it equals the arrival.
    """
    if cfg.process == "trace":
        times = (
            np.asarray(cfg.times_s, float)
            if cfg.times_s is not None
            else read_trace(cfg.trace_csv, f"{field}.trace_csv")
        )
        for t in times.tolist():
            yield t, t
        return
    start = 0
    last = cfg.offset_s
    while True:
        if cfg.process == "periodic":
            nominal = cfg.offset_s + period_s * np.arange(start, start + CHUNK)
            times = nominal + rng.random(CHUNK) * cfg.jitter_s
            yield from zip(times.tolist(), nominal.tolist())
        else:
            times = last + np.cumsum(rng.exponential(period_s, CHUNK))
            last = float(times[-1])
            for t in times.tolist():
                yield t, t
        start += CHUNK


class ServiceTimeConfig(StrictModel):
    """Per-frame variability of service time: the cost model's latency times a random factor of mean 1.

    ``exponential`` gives M/M/c-style service; ``lognormal`` has coefficient of
    variation ``cv``. Energy is not scaled (the work is the same; only its speed varies).
    """

    distribution: Literal["deterministic", "exponential", "lognormal"] = "deterministic"
    cv: PositiveFloat = Field(0.1, description="coefficient of variation for lognormal")

    def factors(self, rng: np.random.Generator) -> Iterator[float]:
        """Yield the factor of each successive frame."""
        if self.distribution == "deterministic":
            while True:
                yield 1.0
        sigma = float(np.sqrt(np.log1p(self.cv**2)))
        while True:
            if self.distribution == "exponential":
                draw = rng.exponential(1.0, CHUNK)
            else:
                draw = rng.lognormal(-(sigma**2) / 2, sigma, CHUNK)
            yield from draw.tolist()
