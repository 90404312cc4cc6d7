"""Start-up cost of the CLI: CPU seconds of whole ``testbed`` processes (target < 1 s).

The commands: ``--version``, ``list``, ``describe`` of every scenario kind and every
policy and model, and ``validate`` of every shipped file under ``scenarios/`` (sweeps
included). Each runs ``--repeat`` times as a fresh ``python -m sim.cli`` process; the
median user + system CPU time is printed (wall time too; on a busy machine wall time
is the less telling number), and any over 1 s is flagged. ``list`` and ``describe`` read
the registry's cache of descriptions (one warm-up ``list`` fills it). Profile a slow one
with ``python -X importtime -m sim.cli ...``.

With ``--before-ref REF`` it compares whole processes of this tree with those of commit
REF (checked out in a temporary git worktree, run with its own code): ``list``, one
market episode (``scenarios/market/insurance_market.yaml``: 18 predictors, budget 400,
10,000 users) and one federated run (FedAvg on digits, 100 clients x 10 rounds, the
workload of ``benchmarks/federated.py``), each ``testbed run`` with its report. Each
tree runs each command once untimed first (caches: trained weights, datasets), then
``--repeat`` times interleaved with the other tree; medians of wall and CPU seconds.
Issue 14's "before" is 854cbb1, the last commit before the session that filed it.

    python benchmarks/startup.py [--repeat 3] [--before-ref 854cbb1]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def commands() -> list[list[str]]:
    """Every command the benchmark times (see the module docstring)."""
    from sim.describe import catalog

    described = [
        [name] if family == "scenario" else [family, name]
        for family, names in catalog().items()
        for name in names
    ]
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "scenarios").rglob("*.yaml"))
    return [
        ["--version"],
        ["list"],
        *(["describe", *d] for d in described),
        *(["validate", f] for f in files),
    ]


def cpu_and_wall(argv: list[str], root: Path = ROOT) -> tuple[float, float]:
    """(CPU s, wall s) of one ``python -m sim.cli ARGV`` process of the tree at ``root``, run there."""
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "sim.cli", *argv], cwd=root, env=env, capture_output=True)
    if done.returncode:
        raise SystemExit(f"testbed {' '.join(argv)} (in {root}) failed:\n{done.stderr.decode()[-2000:]}")
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), wall


def whole_runs(tmp: Path, root: Path) -> dict[str, list[str]]:
    """The commands of the before/after comparison for the tree at ``root`` (``--out``
    folders under ``tmp``). The federated workload is written in the first file format
    that tree accepts: older trees had only the MLP, and no ``model.arch`` field."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from federated import testbed_spec

    spec = testbed_spec(clients=100, rounds=10, epochs=2, seed=0)
    mlp_only = {**spec, "model": {k: v for k, v in spec["model"].items() if k != "arch"}}
    for i, candidate in enumerate((spec, mlp_only)):
        federated = tmp / f"federated-{root.name}-{i}.yaml"
        federated.write_text(yaml.safe_dump(candidate))
        env = {**os.environ, "PYTHONPATH": str(root)}
        check = [sys.executable, "-m", "sim.cli", "validate", str(federated)]
        if subprocess.run(check, cwd=root, env=env, capture_output=True).returncode == 0:
            break
    data = (ROOT.parent / "shared" / "data").resolve()  # the market file's ../shared/data, made absolute
    market = [
        str(ROOT / "scenarios" / "market" / "insurance_market.yaml"),
        *(
            "--set",
            f"data.csv_x={data / 'insurance_X.csv'}",
            "--set",
            f"data.csv_y={data / 'insurance_Y.csv'}",
        ),
    ]
    return {
        "list": ["list"],
        "market episode (insurance, budget 400)": ["run", *market, "--out", str(tmp / "market")],
        "federated run (digits, 100 x 10)": ["run", str(federated), "--out", str(tmp / "federated")],
    }


def before_after(ref: str, repeat: int) -> None:
    """Whole processes of commit ``ref`` against this tree, interleaved; medians."""
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        old = tmp / "before"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old), ref], check=True)
        try:
            sha = subprocess.run(
                ["git", "-C", str(old), "rev-parse", "--short", "HEAD"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
            print(f"\nwhole processes, before = {sha} (its own code) vs this tree; median of {repeat}")
            heads = ("before wall s", "after wall s", "before CPU s", "after CPU s")
            print(f"{'':<40} " + " ".join(f"{h:>13}" for h in heads) + "  wall speed-up")
            commands = {root: whole_runs(tmp, root) for root in (old, ROOT)}
            for label in commands[ROOT]:
                runs: dict[Path, list[tuple[float, float]]] = {old: [], ROOT: []}
                for i in range(repeat + 1):  # the first of each is untimed: caches are filled
                    for root in (old, ROOT):
                        args = list(commands[root][label])
                        if "--out" in args:
                            args[args.index("--out") + 1] += f"-{root.name}-{i}"
                        timed = cpu_and_wall(args, root)
                        if i:
                            runs[root].append(timed)
                (bw, aw), (bc, ac) = (
                    [statistics.median(r[k] for r in runs[t]) for t in (old, ROOT)] for k in (1, 0)
                )
                print(f"{label:<40} {bw:13.2f} {aw:13.2f} {bc:13.2f} {ac:13.2f}  {bw / aw:12.1f}x")
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--before-ref", help="also compare whole processes with this commit (e.g. 854cbb1)")
    parser.add_argument("--skip-commands", action="store_true", help="only the --before-ref comparison")
    args = parser.parse_args()
    if args.before_ref and args.skip_commands:
        before_after(args.before_ref, args.repeat)
        return
    cpu_and_wall(["list"])  # fills the registry's description cache if it is stale
    print(f"median of {args.repeat} processes{'':<33} CPU s   wall s   (target: CPU < 1 s)")
    over = []
    for argv in commands():
        runs = [cpu_and_wall(argv) for _ in range(args.repeat)]
        cpu = statistics.median(r[0] for r in runs)
        wall = statistics.median(r[1] for r in runs)
        if cpu >= 1:
            over.append(" ".join(argv))
        print(f"  testbed {' '.join(argv):<60} {cpu:6.2f}  {wall:6.2f}{'  OVER 1 s' if cpu >= 1 else ''}")
    print(f"{len(over)} command(s) over 1 s of CPU" + (f": {', '.join(over)}" if over else ""))
    if args.before_ref:
        before_after(args.before_ref, args.repeat)


if __name__ == "__main__":
    main()
