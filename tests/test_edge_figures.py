"""Edge figures: deadline lines in the latency CDF, and the energy and frequency trace over time."""

import numpy as np
import pandas as pd
import pytest

from sim.runner import load_spec, run, write_run
from workloads.edge.figures import edge_figures

SCENARIO = "scenarios/edge/edge_digits.yaml"
# two groups with their own deadlines; ondemand moves the frequency with the load
SETS = [
    "duration_s=0.5",
    "dvfs.name=ondemand",
    "exit_policy.name=max_softmax",
    "devices.0.deadline_s=0.002",
]


def _spec():
    spec = load_spec(SCENARIO, SETS)
    fast = spec.devices[0].model_copy(update={"name": "fast", "deadline_s": 0.004, "rate_hz": 200.0})
    return spec.model_copy(update={"devices": [spec.devices[0], fast]})


@pytest.fixture(scope="module")
def result():
    return run(_spec())


def test_the_trace_is_each_devices_energy_integral_and_frequency(result):
    trace, devices = result.tables["trace"], result.tables["devices"].set_index("device")
    assert set(trace["device"]) == set(devices.index)
    for name, rows in trace.groupby("device"):
        energy = rows["energy_j"].to_numpy()
        assert rows["time_s"].iloc[0] == 0.0 and rows["time_s"].iloc[-1] == pytest.approx(0.5)
        assert np.all(np.diff(energy) >= 0) and energy[0] == 0.0
        assert energy[-1] == pytest.approx(devices.loc[name, "energy_j"], rel=1e-12)  # no radio here
    steps = set(result.tables["points"]["freq_hz"])
    assert set(trace["freq_hz"]) <= steps and trace["freq_hz"].nunique() > 1  # ondemand moved


def test_the_probe_changes_no_result(result, monkeypatch):
    import workloads.edge.world as world

    monkeypatch.setattr(world, "probe", lambda env, devices, end_s: [])
    unprobed = run(_spec())
    assert pd.Series(unprobed.summary).equals(pd.Series(result.summary))  # NaN == NaN
    pd.testing.assert_frame_equal(unprobed.tables["requests"], result.tables["requests"])


def test_latency_cdf_draws_each_deadline_and_the_figures_are_written(result, tmp_path):
    figures = edge_figures(result.tables, result.summary)
    ax = figures["latency_cdf"].axes[0]
    vertical = {line.get_xdata()[0] for line in ax.lines if len(set(line.get_xdata())) == 1}
    assert vertical == {2.0, 4.0}  # ms
    assert [a.get_ylabel() for a in figures["energy_frequency"].axes] == [
        "energy so far (J)",
        "frequency (MHz)",
    ]
    folder = write_run(result, tmp_path / "run")
    for name in ("latency_cdf", "energy_frequency", "exits", "frequencies"):
        assert (folder / f"{name}.png").stat().st_size > 1000


def test_a_run_without_a_trace_still_draws(result):
    tables = {**result.tables, "devices": result.tables["devices"].drop(columns="deadline_s")}
    del tables["trace"]
    figures = edge_figures(tables, result.summary)
    assert "energy_frequency" in figures and "latency_cdf" in figures
