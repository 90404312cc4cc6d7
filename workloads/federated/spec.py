"""The ``federated`` scenario file: clients, data partition, model, rounds, policies."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, model_validator

from devices.clients import ClientsConfig
from sim.config import SUBFIELD_MARK, PolicyRef, StrictModel
from sim.errors import ConfigError
from workloads.federated.anchors import AnchorConfig
from workloads.federated.data import DATASETS, PartitionConfig

BUILT_IN_ARCHS = ("mlp", "cnn")
MODEL_FIELDS = ("model.arch", "model.kwargs")  # where a user's model and its arguments are given


class SelectionRef(PolicyRef):
    family = "selection"


class AggregationRef(PolicyRef):
    family = "aggregation"


class ModelConfig(StrictModel):
    """The clients' model: an encoder (``arch``) and a head.

    ``mlp``: ``hidden`` fully connected layers (tabular data, flattened images); ``cnn``:
    conv-ReLU-pool blocks of ``channels`` (images); or a user's ``nn.Module``: a name
    registered in the ``model`` family or ``module:factory``, built as
    ``factory(input_shape=..., num_classes=..., **kwargs)`` (docs/extending.md). ``head``:
    ``linear`` (a linear layer to the classes), ``anchored`` (FedAlign's label-anchored
    head: the encoder outputs ``rep_dim`` values, dotted with L2-normalised label
    representations of the ``anchors``), or empty: what the aggregation policy asks for
    (``anchored`` for ``label_anchored``, else ``linear``).
    """

    arch: str = Field(
        "mlp", description="mlp, cnn, or a user's model: a registered model name or module:factory"
    )
    kwargs: dict[str, Any] = Field(
        default_factory=dict, description="keyword arguments of a user model's factory"
    )
    hidden: list[PositiveInt] = Field(
        default_factory=lambda: [32], description="mlp: width of each hidden layer"
    )
    channels: list[PositiveInt] = Field(
        default_factory=lambda: [8, 16], description="cnn: output channels of each conv-ReLU-pool block"
    )
    head: Literal["linear", "anchored"] | None = Field(
        None,
        description="linear, anchored (label-anchored), or unset: what the aggregation policy asks for",
    )
    rep_dim: PositiveInt = Field(32, description="anchored head: size of the encoder's representation")
    anchors: AnchorConfig = Field(
        default_factory=AnchorConfig, description="anchored head: where the label anchors come from"
    )


class LocalConfig(StrictModel):
    """Local training on each client over its own labelled samples (the default phase; a
    policy such as ``label_anchored`` may set its own optimisers)."""

    epochs: PositiveInt = Field(
        2, description="passes over its own samples a selected client makes per round"
    )
    batch_size: PositiveInt = Field(8, description="samples per local minibatch")
    lr: PositiveFloat = Field(0.1, description="learning rate of the local optimiser")
    optimizer: Literal["sgd", "adam"] = Field("sgd", description="local optimiser: sgd or adam")


class PatienceConfig(StrictModel):
    """How long the server keeps trying when no client can be selected: it stops the run
    after ``time_s`` of simulated time, or after ``retries`` failed tries (if set), in a row."""

    time_s: PositiveFloat = Field(
        3600.0, description="stop after this many simulated seconds without a client to select"
    )
    retries: PositiveInt | None = Field(
        None, description="also stop after this many failed selection tries in a row (unset: no limit)"
    )


class AsyncConfig(StrictModel):
    """Buffered asynchronous aggregation (FedBuff, Nguyen et al., AISTATS 2022).

    ``concurrency`` clients train at once; when ``buffer`` updates have arrived the
    server aggregates them, each weighted by samples x ``(1 + staleness) ** -staleness_exponent``
    (staleness = global versions since the client downloaded its model). An update staler
    than ``max_staleness`` (if set) is discarded on arrival (outcome ``stale``).
    """

    concurrency: PositiveInt = Field(130, description="clients training at once")
    buffer: PositiveInt = Field(100, description="updates that trigger an aggregation (at most concurrency)")
    staleness_exponent: NonNegativeFloat = Field(
        0.5, description="an update weighs (1 + staleness) ** -staleness_exponent (0: staleness ignored)"
    )
    max_staleness: NonNegativeInt | None = Field(
        None, description="discard updates staler than this many global versions (unset: keep all)"
    )


class FederatedSpec(StrictModel):
    """Federated learning as a system: selection, download, local training, upload, aggregation.

    Simulated time comes from the devices: a client's compute time is its samples x
    epochs x training FLOPs per sample / its speed; transfers are latency + bytes /
    bandwidth over the topology. ``rounds`` counts aggregations (sync rounds, or
    async buffer flushes); the run also stops at ``max_time_s`` of simulated time.
    When nobody can be selected, the server tries again ``retry_s`` later (or as soon as a
    client comes online, if sooner), for at most
    ``patience``; then the run stops and says why (as it does at ``max_time_s``).
    """

    kind: Literal["federated"] = Field("federated", description="scenario kind")
    name: str = Field(
        "fl_digits", description="the run's name (default output folder runs/<name>-seed<seed>)"
    )
    seed: int = Field(0, ge=0, description="run seed: every random stream derives from it")
    dataset: Literal[DATASETS] = Field(
        "digits", description="dataset: digits, digits_shifted, wine, breast_cancer or shapes"
    )  # type: ignore[valid-type]
    partition: PartitionConfig = Field(
        default_factory=PartitionConfig, description="how training samples are dealt to clients"
    )
    clients: ClientsConfig = Field(
        default_factory=ClientsConfig,
        description="the client devices: speed, bandwidth, availability, topology",
    )
    model: ModelConfig = Field(default_factory=ModelConfig, description="the clients' model")
    local: LocalConfig = Field(
        default_factory=LocalConfig, description="local training on each selected client"
    )
    clients_per_round: PositiveInt = Field(
        10, description="clients K selected per round (at most clients.count)"
    )
    rounds: PositiveInt = Field(
        20, description="aggregations before the run ends (sync rounds or async buffer flushes)"
    )
    max_time_s: PositiveFloat = Field(
        1e9, description="the run also stops at this simulated time, in seconds"
    )
    retry_s: PositiveFloat = Field(
        10.0, description="when nobody can be selected, try again this many seconds later"
    )
    patience: PatienceConfig = Field(
        default_factory=PatienceConfig,
        description="how long the server keeps retrying before it stops the run",
    )
    mode: Literal["sync", "async"] = Field(
        "sync", description="sync: rounds; async: buffered asynchronous aggregation (FedBuff)"
    )
    asynchronous: AsyncConfig = Field(
        default_factory=AsyncConfig, description="async mode: concurrency, buffer and staleness"
    )
    selection: SelectionRef = Field(
        default_factory=lambda: SelectionRef(name="random"),
        description="selection policy: which clients take part in a round",
    )
    aggregation: AggregationRef = Field(
        default_factory=lambda: AggregationRef(name="fedavg"),
        description="aggregation policy: how the server combines the updates",
    )
    target_accuracy: float = Field(
        0.8, gt=0.0, le=1.0, description="test accuracy at which time_to_target_s is taken, in (0, 1]"
    )

    @model_validator(mode="after")
    def _fits_population(self) -> FederatedSpec:
        if self.clients_per_round > self.clients.count:
            raise ValueError(
                f"@clients_per_round: {self.clients_per_round} is larger than clients.count "
                f"({self.clients.count}); choose at most {self.clients.count}"
            )
        from sim import registry
        from workloads.federated.data import dataset_shape

        wants = registry.get("aggregation", self.aggregation.name).head
        if wants == "anchored" and self.model.head == "linear":
            raise ValueError(
                f"@model.head: 'linear' cannot serve aggregation {self.aggregation.name!r}, "
                "which trains a label-anchored head; use 'anchored' or leave it empty"
            )
        input_shape, classes = dataset_shape(self.dataset)
        if self.model.arch == "cnn" and len(input_shape) != 3:
            raise ValueError(f"@model.arch: 'cnn' needs an image dataset; {self.dataset!r} is tabular")
        if self.model.arch in BUILT_IN_ARCHS and self.model.kwargs:
            raise ValueError(
                f"@model.kwargs: built-in arch {self.model.arch!r} takes none; set hidden or channels"
            )
        if self.model.arch not in BUILT_IN_ARCHS:  # a user's model: build it and run it stacked
            from workloads.user_models import build_stackable

            head = self.model.head or wants or "linear"
            n_out = self.model.rep_dim if head == "anchored" else classes
            try:
                build_stackable(
                    self.model.arch, self.model.kwargs, MODEL_FIELDS, BUILT_IN_ARCHS, input_shape, n_out
                )
            except ConfigError as exc:
                raise ValueError("; ".join(SUBFIELD_MARK + p for p in exc.problems)) from None
        if self.partition.scheme == "exclusive" and self.partition.classes_per_client > classes:
            raise ValueError(
                f"@partition.classes_per_client: {self.partition.classes_per_client} is more than the "
                f"{classes} classes of dataset {self.dataset!r}"
            )
        if self.mode == "async" and self.asynchronous.buffer > self.asynchronous.concurrency:
            raise ValueError(
                f"@asynchronous.buffer: {self.asynchronous.buffer} is larger than asynchronous.concurrency "
                f"({self.asynchronous.concurrency}); the buffer could never fill"
            )
        return self
