"""The edge study's headline: Predictive Exit against the plain network and the best classic
exit at equal accuracy and misses, paired over seeds."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from workloads.edge.study import headline, paired_change

PRESET = "devices.0.device.preset"
FACTORS = [PRESET, "exit_policy.name", "dvfs.name"]


def _done() -> pd.DataFrame:
    """Per preset and seed: the plain network, SDN, a cheaper entropy rule that misses deadlines,
    a cheaper but less accurate budgeted rule, and Predictive Exit with and without its DVFS."""
    rows = []
    for preset, scale in (("nano", 1.0), ("cpu", 0.5)):
        for seed in range(4):
            wobble = 1 + 0.01 * seed
            for exit_name, governor, energy, flops, accuracy, misses in (
                ("none", "performance", 10.0, 100.0, 0.86, 0.01),
                ("max_softmax", "performance", 8.0, 50.0, 0.853, 0.0),
                ("entropy", "deadline_aware", 5.0, 55.0, 0.853, 0.2),
                ("budgeted", "performance", 3.0, 20.0, 0.25, 0.0),
                ("predictive_exit", "predictive", 7.0 * wobble, 60.0, 0.853, 0.0),
                ("predictive_exit", "performance", 7.5, 60.0, 0.853, 0.0),
            ):
                rows.append(
                    {
                        PRESET: preset,
                        "exit_policy.name": exit_name,
                        "dvfs.name": governor,
                        "seed": seed,
                        "energy_per_inference_j": scale * energy,
                        "flops_per_inference": flops,
                        "accuracy": accuracy,
                        "deadline_miss_rate": misses,
                    }
                )
    return pd.DataFrame(rows)


def test_paired_change_is_the_mean_per_seed_change_with_a_t_interval():
    a = pd.DataFrame({"seed": [0, 1, 2], "m": [9.0, 11.0, 10.5]})
    b = pd.DataFrame({"seed": [2, 1, 0], "m": [10.0, 10.0, 10.0]})  # joined by seed, not by row
    change = np.array([-10.0, 10.0, 5.0])
    mean, half = paired_change(a, b, "m")
    assert mean == pytest.approx(change.mean())
    assert half == pytest.approx(stats.t.ppf(0.975, 2) * change.std(ddof=1) / np.sqrt(3))


def test_headline_picks_the_cheapest_classic_exit_at_equal_accuracy_and_misses():
    table = headline(_done(), FACTORS)
    assert len(table) == 4 and set(table["ours"]) == {
        "predictive_exit+predictive",
        "predictive_exit+performance",
    }
    row = table[(table["cell"] == "('nano',)") & (table["ours"] == "predictive_exit+predictive")].iloc[0]
    classic = row["vs best classic at equal accuracy and misses"]
    assert classic.startswith("max_softmax+performance")  # entropy misses deadlines, budgeted is inaccurate
    energy = 100 * (7.0 * (1 + 0.01 * np.arange(4)) / 8.0 - 1)
    half = stats.t.ppf(0.975, 3) * energy.std(ddof=1) / 2
    assert f"ours energy {energy.mean():+.1f}% +-{half:.1f}, FLOPs +20.0% +-0.0" in classic
    assert "FLOPs -40.0% +-0.0" in row["vs plain (none, performance)"]
