"""Sweeps: a base scenario x factors x seeds -> runs, on ``serial``, ``pool`` or ``ray``.

Each run is a pure function of its resolved config and seed, so every backend and
worker count gives the same results, bit for bit. The driver process alone writes
the run store (``runs.sqlite``), committing each run as it ends; ``resume`` skips
runs already done, so a sweep killed at any moment finishes where it stopped. A run
that raises is recorded as failed with its traceback and the others go on.
"""

from __future__ import annotations

import itertools
import math
import os
import shutil
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, NonNegativeInt, PositiveInt, field_validator, model_validator

from sim import registry
from sim.config import StrictModel, apply_overrides, load_yaml, set_values, validate
from sim.errors import ConfigError
from sim.kernel import numpy_rng
from sim.store import DONE, FAILED, RunStore, run_id

BACKENDS = ("serial", "pool", "ray")
FactorValues = Annotated[list[Any], Field(min_length=1)]


class Distribution(StrictModel):
    """One random factor: exactly one of ``choice``, ``uniform``, ``loguniform``, ``randint``."""

    choice: FactorValues | None = None
    uniform: tuple[float, float] | None = None
    loguniform: tuple[float, float] | None = None
    randint: tuple[int, int] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Distribution:
        given = [k for k in ("choice", "uniform", "loguniform", "randint") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one of choice, uniform, loguniform, randint (got {given or 'none'})"
            )
        low_high = self.uniform or self.loguniform or self.randint
        if low_high is not None and not low_high[0] < low_high[1]:
            raise ValueError(f"{given[0]} needs low < high (got {list(low_high)})")
        if self.loguniform is not None and self.loguniform[0] <= 0:
            raise ValueError(f"loguniform needs low > 0 (got {list(self.loguniform)})")
        return self

    def draw(self, rng: np.random.Generator) -> Any:
        if self.choice is not None:
            return self.choice[int(rng.integers(len(self.choice)))]
        if self.uniform is not None:
            return float(rng.uniform(*self.uniform))
        if self.loguniform is not None:
            low, high = self.loguniform
            return float(math.exp(rng.uniform(math.log(low), math.log(high))))
        return int(rng.integers(self.randint[0], self.randint[1] + 1))


class RandomFactors(StrictModel):
    count: PositiveInt
    seed: NonNegativeInt = 0
    params: dict[str, Distribution] = Field(min_length=1)


class SweepSpec(StrictModel):
    """A study: base scenario, overrides, factors and seeds (see docs/sweeps.md)."""

    name: str = "sweep"
    base: str | dict[str, Any] | Annotated[list[str | dict[str, Any]], Field(min_length=1)] = Field(
        description="scenario file (relative to the sweep file) or mapping; a list makes the "
        "factor `scenario`"
    )
    set: dict[str, Any] = Field(default_factory=dict, description="overrides for every run")
    grid: dict[str, FactorValues] = Field(default_factory=dict)
    zip: dict[str, FactorValues] = Field(default_factory=dict)
    random: RandomFactors | None = None
    seeds: PositiveInt | Annotated[list[NonNegativeInt], Field(min_length=1)] = 1
    baseline: dict[str, Any] | None = Field(
        None, description="factor values of the baseline, e.g. {scheduler.name: fcfs}"
    )
    highlight: str | None = Field(None, description="a policy the report compares with every other one")
    metrics: list[str] = Field(
        default_factory=list, description="metrics in the report (default: a kind's main ones)"
    )
    lower_is_better: list[str] = Field(
        default_factory=list, description="metrics ranked lower-is-better against the kind's declaration"
    )
    higher_is_better: list[str] = Field(
        default_factory=list, description="metrics ranked higher-is-better against the kind's declaration"
    )
    plugins: list[str] = Field(default_factory=list, description="modules to import in every worker")

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, seeds: int | list[int]) -> int | list[int]:
        if isinstance(seeds, list) and len(set(seeds)) != len(seeds):
            raise ValueError("seeds must not repeat")
        return seeds

    @model_validator(mode="after")
    def _factors(self) -> SweepSpec:
        lengths = {k: len(v) for k, v in self.zip.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"zip: lists must have equal lengths (got {lengths})")
        keys = [*self.grid, *self.zip, *(self.random.params if self.random else {})]
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        if repeated:
            raise ValueError(f"factor keys appear twice: {', '.join(repeated)}")
        if self.baseline and not set(self.baseline) <= set(keys):
            raise ValueError(f"baseline: keys {sorted(set(self.baseline) - set(keys))} are not factors")
        return self

    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

    def points(self) -> list[dict[str, Any]]:
        """Factor assignments: grid product x zipped rows x random samples, in file order."""
        grid = [dict(zip(self.grid, combo)) for combo in itertools.product(*self.grid.values())]
        n_zip = len(next(iter(self.zip.values()))) if self.zip else 0
        zipped = [{k: v[i] for k, v in self.zip.items()} for i in range(n_zip)] or [{}]
        sampled: list[dict[str, Any]] = [{}]
        if self.random:
            rng = numpy_rng(self.random.seed, "sweep/random")
            sampled = [
                {k: d.draw(rng) for k, d in self.random.params.items()} for _ in range(self.random.count)
            ]
        return [{**g, **z, **s} for g in grid for z in zipped for s in sampled]


