"""Shared test data: the shipped scenario and sweep files."""

from pathlib import Path

import yaml

ROOT = Path(__file__).parents[1]


def shipped(kind: str = "scenario") -> list[Path]:
    """Shipped YAML files: scenarios (they have `kind`) or sweeps (they have `base`)."""
    key = "kind" if kind == "scenario" else "base"
    return sorted(p for p in (ROOT / "scenarios").rglob("*.yaml") if key in yaml.safe_load(p.read_text()))


def short_s(path: Path, duration_s: float) -> float:
    """A short xr run that still reaches every phase of the scenario at ``path``."""
    phases = yaml.safe_load(Path(path).read_text()).get("phases", [])
    return max([duration_s, *(phase["at_s"] + 0.1 for phase in phases)])


def make_pool(scheduler, costs, n_accel=1, blocks=False, record=lambda job: job, **options):
    """An accelerator pool over hand-made ``costs`` on ``n_accel`` identical accelerators.

    Returns ``env, pool, done, dropped``; ``done``/``dropped`` collect ``(record(job), time)``;
    ``options`` go to the pool (e.g. ``context_switch_s``).
    """
    from types import SimpleNamespace

    import simpy

    from devices.system import AcceleratorPool

    env = simpy.Environment()
    specs = [
        SimpleNamespace(name=f"a{i}", num_pes=1, dataflow="WS", idle_power_w=0.5) for i in range(n_accel)
    ]
    done, dropped = [], []
    pool = AcceleratorPool(
        env,
        specs,
        scheduler,
        block_granularity=blocks,
        on_complete=lambda j, t: done.append((record(j), t)),
        on_drop=lambda j, t: dropped.append((record(j), t)),
        model_names=sorted({c.name for c in costs}, key=[c.name for c in costs].index),
        models=list(costs),
        **options,
    )
    return env, pool, done, dropped


# a deliberately small accelerator, for overload tests
SMALL_ACCELERATOR = {
    "num_pes": 256,
    "l2_bytes": 262144,
    "l1_bytes_per_pe": 8192,
    "noc_bytes_per_cycle": 16,
    "offchip_bytes_per_cycle": 16,
}
