"""The reconstructed baselines (Planaria, PREMA, Herald) on hand-made costs."""

import math

import numpy as np
import pytest
from conftest import make_pool

from devices.system import Job, ModelCost
from policies.scheduling.herald import Herald
from policies.scheduling.planaria import Planaria
from policies.scheduling.prema import PREMA
from sim.errors import ConfigError
from sim.runner import load_spec


def _pool(scheduler, models, n_accel=1, blocks=False):
    """A pool over ``models``: name -> (block latency per accelerator, priority)."""
    costs = {
        name: ModelCost(name, i, np.array(lat, float), np.ones_like(np.array(lat, float)), priority=prio)
        for i, (name, (lat, prio)) in enumerate(models.items())
    }
    env, pool, done, dropped = make_pool(
        scheduler, list(costs.values()), n_accel, blocks, record=lambda j: j.model.name
    )
    return env, pool, costs, done, dropped


def _submit(env, pool, cost, t, deadline_s=math.inf):
    job = Job(cost, 0, arrival_s=t, deadline_s=deadline_s)

    def go():
        yield env.timeout(t)
        pool.submit(job)

    env.process(go())
    return job


def _runs(pool):
    """(model, accelerator, start, end) of every executed stretch, in order."""
    seg = pool.segments.to_frame()
    return list(zip(seg["model"].astype(str), seg["accel"], seg["start_s"], seg["end_s"]))


# -- Planaria --------------------------------------------------------------------------
@pytest.mark.parametrize(("relaxed_priority", "first"), [(1.0, "urgent"), (9.0, "relaxed")])
def test_planaria_serves_highest_priority_over_slack(relaxed_priority, first):
    models = {
        "blocker": (((1.0,),), 1.0),
        "relaxed": (((1.0,),), relaxed_priority),
        "urgent": (((1.0,),), 1.0),
    }
    env, pool, costs, done, _ = _pool(Planaria(), models)
    _submit(env, pool, costs["blocker"], 0.0)
    _submit(env, pool, costs["relaxed"], 0.1, deadline_s=10.0)  # slack 8 at t=1
    _submit(env, pool, costs["urgent"], 0.2, deadline_s=3.0)  # slack 1 at t=1
    env.run()
    # priority 1: less slack first; priority 9 on the relaxed job: 9/8 beats 1/1
    assert [m for m, _ in done][1] == first


def test_planaria_puts_a_hopeless_job_last():
    models = {"blocker": (((1.0,),), 1.0), "hopeless": (((3.0,),), 1.0), "easy": (((1.0,),), 1.0)}
    env, pool, costs, done, dropped = _pool(Planaria(), models)
    _submit(env, pool, costs["blocker"], 0.0)
    _submit(env, pool, costs["hopeless"], 0.1, deadline_s=3.5)  # slack -0.5 at t=1
    _submit(env, pool, costs["easy"], 0.2, deadline_s=10.0)
    env.run()
    # EDF would run the hopeless job first; Planaria runs it after the feasible one
    assert done == [("blocker", 1.0), ("easy", 2.0), ("hopeless", 5.0)] and not dropped


def test_planaria_places_the_chosen_job_on_its_fastest_idle_accelerator():
    env, pool, costs, _, _ = _pool(Planaria(), {"m": (((2.0,), (1.0,)), 1.0)}, n_accel=2)
    _submit(env, pool, costs["m"], 0.0, deadline_s=5.0)
    env.run()
    assert _runs(pool) == [("m", 1, 0.0, 1.0)]


# -- PREMA -----------------------------------------------------------------------------
@pytest.mark.parametrize(("threshold", "order"), [(3.0, ["long", "short"]), (100.0, ["short", "long"])])
def test_prema_tokens_let_a_long_waiting_job_overtake(threshold, order):
    models = {"blocker": (((10.0,),), 1.0), "long": (((2.0,),), 1.0), "short": (((1.0,),), 1.0)}
    env, pool, costs, done, _ = _pool(PREMA(token_threshold=threshold), models)
    _submit(env, pool, costs["blocker"], 0.0)
    _submit(env, pool, costs["long"], 0.1)  # token at t=10: (9.9 + 2) / 2 = 5.95
    _submit(env, pool, costs["short"], 9.5)  # token at t=10: (0.5 + 1) / 1 = 1.5
    env.run()
    # threshold 3: only the long job qualifies; threshold 100: none does, so shortest first
    assert [m for m, _ in done] == ["blocker", *order]


