"""Command line: ``testbed run | sweep | validate | list | describe | profile | report | demo``.

A user's mistake (bad file, bad value, unknown name) or an operating-system error
(unwritable folder, name too long) prints one line per problem to stderr and exits
with code 2; no traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sim import registry
from sim.config import path_safe
from sim.errors import ConfigError

EXIT_USAGE = 2


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ml-testbed")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set scheduler.name=fcfs (repeatable)",
    )
    parser.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE (a module name found from the working folder, or a path to a .py "
        "file) first so its kinds and policies register (repeatable)",
    )
    parser.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="full traceback of a policy's error"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="testbed", description="Discrete-event testbed for ML systems research."
    )
    parser.add_argument("--debug", action="store_true", help="print the full traceback of a policy's error")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "run",
        help="run one scenario file",
        description="Run one scenario and write summary.json, config.yaml, "
        "tables/*.parquet and report.html to --out.",
    )
    p.add_argument("file", help="scenario YAML file")
    p.add_argument("--out", help="output folder (default: runs/<name>-seed<seed>)")
    p.add_argument("--seed", type=int, help="run seed (default: the file's `seed`, else 0)")
    p.add_argument("--no-report", action="store_true", help="skip the HTML report and figures")
    p.add_argument("--force", action="store_true", help="replace the run folder already at --out")
    _common(p)

    p = sub.add_parser(
        "sweep",
        help="run a study: a base scenario x factors x seeds",
        description="Run every point of a sweep file on local processes (pool), "
        "in this process (serial) or on a Ray cluster (ray). Results: "
        "DIR/runs.sqlite, DIR/runs/<id>/, DIR/summary.csv, "
        "DIR/report.html. Exit 1 if any run failed or is not done.",
    )
    p.add_argument("file", help="sweep YAML file")
    p.add_argument("--out", help="output folder (default: runs/<sweep name>)")
    p.add_argument("--backend", default="pool", choices=("serial", "pool", "ray"), help="default: pool")
    p.add_argument("--workers", type=int, help="parallel runs, >= 1 (default: CPU count)")
    p.add_argument("--ray-address", help="Ray cluster address (default: start a local Ray)")
    p.add_argument("--resume", action="store_true", help="finish the same sweep in --out, skipping runs done")
    p.add_argument(
        "--force-new", action="store_true", help="delete the sweep in --out and start this one there"
    )
    p.add_argument("--timeout-s", type=float, help="stop a run after this many wall seconds (failed)")
    p.add_argument("--retries", type=int, help="tries again for a run whose worker died (default 1)")
    p.add_argument("--run-reports", action="store_true", help="also write each run's HTML report")
    p.add_argument("--no-report", action="store_true", help="skip the comparison report")
    _common(p)

    p = sub.add_parser(
        "validate",
        help="check a scenario or sweep file without running it",
        description="Exit 0 if the file is valid (for a sweep: every run it expands to), "
        "else exit 2 with one line per problem.",
    )
    p.add_argument("file")
    _common(p)

    p = sub.add_parser("list", help="scenario kinds and policies by family")
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE")

    p = sub.add_parser(
        "describe",
        help="every parameter of a scenario kind or a policy",
        description="testbed describe KIND (e.g. xr) or testbed describe FAMILY NAME (e.g. scheduling "
        "sdrm3): each parameter's config path, type, default, allowed range and description.",
    )
    p.add_argument("target", nargs="+", metavar="KIND | FAMILY NAME")
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE")

    p = sub.add_parser(
        "profile",
        help="measure a model's per-layer latency here and write a profile CSV",
        description="Time MODEL layer by layer on this machine and write the profile CSV its kind "
        "reads: for an xr model (a task name or module:factory) hardware.profile_csv's model, layer, "
        "device, latency_s, energy_j; for an edge multi-exit model (a built-in exit model name, or "
        "module:factory with --kind edge or an edge option) devices.<i>.device.profile_csv's layer, "
        "freq_hz, latency_s, power_w, for the one frequency step --freq-hz. Energy is not measured: "
        "it comes from --power-w.",
    )
    p.add_argument("model", help="xr task name (e.g. keyword_detection), exit model name or module:factory")
    p.add_argument("--out", required=True, help="CSV file to write")
    p.add_argument("--power-w", type=float, required=True, help="the device's active power, W")
    p.add_argument(
        "--kind",
        choices=tuple(PROFILE_OPTIONS),
        help="whose profile to write (default: edge for an exit model name or an edge option, else xr)",
    )
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="torch device (default: cpu)")
    p.add_argument("--batch", type=int, default=1, help="batch size (default: 1; edge: 1 only)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    p.add_argument("--warmup", type=int, default=3, help="untimed passes first (default: 3)")
    p.add_argument("--repeats", type=int, default=10, help="timed passes; medians (default: 10)")
    p.add_argument("--device-name", help="xr: accelerator name the rows are for (default: host)")
    p.add_argument("--input-shape", help="xr: input shape with batch, e.g. 1,3,32,32 (default: the task's)")
    p.add_argument(
        "--freq-hz",
        type=float,
        help="edge: the clock the rows are for, in Hz (default: the one this machine reports, if any)",
    )
    p.add_argument(
        "--dataset", help="edge: the dataset a module:factory model is trained on (default: digits)"
    )
    p.add_argument(
        "--model-kwargs", help='edge: a module:factory model\'s keyword arguments, JSON ({"width": 32})'
    )
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE")

    p = sub.add_parser("report", help="re-render the report of a run or sweep folder")
    p.add_argument("dir")
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE")

    p = sub.add_parser(
        "demo",
        help="run the default what-if study (embedded defaults)",
        description="What if AR gaming's frame rates doubled on a big.LITTLE headset (Dual_4K_bl)? "
        "FCFS, EDF and SDRM3 at 1x and 2x, three seeds: a run folder per run and a comparison report.",
    )
    p.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    return parser


def _cmd_run(args: argparse.Namespace) -> int:
    from sim.runner import load_spec, run, write_run

    spec = load_spec(args.file, args.sets)
    seed = spec.seed if args.seed is None else args.seed
    name = getattr(spec, "name", spec.kind)
    out = Path(args.out or f"runs/{path_safe(f'{name}-seed{seed}')}")
    if not args.force and (out.is_symlink() or out.is_file() or (out.is_dir() and any(out.iterdir()))):
        raise ConfigError(f"--out {out}: exists and is not empty; choose another folder or add --force")
    result = run(spec, seed=args.seed, progress=sys.stderr.isatty())
    write_run(result, out, report=not args.no_report)
    print(f"wrote {out}  ({result.wall_time_s:.2f} s wall)")
    for key in registry.get("scenario", result.kind).headline_metrics:
        if key in result.summary:
            print(f"  {key} = {result.summary[key]:.6g}")
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from sim.compare import render_sweep_report
    from sim.sweep import load_sweep, sweep

    spec, _ = load_sweep(args.file, args.sets)
    out = Path(args.out or f"runs/{path_safe(spec.name)}")
    table = sweep(
        args.file,
        out,
        backend=args.backend,
        workers=args.workers,
        ray_address=args.ray_address,
        resume=args.resume,
        force_new=args.force_new,
        timeout_s=args.timeout_s,
        retries=args.retries,
        overrides=args.sets,
        run_reports=args.run_reports,
        progress=sys.stderr.isatty(),
    )
    counts = table["status"].value_counts()
    done, failed = int(counts.get("done", 0)), int(counts.get("failed", 0))
    if not args.no_report:
        render_sweep_report(out)
    pending = len(table) - done - failed
    print(f"wrote {out}: {done} runs done, {failed} failed, {pending} not done")
    return 0 if done == len(table) else 1


def _cmd_validate(args: argparse.Namespace) -> int:
    from sim.config import load_yaml
    from sim.runner import load_spec

    data = load_yaml(args.file)
    if "kind" not in data and "base" in data:  # a sweep file: check every run it expands to
        from sim.sweep import check, load_sweep

        sweep_spec, bases = load_sweep(args.file, args.sets)
        print(f"{args.file}: valid sweep of {check(sweep_spec, bases)} runs")
        return 0
    spec = load_spec(args.file, args.sets)
    print(f"{args.file}: valid {spec.kind} scenario")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from sim.describe import catalog

    for family, entries in catalog().items():
        print(f"{family}:")
        for name, description in entries.items():
            print(f"  {name:<18} {description}")
    return 0


def _cmd_describe(args: argparse.Namespace) -> int:
    from sim.describe import describe

    print("\n".join(describe(args.target)))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from sim.compare import render_sweep_report
    from sim.runner import render_run_report

    folder = Path(args.dir)
    is_sweep = (folder / "sweep.yaml").is_file()
    print(f"wrote {render_sweep_report(folder) if is_sweep else render_run_report(folder)}")
    return 0


# each kind's own options of `testbed profile` (the others are common to every kind)
PROFILE_OPTIONS = {"xr": ("device_name", "input_shape"), "edge": ("freq_hz", "dataset", "model_kwargs")}


def _profile_kind(args: argparse.Namespace) -> str:
    """The kind whose profile ``args.model`` gets: ``--kind``, else the kind that names it among
    its ``profile_models``, else the one kind whose own options were given, else xr (task
    names, registered models and factories)."""
    if args.kind:
        return args.kind
    for kind in PROFILE_OPTIONS:
        if args.model in getattr(registry.get("scenario", kind), "profile_models", ()):
            return kind
    given = [k for k, names in PROFILE_OPTIONS.items() if any(getattr(args, n) is not None for n in names)]
    return given[0] if len(given) == 1 else "xr"


def _cmd_profile(args: argparse.Namespace) -> int:
    import json
    import math

    for field in ("batch", "threads", "repeats"):
        if getattr(args, field) < 1:
            raise ConfigError(f"--{field}: {getattr(args, field)} is not allowed; need an integer >= 1")
    if args.warmup < 0:
        raise ConfigError(f"--warmup: {args.warmup} is not allowed; need an integer >= 0")
    if not math.isfinite(args.power_w) or args.power_w < 0:
        raise ConfigError(f"--power-w: {args.power_w} is not allowed; need a finite number >= 0")
    kind = _profile_kind(args)
    options = {}
    for kind_of, names in PROFILE_OPTIONS.items():
        for name in names:
            if getattr(args, name) is None:
                continue
            if kind_of != kind:
                flag = "--" + name.replace("_", "-")
                given = f"{args.model!r} is profiled as {kind}"
                raise ConfigError(f"{flag}: only for an {kind_of} model (--kind {kind_of}); {given}")
            options[name] = getattr(args, name)
    if "input_shape" in options:
        try:
            shape = tuple(int(n) for n in args.input_shape.split(","))
        except ValueError:
            shape = ()
        if not shape or min(shape) < 1:
            raise ConfigError(f"--input-shape: {args.input_shape!r} is not a shape; need e.g. 1,3,32,32")
        options["input_shape"] = shape
    if "model_kwargs" in options:
        try:
            options["model_kwargs"] = json.loads(args.model_kwargs)
        except ValueError:
            options["model_kwargs"] = None
        if not isinstance(options["model_kwargs"], dict):
            raise ConfigError(
                f"--model-kwargs: {args.model_kwargs!r} is not a JSON object; need e.g. '{{\"width\": 32}}'"
            )
    # the kind writes its own profile CSV (its models, its format); the engine only asks for one
    print(
        registry.get("scenario", kind).profile(
            args.model,
            Path(args.out),
            power_w=args.power_w,
            device=args.device,
            batch=args.batch,
            threads=args.threads,
            warmup=args.warmup,
            repeats=args.repeats,
            **options,
        )
    )
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from sim.demo import run_demo

    print(f"wrote {run_demo(Path(args.out))}")
    return 0


COMMANDS = {
    "run": _cmd_run,
    "sweep": _cmd_sweep,
    "validate": _cmd_validate,
    "list": _cmd_list,
    "describe": _cmd_describe,
    "report": _cmd_report,
    "profile": _cmd_profile,
    "demo": _cmd_demo,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        registry.load_plugins(getattr(args, "plugin", []) or [])
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        if getattr(args, "debug", False) and getattr(exc, "debug_traceback", None):
            print(exc.debug_traceback, file=sys.stderr, end="")
        for line in exc.problems:
            print(f"error: {line}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # a folder that cannot be written, a name too long, a full disk
        where = exc.filename if exc.filename is not None else ""
        reason = exc.strerror or type(exc).__name__
        print(f"error: {where}: {reason}" if where else f"error: {reason}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
