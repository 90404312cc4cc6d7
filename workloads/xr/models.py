"""PyTorch models for the eleven XRBench tasks, following XRBench's own layer lists.

Each is a real ``nn.Module`` after the model XRBench names (RITNet, FBNet-C, hand
graph CNN, sparse-to-dense RGB-d, MiDaS small, res8-narrow, Emformer, HRViT-b1, D2Go
Faster R-CNN, PlaneRCNN, ED-TCN), built block by block as its layer list
(``usage_scenarios/*.m``) gives it: the same input, the same weight layers and the
same MACs as MAESTRO counts them (unpadded convs, strides folded into the sizes,
"depthwise" convs dense; see :class:`Conv` and docs/cost_model.md). They exist for
their costs: weights are random (never trained), and detection heads run on fixed
pooled maps instead of a data-dependent NMS.

Layers are traced once on the ``meta`` device (:func:`task_layers`), cached in the
process and on disk under ``$TESTBED_CACHE`` (default ``~/.cache/ml-testbed``).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import devices.cost
from devices.cost import Layer, extract_layers
from sim.errors import ConfigError
from sim.kernel import torch_generator
from sim.registry import register
from workloads import user_models
from workloads.cache import cache_dir, load_checked, save_checked


class Conv(nn.Module):
    """A stride-1 convolution as XRBench's MAESTRO costs it: unpadded, output zero-padded back.

    XRBench's layer lists give each layer's input size and no padding or stride, and
    MAESTRO computes (Y - R + 1) x (X - S + 1) outputs from them. This module does the
    same MACs: an unpadded conv (an input smaller than the kernel is padded up to it),
    its output then zero-padded to the input's size, so the network keeps the shapes
    of the original. Strided convolutions of the originals are this conv followed by
    :func:`subsample`, as the lists fold strides into the sizes.
    """

    def __init__(self, cin: int, cout: int, k: int = 3, bias: bool = False):
        super().__init__()
        self.k = k
        self.conv = nn.Conv2d(cin, cout, k, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.k == 1:
            return self.conv(x)
        h, w = x.shape[-2:]
        if h < self.k or w < self.k:
            x = F.pad(x, (0, max(0, self.k - w), 0, max(0, self.k - h)))
        y = self.conv(x)
        dh, dw = h - y.shape[-2], w - y.shape[-1]
        return F.pad(y, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))


def subsample(x: torch.Tensor) -> torch.Tensor:
    """Every second row and column (a stride of 2 after a stride-1 conv; a view, no work)."""
    return x[..., ::2, ::2]


def conv_bn(cin: int, cout: int, k: int = 3, act: bool = True) -> nn.Sequential:
    """:class:`Conv` + BatchNorm (+ ReLU)."""
    mods = [Conv(cin, cout, k), nn.BatchNorm2d(cout)]
    if act:
        mods.append(nn.ReLU())
    return nn.Sequential(*mods)


class _SqueezeExcite(nn.Module):
    def __init__(self, c: int, squeeze: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), Conv(c, squeeze, 1, bias=True), nn.ReLU(), Conv(squeeze, c, 1, bias=True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.body(x))


class InvertedResidual(nn.Module):
    """MobileNetV2/FBNet block: 1x1 expand, kxk conv, optional squeeze-excite, 1x1 project,
    residual if shapes allow.

    XRBench's lists give the kxk "depthwise" conv as a dense CONV (C = K = hidden), at
    the block's input resolution when it is strided; so does this block (dense, then
    :func:`subsample`). ``k`` 0: no kxk conv (XRBench's MiDaS list has none in its
    strided blocks). ``se``: squeeze-excite channels (0: none).
    """

    def __init__(self, cin: int, cout: int, k: int, stride: int, expand: int, se: int = 0):
        super().__init__()
        hidden = cin * expand
        self.expand = conv_bn(cin, hidden, 1) if expand != 1 else nn.Identity()
        self.spatial = conv_bn(hidden, hidden, k) if k else nn.Identity()
        self.excite = _SqueezeExcite(hidden, se) if se else nn.Identity()
        self.project = conv_bn(hidden, cout, 1, act=False)
        self.stride = stride
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.excite(self.spatial(self.expand(x)))
        y = self.project(subsample(y) if self.stride == 2 else y)
        return x + y if self.residual else y


def mbconv_stages(cin: int, stages: list[tuple[int, ...]]) -> tuple[nn.Sequential, int]:
    """Blocks of (expand, kernel, out channels, stride[, squeeze-excite channels]), in order."""
    blocks = []
    for expand, k, cout, stride, *se in stages:
        blocks.append(InvertedResidual(cin, cout, k, stride, expand, *se))
        cin = cout
    return nn.Sequential(*blocks), cin


# --- eye segmentation: RITNet (DenseNet2D) as XRBench lists it: 42 convs of 32 channels ---


class _RitDown(nn.Module):
    """Down block: 3x3, (1x1, 3x3) x 2 with dense-style skip sums; 2x2 average pool first."""

    def __init__(self, c: int, pool: bool):
        super().__init__()
        self.pool = nn.AvgPool2d(2, ceil_mode=True) if pool else nn.Identity()
        self.conv1 = Conv(c, c, 3, bias=True)
        self.conv21, self.conv22 = Conv(c, c, 1, bias=True), Conv(c, c, 3, bias=True)
        self.conv31, self.conv32 = Conv(c, c, 1, bias=True), Conv(c, c, 3, bias=True)
        self.act = nn.LeakyReLU()
        self.bn = nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(x)
        x21 = x + self.act(self.conv1(x))
        x31 = x21 + self.act(self.conv22(self.conv21(x21)))
        return self.bn(self.act(self.conv32(self.conv31(x31))))


class _RitUp(nn.Module):
    """Up block: upsample to the skip's size and add it, then (1x1, 3x3) x 2."""

    def __init__(self, c: int):
        super().__init__()
        self.conv11, self.conv12 = Conv(c, c, 1, bias=True), Conv(c, c, 3, bias=True)
        self.conv21, self.conv22 = Conv(c, c, 1, bias=True), Conv(c, c, 3, bias=True)
        self.act = nn.LeakyReLU()

    def forward(self, skip: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:]) + skip
        x21 = x + self.act(self.conv12(self.conv11(x)))
        return self.act(self.conv22(self.conv21(x21)))


