"""Exit policies on synthetic multi-exit outputs with a known structure."""

import numpy as np
import pytest

from policies.exit.base import Calibration, accuracy, first_true, mean_macs
from sim import registry
from sim.errors import ConfigError

N_EXITS, N_CLASSES = 4, 10


def synthetic(n: int, seed: int):
    """Inputs of difficulty d in 0..3: exits >= d are confident and right, earlier ones
    are unsure (and right only by chance); the first head's confidence falls with d."""
    rng = np.random.Generator(np.random.PCG64(seed))
    labels = rng.integers(0, N_CLASSES, n)
    difficulty = rng.integers(0, N_EXITS, n)
    probs = np.empty((N_EXITS, n, N_CLASSES))
    for k in range(N_EXITS):
        sure = k >= difficulty
        top = np.where(sure, 0.95, 0.5 - 0.1 * (difficulty - k)) + rng.uniform(-0.04, 0.04, n)
        guess = np.where(sure, labels, rng.integers(0, N_CLASSES, n))
        probs[k] = ((1 - top) / (N_CLASSES - 1))[:, None]
        probs[k, np.arange(n), guess] = top
    return probs, labels


CALIB = Calibration(
    *synthetic(2000, 1), segment_macs=np.array([4e6, 4e6, 4e6, 4e6]), head_macs=np.array([2e5, 2e5, 2e5, 2e5])
)
TEST_PROBS, TEST_LABELS = synthetic(2000, 2)


def fitted(name: str, **params):
    cls = registry.get("exit", name)
    policy = cls(**cls.Params(**params).model_dump()) if hasattr(cls, "Params") else cls()
    policy.fit(CALIB)
    return policy


def test_none_runs_the_whole_network():
    plan = fitted("none").plan(TEST_PROBS)
    assert (plan.exit_index == N_EXITS - 1).all()
    assert plan.heads_evaluated.sum(1).tolist() == [1] * len(TEST_LABELS)


@pytest.mark.parametrize("name", ["entropy", "max_softmax", "patience"])
def test_calibrated_policies_keep_accuracy_and_save_work(name):
    full = accuracy(fitted("none").plan(TEST_PROBS), TEST_PROBS, TEST_LABELS)
    plan = fitted(name, max_accuracy_loss=0.01).plan(TEST_PROBS)
    assert accuracy(plan, TEST_PROBS, TEST_LABELS) >= full - 0.02
    cost = mean_macs(plan, CALIB.segment_macs, CALIB.head_macs)
    assert cost < mean_macs(fitted("none").plan(TEST_PROBS), CALIB.segment_macs, CALIB.head_macs)


def rising(n: int, seed: int, n_exits: int = 8):
    """A fine-grained network's outputs: each input's top class is fixed and its confidence
    rises by an input-dependent step per exit from an input-dependent start, as deeper layers
    sharpen it."""
    rng = np.random.Generator(np.random.PCG64(seed))
    labels = rng.integers(0, N_CLASSES, n)
    start, step = rng.uniform(0.15, 0.9, n), rng.uniform(0.05, 0.15, n)
    top = np.clip(start[None, :] + step[None, :] * np.arange(n_exits)[:, None], 0, 0.99)
    probs = np.repeat(((1 - top) / (N_CLASSES - 1))[:, :, None], N_CLASSES, 2)
    probs[:, np.arange(n), labels] = top
    return probs, labels


# a dict as the predictor store: the predictor trains once for every test that uses RISING
RISING = Calibration(*rising(1000, 3), segment_macs=np.full(8, 1e6), head_macs=np.full(8, 1e5), store={})


def predictive(calib=RISING, **params):
    cls = registry.get("exit", "predictive_exit")
    policy = cls(**cls.Params(**params).model_dump())
    policy.fit(calib)
    return policy


def test_predictive_exit_jumps_further_for_less_confident_inputs():
    policy = predictive(beta=0.8, max_round=2)
    probs, _ = rising(400, 4)
    plan = policy.plan(probs)
    first = probs[0].max(-1)
    made = plan.prediction_at[0] >= 0
    assert (made == (first <= 0.8)).all()  # a prediction exactly where the first exit is unsure
    jump = plan.prediction_to[0, made] - plan.prediction_at[0, made]
    assert jump.min() >= 1 and np.corrcoef(first[made], jump)[0, 1] < -0.8
    # the learned predictor: within one exit of the true number of exits to confidence
    true_jump = first_true(probs[:, made].max(-1) > 0.8)  # the last exit if never confident
    assert np.abs(jump - true_jump).mean() < 1.0
    # heads evaluated: the start exit and each predicted exit, nothing between
    for i in np.flatnonzero(made)[:50]:
        stops = {0, *plan.prediction_to[:, i][plan.prediction_to[:, i] >= 0].tolist(), plan.exit_index[i]}
        assert set(np.flatnonzero(plan.heads_evaluated[i]).tolist()) == stops
    assert plan.extra_macs[made].min() > 0 and (plan.extra_macs[~made] == 0).all()


