"""Deadline-based selection (FedCS, Nishio and Yonetani, ICC 2019), simplified.

FedCS packs as many clients as it can into a round deadline from their resource
reports. Here: keep the available clients whose expected round time (from device
profiles) fits the deadline, pick K of them at random, and close the round at the
deadline; a client that turns out late (or drops) is left out. Assumption: the
server knows each device's speed and bandwidths, as FedCS's resource requests give it.
"""

import numpy as np
from pydantic import Field, PositiveFloat

from policies.federated.base import ClientView, Selection
from sim.config import StrictModel
from sim.registry import register


@register("selection", "deadline")
class Deadline:
    """K random clients among those expected to finish within ``deadline_s``; close at the deadline."""

    class Params(StrictModel):
        deadline_s: PositiveFloat = Field(
            1.0,
            description=(
                "round deadline in simulated seconds: only clients expected to finish by it "
                "are picked, late ones are left out"
            ),
        )

    def __init__(self, deadline_s: float = 1.0):
        self.deadline_s = deadline_s

    def select(self, view: ClientView, k: int, rng: np.random.Generator) -> Selection:
        fits = np.flatnonzero(view.available & (view.expected_round_s <= self.deadline_s))
        chosen = np.sort(rng.choice(fits, size=min(k, len(fits)), replace=False))
        return Selection(chosen, deadline_s=self.deadline_s)
