"""Label-name-anchored federated learning for client-exclusive classes (FedAlign; Zhang et
al., KDD 2023), following the rules of the authors' public code.

Clients train the split classifier ``Anchored`` (data encoder f, label embedding table
initialised from semantic label anchors, label encoder g; logits
``f(x) . g(e_c) / ||g(e_c)||``), which ``head = "anchored"`` asks the world to build.

- **Pseudo-labels** (``pseudo_labels``): at the start of its local fit, each client scores
  all its samples with the global model it downloaded: the cosine of ``f(x)`` and
  ``g(e_c)``. A sample without a known label becomes a pseudo-labelled sample of a class
  ``c`` the client lacks when the argmax over *all* classes is ``c`` and its similarity to
  ``c`` is above the client's ``percentile``-th percentile of similarities to ``c``
  (99 in the code for single-label tasks), recomputed every round.
- **Local fit**: every minibatch takes one data-encoder step (label side frozen), then
  one label-side step (data encoder frozen), with two Adam optimisers at ``data_lr`` and
  ``label_lr`` (the code's defaults, 1e-3 each).
- **Aggregation** (``per_class_average``): each class's row of the label embedding is
  averaged over the selected clients that hold the class; every other parameter over all
  selected clients. Uniformly (``uniform``, as the code does) or by samples; a class
  nobody selected holds keeps its row.

The code's negative pseudo-labels (samples below the 50th percentile marked "not c")
carry no loss under its single-label soft cross-entropy, so they are left out.
"""

import numpy as np
from pydantic import Field, PositiveFloat

from policies.federated.base import FedAvgBase, Phase, weighted_average
from sim.config import StrictModel
from sim.registry import register

ANCHORS = "label_embedding"


@register("aggregation", "label_anchored")
class LabelAnchored(FedAvgBase):
    """Pseudo-labels from the global anchors, alternating Adam steps, per-class anchor averaging."""

    head = "anchored"

    class Params(StrictModel):
        data_lr: PositiveFloat = Field(1e-3, description="Adam learning rate of the data-encoder steps")
        label_lr: PositiveFloat = Field(
            1e-3,
            description="Adam learning rate of the label-side (anchor embedding and label encoder) steps",
        )
        pseudo_labels: bool = Field(
            True,
            description="pseudo-label unlabelled samples of classes the client lacks from the global model",
        )
        percentile: float = Field(
            99.0,
            ge=0.0,
            lt=100.0,
            description=(
                "a sample is pseudo-labelled c above this percentile of the client's "
                "similarities to c, in [0, 100)"
            ),
        )
        per_class_average: bool = Field(
            True,
            description="average each class's anchor row only over the selected clients holding the class",
        )
        uniform: bool = Field(
            True, description="weight clients equally when averaging (false: by sample count)"
        )

    def __init__(self, **params):
        p = self.Params(**params)
        self.data_lr, self.label_lr, self.uniform = p.data_lr, p.label_lr, p.uniform
        self.pseudo_label_percentile = p.percentile if p.pseudo_labels else None
        self.per_class_average = p.per_class_average

    def phases(self, default: Phase) -> tuple[Phase, ...]:
        return Phase("data", "adam", self.data_lr), Phase("label", "adam", self.label_lr)

    def aggregate(
        self,
        global_params: Params,
        stacked: Params,
        weights: np.ndarray,
        owned: np.ndarray | None,
        uploads: Params,
    ) -> Params:
        import torch  # here: listing the family needs no torch

        weights = np.ones(len(weights)) if self.uniform else weights
        out = weighted_average(stacked, weights)
        if owned is None or not self.per_class_average:
            return out
        share = torch.as_tensor(owned * weights[:, None], dtype=torch.float64)  # [K, C]
        held = share.sum(0)
        rows = torch.einsum("kc,kce->ce", share, stacked[ANCHORS].double())
        mean = (rows / held.clamp_min(1e-300)[:, None]).to(global_params[ANCHORS].dtype)
        out[ANCHORS] = torch.where(held[:, None] > 0, mean, global_params[ANCHORS])
        return out
