"""Sweeps: a base scenario x factors x seeds -> runs, on ``serial``, ``pool`` or ``ray``.

Each run is a pure function of its resolved config and seed, so every backend and
worker count gives the same results, bit for bit. The driver process alone writes
the run store (``runs.sqlite``), committing each run as it ends; ``resume`` skips
runs already done, so a sweep killed at any moment finishes where it stopped, and
refuses a store that holds a different sweep. Nothing aborts a sweep: a run that
raises, runs past ``timeout_s`` or whose worker process dies is recorded as failed
with its reason (a dead worker's run is tried again ``retries`` times, in a fresh
worker) and the others go on. One driver at a time holds ``<out>/.lock``; its
workers die with it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import shutil
import signal
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing import connection, get_context
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    field_validator,
    model_validator,
)

from sim import registry
from sim.config import StrictModel, apply_overrides, closest, did_you_mean, load_yaml, set_values, validate
from sim.errors import ConfigError
from sim.kernel import numpy_rng
from sim.store import DONE, FAILED, RunStore, run_id

if TYPE_CHECKING:  # pandas is imported where a table is built or read
    import pandas as pd

BACKENDS = ("serial", "pool", "ray")
FactorValues = Annotated[list[Any], Field(min_length=1)]


class Distribution(StrictModel):
    """One random factor: exactly one of ``choice``, ``uniform``, ``loguniform``, ``randint``."""

    choice: FactorValues | None = Field(None, description="values drawn uniformly")
    uniform: tuple[float, float] | None = Field(None, description="[low, high]: a float drawn uniformly")
    loguniform: tuple[float, float] | None = Field(
        None, description="[low, high], low > 0: a float whose log is drawn uniformly"
    )
    randint: tuple[int, int] | None = Field(None, description="[low, high]: an integer, both ends included")

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
    count: PositiveInt = Field(description="points drawn")
    seed: NonNegativeInt = Field(0, description="seed of the draws (the same points for every run seed)")
    params: dict[str, Distribution] = Field(min_length=1, description="config key -> its distribution")


class SweepSpec(StrictModel):
    """A study: base scenario, overrides, factors and seeds (see docs/sweeps.md)."""

    name: str = Field("sweep", description="the study's name (default output folder runs/<name>)")
    base: str | dict[str, Any] | Annotated[list[str | dict[str, Any]], Field(min_length=1)] = Field(
        description="scenario file (relative to the sweep file) or mapping; a list makes the "
        "factor `scenario`"
    )
    set: dict[str, Any] = Field(default_factory=dict, description="overrides for every run")
    grid: dict[str, FactorValues] = Field(
        default_factory=dict, description="config key -> values; every combination is a point"
    )
    zip: dict[str, FactorValues] = Field(
        default_factory=dict, description="config key -> values of equal length, taken row by row"
    )
    random: RandomFactors | None = Field(None, description="factors drawn from distributions")
    seeds: PositiveInt | Annotated[list[NonNegativeInt], Field(min_length=1)] = Field(
        1, description="N (seeds 0..N-1) or a list of seeds; every point runs with each"
    )
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
    timeout_s: PositiveFloat | None = Field(
        None, description="wall seconds after which a run is stopped and recorded as failed"
    )
    retries: NonNegativeInt = Field(1, description="times a run whose worker process died is run again")

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
        stray = [k for k in self.baseline or {} if k not in keys]
        if stray:
            raise ValueError(
                f"baseline: {stray[0]!r} is not a factor (factors: {', '.join(keys) or 'none'})"
                + did_you_mean(stray[0], keys)
            )
        return self

    def check_report_fields(self, points: list[dict[str, Any]]) -> None:
        """``baseline`` values and ``highlight`` must be values their factor takes."""
        values = {k: [p[k] for p in points if k in p] for k in (self.baseline or {})}
        for key, value in (self.baseline or {}).items():
            if value not in values[key]:
                taken = list(dict.fromkeys(map(str, values[key])))
                raise ConfigError(
                    f"baseline.{key}: {value!r} is not one of the factor's values "
                    f"({', '.join(map(repr, taken))})" + did_you_mean(value, taken)
                )
        if self.highlight is not None:
            data = self.model_dump(mode="json")
            policy = policy_factor(data, factor_keys(data))
            taken = list(dict.fromkeys(p.get(policy) for p in points)) if policy else []
            if self.highlight not in taken:
                raise ConfigError(
                    f"highlight: {self.highlight!r} is not a value of the policy factor "
                    f"{policy or '(none: no baseline and no *.name factor)'}"
                    + (f" ({', '.join(map(repr, taken))})" if taken else "")
                    + did_you_mean(self.highlight, taken)
                )

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


def factor_keys(sweep: dict[str, Any]) -> list[str]:
    """Factor names of a sweep (as a dict), in file order; ``scenario`` first with several bases."""
    random = (sweep.get("random") or {}).get("params", {})
    scenario = ["scenario"] if isinstance(sweep["base"], list) else []
    return [*scenario, *sweep.get("grid", {}), *sweep.get("zip", {}), *random]


def policy_factor(sweep: dict[str, Any], factors: list[str]) -> str | None:
    """The factor that names the compared policy: the baseline's key, else the first ``*.name``."""
    if sweep.get("baseline"):
        return next(iter(sweep["baseline"]))
    return next((f for f in factors if f.endswith(".name")), None)


