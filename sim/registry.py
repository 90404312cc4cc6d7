"""Registry: ``family -> name -> class`` for scenario kinds and every policy family.

Built-in and third-party code register the same way: a module listed in the
``testbed.plugins`` entry-point group (the project's own ``workloads`` and ``policies``
are declared in its ``pyproject.toml``) or named by ``--plugin`` is imported, and its
``@register(...)`` decorators fill the tables. The engine never imports a kind or a
policy by name.

A plugin package may instead :func:`provide` its modules: it says which module
registers which family (and names), and the registry imports a module only when a
name it provides is asked for. So ``testbed validate`` of an xr file imports the xr
kind and the scheduling policies, not torch-heavy kinds it does not use. Listing
every name with its description (``testbed list``) would import them all; what is
read off the provided packages' entries is therefore cached on disk, keyed by their
source files (:func:`provided_cached`).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, TypeVar

from sim.config import cache_dir, closest
from sim.errors import ConfigError

T = TypeVar("T")

_TABLES: dict[str, dict[str, Any]] = {}
_PROVIDERS: dict[str, list[tuple[str, frozenset[str] | None]]] = {}  # family -> (module, names)
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


def provide(family: str, module: str, names: list[str] | tuple[str, ...] | None = None) -> None:
    """Declare that importing ``module`` registers ``names`` in ``family`` (None: whichever
    names it registers); the registry imports it the first time one of them is needed."""
    _PROVIDERS.setdefault(family, []).append((module, None if names is None else frozenset(names)))


def _import_providers(family: str | None = None, name: str | None = None) -> None:
    """Import the provided modules of ``family`` (every family if None) that may hold ``name``."""
    families = list(_PROVIDERS) if family is None else [family]
    for fam in families:
        for module, provided in _PROVIDERS.get(fam, ()):
            if module not in _LOADED and (name is None or provided is None or name in provided):
                importlib.import_module(module)
                _LOADED.add(module)


def loaded() -> list[str]:
    """Provided and ``--plugin`` modules imported so far in this process, by module name."""
    return sorted(m for m in _LOADED if not m.endswith(".py"))


def load_plugins(extra: tuple[str, ...] | list[str] = ()) -> None:
    """Import every ``testbed.plugins`` entry point, then each module in ``extra``."""
    if not _ENTRY_POINTS_LOADED:  # scanning installed metadata costs ~10 ms: once per process
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.value not in _LOADED:
                ep.load()
                _LOADED.add(ep.value)
        _ENTRY_POINTS_LOADED.append(True)
    for module in extra:
        if module not in _LOADED:
            _import_plugin(module)
            _LOADED.add(module)


def _import_plugin(module: str) -> None:
    """Import ``--plugin`` ``module``: a path to a ``.py`` file, or a module name found from
    the working folder (as ``python -m`` finds it) or the installed packages."""
    if module.endswith(".py"):
        path = Path(module)
        if not path.is_file():
            raise ConfigError(f"--plugin: no such file {module!r}")
        name = path.stem
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ConfigError(f"--plugin: cannot import {module!r} (not a Python file)")
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[name] = loaded  # so pickled classes and dataclasses of the module resolve
        try:
            spec.loader.exec_module(loaded)
        except BaseException:
            sys.modules.pop(name, None)
            raise
        return
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # the console script does not put the working folder first
    try:
        importlib.import_module(module)
    except ImportError as exc:
        if exc.name not in (module, *_parents(module)):  # found, but it imports something missing
            raise ConfigError(f"--plugin: {module!r} cannot be imported: {exc}") from None
        raise ConfigError(
            f"--plugin: cannot import {module!r} (no module of that name in {os.getcwd()} or the "
            f"installed packages; give a path to a .py file or a module name)"
        ) from None


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def names(family: str) -> list[str]:
    """Registered names of ``family``, sorted."""
    load_plugins()
    _import_providers(family)
    return sorted(_TABLES.get(family, {}))


def families() -> list[str]:
    """Every family with a registered name (imports every provided module)."""
    load_plugins()
    _import_providers()
    return sorted(_TABLES)


def provided_cached(what: str, compute: Callable[[str, str, Any], Any]) -> dict[str, dict[str, Any]]:
    """``family -> name -> compute(family, name, cls)`` (JSON values) for every entry of the
    provided packages, from a cache file keyed by ``what`` and the source files of those
    packages and of ``compute``'s (any edit there makes a new key). Without a valid file,
    every provided module is imported, the values computed and the file written."""
    load_plugins()
    roots = sorted({module.split(".")[0] for entries in _PROVIDERS.values() for module, _ in entries})
    digest = _source_digest(sorted({*roots, _module_root(compute)}))
    path = cache_dir() / "registry" / f"{what}-{digest[:16]}.json"
    cached = _read_catalog(path, digest)
    if cached is None:
        _import_providers()
        cached = {
            family: {n: compute(family, n, cls) for n, cls in table.items() if _module_root(cls) in roots}
            for family, table in _TABLES.items()
        }
        _write_catalog(path, digest, cached)
    return cached


def _module_root(obj: Any) -> str:
    return str(getattr(obj, "__module__", "") or "").split(".")[0]


def _source_digest(roots: list[str]) -> str:
    """SHA-256 of every ``.py`` file (path and bytes) of the packages ``roots``, and of the
    Python and pydantic versions (types and defaults are printed through them)."""
    import pydantic

    h = hashlib.sha256(f"{sys.version}\n{pydantic.VERSION}\n".encode())
    for root in roots:
        package = sys.modules.get(root) or importlib.import_module(root)
        for base in getattr(package, "__path__", [package.__file__]):
            for file in sorted(Path(base).rglob("*.py")) if Path(base).is_dir() else [Path(base)]:
                h.update(f"{root}/{file.relative_to(Path(base).parent)}\n".encode())
                h.update(file.read_bytes())
    return h.hexdigest()


def _read_catalog(path: Path, digest: str) -> dict[str, dict[str, Any]] | None:
    """The cached values at ``path``, or None if absent, unreadable, for another key or damaged."""
    try:
        saved = json.loads(path.read_text())
        entries = saved["entries"]
        body = json.dumps(entries, sort_keys=True)
        if saved["key"] != digest or saved["sha256"] != hashlib.sha256(body.encode()).hexdigest():
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return entries


def _write_catalog(path: Path, digest: str, entries: dict[str, dict[str, Any]]) -> None:
    body = json.dumps(entries, sort_keys=True)
    saved = {"key": digest, "sha256": hashlib.sha256(body.encode()).hexdigest(), "entries": entries}
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:  # renamed into place: a concurrent reader sees a whole file or none
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(saved))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache only costs the imports next time


def registered() -> dict[str, list[str]]:
    """The names registered so far, by family (imports nothing)."""
    return {family: sorted(table) for family, table in _TABLES.items()}


def is_registered(family: str, name: str) -> bool:
    """Whether ``name`` is registered in ``family`` already (imports nothing)."""
    return name in _TABLES.get(family, {})


def known_family(family: str) -> bool:
    """Whether ``family`` has or is provided names, without importing any of them."""
    load_plugins()
    return bool(_TABLES.get(family)) or family in _PROVIDERS


def get(family: str, name: str) -> Any:
    """The class registered as ``name`` in ``family``; a ConfigError lists the known ones."""
    load_plugins()
    table = _TABLES.get(family, {})
    if name not in table:
        _import_providers(family, name)
        table = _TABLES.get(family, {})
    try:
        return table[name]
    except KeyError:
        _import_providers(family)  # the full list, for the message
        table = _TABLES.get(family, {})
        known = ", ".join(sorted(table)) or "none"
        close = closest(name, table)
        hint = f"did you mean {close!r}? " if close else ""
        raise ConfigError(f"{family} {name!r} is not registered; {hint}known: {known}") from None


def policy_of(cls: type) -> tuple[str, str] | None:
    """(family, name) under which class ``cls`` is registered as a policy, or None."""
    for family, table in _TABLES.items():
        for name, registered in table.items():
            if registered is cls and family != "scenario":
                return family, name
    return None


def deferred(target: str) -> Callable[..., Any]:
    """The function ``"module:name"``, imported on its first call: a kind's heavy hooks
    (its world, figures, sweep tables) cost nothing until a run or a report needs them."""
    module, _, attr = target.partition(":")

    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), attr)(*args, **kwargs)

    call.__name__ = call.__qualname__ = attr
    call.__doc__ = f"Calls {target} (imported on first use)."
    return call


def describe(cls: Any) -> str:
    """First sentence-paragraph of a class's docstring, on one line: its description in ``testbed list``."""
    doc = (cls.__doc__ or "").strip()
    return " ".join(line.strip() for line in doc.split("\n\n")[0].splitlines())


def import_submodules(package: str, path: list[str]) -> None:
    """Import every module of a package, so each policy file registers itself: a new
    policy is one new file. Called from a policy family's ``__init__``. A module whose name
    starts with ``_`` is a policy's private helper, imported by that policy when it needs it."""
    import pkgutil

    for module in pkgutil.iter_modules(path):
        if not module.name.startswith("_"):
            importlib.import_module(f"{package}.{module.name}")
