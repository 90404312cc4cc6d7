"""FedAvg (McMahan et al., AISTATS 2017): the sample-weighted mean of the clients' models."""

from policies.federated.base import FedAvgBase
from sim.registry import register


@register("aggregation", "fedavg")
class FedAvg(FedAvgBase):
    """Clients train with cross-entropy; the server averages their models, weighted by samples."""
