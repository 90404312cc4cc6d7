"""The ``federated`` scenario file: clients, data partition, model, rounds, policies."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt, model_validator

from devices.clients import ClientsConfig
from sim.config import PolicyRef, StrictModel
from workloads.federated.data import DATASETS, PartitionConfig


class SelectionRef(PolicyRef):
    family = "selection"


class AggregationRef(PolicyRef):
    family = "aggregation"


class ModelConfig(StrictModel):
    """An MLP (``hidden`` sizes); label-anchored aggregation uses its split twin of the same sizes."""

    hidden: list[PositiveInt] = Field(default_factory=lambda: [32])
    embedding_dim: PositiveInt = 32


class LocalConfig(StrictModel):
    """Local training on each client: plain SGD over its own samples."""

    epochs: PositiveInt = 2
    batch_size: PositiveInt = 8
    lr: PositiveFloat = 0.1
    pseudo_label_threshold: float = Field(0.8, gt=0.0, lt=1.0)


class AsyncConfig(StrictModel):
    """Buffered asynchronous aggregation (FedBuff, Nguyen et al., AISTATS 2022).

    ``concurrency`` clients train at once; when ``buffer`` updates have arrived the
    server aggregates them, each weighted by samples x ``(1 + staleness) ** -staleness_exponent``
    (staleness = global versions since the client downloaded its model).
    """

    concurrency: PositiveInt = 130
    buffer: PositiveInt = 100
    staleness_exponent: NonNegativeFloat = 0.5


class FederatedSpec(StrictModel):
    """Federated learning as a system: selection, download, local training, upload, aggregation.

    Simulated time comes from the devices: a client's compute time is its samples x
    epochs x training FLOPs per sample / its speed; transfers are latency + bytes /
    bandwidth over the topology. ``rounds`` counts aggregations (sync rounds, or
    async buffer flushes); the run also stops at ``max_time_s`` of simulated time.
    When nobody can be reached, the server tries again ``retry_s`` later.
    """

    kind: Literal["federated"] = "federated"
    name: str = "fl_digits"
    seed: int = Field(0, ge=0)
    dataset: Literal[DATASETS] = "digits"  # type: ignore[valid-type]
    partition: PartitionConfig = Field(default_factory=PartitionConfig)
    clients: ClientsConfig = Field(default_factory=ClientsConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    local: LocalConfig = Field(default_factory=LocalConfig)
    clients_per_round: PositiveInt = 10
    rounds: PositiveInt = 20
    max_time_s: PositiveFloat = 1e9
    retry_s: PositiveFloat = 10.0
    mode: Literal["sync", "async"] = "sync"
    asynchronous: AsyncConfig = Field(default_factory=AsyncConfig)
    selection: SelectionRef = Field(default_factory=lambda: SelectionRef(name="random"))
    aggregation: AggregationRef = Field(default_factory=lambda: AggregationRef(name="fedavg"))
    target_accuracy: float = Field(0.8, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _fits_population(self) -> FederatedSpec:
        if self.clients_per_round > self.clients.count:
            raise ValueError(
                f"@clients_per_round: {self.clients_per_round} is larger than clients.count "
                f"({self.clients.count}); choose at most {self.clients.count}"
            )
        from workloads.federated.data import load_dataset

        classes = load_dataset(self.dataset).num_classes
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
