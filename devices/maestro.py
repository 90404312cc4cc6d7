"""A reader of MAESTRO ``.m`` files: model layer lists and accelerator configurations.

MAESTRO's model format, as XRBench's usage scenarios use it::

    Network ES_RITNet {
    Dependency: { upstream_net }        // optional
    Probability: 1.0                    // optional, trigger probability of the dependency
    FPS: 60
    Layer conv1 {
        Type: CONV
        Dimensions: { N: 1, K: 32, C: 32, Y: 160, X: 100, R: 3, S: 3 }
    }
    }

and its hardware format (``Accelerator NAME { num_pes: 4096  offchip_bw: 128 ... }``).
Layers become :class:`devices.cost.Layer` objects directly, so any network given in
this format can be costed and run as a workload.

Dimension semantics, MAESTRO's: ``Y`` x ``X`` is the input plane, the output is
Y' x X' = (Y - R + 1) x (X - S + 1) (stride 1, no padding; the files give no stride, so
strides are folded into the sizes: hand tracking's 7x7 stem reads Y 128 where the
network's input is larger). A kernel larger than its input (late 5x5 layers on a 5x4
map in XRBench's FBNet-C) yields one output per row or column here, not zero. So a
CONV does N*K*C*R*S*Y'*X' MACs; a DWCONV (one filter per channel) N*C*R*S*Y'*X' with
K = C; an FC is a CONV with R = S = 1 over Y*X rows. ``padding="same"`` reads Y x X as
the output plane instead (input padded by R-1, S-1), the view of a padded PyTorch conv.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devices.cost import Layer
from sim.errors import ConfigError

LAYER_TYPES: tuple[str, ...] = ("CONV", "DWCONV", "FC")
DIMENSIONS: tuple[str, ...] = ("N", "K", "C", "Y", "X", "R", "S")
_TOKEN = re.compile(r"\s*(?:([{}:,;])|([^\s{}:,;]+))")


@dataclass(frozen=True)
class Item:
    """One entry of a parsed file: ``key: value``, ``key: {...}``, ``Kind name {...}`` or a word."""

    line: int
    key: str
    name: str | None = None
    value: str | None = None
    body: tuple[Item, ...] | None = None


def _tokens(text: str) -> list[tuple[int, str]]:
    out = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("//", 1)[0]
        pos = 0
        while pos < len(line):
            m = _TOKEN.match(line, pos)
            if m is None or m.end() == pos:  # only trailing whitespace left
                break
            out.append((number, m.group(1) or m.group(2)))
            pos = m.end()
    return out


def parse(text: str, path: str) -> tuple[Item, ...]:
    """The file as a tree of :class:`Item`; unbalanced braces name the line."""
    tokens = _tokens(text)
    pos = 0

    def block(depth: int) -> tuple[Item, ...]:
        nonlocal pos
        items = []
        while pos < len(tokens):
            line, tok = tokens[pos]
            if tok == "}":
                if depth == 0:
                    raise ConfigError(f"{path}, line {line}: unmatched '}}'")
                pos += 1
                return tuple(items)
            if tok in ",;":
                pos += 1
                continue
            if tok in "{:":
                raise ConfigError(f"{path}, line {line}: unexpected {tok!r}")
            nxt = tokens[pos + 1][1] if pos + 1 < len(tokens) else None
            after = tokens[pos + 2][1] if pos + 2 < len(tokens) else None
            if nxt == ":" and after == "{":
                pos += 3
                items.append(Item(line, tok, body=block(depth + 1)))
            elif nxt == ":":
                if after is None or after in "{}:,;":
                    raise ConfigError(f"{path}, line {line}: {tok}: missing value")
                items.append(Item(line, tok, value=after))
                pos += 3
            elif after == "{" and nxt is not None and nxt not in "{}:,;":
                pos += 3
                items.append(Item(line, tok, name=nxt, body=block(depth + 1)))
            else:
                items.append(Item(line, tok))
                pos += 1
        if depth:
            raise ConfigError(f"{path}: a '{{' is never closed (end of file)")
        return tuple(items)

    return block(0)


@dataclass(frozen=True)
class MaestroNetwork:
    """One ``Network`` block: its layers and the stream facts the file gives."""

    name: str
    layers: tuple[Layer, ...]
    fps: float | None = None
    depends_on: tuple[str, ...] = ()
    trigger_p: float | None = None


def _number(item: Item, path: str, what: str) -> float:
    try:
        return float(item.value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{path}, line {item.line}: {what} {item.key}: {item.value!r} is not a number"
        ) from None


PADDINGS: tuple[str, ...] = ("valid", "same")


def layer_from_dims(name: str, kind: str, dims: dict[str, int], padding: str = "valid") -> Layer:
    """The cost model's :class:`Layer` for a MAESTRO layer (semantics in the module docstring)."""
    n, k, c, y, x, r, s = (dims[d] for d in DIMENSIONS)
    groups = 1
    if kind == "DWCONV":
        k, groups = c, c
    if kind == "FC":
        r = s = 1
    if padding == "same":
        y_in, x_in, y_out, x_out = y + r - 1, x + s - 1, y, x
    else:
        y_in, x_in, y_out, x_out = y, x, max(1, y - r + 1), max(1, x - s + 1)
    cg = c // groups
    pixels = n * y_out * x_out
    macs = float(pixels * k * cg * r * s)
    return Layer(
        name=name,
        op="conv",
        macs=macs,
        flops=2 * macs,
        weight_bytes=float(k * cg * r * s),
        input_bytes=float(n * c * y_in * x_in),
        output_bytes=float(pixels * k),
        out_channels=k,
        in_channels=cg,
        kernel_elems=r * s,
        out_pixels=pixels,
        groups=groups,
        kernel_rows=r,
        out_rows=n * y_out,
    )


