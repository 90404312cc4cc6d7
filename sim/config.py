"""Config: pydantic models with extra fields forbidden, YAML files, ``--set`` overrides.

Every problem with a user's input becomes one line naming the field path, the bad
value and what is allowed, collected in a :class:`~sim.errors.ConfigError`.

YAML is read defensively (docs/scenarios.md, "Limits"): only regular files of at
most :data:`MAX_YAML_BYTES`, nesting at most :data:`MAX_YAML_DEPTH` deep, at most
:data:`MAX_YAML_NODES` values once aliases are expanded, no duplicate keys; libyaml's
parser when it is installed.
"""

from __future__ import annotations

import copy
import difflib
import os
import re
import reprlib
import stat
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sim.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are errors, values are checked on assignment."""

    # NaN and inf are refused everywhere; a field that takes inf says so and overrides this
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


MAX_YAML_BYTES = 4 * 2**20
MAX_YAML_DEPTH = 64
MAX_YAML_NODES = 200_000
MAX_CSV_BYTES = 256 * 2**20

_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):  # type: ignore[misc, valid-type]
    """The safe loader that refuses duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) or key is None:
                if key in seen:
                    mark = key_node.start_mark
                    raise yaml.constructor.ConstructorError(None, None, f"duplicate key {_short(key)}", mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _check_tree(root: yaml.Node) -> None:
    """Nesting depth and alias-expanded size of a composed document, without recursion."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    on_path: set[int] = set()
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            kids = _children(node)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            depth[key] = 1 + max((depth[id(k)] for k in kids), default=0)
            if depth[key] > MAX_YAML_DEPTH:
                raise ValueError(f"nested deeper than {MAX_YAML_DEPTH} levels")
            if size[key] > MAX_YAML_NODES:
                raise ValueError(f"more than {MAX_YAML_NODES:,} values once aliases are expanded")
            continue
        if key in size:
            continue
        if key in on_path:
            raise ValueError("an alias refers to the node that contains it")
        if len(on_path) > MAX_YAML_DEPTH:
            raise ValueError(f"nested deeper than {MAX_YAML_DEPTH} levels")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((k, False) for k in _children(node) if id(k) not in size)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def parse_yaml(text: str | bytes, where: str) -> Any:
    """Parse one YAML document within the limits above; problems are one-line ConfigErrors."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_tree(node)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise ConfigError(f"{where}: invalid YAML{at}: {problem}") from None
    except (ValueError, RecursionError) as exc:  # limits, or an int past Python's digit limit
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{where}: invalid YAML: {first[:120]}") from None
    finally:
        loader.dispose()


def read_regular(path: str | Path, limit: int, what: str) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes (no FIFO, device or directory)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise ConfigError(f"{what}: no such file {str(path)!r}") from None
    except OSError as exc:
        raise ConfigError(f"{what}: cannot read {str(path)!r} ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise ConfigError(f"{what}: {str(path)!r} is not a regular file")
        try:
            data = f.read(limit + 1)
        except OSError as exc:
            raise ConfigError(f"{what}: cannot read {str(path)!r} ({exc.strerror})") from None
    if len(data) > limit:
        raise ConfigError(f"{what}: {str(path)!r} is larger than {limit:,} bytes")
    return data


_CHECKED: dict[tuple, bool] = {}


def check_file(path: str, field: str, read: Any) -> None:
    """Open and check a file a config names, at validation: ``read(path, field)`` raises a
    ConfigError for a bad file. Each version of a file (path, size, mtime) is read once per
    process; a problem is raised as one ``SUBFIELD_MARK`` line per problem, for pydantic."""
    try:
        st = os.stat(path)
    except OSError as exc:
        why = "no such file" if isinstance(exc, FileNotFoundError) else f"cannot read ({exc.strerror})"
        raise ValueError(f"{SUBFIELD_MARK}{field}: {why} {_short(path)}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{SUBFIELD_MARK}{field}: {_short(path)} is not a regular file")
    key = (read, path, field, st.st_size, st.st_mtime_ns)
    if key in _CHECKED:
        return
    try:
        read(path, field)
    except ConfigError as exc:
        raise ValueError("; ".join(SUBFIELD_MARK + p for p in exc.problems)) from None
    _CHECKED[key] = True


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing file or bad YAML is a one-line ConfigError."""
    path = Path(path)
    try:
        raw = read_regular(path, MAX_YAML_BYTES, str(path))
        text = raw.decode("utf-8")
    except ConfigError as exc:  # name the file first, as for YAML errors
        line = exc.problems[0].replace(f"{path}: ", "", 1).replace(f" {str(path)!r}", "")
        raise ConfigError(f"{path}: {line}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: cannot read (not UTF-8 text)") from None
    data = parse_yaml(text, str(path))
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of keys, got {type(data).__name__}")
    return data


def read_csv(path: str | Path, field: str, **options: Any) -> Any:
    """``pandas.read_csv(path, **options)`` for the file config ``field`` names; a missing,
    unreadable, irregular or unparsable file is a one-line ConfigError naming the field."""
    import io

    import pandas as pd

    data = read_regular(path, MAX_CSV_BYTES, field)
    try:
        return pd.read_csv(io.BytesIO(data), **options)
    except (ValueError, UnicodeDecodeError) as exc:  # ParserError and EmptyDataError among them
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{field}: cannot parse {str(path)!r} as CSV ({first})") from None


# YAML 1.2 core-schema scalars: only these spellings are booleans, null or numbers
_CORE = {
    bool: re.compile(r"true|True|TRUE|false|False|FALSE"),
    type(None): re.compile(r"null|Null|NULL|~|"),
    int: re.compile(r"[-+]?(0|[1-9][0-9]*)|0o[0-7]+|0x[0-9a-fA-F]+"),
    float: re.compile(
        r"[-+]?(\.[0-9]+|[0-9]+\.[0-9]*)([eE][-+]?[0-9]+)?|[-+]?[0-9]+[eE][-+]?[0-9]+"
        r"|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)"
    ),
}


def parse_scalar(raw: str, where: str) -> Any:
    """A ``--set`` value: YAML (lists, mappings, quoted strings), with YAML 1.2 scalars.

    ``no``, ``on``, ``007`` or ``1:30`` stay strings (YAML 1.1 would read them as a
    boolean or a number); ``1e3`` and ``0x1f`` are numbers.
    """
    text = raw.strip()
    for kind, pattern in _CORE.items():
        if pattern.fullmatch(text):
            if kind is bool:
                return text.lower() == "true"
            if kind is type(None):
                return None
            if kind is int:
                try:
                    return int(text, 0) if text[:2] in ("0o", "0x") else int(text)
                except ValueError:  # more digits than Python converts
                    raise ConfigError(f"{where}: {_short(text)} has too many digits") from None
            lower = text.lower()
            return float(lower.replace(".", "") if lower[-3:] in ("inf", "nan") else text)
    try:
        value = parse_yaml(raw, where)
    except ConfigError:
        return raw
    return raw if isinstance(value, (bool, int, float)) or value is None else value


def apply_overrides(data: dict[str, Any], sets: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Apply ``a.b=c`` overrides (values parsed by :func:`parse_scalar`; list items by index)."""
    values = {}
    for item in sets:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {_short(item)}: expected KEY=VALUE, e.g. scheduler.name=edf")
        values[key.strip()] = parse_scalar(raw, f"--set {key.strip()}")
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
            rest = ".".join(parts[depth:])
            if isinstance(node, dict) and not last and rest in node:  # a key with dots in it
                node[rest] = value
                break
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


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxlong = 3, 60, 60, 40


def _short(value: Any) -> str:
    """``repr(value)`` cut to about 80 characters, never building the whole text of a huge value."""
    text = _REPR.repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def cache_dir() -> Path:
    """Where work done once is kept between processes: ``$TESTBED_CACHE`` or ``~/.cache/ml-testbed``."""
    return Path(os.environ.get("TESTBED_CACHE") or Path.home() / ".cache" / "ml-testbed")


def path_safe(name: str, limit: int = 80) -> str:
    """``name`` as one plain path component: letters, digits, ``._-`` (else ``_``), no leading dot."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", str(name))[:limit].lstrip(".")
    return safe or "_"


SUBFIELD_MARK = "@"


def _keys_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names of the model nested in ``model`` at ``loc`` (list indices skipped), or []."""
    import typing

    for part in loc:
        if isinstance(part, int) or part not in model.model_fields:
            continue
        annotation = model.model_fields[part].annotation
        inner = [annotation, *typing.get_args(annotation)]
        inner += [a for arg in inner for a in typing.get_args(arg)]  # list[Model] | None
        found = [a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)]
        if not found:
            return []
        model = found[0]
    return list(model.model_fields)


def closest(word: Any, known: Any) -> str | None:
    """The one of ``known`` closest to ``word`` as text (difflib's ratio >= 0.6), or None."""
    close = difflib.get_close_matches(str(word), [str(k) for k in known], n=1)
    return close[0] if close else None


def did_you_mean(word: Any, known: Any) -> str:
    """``"; did you mean 'x'?"`` naming the closest of ``known`` to ``word``, or ``""`` if none is close."""
    close = closest(word, known)
    return f"; did you mean {close!r}?" if close else ""


def problems_of(exc: ValidationError, prefix: str = "", model: type[BaseModel] | None = None) -> list[str]:
    """One line per pydantic error: ``field.path: message (got value)``.

    An unknown key gets "did you mean" the closest field of ``model`` at that place.
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
            known = _keys_at(model, err["loc"][:-1]) if model is not None else []
            hint = did_you_mean(err["loc"][-1], known)
            line = f"{path}: unknown key (got {_short(err['input'])}){hint}"
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
        raise ConfigError(problems_of(exc, prefix, model)) from None


class PolicyRef(StrictModel):
    """A policy chosen by name, with its parameters; ``family`` is set by subclasses.

    The name must be registered in the family; ``params`` are checked against the
    policy class's ``Params`` model when it has one (else they must be empty).
    """

    family: ClassVar[str] = ""
    name: str = Field(description="a registered policy of the family (testbed list shows them)")
    params: dict[str, Any] = Field(
        default_factory=dict, description="the policy's parameters (testbed describe FAMILY NAME)"
    )

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
            problems = problems_of(exc, model=params_model)
            raise ValueError("; ".join(f"{SUBFIELD_MARK}params.{p}" for p in problems)) from None

    def build(self) -> Any:
        """A fresh instance of the policy with its validated params."""
        from sim import registry

        return registry.get(self.family, self.name)(**self._checked_params())
