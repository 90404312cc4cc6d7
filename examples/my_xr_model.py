"""Run your own model in the xr kind: a tiny keypoint tracker beside XRBench's eye segmentation.

The tracker (``TinyTracker`` in ``my_models.py``) is registered as ``tiny_tracker`` and
used by name, at two widths (``task_kwargs``); the cost model prices its traced layers on
the default accelerators, so the wider tracker costs more energy.

    python examples/my_xr_model.py [--duration 0.5]
"""

from __future__ import annotations

import argparse

from sim.runner import load_spec, run


def main(argv: list[str] | None = None) -> dict[int, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=0.5, help="simulated seconds")
    args = parser.parse_args(argv)
    import my_models  # noqa: F401 - beside this script; registers tiny_tracker, as --plugin my_models would

    results = {}
    for width in (16, 64):
        tracker = {"name": "tracker", "task": "tiny_tracker", "task_kwargs": {"width": width}, "fps": 45}
        models = [{"name": "eye_segmentation", "fps": 60}, tracker]
        summary = run(
            load_spec({"kind": "xr", "duration_s": args.duration, "models": models}), seed=0
        ).summary
        results[width] = summary
        print(
            f"tracker width {width:>2}: energy {summary['energy_j']:.4g} J, "
            f"p99 latency {summary['latency_p99_s'] * 1e3:.3f} ms, "
            f"deadline misses {summary['deadline_miss_rate']:.1%}"
        )
    return results


if __name__ == "__main__":
    main()