def _layer(item: Item, path: str, padding: str) -> Layer:
    where = f"{path}, line {item.line}: layer {item.name}"
    fields = {i.key: i for i in item.body}
    kind = fields.get("Type")
    if kind is None or kind.value not in LAYER_TYPES:
        got = "no Type" if kind is None else f"Type {kind.value!r}"
        raise ConfigError(f"{where}: {got}; allowed: {', '.join(LAYER_TYPES)}")
    unknown = sorted(set(fields) - {"Type", "Dimensions"})
    if unknown:
        raise ConfigError(f"{where}: unknown field {unknown[0]}; allowed: Type, Dimensions")
    dim_item = fields.get("Dimensions")
    if dim_item is None or dim_item.body is None:
        raise ConfigError(f"{where}: needs Dimensions: {{ {', '.join(f'{d}: ..' for d in DIMENSIONS)} }}")
    dims: dict[str, int] = {}
    for d in dim_item.body:
        if d.key not in DIMENSIONS or d.value is None:
            raise ConfigError(
                f"{path}, line {d.line}: layer {item.name}: bad dimension {d.key!r}; "
                f"allowed: {', '.join(DIMENSIONS)}, each 'name: positive integer'"
            )
        if not d.value.isdigit() or int(d.value) <= 0:
            raise ConfigError(
                f"{path}, line {d.line}: layer {item.name}: dimension {d.key}: {d.value!r} "
                "is not a positive integer"
            )
        dims[d.key] = int(d.value)
    missing = [d for d in DIMENSIONS if d not in dims]
    if missing:
        raise ConfigError(
            f"{path}, line {dim_item.line}: layer {item.name}: missing dimension(s) {', '.join(missing)}"
        )
    if kind.value == "DWCONV" and dims["K"] not in (1, dims["C"]):
        raise ConfigError(f"{where}: DWCONV needs K = C (or 1), got K {dims['K']}, C {dims['C']}")
    return layer_from_dims(item.name, kind.value, dims, padding)


