"""Run one scenario: ``run(spec, seed) -> RunResult``, and write it to a folder.

A scenario kind is a class registered in family ``"scenario"`` with a pydantic
``Spec``, ``build(spec, kernel) -> world`` (the world has ``run()`` and
``results() -> (summary, tables)``) and ``figures(tables, summary, spec)``; an
optional ``prepare(spec)`` does shared cached work once before a sweep's workers start,
and optional ``run_modules`` names the modules its world needs (imported before a run's
clock starts: first-use import costs are the process's, not the simulation's).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import math
import os
import platform
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel

from sim import registry
from sim.config import apply_overrides, load_yaml, path_safe, validate
from sim.errors import ConfigError, PolicyError
from sim.kernel import Kernel

if TYPE_CHECKING:  # pandas is imported where a table is built or read
    import pandas as pd

_VERSIONED = ("ml-testbed", "simpy", "numpy", "torch", "pandas", "pydantic", "networkx")


@dataclass
class RunResult:
    """Everything one run produced; ``summary`` is a flat ``metric -> float`` dict."""

    kind: str
    seed: int
    summary: dict[str, float]
    tables: dict[str, pd.DataFrame]
    config: dict[str, Any]
    versions: dict[str, str] = field(default_factory=dict)
    wall_time_s: float = 0.0


@functools.cache
def _versions() -> tuple[tuple[str, str], ...]:
    found = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "unknown"
    return tuple(found.items())


def versions() -> dict[str, str]:
    """Python's and the key packages' versions (read once per process)."""
    return dict(_versions())


def kind_of(name: Any) -> Any:
    """The registered scenario kind ``name``; a ConfigError names the ``kind`` field."""
    if not isinstance(name, str):
        known = ", ".join(registry.names("scenario"))
        raise ConfigError(f"kind: required, one of: {known} (got {name!r})")
    try:
        return registry.get("scenario", name)
    except ConfigError:
        known = ", ".join(registry.names("scenario"))
        raise ConfigError(f"kind: {name!r} is not a registered scenario kind; known: {known}") from None


def load_spec(source: str | Path | dict[str, Any], overrides: list[str] | tuple[str, ...] = ()) -> BaseModel:
    """Validate a scenario from a YAML path or a dict, after ``--set`` overrides."""
    data = load_yaml(source) if isinstance(source, (str, Path)) else dict(source)
    data = apply_overrides(data, overrides)
    return validate(kind_of(data.get("kind")).Spec, data)


def run(spec: BaseModel, seed: int | None = None, progress: bool = False) -> RunResult:
    """Build and run one scenario; ``seed`` (if given) replaces ``spec.seed``."""
    if seed is not None:
        if seed < 0:
            raise ConfigError(f"seed: must be >= 0 (got {seed})")
        spec = spec.model_copy(update={"seed": seed})
    kind = kind_of(spec.kind)
    for module in getattr(kind, "run_modules", ()):
        importlib.import_module(module)
    kernel = Kernel(spec.seed)
    start = time.perf_counter()
    with _policy_errors():
        world = kind.build(spec, kernel)
        if progress and hasattr(spec, "duration_s"):
            _show_progress(kernel, spec.duration_s)
        world.run()
        summary, tables = world.results()
    return RunResult(
        kind=spec.kind,
        seed=spec.seed,
        summary={k: float(v) for k, v in summary.items()},
        tables=tables,
        config=spec.model_dump(mode="json"),
        versions=versions(),
        wall_time_s=time.perf_counter() - start,
    )


@contextlib.contextmanager
def _policy_errors() -> Iterator[None]:
    """Turn an exception raised inside a registered policy's code into a one-line PolicyError
    that names the policy, the method and the error (the traceback is kept for ``--debug``)."""
    try:
        yield
    except ConfigError:
        raise
    except Exception as exc:
        import traceback

        culprit, error = None, exc
        while error is not None and culprit is None:  # SimPy re-raises a process's error as a copy
            for frame, _ in traceback.walk_tb(error.__traceback__):
                policy = frame.f_locals.get("self")  # a method of a registered policy's instance
                owner = registry.policy_of(type(policy)) if policy is not None else None
                if owner is not None:
                    culprit = (*owner, frame.f_code.co_name, frame.f_lineno)
            error = error.__cause__ if culprit is None else error
        if culprit is None:
            raise
        family, name, where, line = culprit
        text = str(exc).strip().splitlines()
        raise PolicyError(
            f"{family} policy {name!r}: {where}() raised {type(exc).__name__}"
            f"{': ' + text[0][:200] if text else ''} (line {line}; --debug for the traceback)",
            "".join(traceback.format_exception(exc)),
        ) from None


def _show_progress(kernel: Kernel, duration_s: float, steps: int = 100) -> None:
    """A tqdm bar over simulated time, ticked by one SimPy process (``steps`` events)."""
    from tqdm import tqdm

    def ticker():
        with tqdm(total=steps, desc="simulating", unit="%", leave=False) as bar:
            for _ in range(steps):
                yield kernel.env.timeout(duration_s / steps)
                bar.update(1)

    kernel.env.process(ticker())


def _json_number(value: float) -> float | None:
    return value if math.isfinite(value) else None


def write_run(result: RunResult, out_dir: str | Path, report: bool = True) -> Path:
    """Write ``summary.json``, ``config.yaml``, ``run.json``, ``tables/*.parquet`` (+ report).

    Everything goes to ``<out_dir>.partial``, renamed to ``out_dir`` at the end (over an
    older run folder there), so ``out_dir`` is always a whole run or absent. A path that
    holds something else than a run folder is refused.
    """
    final = Path(out_dir)
    if final.is_symlink() or (final.exists() and not _replaceable(final)):
        raise ConfigError(f"--out {final}: exists and is not a run folder; choose another folder")
    scratch = final.with_name(final.name + ".partial")
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        _write_files(result, scratch, report)
        old = final.with_name(final.name + ".old")
        if final.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
        os.replace(scratch, final)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return final


def _replaceable(folder: Path) -> bool:
    """An empty folder, or a run folder (it has ``summary.json``)."""
    return folder.is_dir() and ((folder / "summary.json").is_file() or not any(folder.iterdir()))


def _write_files(result: RunResult, out: Path, report: bool) -> None:
    (out / "tables").mkdir(parents=True, exist_ok=True)
    summary = {k: _json_number(v) for k, v in result.summary.items()}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    (out / "config.yaml").write_text(yaml.safe_dump(result.config, sort_keys=False))
    meta = {
        "kind": result.kind,
        "seed": result.seed,
        "wall_time_s": result.wall_time_s,
        "versions": result.versions,
    }
    (out / "run.json").write_text(json.dumps(meta, indent=2) + "\n")
    for name, table in result.tables.items():
        table.to_parquet(out / "tables" / f"{path_safe(name)}.parquet", index=False)
    if report:
        render_run_report(out, result)


def read_run(run_dir: str | Path) -> RunResult:
    """Load a written run folder back into a RunResult."""
    import pandas as pd

    run_dir = Path(run_dir)
    if not (run_dir / "summary.json").is_file():
        raise ConfigError(f"{run_dir}: not a run folder (no summary.json)")
    current = run_dir / "summary.json"
    try:
        summary = {
            k: (math.nan if v is None else float(v)) for k, v in json.loads(current.read_text()).items()
        }
        current = run_dir / "config.yaml"
        config = load_yaml(current)
        current = run_dir / "run.json"
        meta = json.loads(current.read_text()) if current.exists() else {}
        tables = {}
        for current in sorted((run_dir / "tables").glob("*.parquet")):
            tables[current.stem] = pd.read_parquet(current)
    except (OSError, ValueError, TypeError, AttributeError) as exc:  # truncated or edited files
        if isinstance(exc, ConfigError):
            raise
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
        raise ConfigError(f"{current}: cannot read ({first})") from None
    return RunResult(
        kind=config.get("kind", ""),
        seed=int(config.get("seed", 0)),
        summary=summary,
        tables=tables,
        config=config,
        versions=meta.get("versions", {}),
        wall_time_s=float(meta.get("wall_time_s", 0.0)),
    )


def render_run_report(run_dir: str | Path, result: RunResult | None = None) -> Path:
    """(Re-)render ``report.html`` and its figures for one run folder."""
    from sim.report import plain_text, render_report

    run_dir = Path(run_dir)
    result = result or read_run(run_dir)
    kind = kind_of(result.kind)
    spec = validate(kind.Spec, result.config)
    with plain_text():
        figures = kind.figures(result.tables, result.summary, spec)
        shown = {
            name: result.tables[name] for name in getattr(kind, "report_tables", ()) if name in result.tables
        }
        title = f"{result.kind} · {result.config.get('name', '')} · seed {result.seed}"
        return render_report(
            run_dir,
            title=title,
            summary=result.summary,
            config_yaml=yaml.safe_dump(result.config, sort_keys=False),
            figures=figures,
            tables=shown,
        )
