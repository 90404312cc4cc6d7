"""The default what-if study: what if AR gaming's frame rates doubled on a big.LITTLE headset?

XRBench AR gaming (hand tracking 45 fps, depth estimation 30 fps, plane detection
15 fps; embedded here, no file needed) on a big.LITTLE dual (Dual_4K_bl: 3K + 1K PEs),
at the reference frame rates and at twice them (``load_scale``), under FCFS, EDF and
SDRM3, three seeds: a run folder and report per run, and a comparison report. At the
reference rates the accelerators have slack and the schedulers nearly tie; at twice
the rates they have none, so the order and placement of jobs decide which frames are
late, and the schedulers part ways. The demo prints both, from the runs.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from sim.compare import render_sweep_report
from sim.config import load_yaml
from sim.errors import ConfigError
from sim.sweep import sweep

AR_GAMING = [
    {"name": "hand_tracking", "fps": 45},
    {"name": "depth_estimation", "fps": 30},
    {"name": "plane_detection", "fps": 15},
]
STUDY = {
    "name": "demo_ar_gaming_double_rate",
    "base": {
        "kind": "xr",
        "name": "ar_gaming",
        "duration_s": 2.0,
        "hardware": {"preset": "Dual_4K_bl"},
        "models": AR_GAMING,
    },
    "grid": {"load_scale": [1.0, 2.0], "scheduler.name": ["fcfs", "edf", "sdrm3"]},
    "seeds": [0, 1, 2],
    "baseline": {"scheduler.name": "fcfs"},
    "highlight": "sdrm3",
}


def _explain(table: pd.DataFrame) -> list[str]:
    """Per load: the schedulers' mean UXCost, late share and XRBench score, and their spread."""
    lines = []
    means = table.groupby(["load_scale", "scheduler.name"])[["uxcost", "deadline_miss_rate", "xrbench_score"]]
    for load, group in means.mean().groupby(level="load_scale"):
        ux = group["uxcost"]
        cells = ", ".join(
            f"{name} {row.uxcost:.3g} J*s ({row.deadline_miss_rate:.1%} late, score {row.xrbench_score:.1f})"
            for (_, name), row in group.iterrows()
        )
        lines.append(f"  load x{load:g}: UXCost spread {100 * (ux.max() / ux.min() - 1):.1f}% -- {cells}")
    return lines


def run_demo(out: Path) -> Path:
    """Run the study into ``out`` (replacing an earlier demo there); return the report's path."""
    if (out / "sweep.yaml").is_file():
        if load_yaml(out / "sweep.yaml").get("name") != STUDY["name"]:
            raise ConfigError(f"--out {out}: holds another sweep; choose an empty folder")
        shutil.rmtree(out)
    elif out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out {out}: exists and is not empty; choose an empty folder")
    table = sweep(STUDY, out, backend="serial", run_reports=True, progress=False)
    print("AR gaming on Dual_4K_bl, mean of 3 seeds (lower UXCost is better):")
    print("\n".join(_explain(table)))
    print(
        "  with twice the frames there is no slack: which job runs first, and where, decides which are late"
    )
    return render_sweep_report(out)