def _network(item: Item, path: str, padding: str) -> MaestroNetwork:
    layers, fps, depends, prob = [], None, (), None
    for entry in item.body:
        if entry.key == "Layer" and entry.body is not None:
            layers.append(_layer(entry, path, padding))
        elif entry.key == "FPS" and entry.value is not None:
            fps = _number(entry, path, f"network {item.name}:")
        elif entry.key == "Probability" and entry.value is not None:
            prob = _number(entry, path, f"network {item.name}:")
        elif entry.key == "Dependency" and entry.body is not None:
            depends = tuple(d.key for d in entry.body)
        else:
            raise ConfigError(
                f"{path}, line {entry.line}: network {item.name}: unexpected {entry.key!r}; "
                "allowed: Layer NAME { Type, Dimensions }, FPS, Dependency, Probability"
            )
    names = [layer.name for layer in layers]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{path}: network {item.name}: layer names repeat: {', '.join(dupes)}")
    if not layers:
        raise ConfigError(f"{path}, line {item.line}: network {item.name} has no layers")
    return MaestroNetwork(item.name, tuple(layers), fps, depends, prob)


def _read(path: str | Path, field: str) -> tuple[str, tuple[Item, ...]]:
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise ConfigError(f"{field}: no such file {str(path)!r}") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{field}: cannot read {str(path)!r} ({type(exc).__name__})") from None
    return str(path), parse(text, str(path))


def _blocks(items: tuple[Item, ...], path: str, kind: str) -> list[Item]:
    for item in items:
        if item.key != kind or item.body is None:
            raise ConfigError(f"{path}, line {item.line}: expected '{kind} NAME {{ ... }}', got {item.key!r}")
    return list(items)


@functools.cache
def _networks_cached(path: str, mtime_ns: int, padding: str) -> dict[str, MaestroNetwork]:
    where, items = _read(path, "maestro")
    nets = {}
    for item in _blocks(items, where, "Network"):
        if item.name in nets:
            raise ConfigError(f"{where}, line {item.line}: network {item.name} given twice")
        nets[item.name] = _network(item, where, padding)
    return nets


def read_networks(path: str | Path, padding: str = "valid") -> dict[str, MaestroNetwork]:
    """Every ``Network`` of a MAESTRO model file, by name (parsed once per file version).

    ``padding``: "valid" (MAESTRO's reading, the default) or "same" (module docstring).
    """
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
    try:
        mtime = Path(path).stat().st_mtime_ns
    except OSError:
        mtime = -1  # _read reports the problem
    return _networks_cached(str(path), mtime, padding)


def network_layers(path: str | Path, network: str) -> tuple[Layer, ...]:
    """The layers of one network of a MAESTRO model file; an unknown name lists the known ones."""
    nets = read_networks(path)
    if network not in nets:
        raise ConfigError(f"maestro.network: {network!r} is not in {path}; networks there: {', '.join(nets)}")
    return nets[network].layers


ACCELERATOR_FIELDS: tuple[str, ...] = (
    "num_pes",
    "offchip_bw",
    "top_noc_bw",
    "top_noc_latency",
    "top_noc_multicast",
    "col_noc_bw",
    "col_noc_latency",
    "col_noc_multicast",
    "global_shared_memory",
    "PE_local_memory",
)


def read_accelerators(path: str | Path) -> list[dict[str, Any]]:
    """The ``Accelerator`` blocks of a MAESTRO hardware file, in order: name and fields.

    Numbers become ints (or floats), ``True``/``False`` bools; an unknown field or a
    missing one names the file and line.
    """
    where, items = _read(path, "hw_config")
    out = []
    for item in _blocks(items, where, "Accelerator"):
        fields: dict[str, Any] = {"name": item.name}
        for entry in item.body:
            if entry.key not in ACCELERATOR_FIELDS or entry.value is None:
                raise ConfigError(
                    f"{where}, line {entry.line}: accelerator {item.name}: unknown field {entry.key!r}; "
                    f"allowed: {', '.join(ACCELERATOR_FIELDS)}"
                )
            if entry.value in ("True", "False"):
                fields[entry.key] = entry.value == "True"
            else:
                number = _number(entry, where, f"accelerator {item.name}:")
                fields[entry.key] = int(number) if number.is_integer() else number
        missing = [f for f in ACCELERATOR_FIELDS if f not in fields]
        if missing:
            raise ConfigError(
                f"{where}, line {item.line}: accelerator {item.name}: missing {', '.join(missing)}"
            )
        out.append(fields)
    return out
