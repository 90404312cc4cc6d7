"""``testbed profile`` for the edge kind: write a multi-exit model's measured per-layer
latency as the edge profile CSV (layer, freq_hz, latency_s, power_w, plus the model's
name), which a device reads with ``devices.<i>.device.profile_csv``.

The machine runs at one clock, so the rows are for one frequency step: ``freq_hz`` as
given, or the clock this machine reports. Only that step is measured; a device using the
file must list exactly that step (other steps need their own runs at their clocks, their
rows concatenated into one file). ``power_w`` is the active power the user states
(energy is not measured). The model is the trained network the simulation replays, timed
on one of its own test inputs; the edge kind serves one request at a time, so the batch
is 1.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from sim.errors import ConfigError
from workloads.edge.models import DATASETS, EXIT_MODELS, PRUNED_MODELS, check_user_model
from workloads.profiling import check_device, profile_model, summary_line

CLOCK_FILE = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq")  # kHz, where the OS reports it


def machine_freq_hz() -> float | None:
    """This machine's current CPU clock (cpu0), or None where the OS does not report it."""
    try:
        return float(CLOCK_FILE.read_text().split()[0]) * 1e3
    except (OSError, ValueError, IndexError):
        return None


def profile_to_csv(
    model: str,
    out: Path,
    *,
    power_w: float,
    freq_hz: float | None = None,
    dataset: str | None = None,
    model_kwargs: dict[str, Any] | None = None,
    device: str = "cpu",
    batch: int = 1,
    threads: int = 1,
    warmup: int = 3,
    repeats: int = 10,
) -> str:
    """``testbed profile`` of exit model ``model`` (a built-in name, or a user's multi-exit
    ``module:factory`` or registered name with ``model_kwargs`` for ``dataset``): write its
    edge profile CSV to ``out`` and return the line that reports it."""
    from workloads.multiexit import test_inputs, trained_model, user_model

    if model in PRUNED_MODELS:
        raise ConfigError(
            f"model: {model!r} is a pruned variant whose layers are gated per input; a measured "
            f"profile times dense layers: profile its parent {model.rsplit('_', 1)[0]!r} instead"
        )
    if freq_hz is None:
        freq_hz = machine_freq_hz()
        if freq_hz is None:
            raise ConfigError(
                f"--freq-hz: needed for an edge model (the frequency step the rows are for, in Hz); "
                f"this machine does not report its clock ({CLOCK_FILE} is absent)"
            )
    if not math.isfinite(freq_hz) or freq_hz <= 0:
        raise ConfigError(f"--freq-hz: {freq_hz} is not allowed; need a frequency in Hz > 0")
    if batch != 1:
        raise ConfigError(
            f"--batch: {batch} is not allowed for an edge model; it serves one request at a time: 1"
        )
    if dataset is not None and dataset not in DATASETS:
        raise ConfigError(f"--dataset: unknown dataset {dataset!r}; known: {', '.join(DATASETS)}")
    check_device(device)
    name = model
    if model not in EXIT_MODELS:
        check_user_model(model, model_kwargs or {}, dataset or "digits")
        name = user_model(model, model_kwargs or {}, dataset or "digits")
    elif model_kwargs or dataset:
        raise ConfigError(f"--model-kwargs/--dataset: built-in exit model {model!r} takes neither")
    net, x = trained_model(name), test_inputs(name)[:1]
    prof = profile_model(model, net, x, device=device, threads=threads, warmup=warmup, repeats=repeats)
    table = pd.DataFrame(
        {
            "model": model,
            "layer": [layer.name for layer in prof.layers],
            "freq_hz": freq_hz,
            "latency_s": prof.latency_s,
            "power_w": power_w,
        }
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    return (
        f"{summary_line(prof, out, batch, threads, repeats)}; rows for the one step "
        f"{freq_hz:g} Hz: list exactly that step in the device's points"
    )
