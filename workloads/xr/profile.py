"""``testbed profile`` for the xr kind: write a model's measured per-layer latency as the
xr profile CSV (model, layer, device, latency_s, energy_j), which an xr scenario reads
with ``hardware.profile_csv`` in place of the analytic cost model. The timing is
:mod:`workloads.profiling`'s; energy is latency times the active power the user states.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from workloads.profiling import check_device, profile_model, summary_line


def profile_to_csv(
    model: str,
    out: Path,
    *,
    power_w: float,
    device_name: str = "host",
    device: str = "cpu",
    input_shape: tuple[int, ...] | None = None,
    batch: int = 1,
    threads: int = 1,
    warmup: int = 3,
    repeats: int = 10,
) -> str:
    """``testbed profile``: time ``model`` (a registered model or ``module:factory``), write its
    profile CSV to ``out`` and return the line that reports it."""
    from workloads.xr.models import build_model, example_input

    check_device(device)
    net = build_model(model, device="cpu")
    x = example_input(model, device="cpu", shape=input_shape)
    prof = profile_model(
        model, net, x, device=device, batch=batch, threads=threads, warmup=warmup, repeats=repeats
    )
    table = pd.DataFrame(
        {
            "model": model,
            "layer": [layer.name for layer in prof.layers],
            "device": device_name,
            "latency_s": prof.latency_s,
            "energy_j": [t * power_w for t in prof.latency_s],
        }
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    return summary_line(prof, out, batch, threads, repeats)
