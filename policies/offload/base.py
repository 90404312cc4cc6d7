"""What an offloading policy sees and returns.

Before a request starts on its edge device, the policy may send it to an edge server
over the network instead. It sees how many requests still wait on the device, the
time the request would take locally (at the device's current point, full network)
and remotely (upload, server, download), and the time left to its deadline.
"""

from __future__ import annotations

from typing import Protocol


class OffloadPolicy(Protocol):
    def decide(self, queue_length: int, local_s: float, remote_s: float, time_left_s: float) -> bool: ...
