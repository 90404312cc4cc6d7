"""Tiny networks of your own, one per scenario kind, used by the ``my_*_model.py`` examples.

Each kind names a model by ``module:factory`` (``my_models:client_net``) or by a name
registered in the ``model`` family (``@register("model", "tiny_tracker")``, found once
this module is imported, e.g. with ``--plugin my_models``). What each kind asks of the
module is in docs/extending.md.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from sim.registry import register


@register("model", "tiny_tracker")
class TinyTracker(nn.Module):
    """xr: a model is costed, not trained; its input shape (batch 1) is a class attribute."""

    input_shape = (1, 3, 64, 64)

    def __init__(self, width: int = 16):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(4),
        )
        self.head = nn.Linear(2 * width * 16, 21 * 2)  # 21 two-dimensional keypoints

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


class TwoExitNet(nn.Module):
    """edge: a multi-exit network declares ``heads`` and returns every exit's logits."""

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, width: int = 8):
        super().__init__()
        self.stages = nn.ModuleList(
            [
                nn.Sequential(
                    nn.Conv2d(input_shape[0], width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()
                ),
                nn.Sequential(
                    nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU()
                ),
            ]
        )
        self.heads = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(4 * w, num_classes))
            for w in (width, 2 * width)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        exits = []
        for stage, head in zip(self.stages, self.heads, strict=True):
            x = stage(x)
            exits.append(head(x))
        return exits


def client_net(input_shape: tuple[int, ...], num_classes: int, hidden: int = 32) -> nn.Module:
    """federated: parameters only (no BatchNorm), so many clients train as one stacked model."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(math.prod(input_shape), hidden),
        nn.LayerNorm(hidden),
        nn.GELU(),
        nn.Linear(hidden, num_classes),
    )


def predictor_net(input_shape: tuple[int], num_classes: int, hidden: int = 16) -> nn.Module:
    """market: a predictor of tabular points, trained stacked like the clients' models."""
    return nn.Sequential(nn.Linear(input_shape[0], hidden), nn.Tanh(), nn.Linear(hidden, num_classes))
