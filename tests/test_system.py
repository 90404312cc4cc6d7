"""The accelerator pool on hand-made costs: ordering, drops, block hand-over, context switches, energy."""

import math

import numpy as np
import pytest
from conftest import make_pool

from devices.system import COMPLETED, Job, ModelCost
from policies.scheduling.edf import EDF
from policies.scheduling.fcfs import FCFS


def _pool(scheduler, n_accel=1, blocks=False, latency=((1.0,),), energy=None, **options):
    lat = np.array(latency, float)
    cost = ModelCost("m", 0, lat, np.ones_like(lat) if energy is None else np.array(energy))
    env, pool, done, dropped = make_pool(scheduler, [cost], n_accel, blocks, **options)
    return env, pool, cost, done, dropped


def _submit_at(env, pool, job, t):
    def go():
        yield env.timeout(t)
        pool.submit(job)

    env.process(go())


def test_fcfs_serves_in_arrival_order_one_at_a_time():
    env, pool, cost, done, _ = _pool(FCFS())
    jobs = [Job(cost, i, arrival_s=0.1 * i, deadline_s=math.inf) for i in range(3)]
    for j in jobs:
        _submit_at(env, pool, j, j.arrival_s)
    env.run()
    assert [j.frame for j, _ in done] == [0, 1, 2]
    assert [t for _, t in done] == [1.0, 2.0, 3.0]
    assert all(j.status == COMPLETED for j in jobs)


def test_edf_prefers_nearest_deadline_and_drops_expired():
    env, pool, cost, done, dropped = _pool(EDF())
    first = Job(cost, 0, 0.0, deadline_s=10.0)
    late = Job(cost, 1, 0.1, deadline_s=0.5)  # expires while `first` runs
    urgent = Job(cost, 2, 0.2, deadline_s=5.0)
    relaxed = Job(cost, 3, 0.3, deadline_s=9.0)
    for j in (first, late, urgent, relaxed):
        _submit_at(env, pool, j, j.arrival_s)
    env.run()
    assert [j.frame for j, _ in done] == [0, 2, 3]
    assert [(j.frame, t) for j, t in dropped] == [(1, 0.5)]
    assert math.isnan(late.start_s) and late.energy_j == 0.0


def test_block_granularity_lets_urgent_work_in_between_blocks():
    env, pool, cost, done, _ = _pool(EDF(), blocks=True, latency=((1.0, 1.0, 1.0),))
    long_job = Job(cost, 0, 0.0, deadline_s=100.0)
    urgent = Job(cost, 1, 0.5, deadline_s=4.0)
    for j in (long_job, urgent):
        _submit_at(env, pool, j, j.arrival_s)
    env.run()
    # the urgent job takes over after the long job's first block
    assert [(j.frame, t) for j, t in done] == [(1, 4.0), (0, 6.0)]
    seg = pool.segments.to_frame()
    assert list(zip(seg["frame"], seg["start_s"], seg["end_s"])) == [
        (0, 0.0, 1.0),
        (1, 1.0, 2.0),
        (1, 2.0, 3.0),
        (1, 3.0, 4.0),
        (0, 4.0, 5.0),
        (0, 5.0, 6.0),
    ]


def test_finish_prorates_running_energy_and_reports_in_flight():
    env, pool, cost, _, _ = _pool(FCFS(), latency=((4.0,),), energy=((8.0,),))
    a, b = Job(cost, 0, 0.0, math.inf), Job(cost, 1, 0.0, math.inf)
    pool.submit(a)
    pool.submit(b)
    env.run(until=1.0)
    in_flight = pool.finish(1.0)
    assert set(in_flight) == {a, b}
    assert a.energy_j == 2.0 and pool.accelerators[0].busy_s == 1.0


def test_two_accelerators_run_two_jobs_at_once():
    env, pool, cost, done, _ = _pool(FCFS(), n_accel=2, latency=((1.0,), (1.0,)))
    for i in range(4):
        pool.submit(Job(cost, i, 0.0, math.inf))
    env.run()
    assert sorted(t for _, t in done) == [1.0, 1.0, 2.0, 2.0]