def test_predictive_exit_rounds_and_exhaustion():
    probs, _ = rising(400, 5)
    sure = probs.max(-1) > 0.95
    for exhausted in ("last", "walk"):
        plan = predictive(beta=0.95, max_round=1, exhausted=exhausted).plan(probs)
        assert ((plan.prediction_at >= 0).sum(0) <= 1).all()
        rows = np.arange(probs.shape[1])
        unsure_at_exit = ~sure[plan.exit_index, rows]
        if exhausted == "last":  # unsure after its one prediction: straight to the last exit
            assert (plan.exit_index[unsure_at_exit] == 7).all()
        else:  # unsure after it: every later head until a sure one
            assert not unsure_at_exit[plan.exit_index < 7].any()
    many = predictive(beta=0.95, max_round=3).plan(probs)
    assert (many.prediction_at >= 0).sum(0).max() > 1  # re-predicted where the first jump fell short


def test_predictive_exit_starts_where_exits_become_useful():
    accuracy_at = lambda probs, labels: (probs.argmax(-1) == labels).mean(1)  # noqa: E731
    policy = predictive(beta=0.9)
    share = accuracy_at(RISING.probs, RISING.labels) / accuracy_at(RISING.probs, RISING.labels)[-1]
    assert policy.start_exit == int(np.argmax(share >= 0.5))
    assert predictive(beta=0.9, start_exit=2).start_exit == 2


def test_predictive_exit_with_beta_calibrated_saves_work():
    full = accuracy(fitted("none").plan(TEST_PROBS), TEST_PROBS, TEST_LABELS)
    plan = fitted("predictive_exit", max_accuracy_loss=0.01).plan(TEST_PROBS)
    assert accuracy(plan, TEST_PROBS, TEST_LABELS) >= full - 0.02
    cost = mean_macs(plan, CALIB.segment_macs, CALIB.head_macs)
    assert cost < mean_macs(fitted("none").plan(TEST_PROBS), CALIB.segment_macs, CALIB.head_macs)


@pytest.mark.parametrize("beta", [0.0, 1.0, 1.5, -0.2])
def test_predictive_exit_beta_outside_the_open_unit_interval(beta):
    with pytest.raises(ValueError, match="beta"):
        registry.get("exit", "predictive_exit").Params(beta=beta)


@pytest.mark.parametrize(
    "params,field",
    [({"start_exit": 7}, "start_exit: 7"), ({"start_exit": 5, "max_round": 3}, "max_round: 3")],
)
def test_predictive_exit_out_of_range_for_the_network(params, field):
    with pytest.raises(ConfigError, match=field):
        predictive(beta=0.9, **params)


def test_thresholds_move_exits_monotonically():
    early = fitted("max_softmax", q=0.5).plan(TEST_PROBS).exit_index.mean()
    late = fitted("max_softmax", q=0.99).plan(TEST_PROBS).exit_index.mean()
    assert early < late
    assert (fitted("entropy", threshold=0.0).plan(TEST_PROBS).exit_index == N_EXITS - 1).all()
    assert (fitted("patience", patience=1).plan(TEST_PROBS).exit_index == 0).all()


def test_budgeted_exit_shares_follow_q_to_the_k():
    plan = fitted("budgeted", q=0.5).plan(CALIB.probs)
    shares = np.bincount(plan.exit_index, minlength=N_EXITS) / len(CALIB.labels)
    expected = 0.5 ** np.arange(N_EXITS) / (0.5 ** np.arange(N_EXITS)).sum()
    assert np.allclose(shares, expected, atol=0.03)


@pytest.mark.parametrize("field,value", [("q", 1.5), ("threshold", -0.1)])
def test_thresholds_outside_unit_interval_are_rejected(field, value):
    name = "max_softmax" if field == "q" else "entropy"
    with pytest.raises(ValueError, match=field):
        registry.get("exit", name).Params(**{field: value})


