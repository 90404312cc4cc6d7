"""What an exit policy sees and returns.

An exit policy is calibrated once on the ``calib`` split and then decides, for a
batch of inputs at once, which exit each input leaves at and which exit heads were
evaluated on the way. Decisions depend only on the network's outputs for that input,
so the simulation computes them once per evaluation sample (from the inference
cache) and replays them per request: no per-request forward pass.

``probs`` arrays are ``[n_exits, n_samples, n_classes]`` softmax outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from pydantic import Field

from sim.config import StrictModel


@dataclass(frozen=True)
class ExitPlan:
    """Per sample: the exit taken and the heads evaluated; for predictive policies also each
    prediction made on the way, in order: the exit it was made at and the exit it predicted
    (a predictive DVFS governor re-sets the frequency at each), and the predictor's MACs."""

    exit_index: np.ndarray  # int [n_samples]
    heads_evaluated: np.ndarray  # bool [n_samples, n_exits]
    prediction_at: np.ndarray | None = None  # int [n_predictions, n_samples], -1 where none was made
    prediction_to: np.ndarray | None = None  # int [n_predictions, n_samples], -1 likewise
    extra_macs: np.ndarray | None = None  # float [n_samples]: MACs outside backbone and heads


@dataclass(frozen=True)
class Calibration:
    """The calibration split: outputs of every exit, labels, and the cost of each part."""

    probs: np.ndarray  # [n_exits, n, n_classes]
    labels: np.ndarray  # int [n]
    segment_macs: np.ndarray  # [n_exits]: backbone MACs from exit k-1 to exit k
    head_macs: np.ndarray  # [n_exits]
    # Where a policy may keep what it learns from this split, by a key it derives from
    # the split and its code (``in``, ``[]``, ``[]=``); the edge world passes an on-disk
    # store, so a predictor is trained once per machine, not once per run.
    store: Any = None


class ExitPolicy(Protocol):
    def fit(self, calib: Calibration) -> None: ...
    def plan(self, probs: np.ndarray) -> ExitPlan: ...


def entropy(probs: np.ndarray) -> np.ndarray:
    """Softmax entropy normalised by log(n_classes), in [0, 1], over the last axis."""
    p = np.clip(probs, 1e-12, 1.0)
    return -(p * np.log(p)).sum(-1) / np.log(probs.shape[-1])


def first_true(mask: np.ndarray) -> np.ndarray:
    """Index of the first True along axis 0 of ``[n_exits, n]``; the last exit if none."""
    mask = mask.copy()
    mask[-1] = True
    return mask.argmax(axis=0)


def sequential(exit_index: np.ndarray, n_exits: int) -> ExitPlan:
    """A plan where every head up to the exit taken was evaluated (classic early exit)."""
    heads = np.arange(n_exits)[None, :] <= exit_index[:, None]
    return ExitPlan(exit_index, heads)


def accuracy(plan: ExitPlan, probs: np.ndarray, labels: np.ndarray) -> float:
    n = probs.shape[1]
    return float((probs[plan.exit_index, np.arange(n)].argmax(-1) == labels).mean())


def mean_macs(plan: ExitPlan, segment_macs: np.ndarray, head_macs: np.ndarray) -> float:
    """Mean MACs per input: backbone up to the exit taken, every head evaluated, and any predictor."""
    backbone = np.cumsum(segment_macs)[plan.exit_index]
    extra = 0.0 if plan.extra_macs is None else plan.extra_macs
    return float((backbone + plan.heads_evaluated @ head_macs + extra).mean())


def calibrate(candidates, make_plan, calib: Calibration, max_accuracy_loss: float):
    """The cheapest candidate whose calib accuracy is within ``max_accuracy_loss`` of the last exit.

    ``make_plan(candidate, probs) -> ExitPlan``; candidates that all miss fall back to
    the most accurate one.
    """
    full = float((calib.probs[-1].argmax(-1) == calib.labels).mean())
    best, best_cost, fallback, fallback_acc = None, np.inf, None, -1.0
    for candidate in candidates:
        plan = make_plan(candidate, calib.probs)
        acc = accuracy(plan, calib.probs, calib.labels)
        cost = mean_macs(plan, calib.segment_macs, calib.head_macs)
        if acc >= full - max_accuracy_loss and cost < best_cost:
            best, best_cost = candidate, cost
        if acc > fallback_acc:
            fallback, fallback_acc = candidate, acc
    return best if best is not None else fallback


class CalibratedParams(StrictModel):
    """Params of a rule calibrated on the calib split."""

    max_accuracy_loss: float = Field(
        0.005,
        ge=0.0,
        le=1.0,
        description=(
            "calibration: the cheapest setting whose calib accuracy is within this of the"
            " full network's, in [0, 1]"
        ),
    )


class CalibratedRule:
    """An exit rule with one setting, given in its params or else calibrated on the calib split:
    the cheapest of ``candidates(calib)`` whose accuracy is within ``max_accuracy_loss`` of the
    full network. Subclasses define ``candidates`` and ``rule(setting, probs) -> ExitPlan``."""

    def __init__(self, setting: Any, max_accuracy_loss: float):
        self.setting = setting
        self.max_accuracy_loss = max_accuracy_loss

    def candidates(self, calib: Calibration) -> Any:
        raise NotImplementedError

    @staticmethod
    def rule(setting: Any, probs: np.ndarray) -> ExitPlan:
        raise NotImplementedError

    def fit(self, calib: Calibration) -> None:
        if self.setting is None:
            self.setting = calibrate(self.candidates(calib), self.rule, calib, self.max_accuracy_loss)

    def plan(self, probs: np.ndarray) -> ExitPlan:
        return self.rule(self.setting, probs)
