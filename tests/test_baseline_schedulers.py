"""Each baseline's rule on a hand-built case: the classic queue orders, XRBench's greedy
placements, Planaria, PREMA and Herald."""

import math

import numpy as np
import pytest
from conftest import ROOT, make_pool

from devices.system import Job, ModelCost
from policies.scheduling.edf import EDF
from policies.scheduling.edp_greedy import EDPGreedy
from policies.scheduling.fcfs import FCFS
from policies.scheduling.herald import Herald
from policies.scheduling.latency_greedy import LatencyGreedy
from policies.scheduling.planaria import Planaria
from policies.scheduling.prema import PREMA
from policies.scheduling.round_robin import RoundRobin
from sim.errors import ConfigError
from sim.kernel import Kernel
from sim.runner import load_spec
from workloads.xr.world import XRWorld

SWITCH_S = 0.25


def _pool(scheduler, models, n_accel=1, blocks=False, **options):
    """A pool over ``models``: name -> (block latency per accelerator, priority[, period])."""
    costs = {
        name: ModelCost(
            name, i, np.array(m[0], float), np.ones_like(np.array(m[0], float)), priority=m[1], period_s=m[2]
        )
        for i, (name, m) in enumerate((n, (*m, math.inf)[:3]) for n, m in models.items())
    }
    env, pool, done, dropped = make_pool(
        scheduler, list(costs.values()), n_accel, blocks, record=lambda j: j.model.name, **options
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


# -- FCFS, EDF, round robin: their queue order, XRBench's LatencyGreedy placement ----------
@pytest.mark.parametrize("scheduler", [FCFS, EDF, RoundRobin, LatencyGreedy])
def test_queue_order_baselines_place_on_the_fastest_idle_accelerator(scheduler):
    # a0 is idle first in the list but twice as slow: XRBench places on a1, not idle[0]
    env, pool, costs, _, _ = _pool(scheduler(), {"m": (((2.0,), (1.0,)), 1.0)}, n_accel=2)
    _submit(env, pool, costs["m"], 0.0, deadline_s=5.0)
    env.run()
    assert _runs(pool) == [("m", 1, 0.0, 1.0)]


@pytest.mark.parametrize(
    ("scheduler", "order", "queue"),
    [
        (FCFS(), ["x", "b", "b", "a"], "as_ready"),  # arrival order
        (EDF(), ["x", "a", "b", "b"], "as_ready"),  # nearest deadline first
        (RoundRobin(), ["x", "b", "a", "b"], "as_ready"),  # models take turns: x, then b, a, b
        (LatencyGreedy(), ["x", "b", "b", "a"], "as_ready"),  # the queue's order: as jobs became ready
        (EDPGreedy(), ["x", "b", "b", "a"], "as_ready"),
        (LatencyGreedy(), ["x", "a", "b", "b"], "by_name"),  # runtime: xrbench's name-ordered queues
        (EDPGreedy(), ["x", "a", "b", "b"], "by_name"),
    ],
)
def test_each_baseline_orders_the_queue_its_way(scheduler, order, queue):
    models = {"x": (((1.0,),), 1.0), "b": (((1.0,),), 1.0), "a": (((1.0,),), 1.0)}
    key = (lambda job: job.model.name) if queue == "by_name" else None
    env, pool, costs, done, _ = _pool(scheduler, models, ready_key=key)
    _submit(env, pool, costs["x"], 0.0)
    _submit(env, pool, costs["b"], 0.1, deadline_s=9.0)
    _submit(env, pool, costs["b"], 0.2, deadline_s=9.5)
    _submit(env, pool, costs["a"], 0.3, deadline_s=5.0)
    env.run()
    assert [m for m, _ in done] == order


# -- EDPGreedy: per-layer EDP, as the XRBench runtime sums it -----------------------------
def _two_layer_model(per_layer):
    """One block of two layers: a0 = (1 s, 1 J) + (1 s, 9 J), a1 = (3 s, 4 J) + (0.1 s, 0.1 J).

    Per-layer EDP sum: a0 1 + 9 = 10, a1 12 + 0.01 = 12.01 -> a0; whole-model latency x
    energy (the block as one layer): a0 2 x 10 = 20, a1 3.1 x 4.1 = 12.71 -> a1.
    """
    layers_s, layers_j = np.array([[1.0, 1.0], [3.0, 0.1]]), np.array([[1.0, 9.0], [4.0, 0.1]])
    edp = (layers_s * layers_j).sum(axis=1, keepdims=True) if per_layer else None
    return ModelCost(
        "m", 0, layers_s.sum(axis=1, keepdims=True), layers_j.sum(axis=1, keepdims=True), block_edp_js=edp
    )


@pytest.mark.parametrize(
    ("per_layer", "edp", "chosen"), [(True, [10.0, 12.01], 0), (False, [20.0, 12.71], 1)]
)
def test_edp_greedy_sums_latency_times_energy_per_layer(per_layer, edp, chosen):
    cost = _two_layer_model(per_layer)
    env, pool, _, _ = make_pool(EDPGreedy(), [cost], n_accel=2)
    job = Job(cost, 0, 0.0, math.inf)
    assert [job.remaining_edp_js(a) for a in pool.accelerators] == pytest.approx(edp)
    pool.submit(job)
    env.run()
    assert job.accel == chosen  # per-layer sums pick a0, where whole-model L x E picks a1


def test_the_xr_world_gives_edp_greedy_the_per_layer_sums():
    from devices.cost import cost_table
    from workloads.xr.models import task_layers

    spec = load_spec(ROOT / "scenarios" / "xr" / "vr_gaming.yaml", ["hardware.dataflow=[WS,OS]"])
    world = XRWorld(spec, Kernel(0))
    model = world.costs[0]
    latency, energy = cost_table(model.name, task_layers(model.name), world.system, None)
    edp = [c[-1] for c in model.cum_edp_js]
    assert edp == pytest.approx((latency * energy).sum(axis=1), rel=1e-9)
    whole = [c[-1] * e[-1] for c, e in zip(model.cum_latency_s, model.cum_energy_j)]
    assert all(w > p for w, p in zip(whole, edp))  # not whole-model latency x energy


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


def test_planaria_reallocates_a_job_at_a_block_boundary():
    # a1 is twice as fast; the blocker (tighter deadline) gets it first, so the job starts
    # on a0 and moves to a1 at its first block boundary, paying the switch there
    models = {"blocker": (((5.0,), (1.0,)), 1.0), "job": (((2.0, 2.0), (1.0, 1.0)), 1.0)}
    env, pool, costs, done, _ = _pool(Planaria(), models, n_accel=2, blocks=True, context_switch_s=SWITCH_S)
    _submit(env, pool, costs["blocker"], 0.0, deadline_s=1.5)
    _submit(env, pool, costs["job"], 0.0, deadline_s=10.0)
    env.run()
    assert _runs(pool) == [("blocker", 1, 0.0, 1.0), ("job", 0, 0.0, 2.0), ("job", 1, 2.0, 3.0 + SWITCH_S)]
    assert [a.switches for a in pool.accelerators] == [0, 1]


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
def test_prema_preempts_a_long_job_at_a_block_boundary_and_pays_the_switch(blocks):
    models = {"long": (((1.0, 1.0, 1.0),), 1.0), "short": (((0.5,),), 9.0)}
    env, pool, costs, done, _ = _pool(PREMA(), models, blocks=blocks, context_switch_s=SWITCH_S)
    _submit(env, pool, costs["long"], 0.0)
    _submit(env, pool, costs["short"], 0.5)  # token at t=1: 9 x (0.5 + 0.5) / 0.5 = 18
    env.run()
    if blocks:
        # the urgent job takes over after the long one's first block; the long job pays
        # the context switch once, when it resumes
        assert done == [("short", 1.5), ("long", 3.5 + SWITCH_S)]
        assert [(m, t0, t1) for m, _, t0, t1 in _runs(pool)] == [
            ("long", 0.0, 1.0),
            ("short", 1.0, 1.5),
            ("long", 1.5, 2.5 + SWITCH_S),
            ("long", 2.5 + SWITCH_S, 3.5 + SWITCH_S),
        ]
        assert pool.accelerators[0].switches == 1
    else:
        assert done == [("long", 3.0), ("short", 3.5)] and pool.accelerators[0].switches == 0


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


def test_herald_spreads_equal_models_over_identical_accelerators():
    models = {f"m{i}": (((1.0,),) * 4, 1.0) for i in range(4)}
    herald = Herald()
    env, pool, costs, done, _ = _pool(herald, models, n_accel=4)
    for name in models:
        _submit(env, pool, costs[name], 0.0)
    env.run()
    # placed once, one model per accelerator (not all on acc0), so all four run at once
    assert [herald.home[c] for c in costs.values()] == [[0], [1], [2], [3]]
    assert sorted(a for _, a, _, _ in _runs(pool)) == [0, 1, 2, 3] and [t for _, t in done] == [1.0] * 4


@pytest.mark.parametrize(("other_s", "second_home"), [(1.5, 1), (3.0, 0)])
def test_herald_moves_a_model_off_its_affinity_only_within_the_balance_factor(other_s, second_home):
    # both models run fastest on a0; the second goes to the idle a1 only if that costs < 2x
    models = {"m0": (((1.0,), (other_s,)), 1.0), "m1": (((1.0,), (other_s,)), 1.0)}
    herald = Herald()
    _, _, costs, _, _ = _pool(herald, models, n_accel=2)
    assert [herald.home[c] for c in costs.values()] == [[0], [second_home]]


def test_herald_balances_utilisation_not_plain_latency():
    # one 100 fps model fills half of a0; the two 1 fps ones both go to a1 (plain latency
    # sums, the reference's, would put the third back on a0)
    models = {"hot": (((0.005,), (0.005,)), 1.0, 0.01), "cold1": (((0.005,), (0.005,)), 1.0, 1.0)}
    models["cold2"] = models["cold1"]
    herald = Herald()
    _, _, costs, _, _ = _pool(herald, models, n_accel=2)
    assert [herald.home[c] for c in costs.values()] == [[0], [1], [1]]


def test_herald_uses_every_accelerator_of_quad_4k():
    spec = load_spec(
        ROOT / "scenarios" / "xr" / "ar_assistant.yaml",
        ["scheduler.name=herald", "hardware.preset=Quad_4K", "hardware.dataflow=WS", "duration_s=0.5"],
    )
    world = XRWorld(spec, Kernel(0))
    world.run()
    _, tables = world.results()
    assert (tables["accelerators"]["utilisation"] > 0).all()


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
