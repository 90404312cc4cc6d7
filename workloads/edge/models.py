"""The edge kind's multi-exit models: built-in names and datasets (importable without torch,
for validation), and the check of a user's own multi-exit module.

:mod:`workloads.multiexit` defines and trains them, :mod:`workloads.dynamic_pruning` the
pruned variants; tests check that the lists agree.

A user's model is named like any model (docs/extending.md): a name registered in the
``model`` family or ``module:factory``, built as ``factory(input_shape=(C, H, W),
num_classes=n, **model_kwargs)`` for its ``dataset``. It declares its exits:

- an attribute ``heads``, an ``nn.ModuleList`` of at least two exit heads, shallowest
  first (the last one is the final classifier);
- ``forward(x)`` returns a list of per-exit logits, one ``[batch, num_classes]`` tensor
  per head, in the same order;
- the forward runs exit ``k``'s head before the backbone layers after it, so every layer
  that is not in a head belongs to the backbone segment that ends at the next exit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sim.errors import ConfigError

if TYPE_CHECKING:
    from workloads.multiexit import ExitModel

EXIT_MODELS: tuple[str, ...] = (
    "resnet_digits",
    "mobilenet_digits",
    "resnet_patches",
    "mobilenet_patches",
    "student_digits",
    "pruned_resnet_digits",
    "vgg_shapes",
    "resnet_shapes",
)
# What a model of each dataset sees: one sample's shape (channels, height, width) and classes.
DATASETS: dict[str, tuple[tuple[int, int, int], int]] = {
    "digits": ((1, 16, 16), 10),
    "patches": ((3, 16, 16), 12),
    "shapes": ((3, 32, 32), 10),
}


def check_user_model(ref: str, kwargs: dict[str, Any], dataset: str) -> None:
    """A user's multi-exit model must build for ``dataset``, declare ``heads`` and return
    one ``[batch, classes]`` logit tensor per head (checked on ``meta``: milliseconds)."""
    import torch
    from torch import nn

    from workloads import user_models

    user_models.check_known(ref, "model", EXIT_MODELS + PRUNED_MODELS, "multi-exit model")
    shape, classes = DATASETS[dataset]
    model = user_models.build(ref, kwargs, "model", "model_kwargs", input_shape=shape, num_classes=classes)
    heads = getattr(model, "heads", None)
    if not isinstance(heads, nn.ModuleList) or len(heads) < 2:
        raise ConfigError(
            f"model: {ref!r} declares no exits; a multi-exit model needs an attribute `heads`, "
            "an nn.ModuleList of at least two exit heads, shallowest first"
        )
    try:
        with torch.no_grad():
            out = model(torch.zeros(2, *shape, device="meta"))
    except Exception as exc:  # whatever a user's forward raises on this input
        raise ConfigError(f"model: {ref!r} cannot run on a batch of {dataset} {list(shape)}: {exc}") from None
    want = [2, classes]
    if isinstance(out, (list, tuple)):
        got: Any = [list(o.shape) if isinstance(o, torch.Tensor) else type(o).__name__ for o in out]
    else:
        got = type(out).__name__
    if got != [want] * len(heads):
        raise ConfigError(
            f"model: {ref!r} must return a list of {len(heads)} per-exit logits (one per head), each "
            f"{want} for a batch of 2 {dataset} samples; got {got}"
        )


PRUNED_MODELS: tuple[str, ...] = (
    "vgg_shapes_dynprune",
    "vgg_shapes_l1prune",
    "resnet_shapes_dynprune",
    "resnet_shapes_l1prune",
)


def load_model(name: str, kwargs: dict[str, Any] | None = None, dataset: str | None = None) -> ExitModel:
    """Exit model, pruned variant or user model ``name``, trained on first use."""
    if name in PRUNED_MODELS:
        from workloads.dynamic_pruning import load_pruned_model

        return load_pruned_model(name)
    from workloads.multiexit import load_exit_model

    return load_exit_model(name, kwargs, dataset)
