"""The default what-if study: what if the headset's accelerator became a big.LITTLE pair?

XRBench VR gaming (the ``xr`` kind's embedded defaults) on one 4K-PE accelerator and
on a big.LITTLE dual (3K + 1K PEs), each under FCFS and EDF: a small sweep with one
run folder and report per run, and a comparison report linking them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sim.compare import render_sweep_report
from sim.config import load_yaml
from sim.errors import ConfigError
from sim.sweep import sweep

STUDY = {
    "name": "demo_vr_gaming_big_little",
    "base": {"kind": "xr", "name": "vr_gaming", "duration_s": 2.0},
    "grid": {"hardware.preset": ["Single_4K", "Dual_4K_bl"], "scheduler.name": ["fcfs", "edf"]},
    "seeds": [0],
    "baseline": {"scheduler.name": "fcfs"},
}


def run_demo(out: Path) -> Path:
    """Run the study into ``out`` (replacing an earlier demo there); return the report's path."""
    if (out / "sweep.yaml").is_file():
        if load_yaml(out / "sweep.yaml").get("name") != STUDY["name"]:
            raise ConfigError(f"--out {out}: holds another sweep; choose an empty folder")
        shutil.rmtree(out)
    elif out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out {out}: exists and is not empty; choose an empty folder")
    table = sweep(STUDY, out, backend="serial", run_reports=True, progress=False)
    for _, row in table.iterrows():
        print(
            f"  {row['hardware.preset']:<10} {row['scheduler.name']:<5} "
            f"xrbench_score={row['xrbench_score']:.2f} uxcost={row['uxcost']:.4g} "
            f"deadline_miss_rate={row['deadline_miss_rate']:.3f}"
        )
    return render_sweep_report(out)
