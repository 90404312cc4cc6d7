"""What the edge world accepts from its exit, DVFS and offload policies.

A policy's decision is checked where the world takes it, so a wrong value stops the
run with one line naming the policy, the call and the value
(:func:`sim.errors.bad_decision`) instead of failing later inside the engine. The
per-request checks are a range test and a type test: cheap beside the request itself.
"""

from __future__ import annotations

from numbers import Integral
from typing import Any

import numpy as np

from policies.exit.base import ExitPlan
from sim.errors import bad_decision


def checked_plan(policy: object, plan: Any, n_exits: int, n: int) -> ExitPlan:
    """An exit policy's plan for ``n`` samples of an ``n_exits``-exit network (the order of the
    inference cache's ``[exits, samples, classes]``), or a PolicyError:
    an exit index in ``0..n_exits-1`` per sample, and the heads evaluated (the exit's among them)."""
    if not isinstance(plan, ExitPlan):
        raise bad_decision(policy, "plan", plan, "an ExitPlan (policies/exit/base.py)")
    exit_index, heads = np.asarray(plan.exit_index), np.asarray(plan.heads_evaluated)
    shaped = exit_index.shape == (n,) and exit_index.dtype.kind in "iu"
    if not (shaped and exit_index.min(initial=0) >= 0 and exit_index.max(initial=0) < n_exits):
        raise bad_decision(policy, "plan", exit_index, f"{n} exit indices in 0..{n_exits - 1}", "exit_index")
    if not (heads.shape == (n, n_exits) and heads.dtype == bool and heads[np.arange(n), exit_index].all()):
        need = f"bool [{n}, {n_exits}], true at each sample's exit"
        raise bad_decision(policy, "plan", heads, need, "heads_evaluated")
    for name in ("prediction_at", "prediction_to"):
        made = getattr(plan, name)
        made = None if made is None else np.asarray(made)
        if made is not None and not (
            made.ndim == 2
            and made.shape[1] == n
            and made.dtype.kind in "iu"
            and np.all((made >= -1) & (made < n_exits))
        ):
            raise bad_decision(policy, "plan", made, f"int [predictions, {n}] in -1..{n_exits - 1}", name)
    extra = None if plan.extra_macs is None else np.asarray(plan.extra_macs)
    if extra is not None and not (
        extra.shape == (n,) and extra.dtype.kind in "iuf" and np.all(np.isfinite(extra) & (extra >= 0))
    ):
        raise bad_decision(policy, "plan", extra, f"{n} finite MACs >= 0", "extra_macs")
    return plan


def checked_point(governor: object, call: str, point: Any, points: int) -> int:
    """A DVFS governor's ``call`` result if it indexes one of ``points`` operating points, else
    a PolicyError."""
    if type(point) is int and 0 <= point < points:  # the common case, without the ABC check
        return point
    if point in range(points) and isinstance(point, Integral):
        return point
    raise bad_decision(governor, call, point, f"an operating point index, an int in 0..{points - 1}")


def checked_offload(policy: object, decision: Any) -> bool:
    """An offload policy's ``decide`` result if it is a bool, else a PolicyError."""
    if decision.__class__ is bool or isinstance(decision, np.bool_):
        return decision
    raise bad_decision(policy, "decide", decision, "True (offload) or False (run on the device)")
