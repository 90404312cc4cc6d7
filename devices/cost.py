"""Per-layer latency and energy of a real ``nn.Module`` on an accelerator.

Three pieces, used once per (model, system) before the clock starts:

- :func:`extract_layers` runs the model once and lists its layers with MACs, FLOPs,
  bytes and the loop dimensions that decide PE-array utilisation;
- :class:`AnalyticCostModel` turns a layer and an :class:`AcceleratorSpec` into
  ``(latency_s, energy_j)``; :class:`ProfileTable` holds costs measured elsewhere;
- :func:`cost_table` combines them into ``[accelerator, layer]`` arrays, so the event
  loop only looks numbers up.

The analytic model is a simplified reconstruction in the spirit of MAESTRO (which the
XRBench reference uses), not MAESTRO: each dataflow maps two loop dimensions onto the
PE array, reuse rules give L1/L2 access counts, and latency is the slowest of compute,
NoC and off-chip transfer. Every constant it assumes is a field of
:class:`AnalyticAssumptions`. docs/cost_model.md states each rule.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

from devices.hardware import AcceleratorSpec, SystemSpec
from sim.errors import ConfigError

aten = torch.ops.aten


@dataclass(frozen=True, slots=True)
class Layer:
    """One unit of work of a model, as the cost model sees it.

    ``op`` is "conv", "linear", "matmul" (both operands are activations) or "other"
    (elementwise, norm, pooling, data movement: ``macs`` 0, ``flops`` = elements
    produced). Loop dimensions: ``out_channels`` K, ``in_channels`` per group C/g,
    ``kernel_elems`` R*S (reduction length per input channel; 1 for linear, stride-
    divided for transposed convs), ``out_pixels`` P (Y'*X'*batch, or rows of a matmul),
    ``groups`` g (batch count of a batched matmul), ``kernel_rows`` R and ``out_rows``
    Y' for the row-stationary mapping. For MAC layers macs = P * K * C/g * R*S.
    Sizes are bytes at ``bytes_per_elem``; a matmul's second operand counts as weights.
    """

    name: str
    op: str
    macs: float
    flops: float
    weight_bytes: float
    input_bytes: float
    output_bytes: float
    out_channels: int
    in_channels: int
    kernel_elems: int
    out_pixels: int
    groups: int = 1
    kernel_rows: int = 1
    out_rows: int = 1
    bytes_per_elem: int = 1


# Ops that move no data or only relabel it; everything else with a tensor input is work.
_NO_WORK = {
    aten._unsafe_view,
    aten.clone,
    aten._to_copy,
    aten.copy_,
    aten.detach,
    aten.alias,
    aten.lift_fresh,
}
_CONV = {aten.convolution, aten._convolution}
_MM = {aten.mm: 0, aten.addmm: 1, aten.bmm: 0, aten.baddbmm: 1}  # -> index of first operand


def _numel(shape: Any) -> int:
    return math.prod(int(d) for d in shape)


def _tensors(tree: Any) -> list[torch.Tensor]:
    return [t for t in tree_flatten(tree)[0] if isinstance(t, torch.Tensor)]


def _mac_fields(packet: Any, args: tuple, out: torch.Tensor, macs: float) -> dict[str, Any]:
    """Loop dimensions and operand sizes (in elements) of one MAC op, from its shapes."""
    if packet in _CONV:
        x, w, bias, stride = args[:4]
        transposed, groups = args[6], args[8]
        k, cg = int(out.shape[1]), int(x.shape[1]) // groups
        pixels = int(out.shape[0]) * _numel(out.shape[2:])
        two_d = out.dim() >= 4
        kernel_rows = int(w.shape[2]) if two_d else 1
        return {
            "op": "conv",
            "out_channels": k,
            "in_channels": cg,
            # transposed convs: kernel taps per output = R*S / stride^2
            "kernel_elems": max(1, round(macs / (pixels * k * cg))),
            "out_pixels": pixels,
            "groups": groups,
            "kernel_rows": max(1, round(kernel_rows / stride[0])) if transposed else kernel_rows,
            "out_rows": int(out.shape[0]) * (int(out.shape[2]) if two_d else 1),
            "weight_bytes": w.numel() + (bias.numel() if bias is not None else 0),
            "input_bytes": x.numel(),
        }
    if packet in _MM:
        first = _MM[packet]
        a, b = args[first], args[first + 1]
        groups = int(a.shape[0]) if a.dim() == 3 else 1
        return {
            "out_channels": int(b.shape[-1]) * groups,
            "in_channels": int(a.shape[-1]),
            "kernel_elems": 1,
            "out_pixels": int(a.shape[-2]),
            "groups": groups,
            "out_rows": int(a.shape[-2]),
            "weight_bytes": b.numel() + (args[0].numel() if first else 0),
            "input_bytes": a.numel(),
        }
    # Any other op FlopCounterMode counts (fused attention, scaled mm): a matmul with
    # the output's last dimension as columns and the reduction length the MACs imply.
    operands = _tensors(args)
    cols = int(out.shape[-1]) if out.dim() else 1
    rows = max(1, out.numel() // cols)
    return {
        "op": "matmul",
        "out_channels": cols,
        "in_channels": max(1, round(macs / max(1, out.numel()))),
        "kernel_elems": 1,
        "out_pixels": rows,
        "out_rows": rows,
        "weight_bytes": sum(t.numel() for t in operands[1:]),
        "input_bytes": operands[0].numel(),
    }


class _OpRecorder(TorchDispatchMode):
    """Records every working aten op as Layer fields, with the module call it ran in.

    FLOPs come from FlopCounterMode's per-op formulas, applied op by op so that each
    call gets its own count. Byte fields hold element counts until scaled.
    """

    def __init__(self, owner: Callable[[], tuple[str, bool]], clock: Callable[[], float] | None = None):
        super().__init__()
        self.owner = owner
        self.clock = clock  # when given, each op's wall time goes into its fields as "time_s"
        self.flop_formulas = FlopCounterMode(display=False).flop_registry
        self.ops: list[tuple[str, dict[str, Any]]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        clock = self.clock
        started = clock() if clock else 0.0
        out = func(*args, **kwargs)
        elapsed_s = clock() - started if clock else 0.0
        packet = func.overloadpacket
        inputs, outputs = _tensors((args, kwargs)), _tensors(out)
        if func.is_view or packet in _NO_WORK or not inputs or not outputs:
            return out
        name, owns_params = self.owner()
        produced = outputs[0].numel()
        formula = self.flop_formulas.get(packet)
        if formula is None:
            fields = {
                "op": "other",
                "macs": 0.0,
                "flops": float(produced),
                "weight_bytes": 0,
                "input_bytes": sum(t.numel() for t in inputs),
            }
        else:
            flops = float(formula(*args, **kwargs, out_val=out))
            fields = {"op": "linear" if owns_params else "matmul", "macs": flops / 2}
            fields.update(_mac_fields(packet, args, outputs[0], flops / 2), flops=flops)
        fields["output_bytes"] = produced
        fields["time_s"] = elapsed_s
        self.ops.append((name, fields))
        return out


def extract_layers(
    model: nn.Module,
    example_input: torch.Tensor | tuple[torch.Tensor, ...],
    bytes_per_elem: int = 1,
) -> tuple[Layer, ...]:
    """The model's layers in execution order, from one forward pass in eval mode.

    Each MAC op (convolution, matmul) is one layer, named after the module it ran in;
    a run of non-MAC ops inside one module call is one "other" layer (its input bytes
    are the first op's inputs, its output bytes the last op's output). So functional
    matmuls (attention scores) count, attributed to the module whose ``forward`` does
    them. A module that yields several layers names them ``<module>.<op><i>``; a module
    called again gets ``#<n>``; the root module's own ops carry its class name. FLOPs
    use FlopCounterMode's formulas; MACs are FLOPs / 2. Bytes are elements *
    ``bytes_per_elem`` (1: int8 weights and activations, as on XRBench-style
    accelerators).

    Build the model and input on the ``meta`` device: no weights are initialised, no
    random numbers drawn, and the pass takes milliseconds.
    """
    return trace_layers(model, example_input, bytes_per_elem)[0]


def trace_layers(
    model: nn.Module,
    example_input: torch.Tensor | tuple[torch.Tensor, ...],
    bytes_per_elem: int = 1,
    clock: Callable[[], float] | None = None,
) -> tuple[tuple[Layer, ...], list[float]]:
    """:func:`extract_layers` with each layer's wall time by ``clock`` (zeros without one).

    A layer's time is the sum of its ops' times, each measured around the op's kernel
    alone (the tracer's own bookkeeping and Python module overhead are outside it).
    """
    names = {module: name for name, module in model.named_modules()}
    root = type(model).__name__
    stack: list[tuple[str, bool]] = []
    calls: Counter[str] = Counter()

    def pre_hook(module: nn.Module, _args: Any) -> None:
        name = names[module] or root
        n = calls[name]
        calls[name] += 1
        owns_params = next(module.parameters(recurse=False), None) is not None
        stack.append((f"{name}#{n}" if n else name, owns_params))

    def post_hook(_module: nn.Module, _args: Any, _out: Any) -> None:
        stack.pop()

    handles = []
    for module in names:
        handles.append(module.register_forward_pre_hook(pre_hook))
        handles.append(module.register_forward_hook(post_hook, always_call=True))
    inputs = example_input if isinstance(example_input, tuple) else (example_input,)
    recorder = _OpRecorder(lambda: stack[-1], clock)
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad(), recorder:
            model(*inputs)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return _merge(recorder.ops, bytes_per_elem)


def _merge(ops: list[tuple[str, dict[str, Any]]], bpe: int) -> tuple[tuple[Layer, ...], list[float]]:
    """Runs of "other" ops in one module call become one layer; then name every layer.

    Returns the layers and each one's summed op time.
    """
    runs: list[tuple[str, dict[str, Any]]] = []
    for owner, fields in ops:
        prev = runs[-1] if runs else None
        if fields["op"] == "other" and prev and prev[0] == owner and prev[1]["op"] == "other":
            prev[1]["flops"] += fields["flops"]
            prev[1]["time_s"] += fields["time_s"]
            prev[1]["output_bytes"] = fields["output_bytes"]
        else:
            runs.append((owner, fields))
    per_owner = Counter(owner for owner, _ in runs)
    index: Counter[tuple[str, str]] = Counter()
    layers, times_s = [], []
    for owner, fields in runs:
        times_s.append(fields.pop("time_s"))
        name, op = owner, fields["op"]
        if per_owner[owner] > 1:
            name = f"{owner}.{op}{index[owner, op]}"
            index[owner, op] += 1
        if op == "other":
            fields.update(out_channels=1, in_channels=1, kernel_elems=1, out_pixels=fields["output_bytes"])
        sizes = {k: float(fields.pop(k) * bpe) for k in ("weight_bytes", "input_bytes", "output_bytes")}
        layers.append(Layer(name=name, bytes_per_elem=bpe, **fields, **sizes))
    return tuple(layers), times_s


class AnalyticAssumptions(BaseModel):
    """Every constant the analytic model assumes; change any of them per scenario.

    - ``ws_kernel_spatial``: WS maps C*R*S (im2col, TPU-like) onto the array columns
      instead of C alone with R, S temporal (NVDLA, MAESTRO's KC-P dataflow).
    - ``l1_accesses_per_mac``: L1 reads/writes per MAC besides fills from L2 (the
      stationary operand sits in a PE register, the other two go through L1).
    - ``tile_buffer_fraction``: share of the L2 a layer that does not fit may use for
      the tile of its larger operand (the rest double-buffers the streamed operand and
      the outputs); the smaller operand is refetched once per tile.
    - ``other_ops_per_pe_cycle``: throughput of non-MAC work (one op per PE per cycle).
    - ``other_l1_accesses_per_op``: L1 accesses per non-MAC op (read and write).
    - ``other_op_energy``: energy of a non-MAC op in MAC units.
    - ``fuse_non_mac_layers``: non-MAC layers run fused with their producer, so their
      tensors stay on chip unless they exceed the L2.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    ws_kernel_spatial: bool = False
    l1_accesses_per_mac: float = Field(2.0, ge=0)
    tile_buffer_fraction: float = Field(0.5, gt=0, le=1)
    other_ops_per_pe_cycle: float = Field(1.0, gt=0)
    other_l1_accesses_per_op: float = Field(2.0, ge=0)
    other_op_energy: float = Field(1.0, ge=0)
    fuse_non_mac_layers: bool = True


@functools.cache
def pe_grid(num_pes: int) -> tuple[int, int]:
    """The PE array as (rows, cols): the most square factorisation, rows <= cols."""
    rows = max(d for d in range(1, math.isqrt(num_pes) + 1) if num_pes % d == 0)
    return rows, num_pes // rows


def tiling_efficiency(n: float, p: int) -> float:
    """Share of ``p`` spatial slots doing useful work when ``n`` items are tiled onto them."""
    return n / (math.ceil(n / p) * p)


def _fit(n: int, p: int) -> tuple[float, int]:
    """(utilisation, copies) of a block of extent ``n`` on ``p`` slots: folded if n > p."""
    if n > p:
        return tiling_efficiency(n, p), 1
    return n * (p // n) / p, p // n


class AnalyticCostModel:
    """Latency and energy of one layer on one accelerator, from its dataflow.

    A simplified reconstruction, not MAESTRO. The PE array is rows x cols
    (:func:`pe_grid`). K = out channels, C = in channels per group, RS = kernel
    elements, P = output pixels, g = groups, eff(n, p) = n / (ceil(n/p) * p).

    Utilisation (two loop dimensions mapped spatially):

    - WS (NVDLA-like): K on rows, C on cols, R and S temporal: eff(K, rows) *
      eff(C, cols); depthwise layers (C = 1) use one column, as on NVDLA. With
      ``ws_kernel_spatial`` the columns take C*RS instead (read C*RS for C below).
    - OS (ShiDianNao-like): P over the whole array: eff(P, rows*cols). Linear layers
      with few rows use it badly, as on the real design.
    - RS (Eyeriss-like, a reconstruction): a PE set of R kernel rows x Y' output rows
      (each folded if larger than the array), copied rows // R times down the columns
      over input channels (partial sums accumulate down the column) and cols // Y'
      times across over filters (sharing the input rows): fit(R, rows) * eff(C*g,
      copies down) * fit(Y', cols) * eff(K/g, copies across), where fit(n, p) =
      n * (p // n) / p for n <= p and eff(n, p) when folded.

    L2 accesses (elements; each operand at least once):

    - WS: weights once; inputs MACs / min(K/g, rows) (broadcast along K); partial sums
      (2 * ceil(C / cols) - 1) per output (spilled once per fold of the reduction; the
      R*S taps accumulate in the column's accumulator).
    - OS: outputs once; weights MACs / min(P, PEs) (broadcast to all PEs); inputs
      MACs / (RS * t), RS from neighbour shifts of the sliding window, t = K/g when a
      PE's input window (C*RS elements) fits in its L1, else 1.
    - RS: weights MACs / (min(Y', cols) * P / Y') (a filter row reused along the
      output row and across output rows); inputs MACs / (RS * min(K/g, copies across
      * f)), f = filter rows (S elements each) that fit in a PE's L1, all reusing each
      input; partial sums (2 * ceil(C / copies down) - 1) per output.

    L1 accesses = MACs * ``l1_accesses_per_mac`` + L2 accesses (fills and drains).
    Off-chip bytes = weights + inputs + outputs if they fit in the L2; otherwise the
    larger of weights and inputs is tiled into ``tile_buffer_fraction`` of the L2 and
    the smaller refetched once per tile. Cycles: compute = MACs / (PEs * utilisation),
    NoC = L2 bytes / NoC bandwidth, off-chip = off-chip bytes / its bandwidth; latency
    = max of the three / clock. Energy = (L2 * l2_access + L1 * l1_access + MACs * mac)
    * unit_j, the reference formula. Non-MAC layers: see :class:`AnalyticAssumptions`.
    """

    def __init__(self, assumptions: AnalyticAssumptions | None = None):
        self.assumptions = assumptions or AnalyticAssumptions()

    def utilisation(self, layer: Layer, accel: AcceleratorSpec) -> float:
        """Share of the PE array doing useful MACs, in (0, 1]."""
        rows, cols = pe_grid(accel.num_pes)
        k = layer.out_channels
        if accel.dataflow == "WS":
            return tiling_efficiency(k, rows) * tiling_efficiency(self._ws_reduction(layer), cols)
        if accel.dataflow == "OS":
            return tiling_efficiency(layer.out_pixels, accel.num_pes)
        row_use, channel_copies = _fit(layer.kernel_rows, rows)
        col_use, filter_copies = _fit(layer.out_rows, cols)
        channels = layer.in_channels * layer.groups
        filters = max(1, k // layer.groups)
        return (
            row_use
            * tiling_efficiency(channels, channel_copies)
            * col_use
            * tiling_efficiency(filters, filter_copies)
        )

    def _ws_reduction(self, layer: Layer) -> int:
        """The reduction extent WS maps onto the array columns."""
        if self.assumptions.ws_kernel_spatial:
            return layer.in_channels * layer.kernel_elems
        return layer.in_channels

    def l2_accesses(self, layer: Layer, accel: AcceleratorSpec) -> float:
        """L2 (shared buffer) reads and writes of a MAC layer, in elements."""
        bpe = layer.bytes_per_elem
        w, i, o = layer.weight_bytes / bpe, layer.input_bytes / bpe, layer.output_bytes / bpe
        macs, kg = layer.macs, max(1, layer.out_channels // layer.groups)
        rows, cols = pe_grid(accel.num_pes)
        if accel.dataflow == "WS":
            folds = math.ceil(self._ws_reduction(layer) / cols)
            return w + max(i, macs / min(kg, rows)) + o * (2 * folds - 1)
        if accel.dataflow == "OS":
            window = layer.in_channels * layer.kernel_elems * bpe
            t = kg if window <= accel.l1_bytes_per_pe else 1
            weights = max(w, macs / min(layer.out_pixels, accel.num_pes))
            return weights + max(i, macs / (layer.kernel_elems * t)) + o
        channel_copies = _fit(layer.kernel_rows, rows)[1]
        filter_copies = _fit(layer.out_rows, cols)[1]
        along_row = layer.out_pixels / layer.out_rows
        weights = max(w, macs / (min(layer.out_rows, cols) * along_row))
        row_width = max(1, layer.kernel_elems // layer.kernel_rows)
        filters_in_l1 = max(1, accel.l1_bytes_per_pe // (row_width * bpe))
        inputs = max(i, macs / (layer.kernel_elems * min(kg, filter_copies * filters_in_l1)))
        return weights + inputs + o * (2 * math.ceil(layer.in_channels / channel_copies) - 1)

    def offchip_bytes(self, layer: Layer, accel: AcceleratorSpec) -> float:
        """Bytes moved between off-chip memory and the L2 for one layer."""
        w, i, o = layer.weight_bytes, layer.input_bytes, layer.output_bytes
        if w + i + o <= accel.l2_bytes:
            return w + i + o
        big, small = max(w, i), min(w, i)
        tiles = math.ceil(big / (accel.l2_bytes * self.assumptions.tile_buffer_fraction))
        return big + small * tiles + o

    def layer_cost(self, layer: Layer, accel: AcceleratorSpec) -> tuple[float, float]:
        """(latency_s, energy_j) of ``layer`` on ``accel``."""
        a, e = self.assumptions, accel.energy
        if layer.op == "other":
            compute = layer.flops / (accel.num_pes * a.other_ops_per_pe_cycle)
            moved = layer.input_bytes + layer.output_bytes
            l2 = moved / layer.bytes_per_elem
            on_chip = a.fuse_non_mac_layers and moved <= accel.l2_bytes
            offchip = 0.0 if on_chip else moved
            l1 = layer.flops * a.other_l1_accesses_per_op + l2
            work = layer.flops * a.other_op_energy
        else:
            compute = layer.macs / (accel.num_pes * self.utilisation(layer, accel))
            l2 = self.l2_accesses(layer, accel)
            offchip = self.offchip_bytes(layer, accel)
            l1 = layer.macs * a.l1_accesses_per_mac + l2
            work = layer.macs
        noc = l2 * layer.bytes_per_elem / accel.noc_bytes_per_cycle
        cycles = max(compute, noc, offchip / accel.offchip_bytes_per_cycle)
        energy = (l2 * e.l2_access + l1 * e.l1_access + work * e.mac) * e.unit_j
        return cycles / accel.clock_hz, energy


_PROFILE_COLUMNS = ("model", "layer", "device", "latency_s", "energy_j")


class ProfileTable:
    """Per-layer costs measured elsewhere: (model, layer, device) -> (latency_s, energy_j).

    ``device`` is an accelerator name of the system; ``layer`` a :class:`Layer` name.
    """

    def __init__(self, rows: dict[tuple[str, str, str], tuple[float, float]]):
        self.rows = dict(rows)

    @classmethod
    def from_csv(cls, path: str | Path) -> ProfileTable:
        """Read a CSV with columns model, layer, device, latency_s, energy_j."""
        path = Path(path)
        try:
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
        except FileNotFoundError:
            raise ConfigError(f"profile_csv: {path}: no such file") from None
        except (
            OSError,
            pd.errors.ParserError,
            pd.errors.EmptyDataError,
            UnicodeDecodeError,
        ) as exc:
            raise ConfigError(f"profile_csv: {path}: cannot read as CSV ({exc})") from None
        missing = [c for c in _PROFILE_COLUMNS if c not in df.columns]
        if missing:
            raise ConfigError(
                f"profile_csv: {path}: missing column(s) {', '.join(missing)}; "
                f"need {', '.join(_PROFILE_COLUMNS)}"
            )
        problems = []
        values = {}
        for col in ("latency_s", "energy_j"):
            numbers = pd.to_numeric(df[col], errors="coerce")
            for idx in df.index[numbers.isna() | (numbers < 0)]:
                raw = df.at[idx, col]
                why = "is negative" if pd.notna(numbers[idx]) else "is not a number"
                # line numbers as in an editor or spreadsheet: the header is line 1
                problems.append(
                    f"profile_csv: {path}: column {col}, line {idx + 2}: {raw!r} {why}; need a number >= 0"
                )
            values[col] = numbers
        if problems:
            raise ConfigError(problems)
        rows = {}
        for idx, key in enumerate(zip(df["model"], df["layer"], df["device"], strict=True)):
            if key in rows:
                raise ConfigError(f"profile_csv: {path}: line {idx + 2} repeats {key}")
            rows[key] = (float(values["latency_s"][idx]), float(values["energy_j"][idx]))
        return cls(rows)

    def get(self, model: str, layer: str, device: str) -> tuple[float, float] | None:
        """(latency_s, energy_j) of the row, or None if the table has none."""
        return self.rows.get((model, layer, device))

    def check(self, model: str, layers: tuple[Layer, ...], devices: list[str]) -> None:
        """Rows for ``model`` must name its layers and accelerators of the system.

        A profile made for another model (or another version of it) would otherwise be
        ignored row by row and the analytic costs used without a word.
        """
        rows = [(layer, device) for (m, layer, device) in self.rows if m == model]
        unknown_layers = sorted({layer for layer, _ in rows} - {layer.name for layer in layers})
        if unknown_layers:
            raise ConfigError(
                f"profile_csv: rows for model {model!r} name {len(unknown_layers)} layer(s) it does not "
                f"have (e.g. {unknown_layers[0]!r}); profile this model again (testbed profile)"
            )
        unknown_devices = sorted({device for _, device in rows} - set(devices))
        if unknown_devices:
            raise ConfigError(
                f"profile_csv: rows for model {model!r} are for device {unknown_devices[0]!r}, not an "
                f"accelerator of this system ({', '.join(devices)})"
            )


def cost_table(
    model_name: str,
    layers: tuple[Layer, ...],
    system: SystemSpec,
    profile: ProfileTable | None = None,
    analytic: AnalyticCostModel | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(latency_s, energy_j)`` arrays of shape [accelerators, layers] for one model.

    A profile row for (model_name, layer name, accelerator name) wins over the analytic
    model.
    """
    analytic = analytic or AnalyticCostModel()
    if profile is not None:
        profile.check(model_name, layers, [accel.name for accel in system.accelerators])
    shape = (len(system.accelerators), len(layers))
    latency_s, energy_j = np.empty(shape), np.empty(shape)
    for a, accel in enumerate(system.accelerators):
        for j, layer in enumerate(layers):
            measured = profile.get(model_name, layer.name, accel.name) if profile else None
            latency_s[a, j], energy_j[a, j] = measured or analytic.layer_cost(layer, accel)
    return latency_s, energy_j
