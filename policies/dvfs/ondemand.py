"""Linux-ondemand-style governor: utilisation-driven frequency."""

from __future__ import annotations

from pydantic import Field, model_validator

from sim.config import SUBFIELD_MARK, StrictModel
from sim.registry import register


@register("dvfs", "ondemand")
class Ondemand:
    """Linux ``ondemand``-style: jump to the highest point above ``up_threshold`` busy, else scale to load.

    The utilisation ``u`` is the device's busy share over the last ``window_s``
    (Linux: ``sampling_rate``). Above ``up_threshold`` it picks the highest point;
    otherwise the lowest point with ``freq >= f_current * u / target``, the frequency
    at which the same work would keep the device ``target`` busy (older kernels'
    ``up_threshold - down_differential``). Defaults: ``up_threshold`` 0.8 and
    ``target`` 0.7 (the kernel's 80 and 80 - 10); ``window_s`` 0.1 s, assumed, of the
    order of a few inference requests.
    """

    class Params(StrictModel):
        up_threshold: float = Field(
            0.8, gt=0.0, le=1.0, description="busy share above which the highest point is chosen, in (0, 1]"
        )
        target: float = Field(
            0.7,
            gt=0.0,
            le=1.0,
            description="busy share the chosen frequency aims at below the threshold, in (0, up_threshold]",
        )
        window_s: float = Field(
            0.1,
            gt=0.0,
            allow_inf_nan=False,
            description="seconds of history over which the busy share is measured",
        )

        @model_validator(mode="after")
        def _target_below_threshold(self) -> Ondemand.Params:
            if self.target > self.up_threshold:
                limit = f"must be at most up_threshold {self.up_threshold:g}"
                raise ValueError(f"{SUBFIELD_MARK}target: {limit} (got {self.target:g})")
            return self

    def __init__(self, **params: float):
        self.p = self.Params(**params)

    def select(self, points, work, deadline_s, now, device):
        load = device.utilisation(self.p.window_s)
        top = len(points) - 1
        if load > self.p.up_threshold:
            return top
        # f >= f_current * load / target, multiplied out so that load == target keeps f_current exactly
        demand = points[device.current].freq_hz * load
        target = self.p.target
        return next((i for i, point in enumerate(points) if point.freq_hz * target >= demand), top)
