"""The example scripts still run: a user's own purchase policy, loaded as a plugin, in a pool sweep."""

import subprocess
import sys

import pandas as pd
from conftest import ROOT


def test_own_purchase_policy_compares_in_a_pool_sweep(tmp_path):
    out = tmp_path / "compare"
    args = ["--out", str(out), "--users", "300", "--seeds", "2", "--workers", "2"]
    script = ROOT / "examples" / "compare_purchase_policies.py"
    done = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(out / "summary.csv")
    assert (table["status"] == "done").all() and len(table) == 8
    bought = table.groupby("predictors.0.purchase.name")["purchases"].sum()
    assert bought["none"] == 0 and bought["least_confidence"] > 0  # the plugin ran, and it buys
    assert "least_confidence" in done.stdout and (out / "report.html").is_file()
