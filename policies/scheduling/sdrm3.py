"""SDRM3 (later DREAM): score-based scheduling for dynamic real-time multi-model work.

A reconstruction from the public abstract only (Kim et al., arXiv 2212.03414; ASPLOS
2023): the full text was not available. What the abstract states, and how each part
is built here (every assumed constant is a ``Params`` field):

- *Requirements quantified into scores that drive each decision.* Every (ready job,
  idle accelerator) pair gets ``w_urgency * U + w_fairness * F + w_preference * P``
  and the best pair runs:
  U = remaining latency on that accelerator / time left to the deadline (capped at
  ``urgency_cap``; a job that cannot finish in time on any idle accelerator counts as
  0 — it would miss anyway, so feasible work goes first), F = the model's recent
  drop share (exponential average, ``fairness_decay``) plus its waiting time in frame
  periods, P = the job's best energy-delay product over all accelerators divided by
  its energy-delay product on this one (1 on its preferred accelerator). Load and the
  other jobs enter through waiting: a pair whose finish time exceeds the job's
  earliest finish over all accelerators (busy ones at the time they free up) by more
  than ``wait_tolerance`` is not considered, so a job may wait for the accelerator
  that suits it rather than take a poor one (assumed; the abstract says decisions
  consider "the current system load and the other jobs").
- *Tunable parameters adapted online by a gradient-descent-like optimisation that
  converges within about five steps.* Assumed: each window of ``window_s`` is one
  step on a surrogate of log UXCost. Three measured shares say which term of the
  score fell short: the energy share ``x_p = (E - E_best) / E`` (E_best: each
  finished job's energy on its most efficient accelerator), the penalty share of the
  effective delay ``x_u`` (late and dropped frames), and the drop disparity ``x_f``
  (largest per-model drop share minus the mean). The weights move by
  ``w_i <- w_i * exp(gain_k * (x_i / sum(x) - 1/3))``, renormalised to their initial
  sum, with ``gain_k = step_size * gain_decay**k``: the term that hurt most gains
  weight, and the geometric decay makes the weights settle (the total movement is
  bounded); no weight falls below ``min_weight_share`` of the total. A change in the set of running models
  restarts ``k`` (a new workload). ``history`` records the weights after each step.
- *Model-level dynamicity: a smaller supernet sub-network under load.* Each new frame
  of a supernet model gets one width smaller than the model's last when the
  predicted load (work queued and running, over the accelerators' capacity within one
  frame period) exceeds ``load_high``, one larger when it falls below ``load_low``.
- Layer-block granularity (``granularity: layer_block``) lets urgent work take over
  between blocks; at model granularity jobs run to completion.

"""

from __future__ import annotations

import math

from pydantic import Field, NonNegativeFloat, PositiveFloat

from sim.config import StrictModel
from sim.registry import register