def _path_problem(tree: Any, path: str, where: str) -> str | None:
    """Why dotted ``path`` names no field of the resolved config ``tree`` (of ``where``), with
    the closest path that does; None if it names one (free-form ``params`` accept any key)."""
    node = tree
    parts = path.split(".")
    for depth, part in enumerate(parts):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, dict) and depth > 0 and parts[depth - 1] == "params":
            return None if depth == len(parts) - 1 else f"{part!r} is a policy parameter, not a mapping"
        elif isinstance(node, list):
            return f"{'.'.join(parts[:depth]) or path!r} is a list of {len(node)} items; {part!r} is no index"
        else:
            close = closest(part, node) if isinstance(node, dict) else None
            hint = (
                f"; did you mean {'.'.join([*parts[:depth], close, *parts[depth + 1 :]])!r}?" if close else ""
            )
            return f"unknown config key (not a field of {where}){hint}"
    return None


def _from_set(problem: str, prefix: str, sets: dict[str, Any]) -> str:
    """``problem`` of a base scenario, renamed ``set.KEY`` if it is about a key ``set:`` gave."""
    for key in sets:
        if problem.startswith(f"{prefix}.{key}:"):
            return f"set.{key}{problem[len(prefix) + 1 + len(key) :]}"
    return problem


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


def plan(sweep: SweepSpec, bases: dict[str, dict[str, Any]], prepare: bool = True) -> list[dict[str, Any]]:
    """Every run of the sweep (``id, ord, factors, seed, config``), each config validated.

    Problems are reported before anything runs: an unknown factor key, or a point whose
    scenario is invalid (named by its factor values). With several base scenarios the
    factor ``scenario`` (the file's stem) comes first. ``prepare=False`` skips the kinds'
    shared cached work.
    """
    runs = []
    for factors, spec in _validated_points(sweep, bases, prepare):
        for seed in sweep.seed_list():
            config = spec.model_copy(update={"seed": seed}).model_dump(mode="json")
            runs.append(
                {"id": run_id(config), "ord": len(runs), "factors": factors, "seed": seed, "config": config}
            )
    return runs


def check(sweep: SweepSpec, bases: dict[str, dict[str, Any]]) -> int:
    """Validate every run of the sweep as :func:`plan` does, without building them; their count."""
    return len(_validated_points(sweep, bases, prepare=False)) * len(sweep.seed_list())