# -- context switches ------------------------------------------------------------------
SWITCH_S = 0.25


def _seg_rows(pool):
    seg = pool.segments.to_frame()
    return list(zip(seg["frame"], seg["accel"], seg["block_start"], seg["start_s"], seg["end_s"]))


def test_a_preempted_job_pays_the_switch_once_when_it_resumes():
    env, pool, cost, done, _ = _pool(
        EDF(), blocks=True, latency=((1.0, 1.0, 1.0),), context_switch_s=SWITCH_S
    )
    long_job = Job(cost, 0, 0.0, deadline_s=100.0)
    urgent = Job(cost, 1, 0.5, deadline_s=4.0)
    for j in (long_job, urgent):
        _submit_at(env, pool, j, j.arrival_s)
    env.run()
    # the urgent job starts fresh and runs its blocks back to back: no switch; the long
    # job resumes after it and pays once, on its first resumed block only
    assert _seg_rows(pool) == [
        (0, 0, 0, 0.0, 1.0),
        (1, 0, 0, 1.0, 2.0),
        (1, 0, 1, 2.0, 3.0),
        (1, 0, 2, 3.0, 4.0),
        (0, 0, 1, 4.0, 5.0 + SWITCH_S),
        (0, 0, 2, 5.0 + SWITCH_S, 6.0 + SWITCH_S),
    ]
    assert pool.accelerators[0].switches == 1
    # busy while switching, drawing idle power (0.5 W): energy is still power over time
    assert pool.accelerators[0].busy_s == 6.0 + SWITCH_S
    assert long_job.energy_j == 3.0 + 0.5 * SWITCH_S and urgent.energy_j == 3.0


class _BlockToAccelerator:
    """Test scheduler: block ``b`` runs on accelerator ``b % 2``, so a job moves every block."""

    def pick(self, ready, idle, now):
        for job in ready:
            for accel in idle:
                if accel.index == job.next_block % 2:
                    return job, accel
        return None


def test_moving_to_another_accelerator_pays_the_switch_even_back_where_it_was():
    lat = ((1.0, 1.0, 1.0), (1.0, 1.0, 1.0))
    env, pool, cost, done, _ = _pool(
        _BlockToAccelerator(), n_accel=2, blocks=True, latency=lat, context_switch_s=SWITCH_S
    )
    pool.submit(Job(cost, 0, 0.0, math.inf))
    env.run()
    # back on a0 for block 2, nothing else ran there, but the state is on a1: charged too
    assert _seg_rows(pool) == [
        (0, 0, 0, 0.0, 1.0),
        (0, 1, 1, 1.0, 2.0 + SWITCH_S),
        (0, 0, 2, 2.0 + SWITCH_S, 3.0 + 2 * SWITCH_S),
    ]
    assert [a.switches for a in pool.accelerators] == [1, 1]


def test_no_switch_without_preemption_or_at_model_granularity():
    lat = ((1.0, 1.0),)
    for blocks in (True, False):
        env, pool, cost, done, _ = _pool(FCFS(), blocks=blocks, latency=lat, context_switch_s=SWITCH_S)
        for i in range(3):
            pool.submit(Job(cost, i, 0.0, math.inf))
        env.run()
        # FCFS finishes each job before the next: every resume is where it left off
        assert [t for _, t in done] == [2.0, 4.0, 6.0] and pool.accelerators[0].switches == 0


def test_context_switch_cost_is_a_checked_config_value():
    from sim.errors import ConfigError
    from sim.runner import load_spec

    assert load_spec({"kind": "xr"}).context_switch_s == 1e-5
    with pytest.raises(ConfigError) as err:
        load_spec({"kind": "xr", "context_switch_s": -1})
    assert str(err.value) == "context_switch_s: Input should be greater than or equal to 0 (got -1)"
