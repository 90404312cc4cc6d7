"""A purchase policy in one file: least-confidence buying (Lewis and Gale, SIGIR 1994).

A plugin module: ``--plugin least_confidence`` (with ``examples/`` on ``PYTHONPATH``)
makes ``purchase: {name: least_confidence, params: {max_confidence: 0.6}}`` usable in
any ``market`` scenario; ``compare_purchase_policies.py`` uses it in a sweep.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from policies.acquisition.base import PurchaseView
from sim.config import StrictModel
from sim.registry import register


@register("acquisition", "least_confidence")
class LeastConfidence:
    """Buy a point when the predictor's top class probability for it is below ``max_confidence``."""

    class Params(StrictModel):
        max_confidence: float = Field(0.6, gt=0.0, le=1.0)

    def __init__(self, max_confidence: float):
        self.max_confidence = max_confidence

    def decide(self, view: PurchaseView, rng: np.random.Generator) -> np.ndarray:
        return view.probs.max(axis=1) < self.max_confidence
