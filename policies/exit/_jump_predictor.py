"""The jump predictor of ``predictive_exit`` (a small 1-D conv over class scores) and its training.

Kept apart from the policy so that naming or validating the policy does not import torch.
"""

from __future__ import annotations

import numpy as np
import torch

from sim.kernel import torch_generator


class _Predictor(torch.nn.Module):
    """``s + conv1x1(relu(conv_k(s)))`` over the class axis of a batch of score vectors."""

    def __init__(self, channels: int, kernel: int):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Conv1d(1, channels, kernel, padding=kernel // 2, padding_mode="circular"),
            torch.nn.ReLU(),
            torch.nn.Conv1d(channels, 1, 1),
        )

    def forward(self, scores: torch.Tensor) -> torch.Tensor:
        return scores + self.net(scores[:, None])[:, 0]


def build_predictor(channels: int, kernel: int) -> _Predictor:
    """A fresh predictor with weights from its own seeded stream (uniform +-1/sqrt(fan_in))."""
    model = _Predictor(channels, kernel)
    gen = torch_generator(0, "predictive_exit/init")
    with torch.no_grad():
        for conv in (model.net[0], model.net[2]):
            bound = 1 / np.sqrt(conv.weight[0].numel())
            conv.weight.uniform_(-bound, bound, generator=gen)
            conv.bias.zero_()
    return model


def train_predictor(
    model: _Predictor, source: np.ndarray, target: np.ndarray, params: dict
) -> tuple[np.ndarray, ...]:
    """Fit ``model`` to map each exit's scores (``source``) to the next exit's softmax
    (``target``); returns its parameters."""
    source, target = torch.from_numpy(source), torch.from_numpy(target)
    opt = torch.optim.Adam(model.parameters(), lr=params["learning_rate"])
    for _ in range(params["predictor_steps"]):
        opt.zero_grad()
        loss = -(target * model(source).log_softmax(-1)).sum(-1).mean()
        loss.backward()
        opt.step()
    return tuple(p.detach().numpy().copy() for p in model.parameters())