@pytest.mark.parametrize("blocks", [True, False])
def test_prema_preempts_between_blocks_only(blocks):
    models = {"long": (((1.0, 1.0, 1.0),), 1.0), "short": (((0.5,),), 9.0)}
    env, pool, costs, done, _ = _pool(PREMA(), models, blocks=blocks)
    _submit(env, pool, costs["long"], 0.0)
    _submit(env, pool, costs["short"], 0.5)  # token at t=1: 9 x (0.5 + 0.5) / 0.5 = 18
    env.run()
    if blocks:
        assert done == [("short", 1.5), ("long", 3.5)]
        assert [(m, t0) for m, _, t0, _ in _runs(pool)] == [
            ("long", 0.0),
            ("short", 1.0),
            ("long", 1.5),
            ("long", 2.5),
        ]
    else:
        assert done == [("long", 3.0), ("short", 3.5)]


def test_prema_forgets_jobs_that_leave():
    prema = PREMA()
    env, pool, costs, done, dropped = _pool(prema, {"m": (((1.0,),), 1.0)})
    _submit(env, pool, costs["m"], 0.0)
    _submit(env, pool, costs["m"], 0.0, deadline_s=0.5)  # dropped while the first runs
    env.run()
    assert len(done) == 1 and len(dropped) == 1 and not prema._isolated


# -- Herald ----------------------------------------------------------------------------
def test_herald_runs_each_block_on_its_affinity_accelerator():
    # block 0 is fastest on a0, block 1 on a1
    env, pool, costs, _, _ = _pool(Herald(), {"m": (((1.0, 3.0), (2.0, 1.0)), 1.0)}, n_accel=2, blocks=True)
    _submit(env, pool, costs["m"], 0.0)
    env.run()
    assert _runs(pool) == [("m", 0, 0.0, 1.0), ("m", 1, 1.0, 2.0)]


def test_herald_leaves_a_job_waiting_for_its_busy_accelerator():
    env, pool, costs, _, _ = _pool(Herald(), {"m": (((1.0,), (1.5,)), 1.0)}, n_accel=2)
    jobs = [_submit(env, pool, costs["m"], t, deadline_s=d) for t, d in ((0.0, 10.0), (0.1, 9.0), (0.2, 5.0))]
    env.run()
    # a1 stays idle; after the first job, earliest deadline first on a0
    assert [(a, t0, t1) for _, a, t0, t1 in _runs(pool)] == [(0, 0.0, 1.0), (0, 1.0, 2.0), (0, 2.0, 3.0)]
    assert [j.start_s for j in jobs] == [0.0, 2.0, 1.0]


def test_herald_placement_pins_a_whole_model():
    models = {"m": (((1.0, 1.0), (2.0, 2.0)), 1.0)}
    env, pool, costs, _, _ = _pool(Herald(placement={"m": "a1"}), models, n_accel=2, blocks=True)
    _submit(env, pool, costs["m"], 0.0)
    env.run()
    assert [a for _, a, _, _ in _runs(pool)] == [1, 1]


def test_herald_check_names_the_bad_model_and_accelerator():
    params = Herald.Params(placement={"m": "acc7", "ghost": "a0"})
    assert Herald.check(params, ["a0", "a1"], ["m", "n"]) == [
        "placement.m: unknown accelerator 'acc7'; known: a0, a1",
        "placement.ghost: unknown model 'ghost'; known: m, n",
    ]
    assert Herald.check(Herald.Params(placement={"n": "a1"}), ["a0", "a1"], ["m", "n"]) == []


def test_herald_bad_placement_fails_at_load_time():
    spec = {
        "kind": "xr",
        "hardware": {"preset": "Dual_4K"},
        "models": [{"name": "hand_tracking", "fps": 45}],
        "scheduler": {"name": "herald", "params": {"placement": {"hand_tracking": "acc7"}}},
    }
    with pytest.raises(ConfigError) as err:
        load_spec(spec)
    assert "scheduler.params.placement.hand_tracking: unknown accelerator 'acc7'" in str(err.value)
