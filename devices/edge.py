"""A battery-powered edge device with DVFS: operating points, power, execution time, battery.

The device runs one piece of work at a time at one operating point (frequency,
voltage) of its table, the way a Jetson GPU or a phone CPU cluster does under a
DVFS governor. The model (every constant is a config field; the presets' values are
assumptions, documented in ``docs/edge_devices.md``):

- **Power.** Busy at point (f, V): ``P = p_static_w + c_eff_f * V**2 * f``. The clock
  runs through memory stalls, so the whole busy stretch draws it (the activity
  factor is folded into ``c_eff_f``). Idle: ``idle_power_w`` at every point (the
  clock is gated, so the frequency does not matter; leakage at the parked voltage is
  folded into the constant). ``idle_power_w`` may not exceed the busy power at the
  lowest point.
- **Execution time.** ``macs / (peak_fraction * macs_per_cycle * f) + bytes /
  memory_bandwidth_bytes_per_s + layers * layer_overhead_s``: compute scales with 1/f,
  memory does not; ``peak_fraction`` is the share of the peak MAC rate a batch-1 layer
  achieves, ``layer_overhead_s`` the fixed cost of each layer (kernel launch, framework
  dispatch, synchronisation), independent of the clock. The terms are added, not
  overlapped (``max``): batch-1 edge inference alternates compute- and memory-bound
  layers, and the sum is linear in the work, so the time of summed layers equals the sum
  of their times and a caller may pass whole networks or any run of layers.
- **Switching.** Moving to another point takes ``switch_latency_s``, during which the
  device does no work and draws ``idle_power_w`` plus ``switch_energy_j`` spread
  evenly over the latency (with zero latency the switch energy is charged at once).
- **Voltages.** No public voltage table exists for the presets: a preset's voltages
  lie on a line from ``v_min_v`` at its lowest frequency to ``v_max_v`` at its highest.
- **Measured profile.** ``profile_csv`` (columns ``layer, freq_hz, latency_s, power_w``, one
  row per layer of the model and frequency step of the device) replaces the analytic time
  and power of the work: a stretch of layers takes the sum of their measured latencies at
  the point and draws their latency-weighted mean power. Governors see the profile too
  (:meth:`EdgeDevice.use_profile`): at each point the analytic time estimate is scaled so
  that the whole network takes its measured time, and the busy power is the profile's mean
  power of the whole network. Switching, idle power and the battery are as above.
- **Battery.** ``battery_j`` (None: mains powered). The device is depleted at the
  exact moment its energy reaches the battery, found within the running stretch
  (power is constant on a stretch); from then on it draws nothing and serves nothing.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from numbers import Integral
from typing import Annotated, Any

import numpy as np
import simpy
from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator
from simpy.events import Timeout

from sim.config import SUBFIELD_MARK, StrictModel, check_file, did_you_mean, problems_of
from sim.errors import ConfigError

Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]

MHZ = 1_000_000


def _mhz(steps: str) -> tuple[int, ...]:
    """Frequencies in Hz from a space-separated list in MHz, as the reference writes them."""
    return tuple(round(float(m) * MHZ) for m in steps.split())


# Preset constants; every number is an assumption explained in docs/edge_devices.md.
_PRESETS: dict[str, dict[str, Any]] = {
    "jetson_nano_gpu": {
        # the reference's 12 GPU steps, 76.8 ... 921.6 MHz
        "freqs_hz": _mhz("76.8 153.6 230.4 307.2 384.0 460.8 537.6 614.4 691.2 768.0 844.8 921.6"),
        "v_min_v": 0.70,
        "v_max_v": 1.10,
        "macs_per_cycle": 128.0,  # 128 CUDA cores, one FMA each per cycle
        "memory_bandwidth_bytes_per_s": 18e9,  # ~70% of LPDDR4's 25.6 GB/s
        "p_static_w": 1.5,
        "c_eff_f": 5.0e-9,
        "idle_power_w": 1.25,
        "switch_latency_s": 200e-6,
        "switch_energy_j": 100e-6,
        "peak_fraction": 0.3,  # small batch-1 convolutions keep a few of the 128 cores busy
        "layer_overhead_s": 10e-6,  # a CUDA kernel launch and its share of synchronisation
    },
    "jetson_nano_gpu_5w": {
        # the Nano's 5 W mode (nvpmodel 1): GPU capped at 640 MHz, so the steps up to 614.4 MHz,
        # and 2 of the 4 CPU cores online, which launch kernels more slowly
        "freqs_hz": _mhz("76.8 153.6 230.4 307.2 384.0 460.8 537.6 614.4"),
        "v_min_v": 0.70,
        "v_max_v": 0.95,  # on the 10 W mode's line at 614.4 MHz
        "macs_per_cycle": 128.0,
        "memory_bandwidth_bytes_per_s": 18e9,
        "p_static_w": 1.0,  # two CPU cores fewer
        "c_eff_f": 5.0e-9,
        "idle_power_w": 0.9,
        "switch_latency_s": 200e-6,
        "switch_energy_j": 100e-6,
        "peak_fraction": 0.3,
        "layer_overhead_s": 15e-6,
    },
    "jetson_xavier_gpu": {
        # the reference's 14 AGX Xavier GPU steps, 114.75 ... 1377 MHz
        "freqs_hz": _mhz(
            "114.75 216.75 318.75 420.75 522.75 624.75 675.75 828.75 905.25 1032.75 1198.5 1236.75 "
            "1338.75 1377"
        ),
        "v_min_v": 0.60,
        "v_max_v": 1.00,
        "macs_per_cycle": 1024.0,  # a quarter of the 64 tensor cores' FP16 peak (4096 MACs/cycle)
        "memory_bandwidth_bytes_per_s": 96e9,  # ~70% of LPDDR4x's 137 GB/s
        "p_static_w": 4.0,
        "c_eff_f": 13.0e-9,
        "idle_power_w": 3.0,
        "switch_latency_s": 200e-6,
        "switch_energy_j": 200e-6,
        "peak_fraction": 0.25,
        "layer_overhead_s": 8e-6,
    },
    "mobile_cpu": {
        # a 4-core big cluster (Cortex-A76 class), 600 MHz ... 2.4 GHz in 300 MHz steps
        "freqs_hz": _mhz("600 900 1200 1500 1800 2100 2400"),
        "v_min_v": 0.60,
        "v_max_v": 1.05,
        "macs_per_cycle": 16.0,  # half of 4 cores x 8 FP32 NEON FMA lanes
        "memory_bandwidth_bytes_per_s": 15e9,  # a CPU cluster's share of LPDDR4x
        "p_static_w": 0.5,
        "c_eff_f": 1.1e-9,
        "idle_power_w": 0.3,
        "switch_latency_s": 50e-6,
        "switch_energy_j": 20e-6,
        "peak_fraction": 0.3,
        "layer_overhead_s": 5e-6,  # an operator dispatch of a mobile inference runtime
    },
    "host": {
        # one core of the machine the testbed was calibrated on (AMD EPYC, Zen 4, 2.6 GHz),
        # running torch eagerly at batch 1 on one thread; no DVFS is visible in a VM: one step
        "freqs_hz": _mhz("2600"),
        "v_min_v": 1.0,
        "v_max_v": 1.0,
        "macs_per_cycle": 16.0,  # two 256-bit FMA pipes, 8 FP32 lanes each
        # fitted, like the two below: the effective rate of the work that scales with the bytes
        # a layer touches (eager batch-1 kernels: BN, ReLU, pooling, im2col), not DRAM bandwidth
        "memory_bandwidth_bytes_per_s": 2.1e9,
        "p_static_w": 2.0,  # power constants assumed (no power sensor in a VM)
        "c_eff_f": 1.5e-9,
        "idle_power_w": 1.5,
        "switch_latency_s": 0.0,
        "switch_energy_j": 0.0,
        # fitted by ``python benchmarks/edge.py --latency --fit`` (docs/edge_devices.md)
        "peak_fraction": 0.58,
        "layer_overhead_s": 9.0e-6,
    },
}
PRESET_NAMES: tuple[str, ...] = tuple(_PRESETS)
DEFAULT_PRESET = "jetson_nano_gpu"
_CURVE_KEYS = ("freqs_hz", "v_min_v", "v_max_v")  # what builds a preset's table, not config fields as such


def voltage_curve(freqs_hz: Sequence[float], v_min_v: float, v_max_v: float) -> list[float]:
    """Voltages on the line from ``v_min_v`` at the lowest to ``v_max_v`` at the highest frequency."""
    lo, hi = freqs_hz[0], freqs_hz[-1]
    if hi == lo:
        return [v_max_v] * len(freqs_hz)
    return [v_min_v + (v_max_v - v_min_v) * (f - lo) / (hi - lo) for f in freqs_hz]


class OperatingPoint(StrictModel):
    """One DVFS step: clock frequency and supply voltage."""

    model_config = ConfigDict(frozen=True)

    freq_hz: Positive = Field(description="clock frequency of the step, in Hz")
    voltage_v: Positive = Field(description="supply voltage at this frequency, in volts")


class _Curve(StrictModel):
    """The ends of a preset's V(f) line, checked before the table is built from them."""

    v_min_v: Positive
    v_max_v: Positive

    @model_validator(mode="after")
    def _ordered(self) -> _Curve:
        if self.v_max_v < self.v_min_v:
            raise ValueError(
                f"{SUBFIELD_MARK}v_max_v: must be at least v_min_v {self.v_min_v:g} (got {self.v_max_v:g})"
            )
        return self


