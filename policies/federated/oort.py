"""Oort-style utility selection (Lai et al., OSDI 2021), reconstructed from the paper.

Utility of an explored client ``i``: statistical utility ``|B_i| * sqrt(mean loss^2)``
(here ``num_samples * last_loss``: a client reports its mean loss, not the per-sample
losses, an assumption), plus a staleness bonus ``sqrt(0.1 * log(round) / last_round)``,
times the system penalty ``(T / t_i) ** alpha`` when its expected round time ``t_i``
exceeds the preferred duration ``T`` (the ``preferred_quantile`` of available clients'
expected times; the paper adapts T with a pacer, omitted). Exploitation picks among
clients within ``cutoff`` of the (1-eps)K-th best utility, in proportion to utility;
exploration fills the remaining eps*K slots from never-tried clients, faster ones
more likely. eps starts at 0.9 and decays by 0.98 per round to 0.2 (the paper's values).
"""

import math

import numpy as np
from pydantic import Field, PositiveFloat

from policies.federated.base import ClientView, Selection
from sim.config import StrictModel
from sim.registry import register


@register("selection", "oort")
class Oort:
    """Statistical utility x system speed, with exploration of untried clients."""

    class Params(StrictModel):
        alpha: PositiveFloat = Field(
            2.0, description="exponent of the system penalty (T / t_i) ** alpha for clients slower than T"
        )
        preferred_quantile: float = Field(
            0.5,
            gt=0.0,
            le=1.0,
            description=(
                "preferred round duration T: this quantile of available clients' expected round times"
            ),
        )
        cutoff: float = Field(
            0.95,
            gt=0.0,
            le=1.0,
            description=(
                "exploit among clients whose utility is at least cutoff times the (1-eps)K-th best, in (0, 1]"
            ),
        )
        epsilon: float = Field(
            0.9,
            ge=0.0,
            le=1.0,
            description="initial share of the K slots spent exploring untried clients, in [0, 1]",
        )
        epsilon_decay: float = Field(
            0.98, gt=0.0, le=1.0, description="epsilon is multiplied by this each round, in (0, 1]"
        )
        epsilon_min: float = Field(
            0.2, ge=0.0, le=1.0, description="epsilon never decays below this, in [0, 1]"
        )

    def __init__(self, **params: float):
        p = self.Params(**params)
        self.alpha, self.quantile, self.cutoff = p.alpha, p.preferred_quantile, p.cutoff
        self.epsilon, self.decay, self.epsilon_min = p.epsilon, p.epsilon_decay, p.epsilon_min

    def select(self, view: ClientView, k: int, rng: np.random.Generator) -> Selection:
        pool = np.flatnonzero(view.available)
        if len(pool) == 0:
            return Selection(pool)
        tried = pool[view.last_round[pool] >= 0]
        fresh = pool[view.last_round[pool] < 0]
        n_explore = min(len(fresh), max(k - len(tried), round(self.epsilon * k)))
        n_exploit = min(len(tried), k - n_explore)
        self.epsilon = max(self.epsilon_min, self.epsilon * self.decay)
        chosen = [self._exploit(view, tried, n_exploit, rng)] if n_exploit else []
        if n_explore:
            speed = 1.0 / view.expected_round_s[fresh]
            chosen.append(rng.choice(fresh, size=n_explore, replace=False, p=speed / speed.sum()))
        return Selection(np.sort(np.concatenate(chosen)) if chosen else pool[:0])

    def _exploit(self, view: ClientView, tried: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        preferred_s = float(np.quantile(view.expected_round_s[view.available], self.quantile))
        utility = view.num_samples[tried] * np.nan_to_num(view.last_loss[tried])
        utility = utility + np.sqrt(0.1 * math.log(max(view.round, 2)) / (view.last_round[tried] + 1))
        slow = view.expected_round_s[tried] > preferred_s
        utility[slow] *= (preferred_s / view.expected_round_s[tried][slow]) ** self.alpha
        threshold = self.cutoff * np.sort(utility)[::-1][n - 1]
        eligible = np.flatnonzero(utility >= threshold)
        weights = utility[eligible] / utility[eligible].sum()
        return tried[rng.choice(eligible, size=n, replace=False, p=weights)]
