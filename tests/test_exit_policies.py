"""Exit policies on synthetic multi-exit outputs with a known structure."""

import numpy as np
import pytest

from policies.exit.base import Calibration, accuracy, mean_macs
from sim import registry

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
    *synthetic(2000, 1), segment_macs=np.array([4.0, 4, 4, 4]), head_macs=np.array([0.2, 0.2, 0.2, 0.2])
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


@pytest.mark.parametrize("name", ["entropy", "max_softmax", "patience", "predictive_exit"])
def test_calibrated_policies_keep_accuracy_and_save_work(name):
    full = accuracy(fitted("none").plan(TEST_PROBS), TEST_PROBS, TEST_LABELS)
    plan = fitted(name, max_accuracy_loss=0.01).plan(TEST_PROBS)
    assert accuracy(plan, TEST_PROBS, TEST_LABELS) >= full - 0.02
    cost = mean_macs(plan, CALIB.segment_macs, CALIB.head_macs)
    assert cost < mean_macs(fitted("none").plan(TEST_PROBS), CALIB.segment_macs, CALIB.head_macs)


def test_predictive_exit_skips_the_heads_in_between():
    predictive = fitted("predictive_exit", max_accuracy_loss=0.01)
    plan = predictive.plan(TEST_PROBS)
    # it learned the structure: the predicted exit is the difficulty for most inputs
    correct_exit = np.argmax(TEST_PROBS.argmax(-1) == TEST_LABELS[None, :], axis=0)
    assert (plan.predicted_exit == correct_exit).mean() > 0.7
    # heads evaluated: the first (the predictor's input) and the exit, not the ones between
    skipped = plan.heads_evaluated[plan.exit_index == 3][:, 1:3]
    assert skipped.mean() < 0.2
    seq = fitted("max_softmax", max_accuracy_loss=0.01).plan(TEST_PROBS)
    assert plan.heads_evaluated.sum() < seq.heads_evaluated.sum()


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

    from policies.exit import predictive_exit
    from workloads.cache import ArrayStore

    monkeypatch.setenv("TESTBED_CACHE", str(tmp_path))
    calib = dataclasses.replace(CALIB, store=ArrayStore("exit_predictors"))
    first = registry.get("exit", "predictive_exit")(
        q=0.9, max_accuracy_loss=0.005, predictor_steps=50, learning_rate=0.05
    )
    first.fit(calib)
    assert len(list((tmp_path / "exit_predictors").glob("*.npz"))) == 1

    def no_training(*args):
        raise AssertionError("trained again")

    monkeypatch.setattr(predictive_exit, "_train", no_training)
    again = registry.get("exit", "predictive_exit")(
        q=0.9, max_accuracy_loss=0.005, predictor_steps=50, learning_rate=0.05
    )
    again.fit(dataclasses.replace(CALIB, store=ArrayStore("exit_predictors")))
    assert np.array_equal(again.weight, first.weight) and np.array_equal(again.bias, first.bias)