def _validated_points(
    sweep: SweepSpec, bases: dict[str, dict[str, Any]], prepare: bool
) -> list[tuple[dict[str, Any], BaseModel]]:
    """(factors, validated spec) of every point of every base; ``baseline`` and ``highlight`` checked."""
    from sim.runner import kind_of

    registry.load_plugins(sweep.plugins)
    several = isinstance(sweep.base, list)
    points = []
    for label, base in bases.items():
        base = set_values(base, sweep.set, label="set:")
        kind = kind_of(base.get("kind"))
        prefix = f"base {label}" if several else "base"
        try:
            base_spec = validate(kind.Spec, base, prefix=prefix)
        except ConfigError as exc:  # a problem at a key the sweep's `set:` gave is named there
            raise ConfigError([_from_set(p, prefix, sweep.set) for p in exc.problems]) from None
        resolved = base_spec.model_dump(mode="json")
        groups = {
            "grid": sweep.grid,
            "zip": sweep.zip,
            "random.params": sweep.random.params if sweep.random else {},
        }
        scenario = f"the {base['kind']} scenario{' ' + label if several else ''}"
        problems = [
            f"{group}.{key}: {problem}"
            for group, keys in groups.items()
            for key in keys
            if (problem := _path_problem(resolved, key, scenario)) is not None
        ]
        if problems:
            raise ConfigError(problems)
        shared_work = getattr(kind, "prepare", None)
        if prepare and shared_work is not None:  # shared, cached work (traces, weights) done once, here
            shared_work(base_spec)
        for point in sweep.points():
            data = set_values(base, point, label="factor")
            factors = {"scenario": label, **point} if several else point
            try:
                spec = validate(kind.Spec, data)
            except ConfigError as exc:
                where = ", ".join(f"{k}={v!r}" for k, v in factors.items())
                raise ConfigError([f"point {where}: {p}" for p in exc.problems]) from None
            points.append((factors, spec))
    sweep.check_report_fields([factors for factors, _ in points])
    return points


def execute(config: dict[str, Any], out_dir: str, plugins: list[str], report: bool) -> dict[str, Any]:
    """Run one config and write its folder; never raises (a failure is returned as text).

    :func:`~sim.runner.write_run` writes to a temporary folder renamed into place at
    the end, so a folder under ``runs/`` is always a whole run.
    """
    from sim.runner import kind_of, run, write_run

    start = time.perf_counter()
    try:
        registry.load_plugins(plugins)
        spec = validate(kind_of(config.get("kind")).Spec, config)
        result = run(spec)
        write_run(result, out_dir, report=report)
        return _outcome(DONE, start, metrics=result.summary)
    except Exception:  # noqa: BLE001 - a failing run is data, not a crash of the sweep
        return _outcome(FAILED, start, error=traceback.format_exc())


def _outcome(status: str, start: float, metrics: dict | None = None, error: str | None = None) -> dict:
    return {"status": status, "metrics": metrics, "error": error, "wall_time_s": time.perf_counter() - start}


@dataclass
class Job:
    """One run to do: its id, the arguments of :func:`execute`, and how often its worker died."""

    rid: str
    args: tuple
    deaths: int = 0


@dataclass
class Limits:
    """What a backend enforces: a wall-clock limit per run, and retries after a worker died."""

    timeout_s: float | None = None
    retries: int = 1

    def timed_out(self, start: float) -> dict:
        return {
            **_outcome(FAILED, start),
            "error": f"timed out: still running after {self.timeout_s:g} s (wall)",
        }

    def died(self, job: Job, why: str, start: float) -> dict | None:
        """None if ``job`` is to be tried again, else its failed outcome."""
        job.deaths += 1
        if job.deaths <= self.retries:
            return None
        tries = f"on each of {job.deaths} tries" if job.deaths > 1 else "(no retry)"
        return {**_outcome(FAILED, start), "error": f"worker died {tries}: {why}"}


class _RunTimeout(Exception):
    pass


