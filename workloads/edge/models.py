"""Names of the built-in multi-exit models, importable without torch (for validation).

:mod:`workloads.multiexit` defines and trains them; a test checks that the two lists agree.
"""

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
