"""Run your own multi-exit network in the edge kind: exit early or run it to the end.

``TwoExitNet`` (``my_models.py``) declares its two exit heads; the edge kind trains it on
the digits data (cached on disk, keyed by its source) and replays its real outputs per
request. With no early exit every request runs both stages; the ``max_softmax`` rule
leaves at the first exit when it is confident enough, trading accuracy for FLOPs and
active energy (at this load the device idles most of the time, so its total energy per
inference moves less).

    python examples/my_edge_model.py [--duration 2]
"""

from __future__ import annotations

import argparse

from sim.runner import load_spec, run


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=2.0, help="simulated seconds")
    args = parser.parse_args(argv)
    results = {}
    for rule in ("none", "max_softmax"):
        spec = {
            "kind": "edge",
            "duration_s": args.duration,
            "model": "my_models:TwoExitNet",
            "model_kwargs": {"width": 8},
            "dataset": "digits",
            "exit_policy": {"name": rule},
            "dvfs": {"name": "performance"},
        }
        s = results[rule] = run(load_spec(spec), seed=0).summary
        print(
            f"exit rule {rule:<11}: accuracy {s['accuracy']:.3f}, "
            f"energy {s['energy_per_inference_j'] * 1e3:.3f} mJ/inference "
            f"(active {s['active_energy_per_inference_j'] * 1e6:.1f} uJ), "
            f"{s['flops_per_inference']:.3g} FLOPs/inference, mean exit {s['mean_exit_index']:.2f}"
        )
    return results


if __name__ == "__main__":
    main()
