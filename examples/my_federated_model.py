"""Train your own client model in the federated kind, against the built-in MLP.

``client_net`` (``my_models.py``, LayerNorm and GELU, parameters only) is named by its
factory path; every round's selected clients train it as one stacked model. Prints
accuracy, upload volume and client energy for both models.

    python examples/my_federated_model.py [--rounds 5]
"""

from __future__ import annotations

import argparse

from sim.runner import load_spec, run


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    models = {"built-in mlp": {"arch": "mlp"}, "my client_net": {"arch": "my_models:client_net"}}
    results = {}
    for label, model in models.items():
        spec = {"kind": "federated", "rounds": args.rounds, "model": model}
        s = results[label] = run(load_spec(spec), seed=0).summary
        print(
            f"{label:<14}: accuracy {s['final_accuracy']:.3f}, uploaded {s['bytes_up'] / 1e6:.2f} MB, "
            f"client energy {s['client_energy_j']:.1f} J"
        )
    return results


if __name__ == "__main__":
    main()
