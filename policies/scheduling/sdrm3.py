"""SDRM3 (later DREAM): score-based scheduling for dynamic real-time multi-model work.

A reconstruction from the public abstract only (Kim et al., arXiv 2212.03414; ASPLOS
2023): the full text was not available. What the abstract states, and how each part
is built here (every assumed constant is a ``Params`` field; each mechanism has a
switch, so an ablation can turn it off):

- *Requirements quantified into scores that drive each decision.* Every (ready job,
  idle accelerator) pair gets ``w_urgency * U + w_fairness * F + w_preference * P``
  and the best pair runs:
  U = remaining latency on that accelerator / time left to the deadline (capped at
  ``urgency_cap``; a job that cannot finish in time on any idle accelerator counts as
  0 — it would miss anyway, so feasible work goes first), F = the model's recent
  drop share (exponential average, ``fairness_decay``) plus its waiting time in frame
  periods, P = the job's best energy-delay product over all accelerators divided by
  its energy-delay product on this one (1 on its preferred accelerator).
- *Decisions consider the current system load and the other jobs* (``wait_filter``).
  A pair whose finish time exceeds the job's earliest finish over all accelerators
  (busy ones at the time they free up) by more than ``wait_tolerance`` is not
  considered, so a job may wait for the accelerator that suits it rather than take a
  poor one (assumed).
- *Tunable parameters adapted online by a gradient-descent-like optimisation that
  converges within about five steps for a new workload* (``adapt``). Assumed: a
  derivative-free coordinate (pattern) search on the measured cost. One step is one
  trial of ``trial_windows`` windows of ``window_s``; its cost is the UXCost of the
  frames that finished in it: mean energy (per unit of input work) times mean
  effective delay, where a late frame's delay gains ``miss_penalty`` budgets and a
  dropped frame is charged the energy of its costliest accelerator and
  ``1 + miss_penalty + drop_penalty`` budgets plus its worst-case latency (the
  project's UXCost), with the models mixed at their nominal frame rates so that two
  trials compare although different frames happened to finish in them. After a
  workload change the search tries the settled weights and the three vectors that
  multiply one weight by ``explore_factor`` (a positive spanning set of the scale-free
  weight plane), ``trial_windows`` windows each, interleaved window by window so the
  transient after the change falls on every candidate alike; then it keeps the
  cheapest if it beats the settled weights by more than ``min_gain`` (else they stay):
  four trial steps, the chosen weights act from the fifth. ``rounds`` > 1 repeats the search around the winner
  with the factor raised to the power ``explore_decay`` per round. Weights keep their
  initial sum and none falls below ``min_weight_share`` of it; between workload
  changes they stay.
- *A new workload* is a change in the set of *active streams*: a model joins when a
  frame of it is first seen (completed or dropped) while it is inactive, and leaves
  when it has been silent for ``leave_gaps`` times its longest gap between frames so
  far (at least its period), so a stream triggered with a low probability does not
  flap. Which models merely finished in a window does not matter.
- *Model-level dynamicity: a smaller supernet sub-network under load*
  (``switch_width``). At the end of every window: when it had a late or dropped frame
  or its offered load (every finished frame's latency on its fastest accelerator,
  over the accelerators' capacity in the window) exceeded ``load_high``, every
  supernet model is served one width narrower from then on; when it had neither and
  the offered load with the supernets one width wider stays below ``load_low``, one
  width wider. Without the switch the widest width is served.
- Layer-block granularity (``granularity: layer_block``) lets urgent work take over
  between blocks; at model granularity jobs run to completion.

``history`` records ``(time, weights)`` after each window, ``changes`` the times a new
workload was detected, ``width_history`` ``(time, model index, width index)`` at
each width change.
"""

from __future__ import annotations

import math

from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt, model_validator

from sim.config import StrictModel
from sim.registry import register


