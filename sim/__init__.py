"""The engine: a SimPy kernel with named random streams, config, registry, runner.

`sim` knows nothing about ML; scenario kinds and policies reach it through the
registry (see :mod:`sim.registry`). The names below are imported on first use, so
``import sim.cli`` stays light (no pandas until a command needs it).
"""

import importlib
from typing import Any

from sim.sweep import sweep as sweep  # eager: the function must shadow its module's name on this package

_WHERE = {
    "ConfigError": "sim.errors",
    "Kernel": "sim.kernel",
    "RunResult": "sim.runner",
    "load_spec": "sim.runner",
    "run": "sim.runner",
    "write_run": "sim.runner",
}

__all__ = sorted([*_WHERE, "sweep"])


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'sim' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