def _serial(jobs: list[Job], workers: int, limits: Limits, address: str | None) -> Iterator[tuple[str, dict]]:
    """In this process; ``timeout_s`` by SIGALRM where the platform has it (main thread only)."""
    alarm = (
        limits.timeout_s
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
    )

    def expire(signum, frame):
        raise _RunTimeout(f"timed out: still running after {limits.timeout_s:g} s (wall)")

    before = signal.signal(signal.SIGALRM, expire) if alarm else None
    try:
        for job in jobs:
            if alarm:
                signal.setitimer(signal.ITIMER_REAL, limits.timeout_s)
            try:
                outcome = execute(*job.args)
            finally:
                if alarm:
                    signal.setitimer(signal.ITIMER_REAL, 0)
            yield job.rid, outcome
    finally:
        if alarm:
            signal.signal(signal.SIGALRM, before)


class _Worker:
    """One worker process and the pipe to it; ``job`` is the run it is doing (or None)."""

    def __init__(self, context: Any):
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_worker_main, args=(child, os.getpid()), daemon=True)
        self.process.start()
        child.close()
        self.job: Job | None = None
        self.started = 0.0

    def give(self, job: Job) -> None:
        self.job, self.started = job, time.perf_counter()
        self.conn.send(job.args)

    def stop(self) -> str:
        """Kill the process (if alive) and say how it ended."""
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        self.conn.close()
        code = self.process.exitcode
        if code is not None and code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exit code {code}"


def _pool(jobs: list[Job], workers: int, limits: Limits, address: str | None) -> Iterator[tuple[str, dict]]:
    """Local worker processes, one run each at a time, so the driver knows which run a dead or
    hung worker had: that worker alone is replaced, and its run recorded or retried."""
    context = _context()
    queue = deque(jobs)
    pool = [_Worker(context) for _ in range(min(workers, len(jobs)))]
    try:
        while queue or any(w.job for w in pool):
            for w in pool:
                if w.job is None and queue:
                    w.give(queue.popleft())
            busy = [w for w in pool if w.job is not None]
            waiting = {w.conn: w for w in busy} | {w.process.sentinel: w for w in busy}
            timeout = None
            if limits.timeout_s:
                now = time.perf_counter()
                timeout = max(0.0, min(w.started + limits.timeout_s - now for w in busy))
            for ready in connection.wait(list(waiting), timeout):
                w = waiting[ready]
                if w.job is None:
                    continue  # its pipe and its sentinel were both ready
                job, outcome = w.job, None
                try:
                    if w.conn.poll():
                        outcome = w.conn.recv()
                except (EOFError, OSError):
                    pass
                w.job = None
                if outcome is None:  # the process ended without an answer
                    why = _replace(pool, w, context)
                    outcome = limits.died(job, why, w.started)
                    if outcome is None:
                        queue.appendleft(job)
                        continue
                yield job.rid, outcome
            if limits.timeout_s:
                now = time.perf_counter()
                for w in list(pool):
                    if w.job is not None and now - w.started >= limits.timeout_s:
                        job, w.job = w.job, None
                        _replace(pool, w, context)
                        yield job.rid, limits.timed_out(w.started)
    finally:
        for w in pool:
            w.stop()


def _replace(pool: list[_Worker], worker: _Worker, context: Any) -> str:
    """Stop ``worker`` and put a fresh one in its place; return how the old one ended."""
    why = worker.stop()
    pool[pool.index(worker)] = _Worker(context)
    return why


def _context() -> Any:
    if "forkserver" in _start_methods():
        context = get_context("forkserver")
        # the fork server imports the heavy modules once (the run's outputs, and every plugin
        # module this driver has imported to validate the sweep); each worker forks from it ready
        context.set_forkserver_preload(
            ["sim.sweep", "sim.runner", "pandas", "pyarrow.parquet", *_plugin_modules()]
        )
        return context
    return get_context("spawn")


def _worker_main(conn: Any, driver_pid: int) -> None:
    """A pool worker: run what the driver sends until it closes the pipe, or dies."""
    _die_with_driver()
    _worker_init()
    while True:
        try:
            args = conn.recv()
        except (EOFError, OSError):
            return
        conn.send(execute(*args))