def test_predictive_exit_predictor_is_trained_once_per_store(tmp_path, monkeypatch):
    import dataclasses

    from policies.exit import _jump_predictor as jump_predictor
    from workloads.cache import ArrayStore

    monkeypatch.setenv("TESTBED_CACHE", str(tmp_path))
    first = predictive(dataclasses.replace(RISING, store=ArrayStore("exit_predictors")), beta=0.9)
    assert len(list((tmp_path / "exit_predictors").glob("*.npz"))) == 1

    def no_training(*args):
        raise AssertionError("trained again")

    monkeypatch.setattr(jump_predictor, "train_predictor", no_training)
    again = predictive(dataclasses.replace(RISING, store=ArrayStore("exit_predictors")), beta=0.9)
    for a, b in zip(again.predictor.parameters(), first.predictor.parameters(), strict=True):
        assert a.detach().equal(b.detach())
    probs, _ = rising(50, 6)
    assert np.array_equal(again.plan(probs).exit_index, first.plan(probs).exit_index)


def scaled_heads(n: int, seed: int):
    """Three exits whose confidence means different things: exit 0 is right at top 0.6 on easy
    inputs (wrong at 0.3 on hard ones); exit 1 is right at 0.9 on easy and half the hard inputs
    but wrong at 0.65 on the rest; exit 2 is right at 0.95. One shared entropy threshold cannot
    take exit 0's easy inputs without taking exit 1's wrong ones; per-exit thresholds can."""
    rng = np.random.Generator(np.random.PCG64(seed))
    labels = rng.integers(0, N_CLASSES, n)
    kind = rng.integers(0, 4, n)  # 0, 1: easy; 2: hard, right at exit 1; 3: hard, wrong at exit 1
    wrong = (labels + 1) % N_CLASSES
    top = np.array([np.where(kind < 2, 0.6, 0.3), np.where(kind == 3, 0.65, 0.9), np.full(n, 0.95)])
    guess = np.array([np.where(kind < 2, labels, wrong), np.where(kind == 3, wrong, labels), labels])
    probs = np.repeat(((1 - top) / (N_CLASSES - 1))[:, :, None], N_CLASSES, 2)
    for k in range(3):
        probs[k, np.arange(n), guess[k]] = top[k]
    return probs, labels


def test_entropy_per_exit_thresholds_beat_one_shared_threshold():
    calib = Calibration(
        *scaled_heads(2000, 7), segment_macs=np.array([1e6, 1e6, 1e6]), head_macs=np.full(3, 1e4)
    )
    probs, labels = scaled_heads(2000, 8)
    cls = registry.get("exit", "entropy")
    plans = {}
    for per_exit in (False, True):
        policy = cls(**cls.Params(per_exit=per_exit).model_dump())
        policy.fit(calib)
        assert len(policy.setting) == 3
        assert (
            accuracy(policy.plan(calib.probs), calib.probs, calib.labels) >= 1.0 - 0.005
        )  # exit 2: all right
        plans[per_exit] = policy.plan(probs)
    shared, per_exit = (mean_macs(plans[p], calib.segment_macs, calib.head_macs) for p in (False, True))
    assert (plans[False].exit_index == 0).sum() == 0  # shared: exit 0's easy inputs cannot leave there
    assert (plans[True].exit_index == 0).mean() > 0.45 and per_exit < 0.8 * shared
    assert accuracy(plans[True], probs, labels) == 1.0


def test_entropy_thresholds_given_per_exit_are_used_per_exit():
    probs, labels = scaled_heads(400, 9)
    cls = registry.get("exit", "entropy")
    policy = cls(**cls.Params(threshold=[1.0, 0.0, 0.0]).model_dump())
    policy.fit(Calibration(probs, labels, np.ones(3), np.ones(3)))
    assert (policy.plan(probs).exit_index == 0).all()
    policy = cls(**cls.Params(threshold=[0.0, 1.0, 0.0]).model_dump())
    assert (policy.plan(probs).exit_index == 1).all()


def test_entropy_thresholds_must_match_the_exits_and_the_unit_interval():
    cls = registry.get("exit", "entropy")
    with pytest.raises(ValueError, match="threshold"):
        cls.Params(threshold=[0.5, 1.2])
    policy = cls(**cls.Params(threshold=[0.5, 0.5]).model_dump())
    with pytest.raises(
        ConfigError, match="exit_policy.params.threshold: 2 thresholds for a network with 4 exits"
    ):
        policy.fit(CALIB)