def _path_exists(tree: Any, path: str) -> bool:
    """Whether dotted ``path`` names a field of a resolved config (free-form ``params`` accept any key)."""
    node = tree
    parts = path.split(".")
    for depth, part in enumerate(parts):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, dict) and depth > 0 and parts[depth - 1] == "params":
            return depth == len(parts) - 1
        else:
            return False
    return True


def load_sweep(
    source: str | Path | dict[str, Any], overrides: list[str] | tuple[str, ...] = ()
) -> tuple[SweepSpec, dict[str, dict[str, Any]]]:
    """Validate a sweep file; return it with its base scenarios, by scenario label."""
    if isinstance(source, (str, Path)):
        data, where = load_yaml(source), Path(source).parent
    else:
        data, where = dict(source), Path.cwd()
    data = apply_overrides(data, overrides)
    sweep = validate(SweepSpec, data)
    bases = {}
    for item in sweep.base if isinstance(sweep.base, list) else [sweep.base]:
        base = load_yaml(where / item) if isinstance(item, str) else dict(item)
        label = Path(item).stem if isinstance(item, str) else str(base.get("name", len(bases)))
        if label in bases:
            raise ConfigError(f"base: scenario {label!r} appears twice")
        bases[label] = base
    return sweep, bases


def plan(sweep: SweepSpec, bases: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Every run of the sweep (``id, ord, factors, seed, config``), each config validated.

    Problems are reported before anything runs: an unknown factor key, or a point whose
    scenario is invalid (named by its factor values). With several base scenarios the
    factor ``scenario`` (the file's stem) comes first.
    """
    from sim.runner import kind_of

    registry.load_plugins(sweep.plugins)
    several = isinstance(sweep.base, list)
    runs = []
    for label, base in bases.items():
        base = set_values(base, sweep.set, label="set:")
        kind = kind_of(base.get("kind"))
        prefix = f"base {label}" if several else "base"
        base_spec = validate(kind.Spec, base, prefix=prefix)
        resolved = base_spec.model_dump(mode="json")
        groups = {
            "grid": sweep.grid,
            "zip": sweep.zip,
            "random.params": sweep.random.params if sweep.random else {},
        }
        problems = [
            f"{group}.{key}: unknown config key (not a field of the {base['kind']} scenario"
            f"{' ' + label if several else ''})"
            for group, keys in groups.items()
            for key in keys
            if not _path_exists(resolved, key)
        ]
        if problems:
            raise ConfigError(problems)
        prepare = getattr(kind, "prepare", None)
        if prepare is not None:  # shared, cached work (traces, trained weights) done once, here
            prepare(base_spec)
        for point in sweep.points():
            data = set_values(base, point, label="factor")
            factors = {"scenario": label, **point} if several else point
            try:
                spec = validate(kind.Spec, data)
            except ConfigError as exc:
                where = ", ".join(f"{k}={v!r}" for k, v in factors.items())
                raise ConfigError([f"point {where}: {p}" for p in exc.problems]) from None
            for seed in sweep.seed_list():
                config = spec.model_copy(update={"seed": seed}).model_dump(mode="json")
                runs.append(
                    {
                        "id": run_id(config),
                        "ord": len(runs),
                        "factors": factors,
                        "seed": seed,
                        "config": config,
                    }
                )
    return runs


def execute(config: dict[str, Any], out_dir: str, plugins: list[str], report: bool) -> dict[str, Any]:
    """Run one config and write its folder; never raises (a failure is returned as text).

    Outputs go to a temporary folder renamed into place at the end, so a folder under
    ``runs/`` is always a whole run.
    """
    from sim.runner import kind_of, run, write_run

    start = time.perf_counter()
    final = Path(out_dir)
    scratch = final.with_name(final.name + ".partial")
    try:
        registry.load_plugins(plugins)
        spec = validate(kind_of(config.get("kind")).Spec, config)
        result = run(spec)
        shutil.rmtree(scratch, ignore_errors=True)
        write_run(result, scratch, report=report)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(scratch, final)
        return {
            "status": DONE,
            "metrics": result.summary,
            "error": None,
            "wall_time_s": time.perf_counter() - start,
        }
    except Exception:  # noqa: BLE001 - a failing run is data, not a crash of the sweep
        shutil.rmtree(scratch, ignore_errors=True)
        return {
            "status": FAILED,
            "metrics": None,
            "error": traceback.format_exc(),
            "wall_time_s": time.perf_counter() - start,
        }


def _serial(jobs: list[tuple], workers: int, address: str | None) -> Iterator[tuple[str, dict]]:
    for rid, *args in jobs:
        yield rid, execute(*args)


def _pool(jobs: list[tuple], workers: int, address: str | None) -> Iterator[tuple[str, dict]]:
    if "forkserver" in _start_methods():
        context = get_context("forkserver")
        # the fork server imports the heavy modules once; each worker forks from it ready
        context.set_forkserver_preload(["sim.sweep", "sim.runner", *_plugin_modules()])
    else:
        context = get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_init) as pool:
        pending = {pool.submit(execute, *args): rid for rid, *args in jobs}
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                yield pending.pop(future), future.result()


def _ray(jobs: list[tuple], workers: int, address: str | None) -> Iterator[tuple[str, dict]]:
    try:
        import ray
    except ImportError:
        raise ConfigError("--backend ray: Ray is not installed; pip install 'ml-testbed[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    remote = ray.remote(num_cpus=1)(_ray_execute)
    try:
        pending = {remote.remote(*args): rid for rid, *args in jobs}
        while pending:
            finished, _ = ray.wait(list(pending), num_returns=1)
            for ref in finished:
                yield pending.pop(ref), ray.get(ref)
    finally:
        if started_here:
            ray.shutdown()


def _ray_execute(config: dict[str, Any], out_dir: str, plugins: list[str], report: bool) -> dict[str, Any]:
    _worker_init()
    return execute(config, out_dir, plugins, report)


def _worker_init() -> None:
    """One thread per worker process: the workers are the parallelism."""
    import torch

    torch.set_num_threads(1)


def _plugin_modules() -> list[str]:
    from importlib.metadata import entry_points

    return [ep.value for ep in entry_points(group=registry.ENTRY_POINT_GROUP)]


def _start_methods() -> list[str]:
    from multiprocessing import get_all_start_methods

    return get_all_start_methods()


RUNNERS = {"serial": _serial, "pool": _pool, "ray": _ray}


def sweep(
    source: str | Path | dict[str, Any],
    out: str | Path,
    *,
    backend: Literal["serial", "pool", "ray"] = "pool",
    workers: int | None = None,
    ray_address: str | None = None,
    resume: bool = False,
    overrides: list[str] | tuple[str, ...] = (),
    run_reports: bool = False,
    progress: bool = True,
) -> pd.DataFrame:
    """Run a sweep into ``out``; return the table of all its runs (as ``summary.csv``)."""
    if backend not in BACKENDS:
        raise ConfigError(f"--backend: {backend!r} is not one of {', '.join(BACKENDS)}")
    workers = workers or os.cpu_count() or 1
    if workers < 1:
        raise ConfigError(f"--workers: must be >= 1 (got {workers})")
    sweep_spec, bases = load_sweep(source, overrides)
    runs = plan(sweep_spec, bases)
    out = Path(out)
    if (out / "runs.sqlite").exists() and not resume:
        raise ConfigError(
            f"--out {out}: already holds a sweep; pass --resume to finish it, or choose another folder"
        )
    (out / "runs").mkdir(parents=True, exist_ok=True)
    _write_sweep_file(out, sweep_spec, bases)
    store = RunStore(out / "runs.sqlite")
    try:
        store.add(runs)
        done = store.done_ids()
        todo = [
            (r["id"], r["config"], str(out / "runs" / r["id"]), sweep_spec.plugins, run_reports)
            for r in runs
            if r["id"] not in done
        ]
        ok, failed = len(runs) - len(todo), 0
        from tqdm import tqdm

        with tqdm(
            total=len(runs),
            initial=len(runs) - len(todo),
            desc=sweep_spec.name,
            unit="run",
            disable=not progress,
        ) as bar:
            for rid, outcome in RUNNERS[backend](todo, workers, ray_address):
                store.record(
                    rid, outcome["status"], outcome["metrics"], outcome["wall_time_s"], outcome["error"]
                )
                ok += outcome["status"] == DONE
                failed += outcome["status"] == FAILED
                bar.set_postfix(done=ok, failed=failed)
                bar.update(1)
        table = store.frame()
    finally:
        store.close()
    table.to_csv(out / "summary.csv", index=False)
    return table


def _write_sweep_file(out: Path, sweep_spec: SweepSpec, bases: dict[str, dict[str, Any]]) -> None:
    """``sweep.yaml``: the sweep with its base scenarios inlined, for the report."""
    import yaml

    data = sweep_spec.model_dump(mode="json")
    data["base"] = list(bases.values()) if isinstance(sweep_spec.base, list) else next(iter(bases.values()))
    (out / "sweep.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
