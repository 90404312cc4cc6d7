"""A user's own ``nn.Module`` as the model of any scenario kind.

Every kind names its model the same way: a name registered in the ``model`` family
(``@register("model", "my_net")`` on a class or function, in a plugin) or a
``module:factory`` path importable from the working folder, plus keyword arguments.
This module finds the factory, builds the model on the ``meta`` device (no weights,
milliseconds), initialises weights from a seeded generator (never global RNG), and
digests the model's source so that caches of anything derived from it (layer costs,
trained weights, FLOP counts) are rebuilt when the user edits it. Errors name the
scenario field, as one line each (:class:`ConfigError`).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import inspect
import json
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, vmap

from sim import registry
from sim.config import closest
from sim.errors import ConfigError


def resolve(ref: str, field: str) -> Callable[..., nn.Module]:
    """The factory ``ref`` names: a registered ``model`` name, or ``module:factory``.

    ``field`` is the scenario field that holds ``ref`` (for the error message).
    """
    if ":" not in ref:
        try:
            return registry.get("model", ref)
        except ConfigError as exc:
            raise ConfigError(f"{field}: {exc}") from None
    module_name, _, attr = ref.partition(":")
    if os.getcwd() not in sys.path:  # a module beside the user, as `python -m` would find it
        sys.path.insert(0, os.getcwd())
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{field}: cannot import {ref!r} ({exc}); need module:factory") from None
    if not callable(factory):
        raise ConfigError(f"{field}: {ref!r} is a {type(factory).__name__}, not a callable factory")
    return factory


def check_known(ref: str, field: str, built_in: tuple[str, ...], what: str) -> None:
    """A name that is neither built in nor registered (nor ``module:factory``) is refused,
    with the closest built-in name; ``what`` names the kind of model, for the message."""
    if ":" in ref or ref in built_in or ref in registry.names("model"):
        return
    close = closest(ref, built_in)
    hint = f"did you mean {close!r}? " if close else ""
    raise ConfigError(
        f"{field}: unknown {what} {ref!r}; {hint}built-in: {', '.join(built_in)}; "
        "or a name registered in the 'model' family, or module:factory"
    )


def build(ref: str, kwargs: dict[str, Any], field: str, kwargs_field: str, **given: Any) -> nn.Module:
    """``ref``'s model on ``meta``, in eval mode, built as ``factory(**given, **kwargs)``.

    ``given`` are the arguments the kind passes itself (e.g. ``input_shape`` and
    ``num_classes``); ``kwargs`` the user's, from ``kwargs_field``.
    """
    factory = resolve(ref, field)
    clash = sorted(set(given) & set(kwargs))
    if clash:
        raise ConfigError(f"{kwargs_field}: {', '.join(clash)} is set by the scenario; leave it out")
    with torch.device("meta"):
        try:
            model = factory(**given, **kwargs)
        except TypeError as exc:
            args = {**given, **kwargs}
            raise ConfigError(f"{kwargs_field}: {ref!r} does not take {args} ({exc})") from None
        except Exception as exc:  # whatever a user's constructor raises
            raise ConfigError(f"{field}: {ref!r} failed to build ({type(exc).__name__}: {exc})") from None
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{field}: {ref!r} returned {type(model).__name__}, not a torch nn.Module")
    return model.eval()


def build_stackable(
    ref: str,
    kwargs: dict[str, Any],
    fields: tuple[str, str],
    built_in: tuple[str, ...],
    input_shape: tuple[int, ...],
    n_out: int,
) -> nn.Module:
    """A user's model for many copies trained as one stacked model (``torch.func``), on ``meta``.

    Built as ``factory(input_shape=..., num_classes=n_out, **kwargs)``; ``fields`` are the
    scenario fields of ``ref`` and ``kwargs``, ``built_in`` the kind's own names (for "did
    you mean"). It must hold parameters only (no buffers, so no BatchNorm running
    statistics: a stacked forward cannot update them), and ``vmap`` over stacked
    parameters of ``functional_call`` must map ``[batch, *input_shape]`` to ``[batch, n_out]``
    logits. Checked on ``meta``: no weights, milliseconds.
    """
    field, kwargs_field = fields
    check_known(ref, field, built_in, "model")
    model = build(ref, kwargs, field, kwargs_field, input_shape=tuple(input_shape), num_classes=n_out)
    buffers = [name for name, _ in model.named_buffers()]
    if buffers:
        raise ConfigError(
            f"{field}: {ref!r} has buffers ({', '.join(buffers[:3])}); copies train as one stacked "
            "model (functional_call + vmap), which needs parameters only: no BatchNorm with running "
            "statistics (use GroupNorm or LayerNorm)"
        )
    params = {name: p.expand(2, *p.shape) for name, p in model.named_parameters()}
    if not params:
        raise ConfigError(f"{field}: {ref!r} has no parameters to train")
    x = torch.zeros(2, 3, *input_shape, device="meta")
    try:
        out = vmap(lambda p, xb: functional_call(model, p, (xb,)))(params, x)
    except Exception as exc:  # whatever a user's forward raises, vmap's refusals included
        why = f"{type(exc).__name__}: {exc}".splitlines()[0]
        raise ConfigError(
            f"{field}: {ref!r} cannot run stacked (vmap of functional_call) on "
            f"{list(input_shape)} samples: {why}"
        ) from None
    if not isinstance(out, torch.Tensor) or list(out.shape) != [2, 3, n_out]:
        got = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(
            f"{field}: {ref!r} must return [batch, {n_out}] logits for a [batch, "
            f"{', '.join(map(str, input_shape))}] input; got {got} for 3 samples"
        )
    return model


def materialise(module: nn.Module) -> nn.Module:
    """``module`` (built on ``meta``) with uninitialised CPU parameters, in place. Like
    ``to_empty(device="cpu")``, but by plain ``torch.empty``: ``to_empty`` goes through
    PyTorch's meta-tensor references, whose first use imports about a second of modules."""
    for sub in module.modules():
        for name, p in list(sub.named_parameters(recurse=False)):
            setattr(sub, name, nn.Parameter(torch.empty(p.shape, dtype=p.dtype)))
    return module


