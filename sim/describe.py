"""``testbed describe``: every parameter of a scenario kind or a policy, read off its pydantic model.

One line per field, nested models flattened to config paths as ``--set`` takes them
(``hardware.preset``, ``models.N.fps``): type, default, allowed range and description.
"""

from __future__ import annotations

import types
import typing
from typing import Any, Literal

import annotated_types as at
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from sim import registry
from sim.errors import ConfigError

_BOUNDS = ((at.Gt, "gt", ">"), (at.Ge, "ge", ">="), (at.Lt, "lt", "<"), (at.Le, "le", "<="))


def _type_name(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return "one of " + ", ".join(map(str, args))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is not None:
        inner = ", ".join(_type_name(a) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


def _range(field: FieldInfo) -> str:
    parts = []
    for meta in field.metadata:
        for kind, attr, sign in _BOUNDS:
            if isinstance(meta, kind):
                parts.append(f"{sign} {getattr(meta, attr)}")
        if isinstance(meta, at.MinLen):
            parts.append(f"length >= {meta.min_length}")
        if isinstance(meta, at.MaxLen):
            parts.append(f"length <= {meta.max_length}")
    return ", ".join(parts)


def _default(field: FieldInfo) -> str:
    if field.default is not PydanticUndefined:
        value = field.default
    elif field.default_factory is not None:
        try:
            value = field.default_factory()
        except TypeError:  # a factory that takes the validated data
            return "(computed)"
    else:
        return "(required)"
    if isinstance(value, BaseModel):
        return "(see below)"
    if isinstance(value, list) and value and isinstance(value[0], BaseModel):
        return f"({len(value)} items, see below)"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _nested(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The model a field holds (directly, optionally or as list items), and whether it is a list."""
    for arg in (annotation, *typing.get_args(annotation)):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg, False
        if typing.get_origin(arg) is list:
            item = typing.get_args(arg)[0] if typing.get_args(arg) else None
            if isinstance(item, type) and issubclass(item, BaseModel):
                return item, True
    return None, False


def fields(model: type[BaseModel], prefix: str = "") -> list[dict[str, str]]:
    """Every field of ``model`` and of the models it nests, as rows of path, type, default,
    range and description."""
    rows = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        rows.append(
            {
                "path": path,
                "type": _type_name(field.annotation),
                "default": _default(field),
                "range": _range(field),
                "description": (field.description or "").strip(),
            }
        )
        inner, is_list = _nested(field.annotation)
        if inner is not None and inner is not model:
            rows.extend(fields(inner, f"{path}.N." if is_list else f"{path}."))
    return rows


def catalog() -> dict[str, dict[str, str]]:
    """``family -> name -> description`` of everything registered or provided (``testbed list``);
    the provided entries' from the cache (:func:`_provided`), ``--plugin`` entries live."""
    cached = {
        family: {n: e["description"] for n, e in entries.items()} for family, entries in _provided().items()
    }
    live = {
        family: {name: registry.describe(registry.get(family, name)) for name in names}
        for family, names in registry.registered().items()
    }
    return {
        family: dict(sorted({**cached.get(family, {}), **live.get(family, {})}.items()))
        for family in sorted({*cached, *live})
    }


def _provided() -> dict[str, dict[str, Any]]:
    """Description and describe lines of every provided entry, cached: one import of every
    kind and model (torch) the first time after an edit, none later."""
    return registry.provided_cached(
        "describe",
        lambda family, name, cls: {"description": registry.describe(cls), "lines": _lines(family, name, cls)},
    )


def describe(target: list[str]) -> list[str]:
    """Lines for ``describe KIND`` or ``describe FAMILY NAME``: of a registered (e.g. a
    ``--plugin``'s) entry, read live; of a provided one, from the registry's cache of them
    all, so describing a model does not import torch."""
    if len(target) == 1:
        family, name = "scenario", target[0]
    elif len(target) == 2:
        family, name = target
    else:
        raise ConfigError(
            "describe: give a scenario kind (describe xr) or a family and a name (describe scheduling sdrm3)"
        )
    if not registry.known_family(family):
        raise ConfigError(f"describe: unknown family {family!r}; known: {', '.join(registry.families())}")
    if not registry.is_registered(family, name):
        cached = _provided().get(family, {}).get(name)
        if cached is not None:
            return cached["lines"]
    return _lines(family, name, registry.get(family, name))


def _lines(family: str, name: str, cls: Any) -> list[str]:
    model = getattr(cls, "Spec", None) if family == "scenario" else getattr(cls, "Params", None)
    head = f"{family} {name}: {registry.describe(cls)}"
    if model is None:
        return [head, "  (no parameters)"]
    rows = fields(model)
    width = max(len(r["path"]) for r in rows)
    lines = [head]
    for r in rows:
        extra = "; ".join(x for x in (r["range"] and f"range {r['range']}", r["description"]) if x)
        lines.append(
            f"  {r['path']:<{width}}  {r['type']} = {r['default']}" + (f"  -- {extra}" if extra else "")
        )
    return lines
