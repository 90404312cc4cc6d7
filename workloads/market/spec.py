"""The ``market`` scenario file: users arriving over time and predictors competing for them."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Literal

from pydantic import (
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    field_validator,
    model_validator,
)

from sim.config import SUBFIELD_MARK, PolicyRef, StrictModel
from sim.errors import ConfigError
from workloads.market.data import DataConfig, pool_size
from workloads.streams import ArrivalConfig


class PurchaseRef(PolicyRef):
    family = "acquisition"


class UserChoiceRef(PolicyRef):
    family = "user_choice"


BUILT_IN_ARCHS = ("logistic", "mlp")


class ModelConfig(StrictModel):
    """A predictor's network: ``logistic`` (one linear layer, the reference), ``mlp`` (one
    hidden ReLU layer of ``hidden`` units), or a user's ``nn.Module``: a name registered in
    the ``model`` family or ``module:factory``, built as ``factory(input_shape=(features,),
    num_classes=..., **kwargs)`` and trained stacked by ``torch.func`` (docs/extending.md)."""

    arch: str = Field(
        "logistic",
        description="logistic: one linear layer (the reference); mlp: one hidden ReLU layer; "
        "or a user's model: a registered model name or module:factory",
    )
    hidden: PositiveInt = Field(64, description="hidden units of an mlp")
    kwargs: dict[str, Any] = Field(
        default_factory=dict, description="keyword arguments of a user model's factory"
    )


class DeviceConfig(StrictModel):
    """The device that serves a predictor's users: ``servers`` parallel slots, each taking
    ``service_s`` per request, first come first served."""

    service_s: PositiveFloat = Field(0.1, description="seconds one slot takes per request")
    servers: PositiveInt = Field(1, description="parallel slots, first come first served")


class PredictorGroup(StrictModel):
    """``count`` predictors of one architecture (held as one stacked model), each with
    ``seed_points`` random pool points to start from, a ``budget`` and a purchase policy."""

    name: str = Field(
        "p", min_length=1, description="the group's predictors are NAME0, NAME1, ... (NAME if one)"
    )
    count: PositiveInt = Field(18, description="predictors in the group (held as one stacked model)")
    model: ModelConfig = Field(default_factory=ModelConfig, description="the predictors' network")
    seed_points: PositiveInt = Field(
        100, description="random pool points each predictor starts from (at least one per class)"
    )
    budget: NonNegativeFloat = Field(0.0, description="budget units each predictor may spend on points")
    purchase: PurchaseRef = Field(
        default_factory=lambda: PurchaseRef(name="uncertainty"), description="acquisition policy: when to buy"
    )
    device: DeviceConfig = Field(default_factory=DeviceConfig, description="the device serving its users")


class TrainingConfig(StrictModel):
    """How predictors learn (reference constants): one Adam step on each new point; every
    ``retrain_every`` new points, re-initialise and train on all data for ``epochs``
    epochs of ``batch_size``, stopping after the epoch that reaches ``max_samples``."""

    lr: PositiveFloat = Field(5e-3, description="Adam learning rate")
    retrain_every: PositiveInt = Field(50, description="new points between full retrains")
    epochs: PositiveInt = Field(10, description="epochs of a full retrain")
    batch_size: PositiveInt = Field(16, description="minibatch of a full retrain")
    max_samples: PositiveInt = Field(
        10_000, description="a retrain stops after the epoch reaching this many samples"
    )
    final_retrain: bool = Field(True, description="retrain every predictor on all its data before testing")


class MarketSpec(StrictModel):
    """Competing predictors that learn from the users who choose them and may buy data.

    ``users`` users arrive (``arrival`` at ``rate_hz``), each carrying a pool point.
    Predictors with budget may buy it by their purchase policy; if any does, one buyer
    drawn uniformly gets the user. Otherwise the user picks a predictor by the ``choice``
    rule. The chosen predictor learns from the point (see ``training``) and its device
    serves the user. Metrics are measured on the held-out test set (docs/market.md).
    """

    kind: Literal["market"] = Field("market", description="scenario kind")
    name: str = Field("market", description="the run's name (default output folder runs/<name>-seed<seed>)")
    seed: int = Field(0, ge=0, description="run seed: every random stream derives from it")
    users: PositiveInt = Field(10_000, description="users who arrive, each with one pool point")
    rate_hz: PositiveFloat = Field(50.0, description="mean user arrivals per second")
    arrival: ArrivalConfig = Field(
        default_factory=lambda: ArrivalConfig(process="poisson"), description="arrival process of users"
    )
    alpha: float = Field(4.0, description="softmax sharpness of the user's choice among predictors (>= 0)")
    price: PositiveFloat = Field(1.0, description="budget units one labelled point costs")
    data: DataConfig = Field(default_factory=DataConfig, description="where users' points come from")
    predictors: list[PredictorGroup] = Field(
        default_factory=lambda: [PredictorGroup()], min_length=1, description="groups of competing predictors"
    )
    training: TrainingConfig = Field(default_factory=TrainingConfig, description="how predictors learn")
    choice: UserChoiceRef = Field(
        default_factory=lambda: UserChoiceRef(name="correctness"),
        description="user_choice policy: how a user nobody bought picks a predictor",
    )
    engine: Literal["stacked", "loop"] = Field(
        "stacked", description="stacked: one model per architecture; loop: one nn.Module per predictor"
    )
    checkpoints: NonNegativeInt = Field(10, description="test-set evaluations during the run, evenly spaced")
    regions: PositiveInt = Field(8, description="regions of the input space for the specialisation table")

    @field_validator("alpha")
    @classmethod
    def _finite_alpha(cls, alpha: float) -> float:
        if not math.isfinite(alpha) or alpha < 0:
            raise ValueError("must be a finite number >= 0")
        return alpha

    @model_validator(mode="after")
    def _groups(self) -> MarketSpec:
        counts = Counter(self.predictor_names())
        dupes = sorted(n for n, c in counts.items() if c > 1)
        if dupes:
            raise ValueError(f"predictors: names must be unique; repeated: {', '.join(dupes)}")
        try:  # the data is opened here, so a bad file or split fails validation, not the run
            pool, classes = pool_size(self.data)
        except ConfigError as exc:
            raise ValueError("; ".join(SUBFIELD_MARK + p for p in exc.problems)) from None
        problems = fit_problems(self, pool, classes) + self._model_problems()
        if problems:
            raise ValueError("; ".join(SUBFIELD_MARK + p for p in problems))
        return self

    def _model_problems(self) -> list[str]:
        """A built-in arch takes no kwargs; a user's model must build and run stacked on the data."""
        problems = []
        for i, g in enumerate(self.predictors):
            where = f"predictors.{i}.model"
            if g.model.arch in BUILT_IN_ARCHS:
                if g.model.kwargs:
                    problems.append(f"{where}.kwargs: built-in arch {g.model.arch!r} takes none")
                continue
            if self.engine == "loop":
                problems.append(f"engine: 'loop' runs the built-in archs only; {where}.arch is a user model")
                continue
            from workloads.market.data import load_data
            from workloads.user_models import build_stackable

            data = load_data(self.data)
            fields = (f"{where}.arch", f"{where}.kwargs")
            try:
                build_stackable(
                    g.model.arch, g.model.kwargs, fields, BUILT_IN_ARCHS, (data.n_features,), data.n_classes
                )
            except ConfigError as exc:
                problems += exc.problems
        return problems

    def predictor_names(self) -> list[str]:
        """Every predictor's name: its group's name, numbered from 0 when the group has several."""
        return [g.name if g.count == 1 else f"{g.name}{k}" for g in self.predictors for k in range(g.count)]


def fit_problems(spec: MarketSpec, pool: int, n_classes: int) -> list[str]:
    """Each predictor group needs a seed point per class, and no more than the pool holds."""
    problems = []
    for i, g in enumerate(spec.predictors):
        if g.seed_points < n_classes:
            problems.append(
                f"predictors.{i}.seed_points: {g.seed_points} is fewer than the {n_classes} classes of "
                f"the data; each predictor needs at least one seed point per class"
            )
        elif g.seed_points > pool:
            problems.append(
                f"predictors.{i}.seed_points: {g.seed_points} is more than the {pool} pool points"
            )
    return problems
