"""Label-name-anchored aggregation for client-exclusive classes (FedAlign, Zhang et al., KDD 2023).

Clients train a split classifier (data encoder, label encoder, a class table
``label_embedding`` initialised from a fixed class-name embedding; see
docs/batched_training.md) with pseudo-labels for samples of classes they do not own.
The server averages each class's row of ``label_embedding`` only over the clients
that hold that class (weighted by samples), so a class's anchor is not dragged by
clients that never saw it; every other parameter is the sample-weighted mean over all
participants. A class no participant holds keeps its previous row.
"""

import numpy as np
import torch

from policies.federated.base import FedAvgBase, Params
from sim.registry import register

ANCHORS = "label_embedding"


@register("aggregation", "label_anchored")
class LabelAnchored(FedAvgBase):
    """Per-class anchor averaging over the holders of each class; FedAvg for the rest."""

    objective = "label_anchored"

    def aggregate(
        self, global_params: Params, stacked: Params, weights: np.ndarray, owned: np.ndarray | None
    ) -> Params:
        out = super().aggregate(global_params, stacked, weights, owned)
        if owned is None:
            return out
        share = torch.as_tensor(owned * weights[:, None], dtype=torch.float64)  # [K, C]
        held = share.sum(0)
        rows = torch.einsum("kc,kce->ce", share, stacked[ANCHORS].double())
        mean = (rows / held.clamp_min(1e-300)[:, None]).to(global_params[ANCHORS].dtype)
        out[ANCHORS] = torch.where(held[:, None] > 0, mean, global_params[ANCHORS])
        return out