@register("scheduling", "sdrm3")
class SDRM3:
    """SDRM3/DREAM reconstruction: scored (job, accelerator) pairs, online-tuned weights, supernet control."""

    class Params(StrictModel):
        w_urgency: NonNegativeFloat = 1.0
        w_fairness: NonNegativeFloat = 0.5
        w_preference: NonNegativeFloat = 0.5
        urgency_cap: PositiveFloat = 4.0
        wait_tolerance: NonNegativeFloat = 0.5
        fairness_decay: float = Field(0.9, ge=0.0, lt=1.0)
        adapt: bool = True
        window_s: PositiveFloat = 0.1
        step_size: PositiveFloat = 3.0
        gain_decay: float = Field(0.5, gt=0.0, lt=1.0)
        min_weight_share: float = Field(0.02, ge=0.0, lt=1 / 3)
        miss_penalty: NonNegativeFloat = 1.0
        drop_penalty: NonNegativeFloat = 2.0
        load_high: PositiveFloat = 0.9
        load_low: PositiveFloat = 0.6

    def __init__(self, **params: float):
        self.p = self.Params(**params)
        self.weights = [self.p.w_urgency, self.p.w_fairness, self.p.w_preference]
        self.history: list[tuple[float, list[float]]] = []  # (time, weights) after each step
        self._drop_share: list[float] = []  # per model index: recent share of frames dropped
        # per model variant: (preference per accelerator, fastest remaining latency per block)
        self._static: dict[object, tuple[list[float], list[float]]] = {}
        self._cap = self.p.urgency_cap
        self._tolerance = 1.0 + self.p.wait_tolerance
        self._accels: list = []
        self._ready: list = []
        self._width: dict[int, int] = {}
        self._total = sum(self.weights)
        self._window_end = self.p.window_s
        self._k = 0  # steps since the workload last changed
        self._win = _Window()
        self._models_before: frozenset[int] | None = None

    # -- setup and feedback --------------------------------------------------------------
    def setup(self, accelerators, models) -> None:
        self._accels = list(accelerators)
        for m in models:  # preference: best EDP over accelerators / EDP here, per model variant
            edp = [m.cum_energy_j[a.index][-1] * m.cum_latency_s[a.index][-1] for a in accelerators]
            best = min(edp)
            remaining = [[c[-1] - c[b] for b in range(m.n_blocks + 1)] for c in m.cum_latency_s]
            self._static[m] = (
                [best / e if e > 0 else 1.0 for e in edp],
                [min(r[b] for r in remaining) for b in range(m.n_blocks + 1)],
            )
        self._drop_share = [0.0] * (max((m.index for m in models), default=-1) + 1)

    def on_complete(self, job, now: float) -> None:
        index = job.model.index
        self._drop_share[index] *= self.p.fairness_decay
        budget = job.deadline_s - job.arrival_s
        late = now > job.deadline_s and math.isfinite(budget)
        self._observe(now, job, now - job.arrival_s, self.p.miss_penalty * budget if late else 0.0, False)

    def on_drop(self, job, now: float) -> None:
        index = job.model.index
        decay = self.p.fairness_decay
        self._drop_share[index] = decay * self._drop_share[index] + (1 - decay)
        self._observe(now, job, 0.0, self.p.drop_penalty * (job.deadline_s - job.arrival_s), True)

    # -- decisions -----------------------------------------------------------------------
    def pick(self, ready, idle, now):
        w_u, w_f, w_p = self.weights
        cap, tolerance = self._cap, self._tolerance
        drop_share, static = self._drop_share, self._static
        best, best_score = None, -math.inf
        self._ready = ready  # the pool's live ready list, read when a frame's width is chosen
        single = len(ready) == 1 and len(idle) == 1  # one candidate pair: no score needed
        for job in ready:
            model = job.model
            nb, scale = job.next_block, job.scale
            cum_latency = model.cum_latency_s
            left = job.deadline_s - now
            base = w_f * (drop_share[model.index] + (now - job.ready_s) / model.period_s)
            pref, fastest = static[model]
            # a pair finishing much later than the job's earliest finish over all accelerators
            # (busy ones once free) is skipped, so the job waits for a better one; within
            # `tolerance` of its fastest accelerator a pair always qualifies (no need to look)
            quick = fastest[nb] * scale * tolerance
            limit = None
            for accel in idle:
                i = accel.index
                c = cum_latency[i]  # inlined remaining_latency_s, for speed
                t = (c[-1] - c[nb]) * scale
                if t > quick:
                    if limit is None:
                        limit = self._earliest_finish(job, now) * tolerance
                    if t > limit:
                        continue
                if single:
                    return job, accel
                urgency = 0.0 if t > left else (min(t / left, cap) if left > 0 else cap)
                score = base + w_u * urgency + w_p * pref[i]
                if score > best_score:
                    best, best_score = (job, accel), score
        return best

    def _earliest_finish(self, job, now: float) -> float:
        """Time from now until ``job`` could be done, over every accelerator once it is free."""
        return min(max(a.busy_until_s - now, 0.0) + job.remaining_latency_s(a) for a in self._accels)

    def choose_variant(self, variants, now: float) -> int:
        index = variants[0].index
        current = self._width.get(index, len(variants) - 1)
        load = self._predict_load(variants[0].period_s, now)
        if load > self.p.load_high and current > 0:
            current -= 1
        elif load < self.p.load_low and current < len(variants) - 1:
            current += 1
        self._width[index] = current
        return current

    def _predict_load(self, period_s: float, now: float) -> float:
        """Queued plus running work, over the accelerators' capacity within one frame period."""
        accels = self._accels
        queued = sum(min(job.remaining_latency_s(a) for a in accels) for job in self._ready)
        running = sum(max(a.busy_until_s - now, 0.0) for a in accels)
        return (queued + running) / (len(accels) * period_s)

    # -- online adaptation ---------------------------------------------------------------
    def _observe(self, now: float, job, delay_s: float, penalty_s: float, dropped: bool) -> None:
        if not self.p.adapt:
            return
        while now >= self._window_end:
            self._step(self._window_end)
        win = self._win
        model = job.model
        win.energy_j += job.energy_j
        win.best_energy_j += min(c[-1] for c in model.cum_energy_j) * job.work if not dropped else 0.0
        win.delay_s += delay_s + penalty_s
        win.penalty_s += penalty_s
        frames, drops = win.per_model.get(model.index, (0, 0))
        win.per_model[model.index] = (frames + 1, drops + dropped)

    def _step(self, end_s: float) -> None:
        win, self._win = self._win, _Window()
        self._window_end = end_s + self.p.window_s
        if not win.per_model:
            return
        models = frozenset(win.per_model)
        if models != self._models_before:
            self._k = 0  # a new workload: restart the gain schedule
            self._models_before = models
        shares = [d / f for f, d in win.per_model.values()]
        x = [
            win.penalty_s / win.delay_s if win.delay_s > 0 else 0.0,  # urgency
            max(shares) - sum(shares) / len(shares),  # fairness
            (win.energy_j - win.best_energy_j) / win.energy_j if win.energy_j > 0 else 0.0,  # preference
        ]
        total = sum(x)
        if total <= 0:
            return
        gain = self.p.step_size * self.p.gain_decay**self._k
        moved = [w * math.exp(gain * (xi / total - 1 / 3)) for w, xi in zip(self.weights, x)]
        floor = self.p.min_weight_share * sum(moved)
        moved = [max(w, floor) for w in moved]
        scale = self._total / sum(moved)
        self.weights = [w * scale for w in moved]
        self._k += 1
        self.history.append((end_s, list(self.weights)))


class _Window:
    """What finished in one adaptation window."""

    __slots__ = ("energy_j", "best_energy_j", "delay_s", "penalty_s", "per_model")

    def __init__(self):
        self.energy_j = 0.0
        self.best_energy_j = 0.0
        self.delay_s = 0.0
        self.penalty_s = 0.0
        self.per_model: dict[int, tuple[int, int]] = {}
