"""UXCost cannot be gamed: doing nothing is worst, and a drop never costs less than a completion."""

import numpy as np
import pytest
from conftest import shipped, short_s

from sim import registry
from sim.runner import load_spec, run
from workloads.xr.metrics import uxcost

# 0.4 s runs: scenarios whose phases start later (vr_gaming_supernet, ar_phases) do not fit
SCENARIOS = [p for p in shipped() if "/xr/" in str(p) and "phases:" not in p.read_text()]


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_doing_nothing_is_the_worst_uxcost(path):
    costs = {}
    for name in registry.names("scheduling"):
        spec = load_spec(
            path, [f"scheduler.name={name}", f"duration_s={short_s(path, 0.4)}", "load_scale=1.5"]
        )
        costs[name] = run(spec, seed=1).summary["uxcost"]
    assert all(costs["idle"] > c for n, c in costs.items() if n != "idle"), costs


def _frames(rng, n=400):
    budget = np.full(n, 0.016)
    worst_latency = rng.uniform(0.002, 0.02, n)
    latency = worst_latency * rng.uniform(0.2, 1.0, n) + budget * rng.uniform(0.0, 1.0, n)
    energy = rng.uniform(0.01, 0.1, n)
    worst_energy = energy * rng.uniform(1.0, 2.0, n)
    return budget, latency, worst_latency, energy, worst_energy


@pytest.mark.parametrize("seed", range(5))
def test_uxcost_is_monotone_in_drops(seed):
    """Turning completed frames into drops (everything else fixed) never lowers UXCost."""
    rng = np.random.default_rng(seed)
    budget, latency, worst_latency, energy, worst_energy = _frames(rng)
    done = np.ones(len(budget), dtype=bool)
    previous = -np.inf
    for victim in rng.permutation(len(budget))[:200]:
        dropped = ~done
        value = uxcost(
            done,
            dropped,
            done & (latency > budget),
            np.where(done, latency, np.nan),
            budget,
            worst_latency,
            worst_energy,
            float(energy[done].sum()),
            1.0,
            1.0,
        )
        assert value >= previous
        previous = value
        done[victim] = False


def test_a_drop_costs_more_than_its_latest_completion():
    """One frame: dropped costs more than completed a worst-case latency after its deadline."""
    one = np.ones(1, dtype=bool)
    budget, worst_latency, worst_energy = np.array([0.02]), np.array([0.01]), np.array([0.5])
    args = (budget, worst_latency, worst_energy)
    latest = uxcost(one, ~one, one, budget + worst_latency, *args, 0.5, 1.0, 1.0)
    dropped = uxcost(~one, one, ~one, np.array([np.nan]), *args, 0.0, 1.0, 1.0)
    assert dropped > latest
