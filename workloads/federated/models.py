"""The federated clients' models: an MLP, a small CNN, and a FedAlign-style anchored classifier.

All are plain ``nn.Module``s with parameters only (no buffers), so that many clients'
copies train as one stacked model (:mod:`workloads.federated.training`). Construction
never touches global RNG state: layers are made on the ``meta`` device, then
materialised and initialised from the ``torch.Generator`` the caller passes.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from workloads.user_models import materialise

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


def _cnn(in_channels: int, side_px: int, channels: tuple[int, ...], n_out: int) -> nn.Sequential:
    """Per entry of ``channels``: 3x3 conv (padding 1), ReLU, 2x2 max-pool; then a linear
    layer from the flattened maps to ``n_out``. On ``meta``."""
    layers: list[nn.Module] = []
    for c_in, c_out in zip((in_channels, *channels[:-1]), channels):
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1, device="meta"), nn.ReLU(), nn.MaxPool2d(2)]
        side_px //= 2
    layers += [nn.Flatten(), nn.Linear(channels[-1] * side_px * side_px, n_out, device="meta")]
    return nn.Sequential(*layers)


def init_params(model: nn.Module, generator: torch.Generator) -> None:
    """(Re-)initialise ``model`` in place from ``generator``: every ``nn.Linear`` and
    ``nn.Conv2d`` weight and bias uniform in +-1/sqrt(fan_in) (PyTorch's default ranges),
    drawn module by module in registration order. Same generator state, same parameters."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                bound = 1 / math.sqrt(module.weight[0].numel())
                module.weight.uniform_(-bound, bound, generator=generator)
                module.bias.uniform_(-bound, bound, generator=generator)


class MLP(nn.Module):
    """Fully connected classifier: ``n_features -> hidden... -> n_classes``, ReLU between layers
    (an image is flattened first)."""

    def __init__(
        self, n_features: int, hidden: tuple[int, ...], n_classes: int, *, generator: torch.Generator
    ):
        super().__init__()
        self.net = materialise(_mlp([n_features, *hidden, n_classes]))
        init_params(self, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))


class CNN(nn.Module):
    """A small CNN for ``[C, S, S]`` images: conv-ReLU-pool blocks of ``channels``, then linear."""

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        channels: tuple[int, ...],
        n_out: int,
        *,
        generator: torch.Generator,
    ):
        super().__init__()
        self.net = materialise(_cnn(input_shape[0], input_shape[1], channels, n_out))
        init_params(self, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Anchored(nn.Module):
    """FedAlign's classifier (Zhang et al., KDD 2023): a data encoder and a label encoder
    whose outputs meet in one representation space.

    - ``encoder`` (f): any module mapping a sample to a ``rep_dim`` vector (initialised by
      its own constructor); ``generator`` initialises ``label_encoder``;
    - ``label_embedding``: ``[C, E]`` learnable class table initialised from ``anchors``
      (the semantic label anchors, :mod:`workloads.federated.anchors`); row ``c`` is class ``c``;
    - ``label_encoder`` (g): linear ``E -> rep_dim``.

    ``logits[n, c] = f(x_n) . g(e_c) / ||g(e_c)||``: the data representation dotted with
    the L2-normalised label representation, as the official code does for single-label
    tasks. Label-side parameter names start with :data:`LABEL_PREFIX` (how local training
    steps the two encoders separately).
    """

    def __init__(
        self, encoder: nn.Module, rep_dim: int, anchors: torch.Tensor, *, generator: torch.Generator
    ):
        super().__init__()
        self.anchors = anchors.detach().clone().float()
        self.encoder = encoder
        self.label_embedding = nn.Parameter(torch.empty_like(self.anchors))
        self.label_encoder = materialise(nn.Linear(anchors.shape[1], rep_dim, device="meta"))
        init_params(self.label_encoder, generator)
        with torch.no_grad():
            self.label_embedding.copy_(self.anchors)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        anchors = F.normalize(self.label_encoder(self.label_embedding), dim=-1)
        return self.encoder(x) @ anchors.T
