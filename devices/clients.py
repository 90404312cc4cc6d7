"""Federated client devices: compute speed, bandwidth, availability and mid-round dropout.

A population of N clients is held as arrays (one entry per client), never as N
objects, so 10,000 clients cost a few hundred kilobytes. Speeds and bandwidths are
drawn from log-normal distributions (the shape FedScale's device and MobiPerf
bandwidth traces have; the medians are assumptions, all config values) or read from
a CSV trace. Availability is always-on, an alternating on/off process with
exponential durations, or a CSV trace of windows. The network is a networkx graph
``client -> (optional edge aggregator) -> server`` whose links give transfer times.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt, model_validator

from sim.config import StrictModel, read_csv
from sim.errors import ConfigError

if TYPE_CHECKING:  # pandas and networkx are imported where a trace is read or a graph built
    import networkx as nx
    import pandas as pd

SERVER = "server"
TRACE_COLUMNS = ("client", "speed_flops_per_s", "upload_bytes_per_s", "download_bytes_per_s")
WINDOW_COLUMNS = ("client", "start_s", "end_s")


class LogNormal(StrictModel):
    """A positive quantity drawn per client: ``median * exp(sigma * N(0, 1))``."""

    median: PositiveFloat = Field(
        description="the median value across clients (units of the quantity: FLOP/s or bytes/s)"
    )
    sigma: NonNegativeFloat = Field(
        0.5,
        description="spread: standard deviation of the log of the value (0: every client gets the median)",
    )

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.median * np.exp(self.sigma * rng.standard_normal(n))


class AvailabilityConfig(StrictModel):
    """When clients can be reached.

    ``always``: every client, all the time. ``on_off``: each client alternates
    exponential on and off periods (means ``mean_on_s``, ``mean_off_s``) and starts on
    with the stationary probability. ``trace``: the windows in ``trace_csv`` (columns
    ``client, start_s, end_s``); a client is available inside its windows only. With
    ``period_s`` the trace repeats: time ``t`` reads the windows at ``t mod period_s``
    (a daily pattern, say), so windows must lie within ``[0, period_s]``; without it, no
    client is available after the last window ends.
    """

    mode: Literal["always", "on_off", "trace"] = Field(
        "always",
        description=(
            "always: every client always reachable; on_off: exponential on/off periods; "
            "trace: the windows of trace_csv"
        ),
    )
    mean_on_s: PositiveFloat = Field(600.0, description="on_off: mean length of an online period, in seconds")
    mean_off_s: PositiveFloat = Field(
        300.0, description="on_off: mean length of an offline period, in seconds"
    )
    trace_csv: str | None = Field(
        None,
        description=(
            "trace: CSV of availability windows, columns client, start_s, end_s (needed with mode trace only)"
        ),
    )
    period_s: PositiveFloat | None = Field(
        None,
        description=(
            "trace: repeat the windows every period_s seconds (e.g. 86400 for a daily "
            "pattern); unset: no repeat"
        ),
    )

    @model_validator(mode="after")
    def _trace_file(self) -> AvailabilityConfig:
        if (self.mode == "trace") != (self.trace_csv is not None):
            raise ValueError("trace_csv is needed with mode 'trace' and only then")
        if self.period_s is not None and self.mode != "trace":
            raise ValueError(f"@period_s: only applies to mode 'trace', not {self.mode!r}")
        return self


class TopologyConfig(StrictModel):
    """Clients reach the server directly, or through ``edge_aggregators`` (hierarchical).

    With aggregators, client ``i`` hangs off aggregator ``i mod edge_aggregators``; an
    aggregator combines its clients' updates and sends one model over its backhaul link.
    """

    edge_aggregators: int = Field(
        0,
        ge=0,
        description=(
            "edge aggregators between clients and the server (0: clients reach the server directly)"
        ),
    )
    client_latency_s: NonNegativeFloat = Field(
        0.05, description="one-way latency of each client's link, in seconds"
    )
    backhaul_bytes_per_s: PositiveFloat = Field(
        125e6, description="bandwidth of each aggregator's link to the server, in bytes/s"
    )
    backhaul_latency_s: NonNegativeFloat = Field(
        0.01, description="one-way latency of each aggregator's link to the server, in seconds"
    )


class ClientsConfig(StrictModel):
    """The client population: how many, how fast, how connected, how reliable.

    ``speed_flops_per_s`` is effective training throughput (small models on phones run
    far below peak). ``dropout_probability`` is the chance a participating client quits
    mid-round (at a uniformly drawn point of its work). ``trace_csv`` replaces the three
    distributions with per-client columns ``client, speed_flops_per_s,
    upload_bytes_per_s, download_bytes_per_s``.
    """

    count: PositiveInt = Field(100, description="number of clients in the population")
    speed_flops_per_s: LogNormal = Field(
        default_factory=lambda: LogNormal(median=2e6, sigma=1.0),
        description="effective training throughput per client, FLOP/s (log-normal over clients)",
    )
    upload_bytes_per_s: LogNormal = Field(
        default_factory=lambda: LogNormal(median=6e5, sigma=0.7),
        description="upload bandwidth per client, bytes/s (log-normal over clients)",
    )
    download_bytes_per_s: LogNormal = Field(
        default_factory=lambda: LogNormal(median=2.5e6, sigma=0.7),
        description="download bandwidth per client, bytes/s (log-normal over clients)",
    )
    trace_csv: str | None = Field(
        None,
        description=(
            "CSV with one row per client (client, speed_flops_per_s, upload_bytes_per_s, "
            "download_bytes_per_s) replacing the three distributions"
        ),
    )
    compute_power_w: NonNegativeFloat = Field(
        2.0, description="power a client draws while training, in watts (client energy)"
    )
    radio_power_w: NonNegativeFloat = Field(
        0.8, description="power a client draws while downloading or uploading, in watts"
    )
    dropout_probability: float = Field(
        0.0, ge=0.0, lt=1.0, description="chance that a participating client quits mid-round, in [0, 1)"
    )
    availability: AvailabilityConfig = Field(
        default_factory=AvailabilityConfig, description="when clients can be reached"
    )
    topology: TopologyConfig = Field(
        default_factory=TopologyConfig,
        description="how clients connect to the server (directly or through edge aggregators)",
    )


def _read_csv(path: str, field: str, columns: tuple[str, ...]) -> pd.DataFrame:
    import pandas as pd

    frame = read_csv(path, field)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ConfigError(
            f"{field}: {path!r} is missing column(s) {', '.join(missing)} (needs {', '.join(columns)})"
        )
    values = frame[list(columns)].apply(pd.to_numeric, errors="coerce")
    bad = values.isna().any(axis=1) | (values < 0).any(axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0]) + 2
        raise ConfigError(f"{field}: row {row} of {path!r}: every value must be a number >= 0")
    return values


def read_device_trace(path: str, count: int, field: str = "clients.trace_csv") -> pd.DataFrame:
    """Per-client speed and bandwidths from a CSV, one row per client ``0 .. count-1``."""
    frame = _read_csv(path, field, TRACE_COLUMNS)
    ids = frame["client"].to_numpy()
    if sorted(ids.tolist()) != list(range(count)):
        raise ConfigError(f"{field}: {path!r} must have one row for each client 0..{count - 1}")
    if (frame[list(TRACE_COLUMNS[1:])] <= 0).any(axis=None):
        raise ConfigError(f"{field}: {path!r}: speeds and bandwidths must be > 0")
    return frame.sort_values("client").reset_index(drop=True)


def read_windows(path: str, count: int, field: str = "clients.availability.trace_csv") -> pd.DataFrame:
    """Availability windows from a CSV; windows of one client must not overlap."""
    frame = _read_csv(path, field, WINDOW_COLUMNS)
    if ((frame["client"] >= count) | (frame["client"] != frame["client"].round())).any():
        raise ConfigError(f"{field}: {path!r}: client ids must be integers in 0..{count - 1}")
    if (frame["end_s"] <= frame["start_s"]).any():
        row = int(np.flatnonzero((frame["end_s"] <= frame["start_s"]).to_numpy())[0]) + 2
        raise ConfigError(f"{field}: row {row} of {path!r}: end_s must be after start_s")
    ordered = frame.sort_values(["client", "start_s"], kind="stable")
    same = ordered["client"].to_numpy()[1:] == ordered["client"].to_numpy()[:-1]
    overlap = same & (ordered["start_s"].to_numpy()[1:] < ordered["end_s"].to_numpy()[:-1])
    if overlap.any():
        client = int(ordered["client"].to_numpy()[1:][overlap][0])
        raise ConfigError(f"{field}: {path!r}: windows of client {client} overlap")
    return ordered.reset_index(drop=True)


class Availability:
    """Who is reachable when: ``available(t)`` and ``online_until(t)`` over all clients.

    Queries must come in non-decreasing time order (the simulation clock's order), so
    the on/off process is advanced lazily and costs O(N) per query, whatever the horizon.
    """

    def __init__(self, cfg: AvailabilityConfig, count: int, rng: np.random.Generator):
        self.mode, self.count = cfg.mode, count
        if cfg.mode == "on_off":
            self._means = np.array([cfg.mean_off_s, cfg.mean_on_s])
            p_on = cfg.mean_on_s / (cfg.mean_on_s + cfg.mean_off_s)
            self._on = rng.random(count) < p_on
            self._rng = rng
            self._until = rng.exponential(self._means[self._on.astype(int)])
        elif cfg.mode == "trace":
            windows = read_windows(cfg.trace_csv, count)
            self.period_s = cfg.period_s
            if self.period_s is not None and (windows["end_s"] > self.period_s).any():
                raise ConfigError(
                    f"clients.availability.trace_csv: {cfg.trace_csv!r} has windows ending after "
                    f"period_s ({self.period_s:g}); every window must lie within one period"
                )
            self._client = windows["client"].to_numpy(int)
            self._start = windows["start_s"].to_numpy(float)
            self._end = windows["end_s"].to_numpy(float)
            self._first_end = np.zeros(count)  # end of each client's window opening a period, if any
            opens = self._start == 0.0
            self._first_end[self._client[opens]] = self._end[opens]

    def _advance(self, t: float) -> None:
        due = self._until <= t
        while due.any():
            self._on[due] = ~self._on[due]
            self._until[due] += self._rng.exponential(self._means[self._on[due].astype(int)])
            due = self._until <= t

    def online_until(self, t: float) -> np.ndarray:
        """For each client, when its current availability ends (``-inf`` if offline at ``t``)."""
        if self.mode == "always":
            return np.full(self.count, np.inf)
        if self.mode == "on_off":
            self._advance(t)
            return np.where(self._on, self._until, -np.inf)
        offset = 0.0
        if self.period_s is not None:
            offset = math.floor(t / self.period_s) * self.period_s
            t -= offset
        inside = (self._start <= t) & (t < self._end)
        until = np.full(self.count, -np.inf)
        until[self._client[inside]] = self._end[inside] + offset
        if self.period_s is not None:  # a window ending at the period's end runs on into the next one's start
            wraps = self._client[inside & (self._end == self.period_s)]
            carry = self._first_end[wraps] > 0
            until[wraps[carry]] += self._first_end[wraps[carry]]
        return until

    def available(self, t: float) -> np.ndarray:
        return self.online_until(t) > t

    def next_online_s(self, t: float) -> float:
        """The earliest time after ``t`` at which an offline client comes online (inf if never)."""
        if self.mode == "always":
            return math.inf
        if self.mode == "on_off":
            self._advance(t)
            return float(self._until[~self._on].min(initial=math.inf))
        offset = 0.0 if self.period_s is None else math.floor(t / self.period_s) * self.period_s
        later = self._start[self._start + offset > t] + offset
        if self.period_s is not None and len(self._start):
            later = np.append(later, self._start.min() + offset + self.period_s)
        return float(later.min(initial=math.inf))


@dataclass
class ClientPopulation:
    """Per-client device arrays (length N), the network graph, and link times derived from it."""

    speed_flops_per_s: np.ndarray
    upload_bytes_per_s: np.ndarray
    download_bytes_per_s: np.ndarray
    availability: Availability
    graph: nx.Graph
    cfg: ClientsConfig

    @classmethod
    def build(cls, cfg: ClientsConfig, rng: np.random.Generator) -> ClientPopulation:
        n = cfg.count
        if cfg.trace_csv is not None:
            trace = read_device_trace(cfg.trace_csv, n)
            speed, up, down = (trace[c].to_numpy(float) for c in TRACE_COLUMNS[1:])
        else:
            speed = cfg.speed_flops_per_s.draw(rng, n)
            up = cfg.upload_bytes_per_s.draw(rng, n)
            down = cfg.download_bytes_per_s.draw(rng, n)
        availability = Availability(cfg.availability, n, rng)
        return cls(speed, up, down, availability, topology(cfg.topology, n), cfg)

    def __post_init__(self) -> None:
        n, graph = len(self.speed_flops_per_s), self.graph
        parents = (next(iter(graph[i])) for i in range(n))
        self.link_latency_s = np.array([graph.edges[i, p]["latency"] for i, p in enumerate(parents)])
        aggregators = self.cfg.topology.edge_aggregators
        self.aggregator = np.arange(n) % aggregators if aggregators else np.full(n, -1)

    @property
    def count(self) -> int:
        return len(self.speed_flops_per_s)

    def backhaul_s(self, size_bytes: float) -> np.ndarray:
        """Per aggregator: latency + bytes / bandwidth of its link to the server (empty if none)."""
        edges = [self.graph.edges[f"agg{j}", SERVER] for j in range(self.cfg.topology.edge_aggregators)]
        return np.array([e["latency"] + size_bytes / e["bandwidth"] for e in edges])

    def download_s(self, size_bytes: float) -> np.ndarray:
        """Per client: server -> (aggregator ->) client."""
        own = self.link_latency_s + size_bytes / self.download_bytes_per_s
        if self.cfg.topology.edge_aggregators:
            own = own + self.backhaul_s(size_bytes)[self.aggregator]
        return own

    def upload_s(self, size_bytes: float) -> np.ndarray:
        """Per client: client -> its parent (the server, or its aggregator)."""
        return self.link_latency_s + size_bytes / self.upload_bytes_per_s


def topology(cfg: TopologyConfig, count: int) -> nx.Graph:
    """``client i -> agg j -> server`` (or ``client i -> server``); client links carry latency."""
    import networkx as nx

    graph = nx.Graph()
    if cfg.edge_aggregators:
        for j in range(cfg.edge_aggregators):
            graph.add_edge(
                f"agg{j}", SERVER, bandwidth=cfg.backhaul_bytes_per_s, latency=cfg.backhaul_latency_s
            )
    parents = [f"agg{i % cfg.edge_aggregators}" if cfg.edge_aggregators else SERVER for i in range(count)]
    graph.add_edges_from((i, parent, {"latency": cfg.client_latency_s}) for i, parent in enumerate(parents))
    return graph
