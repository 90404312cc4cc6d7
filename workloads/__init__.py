"""What runs: real PyTorch models, demand streams, and the scenario kinds.

Importing this package (a ``testbed.plugins`` entry point) tells the registry where
each scenario kind lives; a kind's package is imported when the kind is first needed.
"""

from sim.registry import provide

for _kind in ("edge", "federated", "market", "xr"):
    provide("scenario", f"workloads.{_kind}", [_kind])
provide("model", "workloads.xr.models")  # the built-in models register there (@register("model", ...))
