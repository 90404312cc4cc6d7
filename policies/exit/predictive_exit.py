"""Predictive Exit: predict how many exits to skip from an unsure exit's class scores."""

from __future__ import annotations

import hashlib
from importlib.util import find_spec
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, NonNegativeInt, PositiveInt

from policies.exit.base import CalibratedParams, Calibration, ExitPlan, calibrate, first_true
from sim.errors import ConfigError
from sim.kernel import numpy_rng
from sim.registry import register


@register("exit", "predictive_exit")
class PredictiveExit:
    """Predictive Exit (Li et al., AAAI 2023), reconstructed from the paper and its authors' public code.

    The network runs to exit ``start_exit`` (unset: the first exit whose calib accuracy is at
    least ``start_share`` of the final exit's, leaving room for ``max_round`` predictions).
    Where the exit's max softmax is above ``beta`` the input leaves; otherwise its class-score
    vector goes through a small trained 1-D convolution over the class axis again and again,
    and the number of rounds until the max softmax of the result exceeds ``beta`` is the
    predicted jump: the exits skipped before the next one is evaluated (capped at the last
    exit). At the predicted exit it checks again and re-predicts, ``max_round`` predictions in
    all; when they are used up (``exhausted``) the input runs straight to the last exit
    (``last``) or evaluates every later exit SDN-style (``walk``).

    Assumed where the paper is silent (each a parameter): the class scores are the exit's
    log-softmax centred per input; the predictor is ``s + conv1x1(relu(conv_k(s)))``
    (``predictor_channels`` filters of width ``predictor_kernel``, circular padding), trained
    on the calib split to map exit k's scores to exit k+1's (soft cross-entropy over at most
    ``predictor_pairs`` pairs from ``start_exit`` on; full batch, ``predictor_steps`` Adam
    steps, seeded init), so each round stands for one exit of progress; with ``beta`` unset
    it is the cheapest of a grid within ``max_accuracy_loss`` of the full network on the calib
    split. The predictor is trained once per calib split and code, and kept in the caller's store.
    """

    class Params(CalibratedParams):
        beta: float | None = Field(
            None,
            gt=0.0,
            lt=1.0,
            description="max softmax above which an input leaves, in (0, 1) (unset: calibrated)",
        )
        start_exit: NonNegativeInt | None = Field(
            None, description="first exit evaluated, 0-based (unset: chosen by start_share)"
        )
        start_share: float = Field(
            0.5,
            gt=0.0,
            le=1.0,
            description=(
                "unset start_exit: the first exit reaching this share of the final exit's calib accuracy"
            ),
        )
        max_round: PositiveInt = Field(3, description="jump predictions per input before it is exhausted")
        exhausted: Literal["last", "walk"] = Field(
            "last",
            description=(
                "when predictions are used up: last (run to the last exit) or walk (evaluate "
                "every later exit)"
            ),
        )
        predictor_channels: PositiveInt = Field(
            4, description="filters of the jump predictor's convolution (assumed)"
        )
        predictor_kernel: Literal[1, 3, 5, 7] = Field(
            3,
            description="width of the predictor's convolution over the class axis: 1, 3, 5 or 7 (assumed)",
        )
        predictor_steps: PositiveInt = Field(
            100, description="full-batch Adam steps that train the predictor on the calib split (assumed)"
        )
        predictor_pairs: PositiveInt = Field(
            2048,
            description="at most this many (exit k, exit k+1) score pairs train the predictor (assumed)",
        )
        learning_rate: float = Field(
            0.05, gt=0.0, description="Adam learning rate of the predictor's training (assumed)"
        )

    def __init__(self, beta, max_accuracy_loss, start_exit, start_share, max_round, exhausted, **predictor):
        self.beta = beta
        self.max_accuracy_loss = max_accuracy_loss
        self.start_exit, self.start_share = start_exit, start_share
        self.max_round, self.exhausted = max_round, exhausted
        self.predictor_params = predictor
        self.predictor = None  # a torch module (policies.exit._jump_predictor), built by fit

    def fit(self, calib: Calibration) -> None:
        n_exits = calib.probs.shape[0]
        if self.start_exit is None:  # the first exit at start_share of the final exit's calib accuracy
            exit_accuracy = (calib.probs.argmax(-1) == calib.labels).mean(1)
            start = int(np.argmax(exit_accuracy >= self.start_share * exit_accuracy[-1]))
            self.start_exit = max(0, min(start, n_exits - 1 - self.max_round))
        if self.start_exit > n_exits - 2:
            raise ConfigError(
                f"exit_policy.params.start_exit: {self.start_exit} leaves no exit to predict; allowed "
                f"0..{n_exits - 2} for this network's {n_exits} exits"
            )
        if self.max_round > n_exits - 1 - self.start_exit:
            raise ConfigError(
                f"exit_policy.params.max_round: {self.max_round} is more predictions than exits after "
                f"start_exit {self.start_exit}; allowed 1..{n_exits - 1 - self.start_exit}"
            )
        import torch

        from policies.exit._jump_predictor import build_predictor, train_predictor

        p = self.predictor_params
        self.predictor = build_predictor(p["predictor_channels"], p["predictor_kernel"])
        key = hashlib.sha256(
            _SOURCE + calib.probs.tobytes() + repr((self.start_exit, sorted(p.items()))).encode()
        ).hexdigest()
        store = {} if calib.store is None else calib.store
        if key not in store:  # training is deterministic, so a stored predictor is the same one
            store[key] = train_predictor(self.predictor, *_pairs(calib.probs[self.start_exit :], p), p)
        with torch.no_grad():
            for param, array in zip(self.predictor.parameters(), store[key], strict=True):
                param.copy_(torch.from_numpy(np.asarray(array)))
        if self.beta is None:
            confidence = self.rounds_confidence(calib.probs)
            grid = np.linspace(0.3, 0.995, 140)
            self.beta = calibrate(
                grid, lambda beta, probs: self._plan(beta, probs, confidence), calib, self.max_accuracy_loss
            )

    def round_macs(self, classes: int) -> float:
        """MACs of one predictor round on one input (both convolutions, every class position)."""
        c, k = self.predictor_params["predictor_channels"], self.predictor_params["predictor_kernel"]
        return float((c * k + c) * classes)

    def rounds_confidence(self, probs: np.ndarray) -> np.ndarray:
        """``[r, k, n]``: max softmax after r + 1 predictor rounds from exit k's scores."""
        import torch

        n_exits, n, classes = probs.shape
        scores = torch.from_numpy(_scores(probs).reshape(n_exits * n, classes))
        out = np.empty((n_exits - 1, n_exits, n), np.float32)
        with torch.no_grad():
            for r in range(n_exits - 1):
                scores = self.predictor(scores)
                out[r] = scores.softmax(-1).amax(-1).reshape(n_exits, n).numpy()
        return out

    def plan(self, probs: np.ndarray) -> ExitPlan:
        return self._plan(self.beta, probs, self.rounds_confidence(probs))

    def _plan(self, beta: float, probs: np.ndarray, confidence: np.ndarray) -> ExitPlan:
        n_exits, n = probs.shape[:2]
        last, rows = n_exits - 1, np.arange(n)
        sure = probs.max(-1) > beta  # [n_exits, n]
        # jump[k, i]: rounds until the predicted max softmax from exit k exceeds beta, capped at the last exit
        passed = confidence > beta
        jump = np.where(passed.any(0), passed.argmax(0) + 1, n_exits)
        jump = np.minimum(jump, last - np.arange(n_exits)[:, None])
        heads = np.zeros((n, n_exits), bool)
        at = np.full(n, self.start_exit)
        heads[rows, at] = True
        running = ~sure[at, rows]
        made_at = np.full((self.max_round, n), -1)  # where each prediction was made, -1: none
        made_to = np.full((self.max_round, n), -1)  # the exit it predicted
        for r in range(self.max_round):
            idx = np.flatnonzero(running)
            if idx.size == 0:
                break
            target = at[idx] + jump[at[idx], idx]
            made_at[r, idx], made_to[r, idx] = at[idx], target
            at[idx] = target
            heads[idx, target] = True
            running[idx] = ~sure[target, idx] & (target < last)
        idx = np.flatnonzero(running)  # every prediction used, still unsure
        if self.exhausted == "walk":  # every later head until one is sure
            later = sure[:, idx] & (np.arange(n_exits)[:, None] > at[idx])
            stop = first_true(later)
            heads[idx] |= (np.arange(n_exits) > at[idx, None]) & (np.arange(n_exits) <= stop[:, None])
            at[idx] = stop
        else:
            at[idx] = last
            heads[idx, last] = True
        extra = np.where(made_at >= 0, made_to - made_at, 0).sum(0) * self.round_macs(probs.shape[-1])
        return ExitPlan(at, heads, made_at, made_to, extra.astype(float))


# the predictor's key covers this policy and the predictor's own module
_SOURCE = Path(__file__).read_bytes() + Path(find_spec("policies.exit._jump_predictor").origin).read_bytes()


def _scores(probs: np.ndarray) -> np.ndarray:
    """Class scores: log-softmax centred over the classes (softmax of it gives ``probs`` back)."""
    logp = np.log(np.clip(probs, 1e-6, 1.0)).astype(np.float32)
    return logp - logp.mean(-1, keepdims=True)


def _pairs(probs: np.ndarray, params: dict) -> tuple[np.ndarray, np.ndarray]:
    """Training pairs: each exit's scores and the next exit's softmax, at most
    ``predictor_pairs`` of them (a seeded draw), which keeps the torch time of training
    below one batched forward pass of a network."""
    classes = probs.shape[-1]
    source = _scores(probs[:-1]).reshape(-1, classes)
    target = np.ascontiguousarray(probs[1:].reshape(-1, classes), np.float32)
    if len(source) > params["predictor_pairs"]:
        keep = np.sort(
            numpy_rng(0, "predictive_exit/pairs").choice(len(source), params["predictor_pairs"], False)
        )
        source, target = source[keep], target[keep]
    return source, target
