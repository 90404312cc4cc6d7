"""Config: pydantic models with extra fields forbidden, YAML files, ``--set`` overrides.

Every problem with a user's input becomes one line naming the field path, the bad
value and what is allowed, collected in a :class:`~sim.errors.ConfigError`.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sim.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are errors, values are checked on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing file or bad YAML is a one-line ConfigError."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({type(exc).__name__})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of keys, got {type(data).__name__}")
    return data


def read_csv(path: str | Path, field: str, **options: Any) -> Any:
    """``pandas.read_csv(path, **options)`` for the file config ``field`` names; a missing,
    unreadable or unparsable file is a one-line ConfigError naming the field."""
    import pandas as pd

    try:
        return pd.read_csv(path, **options)
    except FileNotFoundError:
        raise ConfigError(f"{field}: no such file {str(path)!r}") from None
    except (IsADirectoryError, PermissionError) as exc:
        raise ConfigError(f"{field}: cannot read {str(path)!r} ({type(exc).__name__})") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{field}: cannot parse {str(path)!r} as CSV ({first})") from None


def apply_overrides(data: dict[str, Any], sets: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Apply ``a.b=c`` overrides (values parsed as YAML; list items by index) to a copy."""
    values = {}
    for item in sets:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. scheduler.name=edf")
        try:
            values[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError:
            values[key.strip()] = raw
    return set_values(data, values)


def set_values(data: dict[str, Any], values: dict[str, Any], label: str = "--set") -> dict[str, Any]:
    """A deep copy of ``data`` with each dotted ``key -> value`` of ``values`` set."""
    data = copy.deepcopy(data)
    for key, value in values.items():
        parts = key.split(".")
        node: Any = data
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            where = ".".join(parts[: depth + 1])
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ConfigError(
                        f"{label} {key}: {where!r} is not an index of a list of {len(node)} items"
                    )
                if last:
                    node[int(part)] = value
                else:
                    node = node[int(part)]
            elif isinstance(node, dict):
                if last:
                    node[part] = value
                elif part not in node and parts[depth + 1].isdigit():
                    raise ConfigError(
                        f"{label} {key}: {where!r} is not a list in the file, so it has no item "
                        f"{parts[depth + 1]}"
                    )
                else:
                    node = node.setdefault(part, {})
            else:
                raise ConfigError(f"{label} {key}: {'.'.join(parts[:depth])!r} is not a mapping")
    return data


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


SUBFIELD_MARK = "@"


def problems_of(exc: ValidationError, prefix: str = "") -> list[str]:
    """One line per pydantic error: ``field.path: message (got value)``.

    A validator whose message starts with ``SUBFIELD_MARK`` names a path below its own
    field and carries its own value, e.g. ``"@params.rate: must be > 0 (got -1)"`` on
    field ``scheduler`` becomes ``scheduler.params.rate: must be > 0 (got -1)``.
    """
    lines = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
        path = ".".join(p for p in (prefix, loc) if p)
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if msg.startswith(SUBFIELD_MARK):
            parts = msg[1:].split("; " + SUBFIELD_MARK)
            lines.extend(f"{path}.{part}" if path else part for part in parts)
            continue
        if not loc:  # a check across fields: its message names the fields itself
            line = f"{prefix}: {msg}" if prefix else msg
        elif err["type"] == "extra_forbidden":
            line = f"{path}: unknown key (got {_short(err['input'])})"
        elif err["type"] == "missing":
            line = f"{path}: required field is missing"
        else:
            line = f"{path}: {msg} (got {_short(err['input'])})"
        lines.append(line)
    return lines


def validate(model: type[M], data: Any, prefix: str = "") -> M:
    """``model.model_validate(data)``, turning a ValidationError into a ConfigError."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(problems_of(exc, prefix)) from None


class PolicyRef(StrictModel):
    """A policy chosen by name, with its parameters; ``family`` is set by subclasses.

    The name must be registered in the family; ``params`` are checked against the
    policy class's ``Params`` model when it has one (else they must be empty).
    """

    family: ClassVar[str] = ""
    name: str
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _registered(cls, name: str) -> str:
        from sim import registry

        known = registry.names(cls.family)
        if name not in known:
            raise ValueError(f"{name!r} is not a registered {cls.family} policy; known: {', '.join(known)}")
        return name

    @model_validator(mode="after")
    def _params_fit(self) -> PolicyRef:
        self._checked_params()
        return self

    def _checked_params(self) -> dict[str, Any]:
        from sim import registry

        policy = registry.get(self.family, self.name)
        params_model = getattr(policy, "Params", None)
        if params_model is None:
            if self.params:
                given = sorted(self.params)
                raise ValueError(f"{SUBFIELD_MARK}params: policy {self.name!r} takes none (got {given})")
            return {}
        try:
            return params_model.model_validate(self.params).model_dump()
        except ValidationError as exc:
            raise ValueError("; ".join(f"{SUBFIELD_MARK}params.{p}" for p in problems_of(exc))) from None

    def build(self) -> Any:
        """A fresh instance of the policy with its validated params."""
        from sim import registry

        return registry.get(self.family, self.name)(**self._checked_params())
