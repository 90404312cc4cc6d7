"""The federated clients' models: a plain MLP and a FedAlign-style label-anchored classifier.

Both are plain ``nn.Module``s with parameters only (no buffers), so that many clients'
copies train as one stacked model (:mod:`workloads.federated.training`). Construction
never touches global RNG state: layers are made on the ``meta`` device, then
materialised and initialised from the ``torch.Generator`` the caller passes.
"""

from __future__ import annotations

import hashlib
import math

import torch
import torch.nn.functional as F
from torch import nn

DIGIT_NAMES: tuple[str, ...] = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
)
# Character n-gram lengths hashed into a class-name embedding (fastText's subword idea).
NGRAMS: tuple[int, ...] = (2, 3, 4)
# Parameters whose name starts with this belong to the label side of an anchored model.
LABEL_PREFIX = "label_"


def _mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers of ``sizes`` with ReLU between them (none after the last), on ``meta``."""
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        if i:
            layers.append(nn.ReLU())
        layers.append(nn.Linear(fan_in, fan_out, device="meta"))
    return nn.Sequential(*layers)


def init_params(model: nn.Module, generator: torch.Generator) -> None:
    """(Re-)initialise ``model`` in place from ``generator``: every ``nn.Linear`` weight and
    bias uniform in +-1/sqrt(fan_in) (PyTorch's default ranges), drawn module by module in
    registration order; an :class:`AnchoredMLP`'s ``label_embedding`` reset to its fixed
    class-name embedding. Same generator state, same parameters, bit for bit."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Linear):
                bound = 1 / math.sqrt(module.in_features)
                module.weight.uniform_(-bound, bound, generator=generator)
                module.bias.uniform_(-bound, bound, generator=generator)
            elif isinstance(module, AnchoredMLP):
                module.label_embedding.copy_(class_name_embedding(list(module.class_names), module.embed_dim))


class MLP(nn.Module):
    """Fully connected classifier: ``n_features -> hidden... -> n_classes``, ReLU between layers.

    ``generator`` draws the initial parameters (:func:`init_params`)."""

    def __init__(
        self, n_features: int, hidden: tuple[int, ...], n_classes: int, *, generator: torch.Generator
    ):
        super().__init__()
        self.net = _mlp([n_features, *hidden, n_classes]).to_empty(device="cpu")
        init_params(self, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def class_name_embedding(names: list[str], dim: int) -> torch.Tensor:
    """A fixed ``[len(names), dim]`` embedding of class names, each row L2-normalised.

    FedAlign anchors classes with pretrained word vectors of their names; none are
    available offline, so this substitutes hashed character n-grams (lengths
    :data:`NGRAMS`, of the lower-cased name wrapped in ``<`` and ``>``), each adding +-1 to
    one of ``dim`` coordinates chosen by SHA-256 of the n-gram (stable across processes,
    unlike Python's ``hash``). Names sharing spelling ("six", "sixteen") get similar
    vectors; it carries no meaning beyond spelling, only a fixed, distinct anchor per class.
    """
    if dim < 1:
        raise ValueError(f"dim must be >= 1, got {dim}")
    if len(set(names)) != len(names):
        raise ValueError(f"class names must be distinct, got {names}")
    table = torch.zeros(len(names), dim, dtype=torch.float64)
    for row, name in enumerate(names):
        word = f"<{name.lower()}>"
        for n in NGRAMS:
            for i in range(len(word) - n + 1):
                digest = hashlib.sha256(word[i : i + n].encode()).digest()
                slot = int.from_bytes(digest[:8], "little") % dim
                table[row, slot] += 1.0 if digest[8] & 1 else -1.0
    return F.normalize(table, dim=1).float()


class AnchoredMLP(nn.Module):
    """A FedAlign-style split classifier (Zhang et al., KDD 2023): logits are ``scale`` times
    the cosine of a data representation and a label representation.

    - ``encoder`` (f): MLP ``n_features -> hidden... -> rep_dim``, the data encoder;
    - ``label_embedding``: ``[C, embed_dim]`` learnable class table, initialised from the
      fixed :func:`class_name_embedding` of ``class_names`` (the semantic anchor);
    - ``label_encoder`` (g): MLP ``embed_dim -> label_hidden... -> rep_dim``.

    ``logits[n, c] = scale * cos(f(x_n), g(label_embedding[c]))``. The paper uses dot
    products; the cosine (assumed here) keeps logits bounded under plain SGD at lr 0.1.
    Every label-side parameter's name starts with :data:`LABEL_PREFIX`, which is how local
    training alternates the two encoders, and ``label_embedding``'s row ``c`` belongs to
    class ``c``, which is how the server averages it over the holders of ``c`` only.
    """

    def __init__(
        self,
        n_features: int,
        hidden: tuple[int, ...],
        rep_dim: int,
        class_names: tuple[str, ...],
        *,
        generator: torch.Generator,
        embed_dim: int = 32,
        label_hidden: tuple[int, ...] = (),
        scale: float = 10.0,
    ):
        super().__init__()
        self.class_names = tuple(class_names)
        self.embed_dim = embed_dim
        self.scale = scale
        self.encoder = _mlp([n_features, *hidden, rep_dim]).to_empty(device="cpu")
        self.label_embedding = nn.Parameter(torch.empty(len(class_names), embed_dim))
        self.label_encoder = _mlp([embed_dim, *label_hidden, rep_dim]).to_empty(device="cpu")
        init_params(self, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        data = F.normalize(self.encoder(x), dim=-1)
        anchors = F.normalize(self.label_encoder(self.label_embedding), dim=-1)
        return self.scale * data @ anchors.T
