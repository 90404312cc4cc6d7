"""The analytic cost model against XRBench's reference run, and the task models against its layer lists.

Table 1 (cost calibration): per-inference latency and energy of VR gaming's three
models on Single_4K with WS, from the project's analytic cost model, costed from
XRBench's own layer lists (MAESTRO ``.m``, read as MAESTRO does: no padding) and from
the PyTorch task models, each with its ratio to the reference run's schedule
(``eval_data/schedule_*.csv``: completion - dispatch, and energy, per inference).

Table 2 (``--models``): every network of the seven scenarios against its PyTorch
task model: input, layers (the lists hold only weight layers, so the model's conv and
linear layers are counted) and GMACs (the model's include attention matmuls; the list's
counted as MAESTRO reads it and, for comparison, with "same" padding).

    python benchmarks/xrbench_costs.py [--models] [--xrbench ../shared/reference/xrbench]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from devices.cost import cost_table
from devices.hardware import preset
from devices.maestro import read_networks
from workloads.xr.models import XRBENCH_NETWORKS, example_input, task_layers

DEFAULT_XRBENCH = Path(__file__).resolve().parents[1] / ".." / "shared" / "reference" / "xrbench"
SCHEDULE = "eval_data/schedule_VR_gaming__Single_4K__WS.csv"


def reference_costs(xrbench: Path) -> pd.DataFrame:
    """Per-inference latency (ms) and energy (mJ) of each model in the reference run (medians)."""
    ref = pd.read_csv(xrbench / SCHEDULE)
    ref["latency_ms"] = ref["Completion Time (ms)"] - ref["Dispatch Time (ms)"]
    return ref.groupby("Model Name")[["latency_ms", "Energy (mJ)"]].median()


def calibration_rows(xrbench: Path) -> list[dict[str, object]]:
    """One row per (model, layer source): analytic ms and mJ on Single_4K-WS and ratios to the reference."""
    system = preset("Single_4K", "WS")
    nets = read_networks(xrbench / "usage_scenarios" / "VR_gaming.m")
    rows = []
    for network, (ref_ms, ref_mj) in reference_costs(xrbench).iterrows():
        task = XRBENCH_NETWORKS[network]
        for source, layers in (("XRBench .m", nets[network].layers), ("PyTorch model", task_layers(task))):
            latency, energy = cost_table(network, layers, system)
            ms, mj = latency.sum() * 1e3, energy.sum() * 1e3
            rows.append(
                {
                    "model": network,
                    "layers from": source,
                    "GMACs": sum(layer.macs for layer in layers) / 1e9,
                    "ms": ms,
                    "ref ms": ref_ms,
                    "latency ratio": ms / ref_ms,
                    "mJ": mj,
                    "ref mJ": ref_mj,
                    "energy ratio": mj / ref_mj,
                }
            )
    return rows


def model_rows(xrbench: Path) -> list[dict[str, object]]:
    """One row per network of the seven scenarios: its layer list against its PyTorch task model."""
    rows, seen = [], set()
    for path in sorted((xrbench / "usage_scenarios").glob("*.m")):
        same = read_networks(path, padding="same")
        for network, net in read_networks(path).items():
            task = XRBENCH_NETWORKS[network]
            if task in seen:
                continue
            seen.add(task)
            ours = [layer for layer in task_layers(task) if layer.op != "other"]
            weighted = [layer for layer in ours if layer.op in ("conv", "linear")]
            first = same[network].layers[0]  # "same": out_rows x columns are the listed Y x X
            rows.append(
                {
                    "network": network,
                    "task": task,
                    "first layer C x Y x X": f"{first.in_channels * first.groups}x{first.out_rows}"
                    f"x{first.out_pixels // first.out_rows}",
                    "model input": "x".join(map(str, example_input(task).shape[1:])),
                    "listed layers": len(net.layers),
                    "model conv/linear layers": len(weighted),
                    "GMACs (MAESTRO)": sum(layer.macs for layer in net.layers) / 1e9,
                    "GMACs (same)": sum(layer.macs for layer in same[network].layers) / 1e9,
                    "model GMACs": sum(layer.macs for layer in ours) / 1e9,
                }
            )
    return rows


def markdown(rows: list[dict[str, object]]) -> str:
    """A markdown table of ``rows`` (floats to 3 decimals), ready for docs/cost_model.md."""
    cols = list(rows[0])
    cell = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(row[c]) for c in cols) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--xrbench", type=Path, default=DEFAULT_XRBENCH)
    parser.add_argument("--models", action="store_true", help="also compare every network with its model")
    args = parser.parse_args()
    print(markdown(calibration_rows(args.xrbench)))
    if args.models:
        print()
        print(markdown(model_rows(args.xrbench)))


if __name__ == "__main__":
    main()
