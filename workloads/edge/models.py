"""Names of the built-in multi-exit models, importable without torch (for validation).

:mod:`workloads.multiexit` defines and trains them, :mod:`workloads.dynamic_pruning` the
pruned variants; tests check that the lists agree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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
PRUNED_MODELS: tuple[str, ...] = (
    "vgg_shapes_dynprune",
    "vgg_shapes_l1prune",
    "resnet_shapes_dynprune",
    "resnet_shapes_l1prune",
)


def load_model(name: str) -> ExitModel:
    """Exit model or pruned variant ``name``, trained on first use."""
    if name in PRUNED_MODELS:
        from workloads.dynamic_pruning import load_pruned_model

        return load_pruned_model(name)
    from workloads.multiexit import load_exit_model

    return load_exit_model(name)
