"""The accelerator pool on hand-made costs: ordering, drops, block hand-over, energy."""

import math

import numpy as np
from conftest import make_pool

from devices.system import COMPLETED, Job, ModelCost
from policies.scheduling.edf import EDF
from policies.scheduling.fcfs import FCFS


def _pool(scheduler, n_accel=1, blocks=False, latency=((1.0,),), energy=None):
    lat = np.array(latency, float)
    cost = ModelCost("m", 0, lat, np.ones_like(lat) if energy is None else np.array(energy))
    env, pool, done, dropped = make_pool(scheduler, [cost], n_accel, blocks)
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