class EyeSegmentation(nn.Module):
    """RITNet: five down blocks, four up blocks with skips, a 1x1 head.

    As in XRBench's list, every conv has 32 input and output channels (its input is a
    32-channel 160x100 map, and the head keeps 32 channels).
    """

    def __init__(self, c: int = 32):
        super().__init__()
        self.down = nn.ModuleList(_RitDown(c, i > 0) for i in range(5))
        self.up = nn.ModuleList(_RitUp(c) for _ in range(4))
        self.head = Conv(c, c, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
        for block, skip in zip(self.up, reversed(skips[:-1]), strict=True):
            x = block(skip, x)
        return self.head(x)


# --- gaze estimation: FBNet-C ---------------------------------------------------------

FBNET_C = [  # (expand, kernel, out, stride), block by block as XRBench's list gives them
    (1, 3, 16, 1),
    (6, 3, 24, 2),
    (1, 3, 24, 1),
    (1, 3, 24, 1),
    (6, 5, 32, 2),
    (3, 5, 32, 1),
    (6, 5, 32, 1),
    (6, 3, 32, 1),
    (6, 5, 64, 2),
    (3, 5, 64, 1),
    (6, 5, 64, 1),
    (6, 5, 64, 1),
    (6, 5, 112, 1),
    (6, 5, 112, 1),
    (6, 5, 112, 1),
    (3, 5, 112, 1),
    (6, 5, 184, 2),
    (6, 5, 184, 1),
    (6, 5, 184, 1),
    (6, 5, 184, 1),
    (6, 3, 352, 1),
]


class GazeEstimation(nn.Module):
    """FBNet-C backbone (1000-way classifier head, as listed), on a 3x160x100 eye crop."""

    def __init__(self, classes: int = 1000):
        super().__init__()
        self.stem = conv_bn(3, 16, 3)
        self.stages, c = mbconv_stages(16, FBNET_C)
        self.last = conv_bn(c, 1984, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(1984, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.last(self.stages(subsample(self.stem(x)))))
        return self.fc(x.flatten(1))


# --- hand tracking: hand graph CNN, half (stacked hourglass + graph CNN) ----------------


class _Residual(nn.Module):
    """Pre-activation bottleneck of the stacked hourglass (1x1 skip conv if widths differ)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        mid = cout // 2
        self.body = nn.Sequential(
            nn.BatchNorm2d(cin),
            nn.ReLU(),
            Conv(cin, mid, 1, bias=True),
            nn.BatchNorm2d(mid),
            nn.ReLU(),
            Conv(mid, mid, 3, bias=True),
            nn.BatchNorm2d(mid),
            nn.ReLU(),
            Conv(mid, cout, 1, bias=True),
        )
        self.skip = Conv(cin, cout, 1, bias=True) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.skip(x)


def _residuals(c: int, n: int) -> nn.Sequential:
    return nn.Sequential(*(_Residual(c, c) for _ in range(n)))


class _Hourglass(nn.Module):
    def __init__(self, depth: int, c: int, n: int):
        super().__init__()
        self.up1, self.low1, self.low3 = _residuals(c, n), _residuals(c, n), _residuals(c, n)
        self.low2 = _Hourglass(depth - 1, c, n) if depth > 1 else _residuals(c, n)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = self.up1(x)
        low = self.low3(self.low2(self.low1(self.pool(x))))
        return up + F.interpolate(low, size=up.shape[-2:])


class _ChebConv(nn.Module):
    """Chebyshev graph convolution of order 3 on a fixed mesh: features of [x, Lx, L^2 x] mixed."""

    def __init__(self, vertices: int, cin: int, cout: int):
        super().__init__()
        self.register_buffer("laplacian", torch.zeros(vertices, vertices))
        self.features = nn.Linear(3 * cin, cout)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [batch, vertices, features]
        x1 = self.laplacian @ x
        x2 = self.laplacian @ x1
        return self.act(self.features(torch.cat((x, x1, x2), -1)))


class HandTracking(nn.Module):
    """Hand graph CNN (half), as XRBench lists it: 7x7 stem on 3x128x128, two 4-deep hourglass
    stacks of 256 features with two bottlenecks per position and 21 joint heatmaps, a
    residual encoder to a 4x4 map, two FCs to an 80-vertex x 64 mesh feature, and a
    Chebyshev graph CNN over the mesh (64-64-32-32-3-32-32-64-64) and a pose regressor
    (512-512-20) on the encoding.
    """

    def __init__(
        self, c: int = 256, stacks: int = 2, residuals: int = 2, joints: int = 21, vertices: int = 80
    ):
        super().__init__()
        self.vertices = vertices
        self.stem = nn.Sequential(
            conv_bn(3, 64, 7),
            nn.MaxPool2d(2),
            _Residual(64, 128),
            nn.MaxPool2d(2),
            _Residual(128, 128),
            _Residual(128, c),
        )
        self.hourglasses = nn.ModuleList(_Hourglass(4, c, residuals) for _ in range(stacks))
        self.features = nn.ModuleList(
            nn.Sequential(_residuals(c, residuals), conv_bn(c, c, 1)) for _ in range(stacks)
        )
        self.heatmaps = nn.ModuleList(Conv(c, joints, 1, bias=True) for _ in range(stacks))
        self.merge_features = nn.ModuleList(Conv(c, c, 1, bias=True) for _ in range(stacks))
        self.merge_heatmaps = nn.ModuleList(Conv(joints, c, 1, bias=True) for _ in range(stacks))
        self.encoder = nn.Sequential(
            _residuals(c, residuals),
            nn.MaxPool2d(2),
            _residuals(c, residuals),
            nn.MaxPool2d(2),
            _residuals(c, residuals),
            nn.MaxPool2d(2),
            _residuals(c, residuals),
            nn.Flatten(),
            nn.Linear(16 * c, 512),
            nn.ReLU(),
        )
        self.to_mesh = nn.Linear(512, vertices * 64)
        widths = (64, 64, 32, 32, 3, 32, 32, 64, 64)
        self.mesh = nn.Sequential(
            *(_ChebConv(vertices, a, b) for a, b in zip(widths, widths[1:], strict=False))
        )
        self.pose = nn.Sequential(nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 20))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.stem(x)
        for i, hourglass in enumerate(self.hourglasses):
            feat = self.features[i](hourglass(x))
            heat = self.heatmaps[i](feat)
            x = x + self.merge_features[i](feat) + self.merge_heatmaps[i](heat)
        hidden = self.encoder(x)
        mesh = self.mesh(self.to_mesh(hidden).unflatten(1, (self.vertices, 64)))
        return mesh, self.pose(hidden)


# --- depth refinement: sparse-to-dense RGB-d, 200 samples (ResNet-18 + UpProj decoder) ----


class _BasicBlock(nn.Module):
    """ResNet basic block; a strided one runs its first conv and the 1x1 shortcut at input size."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.stride = stride
        self.conv1, self.conv2 = conv_bn(cin, cout, 3), conv_bn(cout, cout, 3, act=False)
        self.skip = conv_bn(cin, cout, 1, act=False) if stride != 1 or cin != cout else nn.Identity()
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(x)
        skip = self.skip(x)
        if self.stride == 2:
            y, skip = subsample(y), subsample(skip)
        return self.act(self.conv2(y) + skip)


class _UpProj(nn.Module):
    """Up-projection (Laina et al.): 2x unpooling, then 5x5 -> 3x3 and a 5x5 shortcut, summed."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.up = nn.Upsample(scale_factor=2.0)
        self.branch = nn.Sequential(conv_bn(cin, cout, 5), conv_bn(cout, cout, 3, act=False))
        self.shortcut = conv_bn(cin, cout, 5, act=False)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        return self.act(self.branch(x) + self.shortcut(x))


class DepthRefinement(nn.Module):
    """Sparse-to-dense depth (Ma & Karaman, "RGBd-200"): RGB plus 200 sparse depth samples as a
    4-channel 228x912 input, a ResNet-18 encoder, a 1x1 bottleneck, four UpProj blocks and
    a 3x3 depth head, as XRBench's ``DR_RGBd_200`` lists it."""

    def __init__(self, cin: int = 4):
        super().__init__()
        self.stem = conv_bn(cin, 64, 7)
        self.pool = nn.MaxPool2d(2, ceil_mode=True)
        blocks, c = [], 64
        for width in (64, 128, 256, 512):
            blocks += [_BasicBlock(c, width, 1 if width == 64 else 2), _BasicBlock(width, width, 1)]
            c = width
        self.encoder = nn.Sequential(*blocks)
        self.bottleneck = conv_bn(512, 256, 1)
        self.decoder = nn.Sequential(*(_UpProj(256 >> i, 128 >> i) for i in range(4)))
        self.head = Conv(16, 1, 3, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(subsample(self.stem(x)))
        return self.head(self.decoder(self.bottleneck(self.encoder(x))))


# --- depth estimation: MiDaS v2.1 small (EfficientNet-Lite3 + RefineNet decoder) -------

# (expand, kernel, out, stride) block by block as XRBench's list gives them (from the
# first block, on the stem's 32-channel output); kernel 0: the list has no kxk conv
EFFICIENTNET_LITE3 = [
    (1, 3, 24, 1),
    (6, 0, 32, 2),
    *[(6, 3, 32, 1)] * 2,
    (6, 0, 48, 2),
    *[(6, 5, 48, 1)] * 2,
    (6, 0, 96, 2),
    *[(6, 3, 96, 1)] * 4,
    *[(6, 5, 136, 1)] * 5,
    (6, 0, 232, 2),
    *[(6, 5, 232, 1)] * 5,
    (6, 3, 384, 1),
]
MIDAS_TAPS = (3, 6, 16, 23)  # blocks whose outputs feed the decoder (1/4 .. 1/32)


class _ResidualConvUnit(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(nn.ReLU(), Conv(c, c, 3, bias=True), nn.ReLU(), Conv(c, c, 3, bias=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class _Fusion(nn.Module):
    """RefineNet fusion: add the refined skip (if any), refine, upsample 2x, 1x1 out conv."""

    def __init__(self, c: int, cout: int, with_skip: bool):
        super().__init__()
        self.skip_unit = _ResidualConvUnit(c) if with_skip else None
        self.unit = _ResidualConvUnit(c)
        self.out = Conv(c, cout, 1, bias=True)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if self.skip_unit is not None:
            x = x + self.skip_unit(skip)
        return self.out(F.interpolate(self.unit(x), scale_factor=2.0, mode="bilinear"))


class DepthEstimation(nn.Module):
    """MiDaS small: EfficientNet-Lite3 encoder (from the stem's 32-channel 96x128 output,
    where XRBench's list starts), four fusion blocks (64..512 features), depth head."""

    def __init__(self, c: int = 64):
        super().__init__()
        self.blocks, _ = mbconv_stages(32, EFFICIENTNET_LITE3)
        widths = [EFFICIENTNET_LITE3[t][2] for t in MIDAS_TAPS]
        feats = [c << i for i in range(len(widths))]
        self.reassemble = nn.ModuleList(Conv(w, f, 3) for w, f in zip(widths, feats, strict=True))
        # the deepest fusion has no skip input; each fusion hands the next one's width on
        outs = [c, *feats[:-1]]
        self.fusions = nn.ModuleList(
            _Fusion(f, o, i < len(feats) - 1) for i, (f, o) in enumerate(zip(feats, outs, strict=True))
        )
        self.head = nn.Sequential(
            Conv(c, c // 2, 3, bias=True),
            nn.Upsample(scale_factor=2.0, mode="bilinear"),
            Conv(c // 2, 32, 3, bias=True),
            nn.ReLU(),
            Conv(32, 1, 1, bias=True),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        taps = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in MIDAS_TAPS:
                taps.append(x)
        feats = [conv(t) for conv, t in zip(self.reassemble, taps, strict=True)]
        y = self.fusions[-1](feats[-1])
        for fusion, feat in zip(self.fusions[-2::-1], feats[-2::-1], strict=True):
            y = fusion(y, feat)
        return self.head(y)


# --- keyword detection: res8-narrow -------------------------------------------------


class KeywordDetection(nn.Module):
    """res8-narrow (Tang & Lin): 19-channel residual CNN on MFCCs, 12 keywords."""

    def __init__(self, c: int = 19, keywords: int = 12):
        super().__init__()
        self.conv0 = Conv(1, c, 3)
        self.pool = nn.AvgPool2d((4, 3))
        self.convs = nn.ModuleList(Conv(c, c, 3) for _ in range(6))
        self.bns = nn.ModuleList(nn.BatchNorm2d(c, affine=False) for _ in range(6))
        self.act = nn.ReLU()
        self.fc = nn.Linear(c, keywords)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.act(self.conv0(x)))
        for i in range(0, 6, 2):
            y = self.bns[i](self.act(self.convs[i](x)))
            x = x + self.bns[i + 1](self.act(self.convs[i + 1](y)))
        return self.fc(x.mean((2, 3)))


# --- transformer pieces (speech recognition, semantic segmentation) ------------------


class Attention(nn.Module):
    """Multi-head self-attention written out with nn.Linear and matmuls (query and key-value
    projections apart, as in Emformer and in XRBench's lists)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [batch, tokens, dim]
        b, n, d = x.shape
        h = self.heads
        q = self.q(x).reshape(b, n, h, d // h).transpose(1, 2)
        k, v = self.kv(x).reshape(b, n, 2, h, d // h).permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1) * (d // self.heads) ** -0.5).softmax(-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, d))


class TransformerBlock(nn.Module):
    """Pre-norm attention + feed-forward block."""

    def __init__(self, dim: int, heads: int, ffn: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn), nn.GELU(), nn.Linear(ffn, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class SpeechRecognition(nn.Module):
    """Emformer-like streaming ASR encoder: 4x frame stacking to 128 x 512, 24 transformer
    layers (query, key-value, output, two FFN linears each, as XRBench lists them), output.

    Emformer's segment-wise attention with a memory bank is approximated by full
    attention over one utterance chunk.
    """

    def __init__(
        self,
        features: int = 128,
        dim: int = 512,
        layers: int = 24,
        heads: int = 8,
        ffn: int = 2048,
        vocab: int = 4097,
        stack: int = 4,
    ):
        super().__init__()
        self.stack = stack
        self.input = nn.Linear(features * stack, dim) if features * stack != dim else nn.Identity()
        self.layers = nn.Sequential(*(TransformerBlock(dim, heads, ffn) for _ in range(layers)))
        self.norm = nn.LayerNorm(dim)
        self.output = nn.Linear(dim, vocab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [batch, frames, features]
        b, t, f = x.shape
        x = self.input(x.reshape(b, t // self.stack, f * self.stack))
        return self.output(self.norm(self.layers(x)))


def _windows(x: torch.Tensor, s: int) -> torch.Tensor:
    """[batch, c, h, w] -> [batch * windows, s * s, c] (h, w multiples of s)."""
    b, c, h, w = x.shape
    return x.reshape(b, c, h // s, s, w // s, s).permute(0, 2, 4, 3, 5, 1).reshape(-1, s * s, c)


def _unwindows(t: torch.Tensor, shape: torch.Size, s: int) -> torch.Tensor:
    b, c, h, w = shape
    return t.reshape(b, h // s, w // s, s, s, c).permute(0, 5, 1, 3, 2, 4).reshape(b, c, h, w)


# HRViT-b1's per-branch widths, the tiny head-mixing linears of its attention, and the
# kernel of the strided conv that takes a map 1, 2 or 3 branches down (XRBench's list)
HRVIT_WIDTHS = (32, 64, 128, 256)
HRVIT_MIX = {32: (8, 4), 64: (8, 8), 128: (16, 8), 256: (16, 16)}
HRVIT_DOWN_KERNEL = {1: 3, 2: 5, 3: 9}
# (branches after the fusion, blocks per branch) stage by stage
HRVIT_STAGES = ((1, (1,)), (2, (1, 1)), (3, (1, 1, 6)), (3, (1, 1, 6)), (4, (1, 1, 6, 2)), (4, (1, 1, 2, 2)))


class _HRViTBlock(nn.Module):
    """HRViT block on one branch: window attention (query-key linear, a 3x3 conv as the value
    path, output linear, two small head-mixing linears), then MixCFN (4x linear, a 3x3 and a
    5x5 conv on its two halves, linear back). The convs are dense, as listed."""

    def __init__(self, w: int, window: int = 7):
        super().__init__()
        self.window = window
        self.norm1, self.norm2 = nn.LayerNorm(w), nn.LayerNorm(w)
        self.qk = nn.Linear(w, 2 * w)
        self.value = Conv(w, w, 3, bias=True)
        self.proj = nn.Linear(w, w)
        a, b = HRVIT_MIX[w]
        self.mix = nn.ModuleList((nn.Linear(a, a), nn.Linear(b, b)))
        self.fc1 = nn.Linear(w, 4 * w)
        self.mix3, self.mix5 = Conv(2 * w, 2 * w, 3, bias=True), Conv(2 * w, 2 * w, 5, bias=True)
        self.fc2 = nn.Linear(4 * w, w)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [batch, w, h, w]
        s, shape = self.window, x.shape
        t = _windows(x, s)
        q, k = self.qk(self.norm1(t)).chunk(2, -1)
        v = _windows(self.value(x), s)
        y = self.proj((q @ k.transpose(-2, -1) * shape[1] ** -0.5).softmax(-1) @ v)
        for mix in self.mix:  # mixes the first heads' channels
            n = mix.in_features
            y = torch.cat((mix(y[..., :n]), y[..., n:]), -1)
        t = t + y
        h = _unwindows(self.fc1(self.norm2(t)), shape[:1] + (4 * shape[1],) + shape[2:], s)
        h3, h5 = h.chunk(2, 1)
        h = self.act(torch.cat((self.mix3(h3), self.mix5(h5)), 1))
        return x + _unwindows(self.fc2(_windows(h, s)), shape, s)


class _CrossFusion(nn.Module):
    """HRViT cross-resolution fusion: every output branch sums every input branch (1x1 conv
    and upsampling from a coarser one; a strided kxk conv and a 1x1 from a finer one), then
    a 1x1 and a 3x3 conv. A new, coarser branch is made this way from the others."""

    def __init__(self, widths_in: tuple[int, ...], n_out: int):
        super().__init__()
        self.paths = nn.ModuleDict()
        for j in range(n_out):
            for i, wi in enumerate(widths_in):
                if i > j:
                    self.paths[f"{i}_{j}"] = Conv(wi, HRVIT_WIDTHS[j], 1, bias=True)
                elif i < j:
                    down = Conv(wi, wi, HRVIT_DOWN_KERNEL[j - i], bias=True)
                    self.paths[f"{i}_{j}"] = nn.ModuleList((down, Conv(wi, HRVIT_WIDTHS[j], 1, bias=True)))
        widths = [widths_in[j] if j < len(widths_in) else HRVIT_WIDTHS[j] for j in range(n_out)]
        self.selfs = nn.ModuleList(
            nn.Sequential(Conv(c, w, 1, bias=True), Conv(w, w, 3, bias=True))
            for c, w in zip(widths, HRVIT_WIDTHS, strict=False)
        )

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        outs = []
        for j, self_path in enumerate(self.selfs):
            y = xs[j] if j < len(xs) else None
            for i, x in enumerate(xs):
                path = self.paths[f"{i}_{j}"] if i != j else None
                if path is None:
                    continue
                if i > j:
                    z = F.interpolate(path(x), scale_factor=float(2 ** (i - j)))
                else:
                    step = 2 ** (j - i)
                    z = path[1](path[0](x)[..., ::step, ::step])
                y = z if y is None else y + z
            outs.append(self_path(y))
        return outs


class SemanticSegmentation(nn.Module):
    """HRViT-b1 as XRBench lists it: a two-conv stem on 3x224x224, six stages of cross-resolution
    fusion and HRViT blocks on up to four branches (32..256 channels at 56..7), and the
    list's classification head (a bottleneck per branch, strided convs merging them, 2048
    features, a 1000-way FC over 2048 rows as listed)."""

    def __init__(self, classes: int = 1000):
        super().__init__()
        self.stem = nn.ModuleList((conv_bn(3, 32, 3), conv_bn(32, 64, 3)))
        fusions, stages, widths = [], [], (64,)
        for branches, blocks in HRVIT_STAGES:
            fusions.append(_CrossFusion(widths, branches))
            widths = HRVIT_WIDTHS[:branches]
            stages.append(
                nn.ModuleList(
                    nn.Sequential(*(_HRViTBlock(w) for _ in range(n)))
                    for w, n in zip(widths, blocks, strict=True)
                )
            )
        self.fusions, self.stages = nn.ModuleList(fusions), nn.ModuleList(stages)
        self.heads = nn.ModuleList(_Bottleneck(w, w, 1) for w in HRVIT_WIDTHS)
        self.merge = nn.ModuleList(Conv(4 * w, 8 * w, 3, bias=True) for w in HRVIT_WIDTHS[:-1])
        self.final = Conv(4 * HRVIT_WIDTHS[-1], 2048, 1, bias=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2048, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.stem:
            x = subsample(conv(x))
        xs = [x]
        for fusion, stage in zip(self.fusions, self.stages, strict=True):
            xs = [branch(f) for branch, f in zip(stage, fusion(xs), strict=True)]
        y = self.heads[0](xs[0])
        for head, merge, x in zip(self.heads[1:], self.merge, xs[1:], strict=True):
            y = head(x) + subsample(merge(y))
        y = self.pool(self.final(y)).flatten(1)
        return self.fc(y.expand(y.shape[1], -1))


# --- object and plane detection ------------------------------------------------------

# (expand, kernel, out, stride, squeeze-excite channels) as XRBench's list gives them
FBNETV3_A = [
    *[(1, 3, 16, 1)] * 2,
    (4, 5, 24, 2),
    *[(3, 5, 24, 1)] * 3,
    (4, 5, 32, 2, 24),
    *[(3, 3, 32, 1, 24)] * 3,
    (4, 5, 64, 2),
    *[(3, 3, 64, 1)] * 3,
    (4, 5, 112, 1, 64),
    *[(3, 5, 112, 1, 88)] * 10,
]
FBNETV3_A_BOX_HEAD = [(4, 5, 184, 2, 112), *[(4, 3, 184, 1, 184)] * 4, (6, 5, 200, 1, 280)]


class ObjectDetection(nn.Module):
    """D2Go Faster R-CNN: FBNetV3-A backbone to stride 16, 1x1 RPN heads, FBNetV3 box head,
    class and box predictors.

    As in XRBench's list, the box head runs once on one 6x6 pooled map (standing in for
    ROIAlign over the proposals) and the predictors over ``proposals`` rows of it.
    """

    def __init__(self, proposals: int = 200, classes: int = 81, anchors: int = 15):
        super().__init__()
        self.proposals = proposals
        self.stem = conv_bn(3, 16, 3)
        self.backbone, c = mbconv_stages(16, FBNETV3_A)
        self.rpn_cls = Conv(c, anchors, 1, bias=True)
        self.rpn_box = Conv(c, 4 * anchors, 1, bias=True)
        self.roi_pool = nn.AdaptiveAvgPool2d(6)
        self.box_head, hc = mbconv_stages(c, FBNETV3_A_BOX_HEAD)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.cls = nn.Linear(hc, classes)
        self.box = nn.Linear(hc, 4 * classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        feat = self.backbone(subsample(self.stem(x)))
        scores, deltas = self.rpn_cls(feat), self.rpn_box(feat)
        h = self.pool(self.box_head(self.roi_pool(feat))).flatten(1).expand(self.proposals, -1)
        return scores, deltas, self.cls(h), self.box(h)


class _Bottleneck(nn.Module):
    """ResNet bottleneck; a strided one runs its 3x3 and its 1x1 shortcut at input size."""

    def __init__(self, cin: int, mid: int, stride: int):
        super().__init__()
        self.stride = stride
        self.body = nn.Sequential(conv_bn(cin, mid, 1), conv_bn(mid, mid, 3))
        self.expand = conv_bn(mid, 4 * mid, 1, act=False)
        self.skip = conv_bn(cin, 4 * mid, 1, act=False) if stride != 1 or cin != 4 * mid else nn.Identity()
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, skip = self.body(x), self.skip(x)
        if self.stride == 2:
            y, skip = subsample(y), subsample(skip)
        return self.act(self.expand(y) + skip)


# PlaneRCNN's heads as XRBench's list gives them, conv by conv: (in, out, kernel, rows,
# columns). Depth decoder, image branch, RPN, ROI box/normal head, mask head, refinement.
PLANE_HEADS: list[tuple[int, int, int, int, int]] = [
    (256, 128, 3, 3, 3),
    (128, 128, 3, 5, 5),
    (256, 128, 3, 5, 5),
    (256, 128, 3, 10, 10),
    (256, 128, 3, 8, 10),
    *[(256, 128, 3, 15, 30)] * 2,
    *[(256, 128, 3, 30, 40)] * 2,
    (256, 64, 3, 60, 80),
    (64, 1, 3, 60, 80),
    (3, 64, 1, 40, 40),
    (256, 512, 3, 3, 3),
    (512, 6, 1, 3, 3),
    (512, 12, 1, 3, 3),
    (320, 1024, 4, 2, 2),
    (1024, 1024, 1, 1, 1),
    (1024, 8, 1, 1024, 1),
    (1024, 32, 1, 1024, 1),
    (1024, 24, 1, 1024, 1),
    *[(256, 256, 3, 4, 4)] * 4,
    (256, 256, 2, 3, 3),
    (256, 8, 1, 7, 7),
    (10, 32, 3, 48, 64),
    (64, 64, 3, 48, 64),
    (128, 64, 3, 24, 32),
    (128, 128, 3, 24, 32),
    (256, 128, 3, 12, 16),
    (128, 64, 4, 12, 16),
    (128, 32, 4, 24, 32),
    (64, 16, 3, 48, 64),
    (16, 1, 3, 48, 64),
    (128, 64, 4, 12, 16),
    (128, 32, 4, 24, 32),
    (64, 16, 3, 48, 64),
    (16, 1, 3, 48, 64),
    (64, 16, 3, 48, 64),
    (16, 1, 3, 48, 64),
]


class _ListedHead(nn.Module):
    """One head conv at the list's size: reads the previous head output topped up with
    context channels (FPN features, then the image), resized to (rows, columns)."""

    def __init__(self, cin: int, cout: int, k: int, rows: int, cols: int):
        super().__init__()
        self.cin, self.size = cin, (rows, cols)
        self.conv = Conv(cin, cout, k, bias=True)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=self.size)
        if x.shape[1] < self.cin:
            repeats = math.ceil((self.cin - x.shape[1]) / context.shape[1])
            x = torch.cat((x, *[F.interpolate(context, size=self.size)] * repeats), 1)
        return self.conv(x[:, : self.cin])


class PlaneDetection(nn.Module):
    """PlaneRCNN as XRBench lists it ("quarter": a 3x160x160 input): ResNet-101 with an FPN,
    then its depth, RPN, ROI, mask and refinement heads.

    The heads' sizes in the list (3x3, 8x10, 15x30, ...) come from no single image
    size, so the heads are stand-ins that follow the list conv by conv
    (:class:`_ListedHead`) rather than PlaneRCNN's wiring.
    """

    def __init__(self, width: int = 64, fpn: int = 256):
        super().__init__()
        self.stem = conv_bn(3, width, 7)
        self.pool = nn.MaxPool2d(2)
        stages, cin = [], width
        for i, blocks in enumerate((3, 4, 23, 3)):
            mid = width * 2**i
            stages.append(
                nn.Sequential(
                    *(
                        _Bottleneck(cin if j == 0 else 4 * mid, mid, 2 if i and j == 0 else 1)
                        for j in range(blocks)
                    )
                )
            )
            cin = 4 * mid
        self.stages = nn.ModuleList(stages)
        self.lateral = nn.ModuleList(Conv(4 * width * 2**i, fpn, 1, bias=True) for i in range(3, -1, -1))
        self.smooth = nn.ModuleList(Conv(fpn, fpn, 3, bias=True) for _ in range(4))
        self.heads = nn.ModuleList(_ListedHead(*spec) for spec in PLANE_HEADS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        image, feats = x, []
        x = self.pool(subsample(self.stem(x)))
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        y, pyramid = None, []
        for lateral, smooth, feat in zip(self.lateral, self.smooth, feats[::-1], strict=True):
            y = lateral(feat) if y is None else lateral(feat) + F.interpolate(y, size=feat.shape[-2:])
            pyramid.append(smooth(y))
        context = torch.cat((pyramid[-1], F.interpolate(image, size=pyramid[-1].shape[-2:])), 1)
        h = pyramid[0]
        for head in self.heads:
            h = head(h, context)
        return h


# --- action segmentation: ED-TCN --------------------------------------------------------


class ActionSegmentation(nn.Module):
    """ED-TCN (Lea et al.): temporal encoder-decoder of wide 1-D convolutions.

    Four convs as XRBench lists them; the last one's 64 channels per frame are the
    output (the list has no classifier).
    """

    def __init__(self, features: int = 128, widths: tuple[int, int] = (64, 96), kernel: int = 25):
        super().__init__()
        c1, c2 = widths
        self.encoder = nn.Sequential(
            nn.Conv1d(features, c1, kernel, padding=kernel // 2),
            nn.ReLU(),
            nn.MaxPool1d(2),
            nn.Conv1d(c1, c2, kernel, padding=kernel // 2),
            nn.ReLU(),
            nn.MaxPool1d(2),
        )
        self.decoder = nn.Sequential(
            nn.Upsample(scale_factor=2.0),
            nn.Conv1d(c2, c2, kernel, padding=kernel // 2),
            nn.ReLU(),
            nn.Upsample(scale_factor=2.0),
            nn.Conv1d(c2, c1, kernel, padding=kernel // 2),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [batch, features, frames]
        return self.decoder(self.encoder(x))


# --- registry -------------------------------------------------------------------------

# Inputs are those of XRBench's layer lists (the first layer's C x Y x X; 1-D and
# sequence models: the unpadded frames).
_MODELS: dict[str, tuple[type[nn.Module], tuple[int, ...]]] = {
    # a 32-channel 160x100 map: the list's first conv reads 32 channels
    "eye_segmentation": (EyeSegmentation, (1, 32, 160, 100)),
    "gaze_estimation": (GazeEstimation, (1, 3, 160, 100)),
    "hand_tracking": (HandTracking, (1, 3, 128, 128)),
    # RGB + a sparse depth channel
    "depth_refinement": (DepthRefinement, (1, 4, 228, 912)),
    # the stem's output, where the list starts
    "depth_estimation": (DepthEstimation, (1, 32, 96, 128)),
    # 98 frames x 40 MFCCs
    "keyword_detection": (KeywordDetection, (1, 1, 98, 40)),
    # 512 frames x 128 features (the list's 512x128x1), stacked 4x to 128 x 512
    "speech_recognition": (SpeechRecognition, (1, 512, 128)),
    "semantic_segmentation": (SemanticSegmentation, (1, 3, 224, 224)),
    "object_detection": (ObjectDetection, (1, 3, 224, 299)),
    "plane_detection": (PlaneDetection, (1, 3, 160, 160)),
    # 644 frames of 128-d features (the list's 668 includes the 24 frames of padding)
    "action_segmentation": (ActionSegmentation, (1, 128, 644)),
}
# XRBench's network names (usage_scenarios/*.m) -> the task model standing for them
XRBENCH_NETWORKS: dict[str, str] = {
    "ES_RITNet": "eye_segmentation",
    "GE_FBNet_C": "gaze_estimation",
    "HT_hand_graph_cnn_half": "hand_tracking",
    "DR_RGBd_200": "depth_refinement",
    "DE_midas_v21_small": "depth_estimation",
    "KD_res8_narrow": "keyword_detection",
    "ASR_EM_24L": "speech_recognition",
    "SS_HRViT_b1": "semantic_segmentation",
    "OD_D2go_FasterRCNN": "object_detection",
    "D2go_FastRCNN": "object_detection",
    "PD_Plane_RCNN_Quarter": "plane_detection",
    "AS_ED_TCN": "action_segmentation",
}


for _name, (_cls, _shape) in _MODELS.items():
    register("model", _name)(_cls)


def resolve(task: str) -> Callable[..., nn.Module]:
    """The factory of ``task``: a registered model name or a ``module:function`` path.

    A user's model registers like a policy (``@register("model", "my_net")`` on an
    ``nn.Module`` class, with an ``input_shape`` class attribute) or is named directly
    as ``module:factory`` (importable from the working folder).
    """
    return user_models.resolve(task, "task")


def input_shape(task: str, given: tuple[int, ...] | None = None) -> tuple[int, ...]:
    """The input shape (batch 1) of ``task``: ``given``, a built-in's, or the model's ``input_shape``."""
    if given:
        return tuple(given)
    if task in _MODELS:
        return _MODELS[task][1]
    shape = getattr(resolve(task), "input_shape", None)
    if shape is None:
        raise ConfigError(
            f"input_shape: model {task!r} declares no input_shape; give it in the scenario, "
            "e.g. input_shape: [1, 3, 64, 64]"
        )
    return tuple(shape)


def build_model(
    task: str, device: str | torch.device = "meta", seed: int = 0, kwargs: dict[str, Any] | None = None
) -> nn.Module:
    """The model of ``task`` (built with ``kwargs``) in eval mode; on a real device its random
    weights come from ``seed`` (uniform +-1/sqrt(fan_in), biases 0, norm scales 1), never from
    global RNG."""
    model = user_models.build(task, kwargs or {}, "task", "task_kwargs")
    if torch.device(device).type == "meta":
        return model
    model.to_empty(device=device)
    return user_models.seeded_init(model, torch_generator(seed, f"xr-model/{task}"))


def example_input(
    task: str, device: str | torch.device = "meta", shape: tuple[int, ...] | None = None
) -> torch.Tensor:
    """A zero input of the task's shape (batch 1)."""
    return torch.zeros(input_shape(task, shape), device=device)


def check_model(task: str, kwargs: dict[str, Any], shape: tuple[int, ...] | None) -> None:
    """A user's model must build with ``kwargs`` and run on its input (on ``meta``: no weights,
    milliseconds); built-in models take no arguments and are known to run."""
    if task in _MODELS and not kwargs and not shape:
        return
    model, x = build_model(task, kwargs=kwargs), example_input(task, shape=shape)
    try:
        with torch.no_grad():
            model(x)
    except Exception as exc:  # whatever a user's forward raises on this input
        raise ConfigError(f"task: {task!r} cannot run on an input of shape {list(x.shape)} ({exc})") from None


@functools.cache
def _source_key() -> str:
    """Changes whenever the built-in models, the tracer or torch change."""
    h = hashlib.sha256(torch.__version__.encode())
    for module_file in (__file__, devices.cost.__file__):
        h.update(Path(module_file).read_bytes())
    return h.hexdigest()[:16]


def _model_key(model: nn.Module, task: str, kwargs: dict[str, Any], shape: tuple[int, ...]) -> str:
    """Cache key of a model's layers: the tracer, the source files of its factory and of every
    module class in it (a user's model edited in place is traced again), its constructor
    arguments and its input shape."""
    digest = user_models.source_digest(task, model, kwargs, list(shape))
    return hashlib.sha256((_source_key() + digest).encode()).hexdigest()[:16]


@functools.cache
def _task_layers(task: str, kwargs_json: str, shape: tuple[int, ...] | None) -> tuple[Layer, ...]:
    kwargs = json.loads(kwargs_json)
    model, x = build_model(task, kwargs=kwargs), example_input(task, shape=shape)
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in task)[:64]
    path = cache_dir() / f"xr-layers-{safe}-{_model_key(model, task, kwargs, tuple(x.shape))}.json"
    payload = load_checked(path)  # None if absent, damaged, edited or made for another key
    if payload is not None:
        try:
            return tuple(Layer(**row) for row in json.loads(payload))
        except (ValueError, TypeError):
            pass  # checksum-valid but not layers (an older format): trace again
    layers = extract_layers(model, x)
    save_checked(path, json.dumps([dataclasses.asdict(layer) for layer in layers]).encode())
    return layers


def task_layers(
    task: str, kwargs: dict[str, Any] | None = None, shape: tuple[int, ...] | None = None
) -> tuple[Layer, ...]:
    """The layers of ``task``'s model (built with ``kwargs``, fed ``shape``), traced once and
    cached in process and on disk."""
    return _task_layers(task, json.dumps(kwargs or {}, sort_keys=True), tuple(shape) if shape else None)