def _die_with_driver() -> None:
    """Be killed when the parent (the fork server) ends, and let the fork server end with the
    driver: a killed driver then leaves no worker and no fork server running (Linux)."""
    from multiprocessing import forkserver

    # Every forked worker inherits the write end of the pipe whose EOF tells the fork
    # server that its driver is gone; closed here, the driver's death alone closes it.
    server = forkserver._forkserver  # noqa: SLF001 - no public handle on this fd
    if getattr(server, "_forkserver_alive_fd", None) is not None:
        os.close(server._forkserver_alive_fd)
        server._forkserver_alive_fd = None
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() == 1:  # the parent is already gone
        os._exit(1)


def _ray(jobs: list[Job], workers: int, limits: Limits, address: str | None) -> Iterator[tuple[str, dict]]:
    """Ray tasks, as many in flight as ``workers``; a crashed worker or a lost task is
    retried or recorded like a dead pool worker, and a task past ``timeout_s`` cancelled."""
    try:
        import ray
        from ray.exceptions import RayError, TaskCancelledError
    except ImportError:
        raise ConfigError("--backend ray: Ray is not installed; pip install 'ml-testbed[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    remote = ray.remote(num_cpus=1, max_retries=0)(_ray_execute)
    queue = deque(jobs)
    running: dict[Any, tuple[Job, float]] = {}
    try:
        while queue or running:
            while queue and len(running) < workers:
                job = queue.popleft()
                running[remote.remote(*job.args)] = (job, time.perf_counter())
            timeout = None
            if limits.timeout_s:
                timeout = max(
                    0.0, min(t + limits.timeout_s for _, t in running.values()) - time.perf_counter()
                )
            finished, _ = ray.wait(list(running), num_returns=1, timeout=timeout)
            for ref in finished:
                job, started = running.pop(ref)
                try:
                    outcome = ray.get(ref)
                except TaskCancelledError:
                    continue
                except RayError as exc:  # WorkerCrashedError, a lost node, an unpicklable result
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                    outcome = limits.died(job, f"{type(exc).__name__}: {first}", started)
                    if outcome is None:
                        queue.appendleft(job)
                        continue
                yield job.rid, outcome
            if limits.timeout_s:
                now = time.perf_counter()
                for ref, (job, started) in list(running.items()):
                    if now - started >= limits.timeout_s:
                        del running[ref]
                        ray.cancel(ref, force=True)
                        yield job.rid, limits.timed_out(started)
    finally:
        for ref in running:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        if started_here:
            ray.shutdown()


def _ray_execute(config: dict[str, Any], out_dir: str, plugins: list[str], report: bool) -> dict[str, Any]:
    _worker_init()
    return execute(config, out_dir, plugins, report)


def _worker_init() -> None:
    """One thread per worker process: the workers are the parallelism. torch, if a run
    imports it later, reads ``OMP_NUM_THREADS`` then; importing it here would cost every
    worker seconds."""
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    else:
        os.environ["OMP_NUM_THREADS"] = "1"
    # tqdm would otherwise make a multiprocessing lock (a named semaphore) in each worker,
    # which a stopped worker cannot unlink: the resource tracker then warns about a leak
    from tqdm import tqdm

    tqdm.set_lock(threading.RLock())


def _plugin_modules() -> list[str]:
    """Entry-point modules, and the kinds and policy families the driver has imported."""
    from importlib.metadata import entry_points

    heavy = [m for m in ("torch",) if m in sys.modules]  # the driver needed it to prepare the runs
    return [*(ep.value for ep in entry_points(group=registry.ENTRY_POINT_GROUP)), *registry.loaded(), *heavy]


def _start_methods() -> list[str]:
    from multiprocessing import get_all_start_methods

    return get_all_start_methods()


RUNNERS = {"serial": _serial, "pool": _pool, "ray": _ray}


class SweepLock:
    """``<out>/.lock``: held (``flock``) by the one driver working in ``out``, with its pid.

    The kernel drops the lock when its holder dies, however it dies, so a lock file
    left by a killed driver is stale by construction and the next driver takes it.
    """

    def __init__(self, out: Path):
        import fcntl

        self.path = out / ".lock"
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            owner = os.read(self.fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(self.fd)
            raise ConfigError(
                f"--out {out}: another sweep driver (pid {owner}) is working in this folder; "
                "wait for it to finish, or choose another folder"
            ) from None
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"{os.getpid()}\n".encode())

    def release(self) -> None:
        os.close(self.fd)  # closing drops the flock; the file stays, unlocked


def resolved_definition(sweep_spec: SweepSpec, bases: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The sweep as ``sweep.yaml`` holds it (bases inlined, overrides applied), without the
    settings that do not change results (``timeout_s``, ``retries``)."""
    data = sweep_spec.model_dump(mode="json", exclude={"timeout_s", "retries"})
    data["base"] = list(bases.values()) if isinstance(sweep_spec.base, list) else next(iter(bases.values()))
    return data


def differences(old: Any, new: Any, path: str = "") -> list[str]:
    """Dotted paths where two JSON-like trees differ, with both values when they are short."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [
            d
            for k in dict.fromkeys([*old, *new])
            for d in differences(old.get(k), new.get(k), f"{path}.{k}".lstrip("."))
        ]
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [
            d for i, (a, b) in enumerate(zip(old, new)) for d in differences(a, b, f"{path}.{i}".lstrip("."))
        ]
    if old == new:
        return []
    shown = f"{json.dumps(old)} -> {json.dumps(new)}"
    return [f"{path or '(top)'} ({shown})" if len(shown) <= 60 else path or "(top)"]


def sweep(
    source: str | Path | dict[str, Any],
    out: str | Path,
    *,
    backend: Literal["serial", "pool", "ray"] = "pool",
    workers: int | None = None,
    ray_address: str | None = None,
    resume: bool = False,
    force_new: bool = False,
    timeout_s: float | None = None,
    retries: int | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    run_reports: bool = False,
    progress: bool = True,
) -> pd.DataFrame:
    """Run a sweep into ``out``; return the table of all its runs (as ``summary.csv``).

    ``timeout_s`` and ``retries`` (if given) replace the sweep file's. ``resume``
    finishes the sweep stored in ``out`` and refuses a different one; ``force_new``
    deletes what ``out`` holds and starts again.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"--backend: {backend!r} is not one of {', '.join(BACKENDS)}")
    workers = os.cpu_count() or 1 if workers is None else workers
    if workers < 1:
        raise ConfigError(f"--workers: must be >= 1 (got {workers})")
    if timeout_s is not None and not 0 < timeout_s < math.inf:
        raise ConfigError(f"--timeout-s: must be a number of seconds > 0 (got {timeout_s})")
    if retries is not None and retries < 0:
        raise ConfigError(f"--retries: must be >= 0 (got {retries})")
    sweep_spec, bases = load_sweep(source, overrides)
    runs = plan(sweep_spec, bases)
    limits = Limits(
        timeout_s if timeout_s is not None else sweep_spec.timeout_s,
        retries if retries is not None else sweep_spec.retries,
    )
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    lock = SweepLock(out)
    try:
        definition = resolved_definition(sweep_spec, bases)
        store = _open_store(out, definition, runs, resume=resume, force_new=force_new)
        try:
            table = _drive(
                store, runs, out, sweep_spec, limits, backend, workers, ray_address, run_reports, progress
            )
        finally:
            store.close()
    finally:
        lock.release()
    return table


def _open_store(
    out: Path, definition: dict[str, Any], runs: list[dict[str, Any]], *, resume: bool, force_new: bool
) -> RunStore:
    """The run store of ``out``, checked to hold this sweep (or emptied first with ``force_new``)."""
    db = out / "runs.sqlite"
    if db.exists() and force_new:
        for name in ("runs.sqlite", "runs.sqlite-wal", "runs.sqlite-shm", "summary.csv", "sweep.yaml"):
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(out / "runs", ignore_errors=True)
    elif db.exists() and not resume:
        raise ConfigError(
            f"--out {out}: already holds a sweep; pass --resume to finish it, --force-new to start "
            "it again, or choose another folder"
        )
    (out / "runs").mkdir(exist_ok=True)
    store = RunStore(db)
    try:
        stored = store.definition()
        if stored is None and store.ids():
            stored = {}  # a store from before definitions were kept: compare what it has
        if stored is not None and stored != definition:
            changed = differences(stored, definition)
            extra = sorted(store.ids() - {r["id"] for r in runs})
            shown = "; ".join(changed[:4]) + (f"; and {len(changed) - 4} more" if len(changed) > 4 else "")
            if extra and not changed:
                shown = f"{len(extra)} stored runs are not runs of this sweep"
            raise ConfigError(
                f"--resume: {out} holds a different sweep (differs in {shown}); "
                "pass --force-new to start it again, or choose another folder"
            )
        store.set_definition(definition)
        store.add(runs)
    except BaseException:
        store.close()
        raise
    _write_sweep_file(out, definition)
    return store


def _drive(
    store: RunStore,
    runs: list[dict[str, Any]],
    out: Path,
    sweep_spec: SweepSpec,
    limits: Limits,
    backend: str,
    workers: int,
    ray_address: str | None,
    run_reports: bool,
    progress: bool,
) -> pd.DataFrame:
    """Run what is not done yet, record each outcome, and write ``summary.csv`` whatever happens."""
    for stale in (out / "runs").glob("*.partial"):  # left by a killed run; this driver holds the lock
        shutil.rmtree(stale, ignore_errors=True)
    done = store.done_ids()
    todo = []
    for r in runs:
        if r["id"] in done:
            continue
        folder = out / "runs" / r["id"]
        found = _finished_folder(folder)
        if found is not None:  # whole (folders are renamed into place) but not recorded: record it
            store.record(r["id"], DONE, *found, None)
            continue
        todo.append(Job(r["id"], (r["config"], str(folder), sweep_spec.plugins, run_reports)))
    from tqdm import tqdm

    ok, failed = len(runs) - len(todo), 0
    try:
        with (
            tqdm(total=len(runs), initial=ok, desc=sweep_spec.name, unit="run", disable=not progress) as bar,
            _terminate_as_exit(),
        ):
            for rid, outcome in RUNNERS[backend](todo, workers, limits, ray_address):
                store.record(
                    rid, outcome["status"], outcome["metrics"], outcome["wall_time_s"], outcome["error"]
                )
                ok += outcome["status"] == DONE
                failed += outcome["status"] == FAILED
                bar.set_postfix(done=ok, failed=failed)
                bar.update(1)
    finally:
        table = store.frame()
        table.to_csv(out / "summary.csv", index=False)
    return table


def _finished_folder(folder: Path) -> tuple[dict[str, float], float] | None:
    """``(summary, wall_time_s)`` of a whole run folder, or None if there is none (or it is unreadable)."""
    try:
        summary = json.loads((folder / "summary.json").read_text())
        meta = json.loads((folder / "run.json").read_text())
        metrics = {k: math.nan if v is None else float(v) for k, v in summary.items()}
        return metrics, float(meta.get("wall_time_s", 0.0))
    except (OSError, ValueError, TypeError, AttributeError):
        return None


@contextlib.contextmanager
def _terminate_as_exit() -> Iterator[None]:
    """SIGTERM (and SIGHUP) end the driver like Ctrl-C: the backends' cleanup stops the workers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    saved = {s: signal.signal(s, stop) for s in (signal.SIGTERM, getattr(signal, "SIGHUP", signal.SIGTERM))}
    try:
        yield
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)


def _write_sweep_file(out: Path, definition: dict[str, Any]) -> None:
    """``sweep.yaml``: the resolved sweep with its base scenarios inlined, for the report."""
    import yaml

    (out / "sweep.yaml").write_text(yaml.safe_dump(definition, sort_keys=False))
