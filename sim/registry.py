"""Registry: ``family -> name -> class`` for scenario kinds and every policy family.

Built-in and third-party code register the same way: a module listed in the
``testbed.plugins`` entry-point group (the project's own ``workloads`` and ``policies``
are declared in its ``pyproject.toml``) or named by ``--plugin module`` is imported,
and its ``@register(...)`` decorators fill the tables. The engine never imports a
kind or a policy by name.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, TypeVar

from sim.errors import ConfigError

T = TypeVar("T")

_TABLES: dict[str, dict[str, Any]] = {}
_LOADED: set[str] = set()
_ENTRY_POINTS_LOADED: list[bool] = []  # non-empty once the entry points are imported

ENTRY_POINT_GROUP = "testbed.plugins"


def register(family: str, name: str) -> Callable[[T], T]:
    """Class decorator: make ``cls`` known as ``name`` in ``family``."""

    def deco(cls: T) -> T:
        table = _TABLES.setdefault(family, {})
        if name in table and table[name] is not cls:
            raise ValueError(f"{family} {name!r} is already registered by {table[name]!r}")
        table[name] = cls
        return cls

    return deco


def load_plugins(extra: tuple[str, ...] | list[str] = ()) -> None:
    """Import every ``testbed.plugins`` entry point, then each module in ``extra``."""
    if not _ENTRY_POINTS_LOADED:  # scanning installed metadata costs ~10 ms: once per process
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.value not in _LOADED:
                ep.load()
                _LOADED.add(ep.value)
        _ENTRY_POINTS_LOADED.append(True)
    for module in extra:
        if module in _LOADED:
            continue
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigError(f"--plugin: cannot import {module!r} ({exc})") from None
        _LOADED.add(module)


def names(family: str) -> list[str]:
    """Registered names of ``family``, sorted."""
    load_plugins()
    return sorted(_TABLES.get(family, {}))


def families() -> list[str]:
    load_plugins()
    return sorted(_TABLES)


def get(family: str, name: str) -> Any:
    """The class registered as ``name`` in ``family``; a ConfigError lists the known ones."""
    load_plugins()
    table = _TABLES.get(family, {})
    try:
        return table[name]
    except KeyError:
        known = ", ".join(sorted(table)) or "none"
        close = difflib.get_close_matches(str(name), list(table), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(f"{family} {name!r} is not registered; {hint}known: {known}") from None


def describe(cls: Any) -> str:
    """First sentence-paragraph of a class's docstring, on one line: its description in ``testbed list``."""
    doc = (cls.__doc__ or "").strip()
    return " ".join(line.strip() for line in doc.split("\n\n")[0].splitlines())


def import_submodules(package: str, path: list[str]) -> None:
    """Import every module of a package, so each policy file registers itself: a new
    policy is one new file. Called from a policy family's ``__init__``."""
    import pkgutil

    for module in pkgutil.iter_modules(path):
        importlib.import_module(f"{package}.{module.name}")
