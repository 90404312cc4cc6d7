"""The federated clients' models: an MLP, a small CNN, a user's own module, and a
FedAlign-style anchored classifier.

All are plain ``nn.Module``s with parameters only (no buffers), so that many clients'
copies train as one stacked model (:mod:`workloads.federated.training`). Construction
never touches global RNG state: layers are made on the ``meta`` device, then
materialised and initialised from the ``torch.Generator`` the caller passes.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from sim.errors import ConfigError
from workloads import user_models

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


def materialise(module: nn.Module) -> nn.Module:
    """``module`` (built on ``meta``) with uninitialised CPU parameters, in place. Like
    ``to_empty(device="cpu")``, but by plain ``torch.empty``: ``to_empty`` goes through
    PyTorch's meta-tensor references, whose first use imports about a second of modules."""
    for sub in module.modules():
        for name, p in list(sub.named_parameters(recurse=False)):
            setattr(sub, name, nn.Parameter(torch.empty(p.shape, dtype=p.dtype)))
    return module


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


def user_model(ref: str, kwargs: dict[str, Any], input_shape: tuple[int, ...], n_out: int) -> nn.Module:
    """A user's model (``ref`` as in ``model.arch``) on ``meta``, built as
    ``factory(input_shape=..., num_classes=n_out, **kwargs)``."""
    return user_models.build(
        ref, kwargs, "model.arch", "model.kwargs", input_shape=tuple(input_shape), num_classes=n_out
    )


def check_user_model(ref: str, kwargs: dict[str, Any], input_shape: tuple[int, ...], n_out: int) -> None:
    """A user's client model must train as one stacked model: parameters only (no buffers,
    so no BatchNorm running statistics), and ``vmap`` over stacked parameters of
    ``functional_call`` must map ``[batch, *input_shape]`` to ``[batch, n_out]`` logits.
    Checked on ``meta`` (no weights, milliseconds)."""
    user_models.check_known(ref, "model.arch", ("mlp", "cnn"), "client model")
    model = user_model(ref, kwargs, input_shape, n_out)
    buffers = [name for name, _ in model.named_buffers()]
    if buffers:
        raise ConfigError(
            f"model.arch: {ref!r} has buffers ({', '.join(buffers[:3])}); clients train as one stacked "
            "model (functional_call + vmap), which needs parameters only: no BatchNorm with running "
            "statistics (use GroupNorm or LayerNorm)"
        )
    params = {name: p.expand(2, *p.shape) for name, p in model.named_parameters()}
    if not params:
        raise ConfigError(f"model.arch: {ref!r} has no parameters to train")
    x = torch.zeros(2, 3, *input_shape, device="meta")
    try:
        out = vmap(lambda p, xb: functional_call(model, p, (xb,)))(params, x)
    except Exception as exc:  # whatever a user's forward raises, vmap's refusals included
        raise ConfigError(
            f"model.arch: {ref!r} cannot run stacked (vmap of functional_call) on a batch of "
            f"{list(input_shape)} samples: {type(exc).__name__}: {exc}".splitlines()[0]
        ) from None
    if not isinstance(out, torch.Tensor) or list(out.shape) != [2, 3, n_out]:
        got = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(
            f"model.arch: {ref!r} must return [batch, {n_out}] logits for a [batch, "
            f"{', '.join(map(str, input_shape))}] input; got {got} for 3 samples"
        )