class EdgeDeviceConfig(StrictModel):
    """The ``device:`` section: a preset, or an explicit table of operating points.

    With a preset every field left out takes the preset's value, and the table is the
    preset's frequency steps with voltages on the line from ``v_min_v`` to ``v_max_v``
    (give those to reshape it). ``points`` given explicitly replace the table; then leave
    ``v_min_v``/``v_max_v`` out (given, they must equal the table's end voltages). With
    neither a preset nor points it is ``preset: jetson_nano_gpu``. Frozen: build a new
    config to change one.
    """

    model_config = ConfigDict(frozen=True)

    preset: str | None = Field(
        None,
        description=(
            "a built-in device: jetson_nano_gpu, jetson_nano_gpu_5w, jetson_xavier_gpu, "
            "mobile_cpu or host; fields left out take its values"
        ),
    )
    v_min_v: Positive | None = Field(
        None,
        description=(
            "voltage at the preset's lowest frequency, in volts (reshapes its V(f) line; "
            "leave out with points)"
        ),
    )
    v_max_v: Positive | None = Field(
        None,
        description=(
            "voltage at the preset's highest frequency, in volts (at least v_min_v; leave out with points)"
        ),
    )
    points: list[OperatingPoint] = Field(
        min_length=1,
        description=(
            "DVFS operating points by increasing frequency (voltage non-decreasing); "
            "replace the preset's table"
        ),
    )
    macs_per_cycle: Positive = Field(description="peak multiply-accumulates per clock cycle")
    memory_bandwidth_bytes_per_s: Positive = Field(
        description="sustained memory bandwidth, in bytes/s (memory time does not scale with f)"
    )
    p_static_w: NonNegative = Field(
        description="static part of the busy power P = p_static_w + c_eff_f V^2 f, in watts"
    )
    c_eff_f: Positive = Field(
        description=(
            "effective switched capacitance of the busy power, in farads (activity factor folded in)"
        )
    )
    idle_power_w: NonNegative = Field(
        description="power while idle at any point, in watts (at most the busy power at the lowest point)"
    )
    switch_latency_s: NonNegative = Field(
        description="time to move to another operating point, during which no work runs, in seconds"
    )
    switch_energy_j: NonNegative = Field(description="extra energy of one operating-point switch, in joules")
    peak_fraction: Annotated[float, Field(gt=0, le=1)] = Field(
        1.0, description="share of the peak MAC rate a batch-1 layer achieves, in (0, 1]"
    )
    layer_overhead_s: NonNegative = Field(
        0.0,
        description=(
            "fixed cost of each layer (kernel launch, dispatch), independent of the clock, in seconds"
        ),
    )
    battery_j: Positive | None = Field(
        None,
        description=(
            "battery capacity in joules; the device stops serving when it is spent (unset: mains powered)"
        ),
    )
    profile_csv: str | None = Field(
        None,
        description=(
            "measured per-layer profile (layer, freq_hz, latency_s, power_w; a row per "
            "layer and step) replacing the analytic time and power"
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _from_preset(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if data.get("preset") is None and data.get("points") is None:
            data["preset"] = DEFAULT_PRESET
        name = data.get("preset")
        if name is None:
            return data
        if name not in PRESET_NAMES:
            raise ValueError(
                f"{SUBFIELD_MARK}preset: unknown preset {name!r}{did_you_mean(name, PRESET_NAMES)}; "
                f"known presets: {', '.join(PRESET_NAMES)}"
            )
        preset = _PRESETS[name]
        if data.get("points") is None:
            data.setdefault("v_min_v", preset["v_min_v"])
            data.setdefault("v_max_v", preset["v_max_v"])
            try:
                curve = _Curve(v_min_v=data["v_min_v"], v_max_v=data["v_max_v"])
            except ValidationError as exc:
                raise ValueError("; ".join(SUBFIELD_MARK + p for p in problems_of(exc))) from None
            freqs = preset["freqs_hz"]
            volts = voltage_curve(freqs, curve.v_min_v, curve.v_max_v)
            data["points"] = [{"freq_hz": f, "voltage_v": v} for f, v in zip(freqs, volts)]
        return {**{k: v for k, v in preset.items() if k not in _CURVE_KEYS}, **data}

    @field_validator("points")
    @classmethod
    def _monotone(cls, points: list[OperatingPoint]) -> list[OperatingPoint]:
        problems = []
        for i in range(1, len(points)):
            prev, point = points[i - 1], points[i]
            if point.freq_hz <= prev.freq_hz:
                problems.append(
                    f"{i}.freq_hz: must be above points.{i - 1}.freq_hz {prev.freq_hz:g}: list points "
                    f"by increasing frequency (got {point.freq_hz:g})"
                )
            if point.voltage_v < prev.voltage_v:
                problems.append(
                    f"{i}.voltage_v: must be at least points.{i - 1}.voltage_v {prev.voltage_v:g}: "
                    f"voltage may not fall as frequency rises (got {point.voltage_v:g})"
                )
        if problems:
            raise ValueError("; ".join(SUBFIELD_MARK + p for p in problems))
        return points

    @model_validator(mode="after")
    def _consistent(self) -> EdgeDeviceConfig:
        problems = []
        for key, end, index in (("v_min_v", self.points[0], 0), ("v_max_v", self.points[-1], -1)):
            given = getattr(self, key)
            if given is not None and not math.isclose(given, end.voltage_v, rel_tol=1e-9):
                where = f"points.{index % len(self.points)}.voltage_v"
                problems.append(
                    f"{key}: must equal {where} {end.voltage_v:g} (it shapes a preset's table; leave it "
                    f"out when giving points) (got {given:g})"
                )
        if self.profile_csv is not None:
            freqs = [p.freq_hz for p in self.points]
            check_file(self.profile_csv, "profile_csv", lambda path, field: read_profile(path, field, freqs))
        lowest_w = self.power_w(self.points[0], busy=True)
        if self.idle_power_w > lowest_w:
            problems.append(
                f"idle_power_w: must not exceed the busy power at the lowest point, {lowest_w:g} W "
                f"(got {self.idle_power_w:g})"
            )
        if problems:
            raise ValueError("; ".join(SUBFIELD_MARK + p for p in problems))
        return self

    def power_w(self, point: OperatingPoint, busy: bool) -> float:
        """Power drawn at ``point``: ``p_static_w + c_eff_f V^2 f`` when busy, ``idle_power_w`` when idle."""
        if not busy:
            return self.idle_power_w
        return self.p_static_w + self.c_eff_f * point.voltage_v**2 * point.freq_hz

    def execution_s(self, macs: float, bytes_moved: float, point: OperatingPoint, layers: int = 0) -> float:
        """Time to run ``layers`` layers of ``macs`` moving ``bytes_moved`` at ``point``: compute
        (1/f), memory and per-layer overhead."""
        compute_s = macs / (self.peak_fraction * self.macs_per_cycle * point.freq_hz)
        return compute_s + bytes_moved / self.memory_bandwidth_bytes_per_s + layers * self.layer_overhead_s


def read_profile(
    path: str, field: str, freqs_hz: Sequence[float]
) -> dict[str, tuple[list[float], list[float]]]:
    """A measured per-layer profile: layer -> (latency_s, power_w) per frequency step, slowest
    first. Refused (ConfigError naming ``field``, one line per problem): missing columns,
    negative or non-finite latencies or powers, a frequency that is not a step of the
    device, a layer without a row for every step."""
    import pandas as pd

    try:
        table = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{field}: cannot parse {path!r} as CSV ({exc})") from None
    missing = {"layer", "freq_hz", "latency_s", "power_w"} - set(table.columns)
    if missing:
        raise ConfigError(f"{field}: {path!r} lacks the column(s) {sorted(missing)}")
    problems = []
    for column in ("latency_s", "power_w", "freq_hz"):
        values = pd.to_numeric(table[column], errors="coerce")
        for row in np.flatnonzero(~(np.isfinite(values) & (values >= 0))).tolist()[:3]:
            problems.append(f"{field}: row {row + 2} has {column} {table[column].iloc[row]}; must be >= 0")
    if problems:
        raise ConfigError(problems)
    steps = {round(f) for f in freqs_hz}
    extra = sorted({round(f) for f in table["freq_hz"]} - steps)
    if extra:
        problems.append(f"{field}: frequency {extra[0] / MHZ:g} MHz is not a step of the device")
    profile = {}
    for layer, rows in table.groupby("layer", sort=False):
        by_freq = {
            round(f): (lat, w) for f, lat, w in zip(rows["freq_hz"], rows["latency_s"], rows["power_w"])
        }
        absent = [f for f in sorted(steps) if f not in by_freq]
        if absent:
            problems.append(
                f"{field}: layer {layer!r} has no row for {absent[0] / MHZ:g} MHz "
                f"({len(absent)} of the device's {len(steps)} steps missing)"
            )
            continue
        ordered = [by_freq[f] for f in sorted(steps)]
        profile[str(layer)] = ([lat for lat, _ in ordered], [w for _, w in ordered])
    if problems:
        raise ConfigError(problems[:5])
    return profile


IDLE, BUSY, SWITCHING, DEPLETED, FINISHED = "idle", "busy", "switching", "depleted", "finished"


class EdgeDevice:
    """An edge device in simulated time: one stretch (idle, busy or switching) at a time.

    Power is constant on a stretch, so energy is kept exactly as ``energy_j`` (closed
    stretches plus the running one up to now) and the battery's crossing time is
    known when a stretch starts. ``switch_to`` and ``execute`` start a stretch and
    return the SimPy event that ends it, with value True when it ran to the end and
    False when the battery ran out first (or was already empty); the device is idle
    again when the caller's callbacks run, so a server chains them either way::

        ok = yield device.switch_to(i)          # in a process, or
        ok = ok and (yield device.execute(device.execution_s(macs, bytes_moved, i)))
        device.switch_to(i).callbacks.append(lambda ev: ...)  # with callbacks, no process

    Starting a stretch while one runs is a programming error (RuntimeError). Records:
    ``busy_s[i]`` seconds busy at point ``i``, ``idle_s``, ``switch_s``, ``switches``;
    ``depleted_at_s`` (None until depleted) and the event ``depleted`` (value: that
    time). Governors see it through ``policies.dvfs.base.DeviceView``.
    """

    def __init__(
        self, env: simpy.Environment, config: EdgeDeviceConfig, start_point: int = 0, history_s: float = 1.0
    ):
        """``start_point``: the index it starts idle at; ``history_s``: how far back busy
        intervals are kept for :meth:`utilisation` (a longer window asked extends it)."""
        if not history_s > 0:
            raise ValueError(f"history_s must be > 0 (got {history_s!r})")
        self.env = env
        self.config = config
        self.points = config.points
        self.current = self._check_index(start_point)
        self.switch_latency_s = config.switch_latency_s
        self._macs_per_s = [config.peak_fraction * config.macs_per_cycle * p.freq_hz for p in self.points]
        self._time_scale = [1.0] * len(self.points)  # measured over analytic time (use_profile)
        self._busy_w = [config.power_w(p, busy=True) for p in self.points]
        self._idle_w = config.idle_power_w
        self._switch_w = config.idle_power_w + (
            config.switch_energy_j / config.switch_latency_s if config.switch_latency_s > 0 else 0.0
        )
        self._battery_j = math.inf if config.battery_j is None else config.battery_j
        self.state = IDLE
        self._born_s = env.now
        self._t0 = env.now  # start of the running stretch
        self._power_w = self._idle_w  # power of the running stretch
        self._closed_j = 0.0  # energy of the stretches before it
        self._token = 0  # counts stretches; an idle stretch's depletion timer checks it
        self._target = self.current  # the point a running switch goes to
        self.busy_s = [0.0] * len(self.points)
        self.busy_j = 0.0  # energy drawn while executing
        self.idle_s = 0.0
        self.switch_s = 0.0
        self.switches = 0
        self.depleted_at_s: float | None = None
        self.depleted = env.event()
        self._history_s = history_s
        self._busy_log: deque[tuple[float, float]] = deque()  # closed busy intervals (start, end)
        self._start_idle()

    # -- what governors and servers read ---------------------------------------------
    @property
    def energy_j(self) -> float:
        """Energy drawn so far: the integral of power from the start to now (or to the end)."""
        return self._closed_j + self._power_w * (self.env.now - self._t0)

    def execution_s(self, macs: float, bytes_moved: float, point_index: int, layers: int = 0) -> float:
        """Time to run the work at point ``point_index`` (see :meth:`EdgeDeviceConfig.execution_s`),
        scaled to a measured profile where :meth:`use_profile` gave one."""
        config = self.config
        return self._time_scale[point_index] * (
            macs / self._macs_per_s[point_index]
            + bytes_moved / config.memory_bandwidth_bytes_per_s
            + layers * config.layer_overhead_s
        )

    def execution_table(self, macs: np.ndarray, bytes_moved: np.ndarray, layers: np.ndarray) -> np.ndarray:
        """:meth:`execution_s` of many pieces of work at every point at once, ``[n_work, n_points]``
        (the same arithmetic, so the same floats)."""
        config = self.config
        macs, moved, layers = (np.asarray(a, float)[:, None] for a in (macs, bytes_moved, layers))
        per_point = macs / np.array(self._macs_per_s) + moved / config.memory_bandwidth_bytes_per_s
        return np.array(self._time_scale) * (per_point + layers * config.layer_overhead_s)

    def busy_power_w(self, point_index: int) -> float:
        """Power drawn while executing at point ``point_index`` (the profile's, where one is used)."""
        return self._busy_w[point_index]

    def use_profile(
        self, full_s: Sequence[float], full_w: Sequence[float], macs: float, bytes_moved: float, layers: int
    ) -> None:
        """Estimate from a measured profile: per point, the measured seconds ``full_s`` and mean
        watts ``full_w`` of the whole network (``macs``, ``bytes_moved``, ``layers``). Time
        estimates are scaled so that this work takes ``full_s``; busy power becomes ``full_w``."""
        self._time_scale = [1.0] * len(self.points)
        analytic = [self.execution_s(macs, bytes_moved, i, layers) for i in range(len(self.points))]
        self._time_scale = [m / a if a > 0 else 1.0 for m, a in zip(full_s, analytic, strict=True)]
        self._busy_w = [float(w) for w in full_w]

    def utilisation(self, window_s: float) -> float:
        """Share of the last ``window_s`` (or of the time since the start, if shorter) spent executing.

        Switching is not execution. Windows up to ``history_s`` are exact; asking a
        longer one keeps that much history from then on.
        """
        if not window_s > 0:
            raise ValueError(f"window_s must be > 0 (got {window_s!r})")
        self._history_s = max(self._history_s, window_s)
        now = self.env.now
        lo = now - window_s
        busy = sum(end - max(start, lo) for start, end in self._busy_log if end > lo)
        if self.state == BUSY:
            busy += now - max(self._t0, lo)
        span = min(window_s, now - self._born_s)
        return busy / span if span > 0 else 0.0

    # -- starting stretches -----------------------------------------------------------
    def switch_to(self, index: int) -> Timeout:
        """Move to point ``index``; the event fires when the switch is over (at once if already there)."""
        index = self._check_index(index)
        if self.state in (DEPLETED, FINISHED) or index == self.current:
            return Timeout(self.env, 0, value=self.state not in (DEPLETED, FINISHED))
        self._check_idle("switch")
        self._close(self.env.now)
        self._target = index
        if self.switch_latency_s == 0:  # an instant switch: its energy is charged at once
            self._closed_j += self.config.switch_energy_j
            if self._closed_j >= self._battery_j:
                self._deplete(self.env.now)
                return Timeout(self.env, 0, value=False)
            self._end_switch()
            self._start_idle()
            return Timeout(self.env, 0, value=True)
        return self._start(SWITCHING, self._switch_w, self.switch_latency_s, self._switch_done)

    def execute(self, duration_s: float, power_w: float | None = None) -> Timeout:
        """Run for ``duration_s`` at the current point (drawing its busy power, or ``power_w``
        where a measured profile gives it); the event fires when done (or depleted)."""
        if not 0 <= duration_s < math.inf:
            raise ValueError(f"duration_s must be finite and >= 0 (got {duration_s!r})")
        if self.state in (DEPLETED, FINISHED):
            return Timeout(self.env, 0, value=False)
        self._check_idle("execute")
        self._close(self.env.now)
        power = self._busy_w[self.current] if power_w is None else power_w
        return self._start(BUSY, power, duration_s, self._busy_done)

    def finish(self, end_s: float) -> None:
        """Close the books at ``end_s``: charge the running stretch up to then, or to depletion if sooner."""
        if self.state in (DEPLETED, FINISHED):
            return
        if end_s < self._t0:
            raise ValueError(f"end_s {end_s!r} is before the running stretch began at {self._t0!r}")
        crossing = self._crossing_s()
        if crossing <= end_s - self._t0:
            self._deplete(self._t0 + crossing)
            return
        self._close(end_s)
        self._power_w = 0.0
        self.state = FINISHED
        self._token += 1

    # -- internals ------------------------------------------------------------------
    def _check_index(self, index: int) -> int:
        if type(index) is int and 0 <= index < len(self.points):  # the common case, without the ABC check
            return index
        if not (isinstance(index, Integral) and 0 <= index < len(self.points)):
            raise ValueError(f"point index must be an int in 0..{len(self.points) - 1} (got {index!r})")
        return int(index)

    def _check_idle(self, what: str) -> None:
        if self.state != IDLE:
            raise RuntimeError(
                f"cannot {what} at {self.env.now}: the device is {self.state} (one stretch at a time)"
            )

    def _crossing_s(self) -> float:
        """Seconds from the running stretch's start until the battery is empty (inf if never)."""
        if self._battery_j == math.inf:  # mains powered: the common case, kept short
            return math.inf
        left = self._battery_j - self._closed_j
        if left <= 0:
            return 0.0
        return left / self._power_w if self._power_w > 0 else math.inf

    def _start(self, state: str, power_w: float, duration_s: float, done: Any) -> Timeout:
        """Begin a busy or switching stretch now; its event ends it, or depletes the device if sooner."""
        self.state = state
        self._power_w = power_w
        self._token += 1
        crossing = self._crossing_s()
        if crossing < duration_s:
            event = Timeout(self.env, crossing, value=False)
            event.callbacks.append(self._depletion_due)
        else:
            event = Timeout(self.env, duration_s, value=True)
            event.callbacks.append(done)
        return event

    def _start_idle(self) -> None:
        """Begin an idle stretch; with a battery, a timer depletes the device at the crossing time."""
        self.state = IDLE
        self._power_w = self._idle_w
        self._token += 1
        crossing = self._crossing_s()
        if crossing == 0:
            self._deplete(self.env.now)
        elif crossing < math.inf:
            token = self._token

            def due(_event: Any) -> None:
                if self._token == token:  # still the same idle stretch
                    self._deplete(self.env.now)

            Timeout(self.env, crossing).callbacks.append(due)

    def _close(self, t: float) -> None:
        """Charge the running stretch from its start to ``t`` and record its time."""
        dt = t - self._t0
        self._closed_j += self._power_w * dt
        if self.state == BUSY:
            self.busy_s[self.current] += dt
            self.busy_j += self._power_w * dt
            log = self._busy_log
            log.append((self._t0, t))
            horizon = t - self._history_s
            while log[0][1] <= horizon:
                log.popleft()
        elif self.state == IDLE:
            self.idle_s += dt
        else:
            self.switch_s += dt
        self._t0 = t

    def _end_switch(self) -> None:
        self.current = self._target
        self.switches += 1

    def _busy_done(self, _event: Any) -> None:
        if self.state == BUSY:  # not finished meanwhile
            self._close(self.env.now)
            self._start_idle()

    def _switch_done(self, _event: Any) -> None:
        if self.state == SWITCHING:
            self._close(self.env.now)
            self._end_switch()
            self._start_idle()

    def _depletion_due(self, _event: Any) -> None:
        if self.state in (BUSY, SWITCHING):
            self._deplete(self.env.now)

    def _deplete(self, t: float) -> None:
        """The battery is empty at ``t``: close at exactly ``battery_j`` and stop drawing power."""
        self._close(t)
        self._closed_j = self._battery_j
        self._power_w = 0.0
        self.state = DEPLETED
        self._token += 1
        self.depleted_at_s = t
        self.depleted.succeed(t)
