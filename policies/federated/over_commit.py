"""Over-commit: select ``factor`` x K clients, keep the first K updates, drop stragglers.

The practice of Bonawitz et al. (MLSys 2019) and FedScale, with their 1.3 default.
"""

import math

import numpy as np
from pydantic import Field

from policies.federated.base import ClientView, Selection, random_available
from sim.config import StrictModel
from sim.registry import register


@register("selection", "over_commit")
class OverCommit:
    """``factor`` x K random available clients; the round closes when K updates arrived."""

    class Params(StrictModel):
        factor: float = Field(
            1.3, ge=1.0, description="select factor x K clients and keep the first K updates (>= 1)"
        )

    def __init__(self, factor: float = 1.3):
        self.factor = factor

    def select(self, view: ClientView, k: int, rng: np.random.Generator) -> Selection:
        return Selection(random_available(view, math.ceil(self.factor * k), rng), keep_first=k)
