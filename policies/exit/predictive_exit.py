"""Predictive Exit: forecast the exit, run straight to it, correct when unsure."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from pydantic import Field, PositiveInt

from policies.exit.base import CalibratedParams, Calibration, ExitPlan, calibrate, entropy
from sim.registry import register


@register("exit", "predictive_exit")
class PredictiveExit:
    """Predictive Exit (Li et al., AAAI 2023), reconstructed: a cheap predictor forecasts the exit from
    the first head's output, the network runs straight there without evaluating the heads in
    between, and a correction continues past an unsure exit.

    The paper's predictor features, placement and training were not available; assumed:

    - features: the first exit head's output (top-3 probabilities, margin, normalised
      entropy) — the earliest information in the network, for the cost of one small head;
    - predictor: multinomial logistic regression over exit indices, trained on the calib
      split (full batch, ``predictor_steps`` Adam steps, zero init: deterministic with no
      random numbers) to predict the earliest exit whose prediction is correct (the last
      exit when none is);
    - correction rule: at the predicted exit, if the head's top probability is below
      ``q``, evaluate the next head, and so on to the last; ``q`` is calibrated on the calib
      split as the cheapest value within ``max_accuracy_loss`` of the full network;
    - the plan exposes the predicted exit before correction, which the predictive DVFS
      governor uses to pick the frequency for the predicted remaining work.
    """

    class Params(CalibratedParams):
        q: float | None = Field(None, ge=0.0, le=1.0)
        predictor_steps: PositiveInt = 300
        learning_rate: float = Field(0.05, gt=0.0)

    def __init__(self, q: float | None, max_accuracy_loss: float, predictor_steps: int, learning_rate: float):
        self.q = q
        self.max_accuracy_loss = max_accuracy_loss
        self.steps = predictor_steps
        self.learning_rate = learning_rate
        self.weight: np.ndarray | None = None
        self.bias: np.ndarray | None = None

    def fit(self, calib: Calibration) -> None:
        key = hashlib.sha256(
            _SOURCE
            + calib.probs.tobytes()
            + calib.labels.tobytes()
            + repr((self.steps, self.learning_rate)).encode()
        ).hexdigest()
        store = {} if calib.store is None else calib.store
        if key not in store:  # training is deterministic, so a stored predictor is the same one
            store[key] = _train(calib, self.steps, self.learning_rate)
        self.weight, self.bias = store[key]
        if self.q is None:
            predicted = self.predict(calib.probs)
            grid = np.linspace(0.5, 1.0, 101)
            self.q = calibrate(
                grid, lambda q, probs: _plan(q, probs, predicted), calib, self.max_accuracy_loss
            )

    def predict(self, probs: np.ndarray) -> np.ndarray:
        """The predicted exit of each input, from the first head's output."""
        return (_features(probs[0]) @ self.weight + self.bias).argmax(-1)

    def plan(self, probs: np.ndarray) -> ExitPlan:
        return _plan(self.q, probs, self.predict(probs))


_SOURCE = Path(__file__).read_bytes()


def _train(calib: Calibration, steps: int, learning_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Logistic regression from first-head features to the earliest correct exit (zero init, full batch)."""
    n_exits = calib.probs.shape[0]
    correct = calib.probs.argmax(-1) == calib.labels[None, :]
    correct[-1] = True
    target = torch.as_tensor(correct.argmax(axis=0))
    x = torch.as_tensor(_features(calib.probs[0]))
    weight = torch.zeros(x.shape[1], n_exits, requires_grad=True)
    bias = torch.zeros(n_exits, requires_grad=True)
    opt = torch.optim.Adam([weight, bias], lr=learning_rate)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(x @ weight + bias, target).backward()
        opt.step()
    return weight.detach().numpy(), bias.detach().numpy()


def _features(first: np.ndarray) -> np.ndarray:
    """Per input: top-3 probabilities, top-1 margin and normalised entropy of the first head."""
    top = -np.sort(-first, axis=-1)[:, :3]
    return np.column_stack([top, top[:, 0] - top[:, 1], entropy(first)]).astype(np.float32)


def _plan(q: float, probs: np.ndarray, predicted: np.ndarray) -> ExitPlan:
    n_exits, n = probs.shape[:2]
    rows = np.arange(n)
    heads = np.zeros((n, n_exits), bool)
    heads[:, 0] = True  # the predictor's input
    exit_index = predicted.astype(int).copy()
    running = np.ones(n, bool)
    for _ in range(n_exits):
        heads[rows[running], exit_index[running]] = True
        unsure = probs[exit_index, rows].max(-1) < q
        running &= unsure & (exit_index < n_exits - 1)
        exit_index = np.where(running, exit_index + 1, exit_index)
    return ExitPlan(exit_index, heads, predicted.astype(int))