@register("scheduling", "sdrm3")
class SDRM3:
    """SDRM3/DREAM reconstruction: scored (job, accelerator) pairs, online-tuned weights, supernet control."""

    class Params(StrictModel):
        w_urgency: NonNegativeFloat = Field(
            1.0, description="initial weight of urgency U (remaining latency / time to deadline)"
        )
        w_fairness: NonNegativeFloat = Field(
            0.5, description="initial weight of fairness F (recent drop share + wait in frame periods)"
        )
        w_preference: NonNegativeFloat = Field(
            0.5, description="initial weight of preference P (best energy-delay product / this pair's)"
        )
        urgency_cap: PositiveFloat = Field(4.0, description="urgency U is capped at this value")
        fairness_decay: float = Field(
            0.9,
            ge=0.0,
            lt=1.0,
            description="decay of the exponential average of each model's drop share, in [0, 1)",
        )
        wait_filter: bool = Field(
            True,
            description=(
                "skip pairs finishing much later than the job's earliest finish (the job "
                "waits for a better accelerator)"
            ),
        )
        wait_tolerance: NonNegativeFloat = Field(
            0.5,
            description="wait_filter: a pair may take this share longer than the job's fastest accelerator",
        )
        adapt: bool = Field(
            True,
            description=(
                "tune the three weights online after each workload change (pattern search on UXCost)"
            ),
        )
        window_s: PositiveFloat = Field(0.1, description="length of one measuring window, in seconds")
        trial_windows: PositiveInt = Field(
            4, description="windows each trial weight vector runs for during the search"
        )
        explore_factor: float = Field(4.0, gt=1.0, description="a trial multiplies one weight by this (> 1)")
        rounds: PositiveInt = Field(
            1, description="search rounds after a workload change (later rounds shrink the factor)"
        )
        explore_decay: float = Field(
            0.5, gt=0.0, le=1.0, description="per round the factor is raised to this power, in (0, 1]"
        )
        min_gain: float = Field(
            0.02,
            ge=0.0,
            lt=1.0,
            description="keep a trial only if it cuts the cost by more than this share, in [0, 1)",
        )
        min_weight_share: float = Field(
            0.02,
            ge=0.0,
            lt=1 / 3,
            description="no weight falls below this share of the weights' sum, in [0, 1/3)",
        )
        leave_gaps: float = Field(
            4.0,
            gt=1.0,
            description=(
                "a model leaves the workload after this many times its longest gap without frames (> 1)"
            ),
        )
        miss_penalty: NonNegativeFloat = Field(
            1.0, description="trial cost: a late frame's delay gains this many frame budgets"
        )
        drop_penalty: NonNegativeFloat = Field(
            1.0, description="trial cost: a dropped frame is charged 1 + miss_penalty + this many budgets"
        )
        switch_width: bool = Field(
            True, description="serve supernet models narrower under load and wider when it eases"
        )
        load_high: PositiveFloat = Field(
            0.9, description="offered load above which supernets go one width narrower"
        )
        load_low: PositiveFloat = Field(
            0.6,
            description=(
                "offered load (one width wider) below which supernets go one width wider; below load_high"
            ),
        )

        @model_validator(mode="after")
        def _load_band(self) -> SDRM3.Params:
            if self.load_low >= self.load_high:
                raise ValueError(f"load_low ({self.load_low}) must be below load_high ({self.load_high})")
            return self

    def __init__(self, **params: float):
        self.p = self.Params(**params)
        self.weights = [self.p.w_urgency, self.p.w_fairness, self.p.w_preference]
        self.history: list[tuple[float, list[float]]] = []  # (time, weights) after each window
        self.changes: list[float] = []  # times a new workload (set of active streams) was seen
        self.width_history: list[tuple[float, int, int]] = []  # (time, model index, width index)
        self._drop_share: list[float] = []  # per model index: recent share of frames dropped
        # per model variant: (preference per accelerator, fastest remaining latency per block)
        self._static: dict[object, tuple[list[float], list[float]]] = {}
        # per model variant: a frame's latency and energy on its slowest and costliest accelerator
        self._worst: dict[object, tuple[float, float]] = {}
        self._fastest_s: dict[object, float] = {}  # per model variant: a frame's least latency
        self._cap = self.p.urgency_cap
        self._tolerance = 1.0 + self.p.wait_tolerance if self.p.wait_filter else math.inf
        self._accels: list = []
        self._total = sum(self.weights)
        self._window_end = self.p.window_s
        self._steps = 0  # windows ended
        self._win = _Window()
        # active streams (the keys): per model index, the latest arrival seen and the longest gap
        self._last_s: dict[int, float] = {}
        self._gap_s: dict[int, float] = {}
        self._period_s: dict[int, float] = {}
        self._joined = False
        # the search: the round's weight vectors (empty when settled), each one's per-model
        # sums as in _Window, and the windows measured so far in the round
        self._trials: list[list[float]] = []
        self._trial_sums: list[dict[int, list]] = []
        self._trial_windows = 0
        self._round = 0
        self._settled = list(self.weights)  # the centre of the next search
        # supernet models: per model index, fastest full latency per width; the width served
        self._widths: dict[int, list[float]] = {}
        self._width: dict[int, int] = {}

    # -- setup and feedback --------------------------------------------------------------
    def setup(self, accelerators, models) -> None:
        self._accels = list(accelerators)
        variants: dict[int, dict[int, float]] = {}
        for m in models:  # preference: best EDP over accelerators / EDP here, per model variant
            edp = [m.cum_energy_j[a.index][-1] * m.cum_latency_s[a.index][-1] for a in accelerators]
            best = min(edp)
            remaining = [[c[-1] - c[b] for b in range(m.n_blocks + 1)] for c in m.cum_latency_s]
            self._static[m] = (
                [best / e if e > 0 else 1.0 for e in edp],
                [min(r[b] for r in remaining) for b in range(m.n_blocks + 1)],
            )
            self._worst[m] = (max(c[-1] for c in m.cum_latency_s), max(c[-1] for c in m.cum_energy_j))
            self._fastest_s[m] = self._static[m][1][0]
            variants.setdefault(m.index, {})[m.variant] = self._fastest_s[m]
            self._period_s[m.index] = m.period_s
        self._widths = {i: [v[k] for k in sorted(v)] for i, v in variants.items() if len(v) > 1}
        self._width = {i: len(w) - 1 for i, w in self._widths.items()}
        self._drop_share = [0.0] * (max((m.index for m in models), default=-1) + 1)

    def on_complete(self, job, now: float) -> None:
        index = job.model.index
        self._drop_share[index] *= self.p.fairness_decay
        budget = job.deadline_s - job.arrival_s
        late = now > job.deadline_s and math.isfinite(budget)
        penalty = self.p.miss_penalty * budget if late else 0.0
        self._observe(now, job, job.energy_j, now - job.arrival_s + penalty, late)

    def on_drop(self, job, now: float) -> None:
        index = job.model.index
        decay = self.p.fairness_decay
        self._drop_share[index] = decay * self._drop_share[index] + (1 - decay)
        budget = job.deadline_s - job.arrival_s
        budgets = 1.0 + self.p.miss_penalty + self.p.drop_penalty
        worst_s, worst_j = self._worst[job.model]
        delay = (budgets * budget if math.isfinite(budget) else 0.0) + worst_s * job.scale
        self._observe(now, job, job.energy_j + worst_j * job.work, delay, True)

    # -- decisions -----------------------------------------------------------------------
    def pick(self, ready, idle, now):
        w_u, w_f, w_p = self.weights
        cap, tolerance = self._cap, self._tolerance
        drop_share, static = self._drop_share, self._static
        best, best_score = None, -math.inf
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
        """The width the last window's load asked for (the widest without ``switch_width``)."""
        return self._width.get(variants[0].index, len(variants) - 1)

    # -- measuring windows ---------------------------------------------------------------
    def _observe(self, now: float, job, energy_j: float, delay_s: float, missed: bool) -> None:
        while now >= self._window_end:
            self._step(self._window_end)
        model = job.model
        index = model.index
        win = self._win
        win.frames += 1
        win.misses += missed
        win.load_s += self._fastest_s[model]
        sums = win.per_model.get(index)
        if sums is None:
            sums = win.per_model[index] = [0, 0.0, 0.0]
        sums[0] += 1
        sums[1] += energy_j / job.work
        sums[2] += delay_s
        # active streams: a frame of an inactive model is a join; track the longest gap
        arrival = job.arrival_s
        last = self._last_s.get(index)
        if last is None:
            self._last_s[index] = arrival
            self._gap_s[index] = self._period_s[index]
            self._joined = True
        elif arrival > last:
            if arrival - last > self._gap_s[index]:
                self._gap_s[index] = arrival - last
            self._last_s[index] = arrival

    def _step(self, end_s: float) -> None:
        win, self._win = self._win, _Window()
        self._steps += 1
        self._window_end = (self._steps + 1) * self.p.window_s  # a product, so no rounding drift
        changed = self._workload_changed(end_s)
        if changed:
            self.changes.append(end_s)
        if self.p.adapt:
            self._tune(win, changed)
            self.history.append((end_s, list(self.weights)))
        if self.p.switch_width and win.frames:
            self._control_width(win, end_s)

    def _workload_changed(self, end_s: float) -> bool:
        """Whether the set of active streams changed in the window that ends at ``end_s``."""
        changed, self._joined = self._joined, False
        left = [
            i
            for i, last in self._last_s.items()
            if end_s - last > self.p.leave_gaps * max(self._gap_s[i], self._period_s[i])
        ]
        for i in left:
            del self._last_s[i], self._gap_s[i]
        return changed or bool(left)

    # -- online tuning: coordinate search on the measured trial cost -------------------
    def _tune(self, win: _Window, changed: bool) -> None:
        if changed:  # a new workload: search around the weights last settled on
            self._round = 0
            self._start_round(self._settled)
            return
        if not self._trials or not win.frames:
            return  # settled, or nothing measured in this window
        n_trials = len(self._trials)
        trial = self._trial_sums[self._trial_windows % n_trials]
        for index, (n, energy, delay) in win.per_model.items():
            sums = trial.setdefault(index, [0, 0.0, 0.0])
            sums[0] += n
            sums[1] += energy
            sums[2] += delay
        self._trial_windows += 1
        if self._trial_windows < self.p.trial_windows * n_trials:
            self.weights = list(self._trials[self._trial_windows % n_trials])
            return
        costs = [self._cost(sums) for sums in self._trial_sums]
        best = min(range(1, n_trials), key=costs.__getitem__)
        # a clear gain over the centre, not window-to-window noise
        chosen = self._trials[best] if costs[best] < (1.0 - self.p.min_gain) * costs[0] else self._trials[0]
        self.weights = list(chosen)
        self._settled = list(chosen)
        self._trials = []
        self._round += 1
        if self._round < self.p.rounds:
            self._start_round(chosen)

    def _cost(self, per_model: dict[int, list]) -> float:
        """UXCost of a trial (mean energy per work unit times mean effective delay), with the
        models mixed at their nominal frame rates, not at the counts that happened to finish."""
        rates = {i: 1.0 / self._period_s[i] for i in per_model}
        total = sum(rates.values()) or 1.0  # streams without a frame period weigh nothing
        energy = sum(rates[i] * e / n for i, (n, e, _) in per_model.items()) / total
        delay = sum(rates[i] * d / n for i, (n, _, d) in per_model.items()) / total
        return energy * delay

    def _start_round(self, centre: list[float]) -> None:
        """Trials for one round: ``centre``, then ``centre`` with each weight multiplied by the factor."""
        factor = self.p.explore_factor ** (self.p.explore_decay**self._round)
        self._trials = [self._normalised(centre)]
        for k in range(3):
            moved = list(centre)
            moved[k] *= factor
            self._trials.append(self._normalised(moved))
        self._trial_sums = [{} for _ in self._trials]
        self._trial_windows = 0
        self.weights = list(self._trials[0])

    def _normalised(self, weights: list[float]) -> list[float]:
        """``weights`` scaled to the initial sum, none below ``min_weight_share`` of it."""
        total = sum(weights)
        if total <= 0:
            return [self._total / 3] * 3
        floor = self.p.min_weight_share * self._total
        raised = [max(w * self._total / total, floor) for w in weights]
        return [w * self._total / sum(raised) for w in raised]

    # -- supernet width ------------------------------------------------------------------
    def _control_width(self, win: _Window, end_s: float) -> None:
        capacity = self.p.window_s * len(self._accels)
        load = win.load_s / capacity
        if win.misses or load > self.p.load_high:
            step = -1
        else:
            wider = (
                load
                + sum(
                    win.per_model.get(i, (0,))[0]
                    * (lat[min(self._width[i] + 1, len(lat) - 1)] - lat[self._width[i]])
                    for i, lat in self._widths.items()
                )
                / capacity
            )
            step = 1 if wider < self.p.load_low else 0
        if step == 0:
            return
        for i, lat in self._widths.items():
            width = min(max(self._width[i] + step, 0), len(lat) - 1)
            if width != self._width[i]:
                self._width[i] = width
                self.width_history.append((end_s, i, width))


class _Window:
    """What finished in one window: frames, misses and offered load, and per model the
    frames and the sums of their energy and effective delay relative to each frame's best
    case (least energy, latency on the fastest accelerator)."""

    __slots__ = ("frames", "misses", "load_s", "per_model")

    def __init__(self):
        self.frames = 0
        self.misses = 0
        self.load_s = 0.0  # finished frames' latency on their fastest accelerator
        self.per_model: dict[int, list] = {}  # model index: [frames, energy ratio sum, delay ratio sum]