def seeded_init(model: nn.Module, generator: torch.Generator) -> nn.Module:
    """Initialise ``model``'s parameters in place from ``generator``, in registration order:
    weights (2 or more dimensions) uniform in +-1/sqrt(fan_in), PyTorch's default range;
    biases 0; other vectors (norm scales) 1; batch-norm statistics reset."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() > 1:
                bound = 1 / math.sqrt(param[0].numel())
                param.copy_(torch.empty(param.shape).uniform_(-bound, bound, generator=generator))
            else:
                param.fill_(0.0 if name.endswith("bias") else 1.0)
        for module in model.modules():
            if hasattr(module, "reset_running_stats"):
                module.reset_running_stats()
    return model


def source_digest(ref: str | None, model: nn.Module, *extra: Any) -> str:
    """Hash of the source files of ``ref``'s factory (if given) and of every module class in
    ``model``, of ``extra`` (constructor arguments, shapes), and of the torch version: it
    changes when the user edits the model, so whatever is cached from it is made again."""
    h = hashlib.sha256(torch.__version__.encode())
    h.update(json.dumps([ref, *extra], sort_keys=True, default=str).encode())
    objects = [*(type(m) for m in model.modules()), *([resolve(ref, "model")] if ref else [])]
    files = set()
    for obj in objects:
        with contextlib.suppress(TypeError):  # a built-in or C-implemented class has no source
            files.add(inspect.getsourcefile(obj))
    for file in sorted(f for f in files if f):
        h.update(Path(file).read_bytes())
    return h.hexdigest()[:16]
