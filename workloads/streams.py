"""Demand streams: when requests arrive (periodic with jitter, Poisson, or a trace).

Arrival times are drawn in chunks from the stream's own named random stream, so a
stream's times depend only on the run seed and the stream's name.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, NonNegativeFloat, PositiveFloat, model_validator

from sim.config import StrictModel, check_file, read_csv
from sim.errors import ConfigError

CHUNK = 4096
MAX_EVENTS = 1e9  # arrivals one run may ask for; more could never finish (docs/scenarios.md)


class ArrivalConfig(StrictModel):
    """How a stream's requests arrive.

    ``periodic``: at ``offset_s + i * period`` plus a uniform jitter in ``[0, jitter_s)``
    (XRBench default 0.01 ms). ``poisson``: exponential gaps at the stream's rate.
    ``bursty``: a two-state Markov-modulated Poisson process; calm spells (mean
    ``calm_mean_s``) at the stream's rate alternate with bursts (mean ``burst_mean_s``)
    at ``burst_factor`` times that rate. ``trace``: the times in ``times_s`` or in the
    ``arrival_s`` column of ``trace_csv``.
    """

    process: Literal["periodic", "poisson", "bursty", "trace"] = Field(
        "periodic", description="periodic, poisson, bursty (Markov-modulated Poisson) or trace"
    )
    jitter_s: NonNegativeFloat = Field(
        1e-5, description="periodic: uniform jitter added to each arrival, in [0, jitter_s) seconds"
    )
    offset_s: NonNegativeFloat = Field(0.0, description="periodic: time of the first arrival, in seconds")
    burst_factor: float = Field(
        4.0, ge=1.0, description="bursty: rate during a burst, as a multiple of the stream's rate (>= 1)"
    )
    burst_mean_s: PositiveFloat = Field(0.1, description="bursty: mean length of a burst, in seconds")
    calm_mean_s: PositiveFloat = Field(0.5, description="bursty: mean length of a calm spell, in seconds")
    times_s: list[NonNegativeFloat] | None = Field(
        None, description="trace: arrival times in seconds, sorted"
    )
    trace_csv: str | None = Field(
        None, description="trace: CSV whose arrival_s column holds the arrival times"
    )

    @model_validator(mode="after")
    def _trace_source(self) -> ArrivalConfig:
        if self.process == "trace" and (self.times_s is None) == (self.trace_csv is None):
            raise ValueError("process 'trace' needs exactly one of times_s or trace_csv")
        if self.process != "trace" and (self.times_s is not None or self.trace_csv is not None):
            raise ValueError(f"times_s/trace_csv only apply to process 'trace', not {self.process!r}")
        if self.times_s is not None and any(np.diff(self.times_s) < 0):
            raise ValueError("times_s must be sorted in increasing order")
        if self.trace_csv is not None:
            check_file(self.trace_csv, "trace_csv", read_trace)
        return self

    def period_problem(self, period_s: float, duration_s: float, field: str) -> str | None:
        """Why a stream of this period over ``duration_s`` cannot be simulated (None if it can)."""
        if self.process == "periodic" and self.jitter_s >= period_s:
            return (
                f"{field}.jitter_s: {self.jitter_s:g} must be less than the period {period_s:g} s "
                "(frames would arrive out of order)"
            )
        if self.process != "trace":
            factor = self.burst_factor if self.process == "bursty" else 1.0
            return events_problem(factor / period_s, duration_s, field)
        return None


def events_problem(rate_hz: float, duration_s: float, field: str) -> str | None:
    """Why ``rate_hz`` arrivals over ``duration_s`` are too many to simulate (None if they are not)."""
    events = rate_hz * duration_s
    if events > MAX_EVENTS:
        return (
            f"{field}: {rate_hz:.4g} arrivals/s over duration_s {duration_s:g} is {events:.3g} events, "
            f"more than the {MAX_EVENTS:.0e} a run can simulate"
        )
    return None


def read_trace(path: str | Path, field: str) -> np.ndarray:
    """Arrival times from the ``arrival_s`` column of a CSV; problems are ConfigErrors."""
    import pandas as pd

    frame = read_csv(path, field)
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
    cfg: ArrivalConfig,
    period_s: float,
    rng: np.random.Generator,
    field: str = "arrival",
    start_s: float = 0.0,
) -> Iterator[tuple[float, float]]:
    """Yield ``(arrival_s, nominal_s)`` from ``start_s + offset_s`` on, forever (or to a trace's end).

    ``nominal_s`` is the jitter-free slot time a periodic frame belongs to (its deadline
    is measured from it); for the other processes it equals the arrival.
    """
    if cfg.process == "trace":
        times = (
            np.asarray(cfg.times_s, float)
            if cfg.times_s is not None
            else read_trace(cfg.trace_csv, f"{field}.trace_csv")
        )
        for t in times[times >= start_s].tolist():
            yield t, t
        return
    origin = start_s + cfg.offset_s
    if cfg.process == "bursty":
        yield from _bursty(cfg, period_s, rng, origin)
        return
    first = 0
    last = origin
    while True:
        if cfg.process == "periodic":
            nominal = origin + period_s * np.arange(first, first + CHUNK)
            times = nominal + rng.random(CHUNK) * cfg.jitter_s
            yield from zip(times.tolist(), nominal.tolist())
        else:
            times = last + np.cumsum(rng.exponential(period_s, CHUNK))
            last = float(times[-1])
            for t in times.tolist():
                yield t, t
        first += CHUNK


def _bursty(
    cfg: ArrivalConfig, period_s: float, rng: np.random.Generator, t: float
) -> Iterator[tuple[float, float]]:
    """MMPP-2 arrivals; the process is memoryless, so a gap crossing a switch is redrawn."""
    burst = False
    switch = t + rng.exponential(cfg.calm_mean_s)
    while True:
        gap = rng.exponential(period_s / (cfg.burst_factor if burst else 1.0))
        if t + gap < switch:
            t += gap
            yield t, t
        else:
            t = switch
            burst = not burst
            switch = t + rng.exponential(cfg.burst_mean_s if burst else cfg.calm_mean_s)


class VariationConfig(StrictModel):
    """A random factor of mean 1 drawn per frame: service-time noise or input work variation.

    ``exponential`` gives M/M/c-style service; ``lognormal`` has coefficient of
    variation ``cv``. As ``service_time`` it scales latency only (the same work, run
    slower or faster); as a model's ``work`` it scales latency and energy (more input).
    """

    distribution: Literal["deterministic", "exponential", "lognormal"] = Field(
        "deterministic",
        description="deterministic (always 1), exponential, or lognormal with coefficient of variation cv",
    )
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
