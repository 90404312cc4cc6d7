"""Random selection: K available clients uniformly at random (FedAvg's sampling)."""

import numpy as np

from policies.federated.base import ClientView, Selection, random_available
from sim.registry import register


@register("selection", "random")
class RandomK:
    """K available clients uniformly at random; the round waits for every one that does not drop."""

    def select(self, view: ClientView, k: int, rng: np.random.Generator) -> Selection:
        return Selection(random_available(view, k, rng))
