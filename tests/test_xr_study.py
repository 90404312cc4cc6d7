"""The xr study tables: paired changes, ablation rows and the cells where the method loses."""

import itertools

import pandas as pd

from sim.compare import label_policies
from workloads.xr.study import sweep_tables

FACTORS = ["scenario", "load_scale", "scheduler.name", "scheduler.params"]


def _table() -> pd.DataFrame:
    rows = []
    for scenario, load, seed in itertools.product(["a", "b"], [1.0, 2.0], range(3)):
        base = 1.0 + seed * 0.1 + load
        values = {
            ("fcfs", "{}"): base,
            ("sdrm3", "{}"): 0.9 * base if scenario == "a" else 1.1 * base,
            ("sdrm3", "{'adapt': False}"): (0.9 if scenario == "a" else 1.1) * base * 1.2,
        }
        for (name, params), ux in values.items():
            rows.append(
                {
                    "scenario": scenario,
                    "load_scale": load,
                    "scheduler.name": name,
                    "scheduler.params": params,
                    "seed": seed,
                    "uxcost": ux,
                    "drop_rate": 0.1 if name == "fcfs" else 0.05,
                }
            )
    return pd.DataFrame(rows)


def test_params_make_ablations_policies_of_their_own():
    table = _table()
    factors = label_policies(table, list(FACTORS), "scheduler.name")
    assert factors == ["scenario", "load_scale", "scheduler.name"]
    assert set(table["scheduler.name"]) == {"fcfs", "sdrm3", "sdrm3(adapt=False)"}


def test_changes_are_paired_geomeans_and_losses_are_listed():
    table = _table()
    factors = label_policies(table, list(FACTORS), "scheduler.name")
    tables = sweep_tables(table, factors)
    versus = next(v for k, v in tables.items() if "against every other" in k).set_index("versus")
    # geomean of 0.9 and 1.1 over cells: sqrt(0.99) - 1 = -0.5 %
    assert versus.loc["fcfs", "uxcost, all cells"].startswith("-0.5%")
    assert versus.loc["fcfs", "drop_rate"].startswith("-5.0 pt")
    ablation = next(v for k, v in tables.items() if "ablations" in k).set_index("variant")
    assert ablation.loc["sdrm3(adapt=False)", "uxcost"].startswith("+20.0%")
    losses = next(v for k, v in tables.items() if "loses" in k)
    assert set(losses["scenario"]) == {"b"} and len(losses) == 2
    assert (losses["best other"] == "fcfs").all()
    assert losses["worse by %"].round(6).eq(10.0).all()
