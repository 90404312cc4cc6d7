"""What a DVFS governor sees and returns.

A governor is asked before each request starts on an edge device and returns the
index of the operating point to run it at (points are sorted by increasing
frequency). It receives plain read-only views: the device's points, the request's
work, its absolute deadline, the time now and the device. Switching to another point
than the current one costs ``device.switch_latency_s`` before the work starts. A
governor is a plain class registered with ``@register("dvfs", "name")``, with an
optional ``Params`` model for its parameters.

A governor may also re-plan inside a request (:class:`Replanning`): the edge world calls
``on_prediction`` at every exit prediction the exit policy makes on the way, and
``after_exit`` when the request is done; each change of point costs a switch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol


class PointView(Protocol):
    freq_hz: float
    voltage_v: float


class Work(NamedTuple):
    """The work of the next request.

    ``macs``/``bytes_moved``: what is expected to run; ``full_macs``/``full_bytes_moved``:
    the whole network, no exit. No exit is known before a request starts (predictions
    come at its exits, see :class:`Replanning`), so the edge world passes both equal.
    """

    macs: float
    bytes_moved: float
    full_macs: float
    full_bytes_moved: float
    full_layers: int = 0  # layers of the whole network (each costs the device's layer overhead)


class DeviceView(Protocol):
    @property
    def current(self) -> int: ...  # index of the point the device is at

    @property
    def switch_latency_s(self) -> float: ...

    # the device's estimate: its analytic model, or its measured profile where it has one
    def execution_s(self, macs: float, bytes_moved: float, point_index: int, layers: int = 0) -> float: ...
    def busy_power_w(self, point_index: int) -> float: ...
    def utilisation(self, window_s: float) -> float: ...  # busy share over the last window_s


class Governor(Protocol):
    def select(
        self, points: Sequence[PointView], work: Work, deadline_s: float, now: float, device: DeviceView
    ) -> int: ...


class Replanning(Protocol):
    """A governor that also decides inside a request, at the exit policy's predictions."""

    def on_prediction(
        self, points: Sequence[PointView], jump: int, remaining: int, device: DeviceView
    ) -> int:
        """The point for the next stretch: ``jump`` exits predicted ahead, ``remaining`` left."""
        ...

    def after_exit(self, points: Sequence[PointView], device: DeviceView) -> int:
        """The point to park at once the request has left the network."""
        ...


def lowest_fitting(
    points: Sequence[PointView],
    macs: float,
    bytes_moved: float,
    time_left_s: float,
    device: DeviceView,
    layers: int = 0,
) -> int:
    """The lowest point that does the work within ``time_left_s``, switch included; else the highest."""
    for i in range(len(points)):
        switch_s = 0.0 if i == device.current else device.switch_latency_s
        if switch_s + device.execution_s(macs, bytes_moved, i, layers) <= time_left_s:
            return i
    return len(points) - 1
