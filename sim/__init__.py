"""The engine: a SimPy kernel with named random streams, config, registry, runner.

`sim` knows nothing about ML; scenario kinds and policies reach it through the
registry (see :mod:`sim.registry`).
"""

from sim.errors import ConfigError
from sim.kernel import Kernel
from sim.runner import RunResult, load_spec, run, write_run
from sim.sweep import sweep

__all__ = ["ConfigError", "Kernel", "RunResult", "load_spec", "run", "sweep", "write_run"]
