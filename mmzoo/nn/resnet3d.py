"""One 3D ResNet pathway builder for Slow, Fast, Audio, C2D and I3D networks.

A *pathway* is a stem followed by four residual stages (res2..res5). Every pathway of the
SlowFast family (and the single pathway of C2D / I3D) is an instance of `ResNetPathway3d`
with a different configuration:

* the visual pathways read `B, C, T, H, W` clips;
* the audio pathway reads a log-mel spectrogram laid out as `B, C, T, F, 1` (time in the
  "temporal" axis, frequency in the first "spatial" axis), so that the same conv / BN / pooling
  code serves it and "temporal" strides mean time strides for every pathway.

Multi-pathway networks (SlowFast, AVSlowFast) do not call `ResNetPathway3d.forward`; they call
`stem` and each of `stages[i]` themselves and fuse the pathways between stages. Channels a
lateral connection concatenates into a pathway are declared with `lateral_channels` so that the
first block of the following stage is built with the right input width.

Block types:

* `"bottleneck"`: 1x1 (with an optional temporal kernel) -> 3x3 (spatial stride here) -> 1x1,
  BN after each conv, ReLU after the first two and after the residual sum;
* `"timefreq"`: the decomposed audio block of AVSlowFast: two parallel branches, a 3-tap
  time conv and a 3-tap frequency conv, each with BN + ReLU, concatenated, then a 1x1 conv + BN.
  This topology follows the authors' public code (the thesis only says "1x3 and 3x1");
  `"timefreq_reduce_sum"` is their alternative with a leading 1x1 and summed branches.
"""
from __future__ import annotations

from typing import Any, Literal, Mapping, Optional, Sequence, Union

import torch
from torch import nn

from mmzoo.nn.nonlocal_block import NonLocal3d

__all__ = [
    "ConvBNReLU",
    "VisualStem",
    "TimeFreqStem",
    "Bottleneck3d",
    "TimeFreqBottleneck",
    "ResStage3d",
    "ResNetPathway3d",
    "STAGE_DEPTHS",
    "inflate_resnet2d_state_dict",
    "load_imagenet_inflated",
]

Triple = tuple[int, int, int]
STAGE_DEPTHS: dict[int, tuple[int, int, int, int]] = {
    14: (1, 1, 1, 1),  # one bottleneck per stage: tiny variants for tests and demos
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
}


def _triple(value: Union[int, Sequence[int]]) -> Triple:
    if isinstance(value, int):
        return (value, value, value)
    value = tuple(int(v) for v in value)
    if len(value) != 3:
        raise ValueError(f"expected 3 values (t, h, w), got {value}")
    return value  # type: ignore[return-value]


def _same_padding(kernel: Triple, dilation: Triple = (1, 1, 1)) -> Triple:
    return tuple(d * (k // 2) for k, d in zip(kernel, dilation))  # type: ignore[return-value]


class ConvBNReLU(nn.Module):
    """Conv3d (no bias) + BatchNorm3d (+ ReLU), "same" padding."""

    def __init__(
        self,
        dim_in: int,
        dim_out: int,
        kernel: Union[int, Sequence[int]],
        stride: Union[int, Sequence[int]] = 1,
        relu: bool = True,
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        kernel = _triple(kernel)
        self.conv = nn.Conv3d(dim_in, dim_out, kernel, _triple(stride), _same_padding(kernel), bias=False)
        self.bn = nn.BatchNorm3d(dim_out, eps=bn_eps, momentum=bn_momentum)
        self.relu = nn.ReLU(inplace=True) if relu else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class VisualStem(ConvBNReLU):
    """conv1 (k_t x 7 x 7, stride 1,2,2) + BN + ReLU, then an optional max pool (pool1).

    `pool_padding` None pads pool1 by half its kernel ("same", PySlowFast / PyTorchVideo); the
    original Non-local network pools 2x3x3 with no padding (`(0, 0, 0)`)."""

    def __init__(
        self,
        dim_in: int,
        dim_out: int,
        kernel: Sequence[int] = (1, 7, 7),
        stride: Sequence[int] = (1, 2, 2),
        pool_kernel: Optional[Sequence[int]] = (1, 3, 3),
        pool_stride: Sequence[int] = (1, 2, 2),
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
        pool_padding: Optional[Sequence[int]] = None,
    ) -> None:
        super().__init__(dim_in, dim_out, kernel, stride, relu=True, bn_eps=bn_eps, bn_momentum=bn_momentum)
        if pool_kernel is None:
            self.pool: nn.Module = nn.Identity()
        else:
            pk = _triple(pool_kernel)
            pad = _same_padding(pk) if pool_padding is None else _triple(pool_padding)
            self.pool = nn.MaxPool3d(pk, _triple(pool_stride), pad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(super().forward(x))


class TimeFreqStem(nn.Module):
    """Audio conv1 of AVSlowFast: a `taps x 1` time conv and a `1 x taps` frequency conv applied
    in parallel to the same input and summed, then BN + ReLU; stride 1 and no pool1 (Table 4.1).

    Input layout `B, C, T, F, 1`. The parallel-and-sum topology follows the authors' code.
    """

    def __init__(self, dim_in: int, dim_out: int, taps: int = 9, bn_eps: float = 1e-5, bn_momentum: float = 0.1) -> None:
        super().__init__()
        self.conv_t = nn.Conv3d(dim_in, dim_out, (taps, 1, 1), 1, (taps // 2, 0, 0), bias=False)
        self.conv_f = nn.Conv3d(dim_in, dim_out, (1, taps, 1), 1, (0, taps // 2, 0), bias=False)
        self.bn = nn.BatchNorm3d(dim_out, eps=bn_eps, momentum=bn_momentum)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv_t(x) + self.conv_f(x)))


class _Shortcut(nn.Module):
    def __init__(self, dim_in: int, dim_out: int, stride: Triple, bn_eps: float, bn_momentum: float) -> None:
        super().__init__()
        self.conv = nn.Conv3d(dim_in, dim_out, 1, stride, 0, bias=False)
        self.bn = nn.BatchNorm3d(dim_out, eps=bn_eps, momentum=bn_momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class Bottleneck3d(nn.Module):
    """ResNet bottleneck: a (k_t x 1 x 1) -> b (1 x k x k, stride, groups, dilation) -> c (1x1x1),
    with a projection shortcut when the width or the resolution changes, and an optional
    non-local block after the residual sum."""

    def __init__(
        self,
        dim_in: int,
        dim_out: int,
        dim_inner: int,
        temporal_kernel: int = 1,
        stride: Sequence[int] = (1, 1, 1),
        kernel_b: Sequence[int] = (1, 3, 3),
        groups: int = 1,
        dilation: int = 1,
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        stride = _triple(stride)
        kb = _triple(kernel_b)
        dil = (1, dilation, dilation)
        ka = (temporal_kernel, 1, 1)
        self.conv_a = nn.Conv3d(dim_in, dim_inner, ka, 1, _same_padding(ka), bias=False)
        self.bn_a = nn.BatchNorm3d(dim_inner, eps=bn_eps, momentum=bn_momentum)
        self.conv_b = nn.Conv3d(dim_inner, dim_inner, kb, stride, _same_padding(kb, dil), dilation=dil, groups=groups, bias=False)
        self.bn_b = nn.BatchNorm3d(dim_inner, eps=bn_eps, momentum=bn_momentum)
        self.conv_c = nn.Conv3d(dim_inner, dim_out, 1, 1, 0, bias=False)
        self.bn_c = nn.BatchNorm3d(dim_out, eps=bn_eps, momentum=bn_momentum)
        self.bn_c.is_final_bn = True  # zero-initialised by init_resnet_weights
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = (
            _Shortcut(dim_in, dim_out, stride, bn_eps, bn_momentum) if dim_in != dim_out or stride != (1, 1, 1) else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.shortcut is None else self.shortcut(x)
        y = self.relu(self.bn_a(self.conv_a(x)))
        y = self.relu(self.bn_b(self.conv_b(y)))
        y = self.bn_c(self.conv_c(y))
        return self.relu(y + identity)


class TimeFreqBottleneck(nn.Module):
    """Decomposed audio block (res2/res3 of the audio pathway); layout `B, C, T, F, 1`.

    `variant="concat"` (the authors' "tf_bottleneck_transform_v1", which their code says the
    paper used): parallel time (3 x 1) and frequency (1 x 3) convs from the block input, each
    dim_inner wide with BN + ReLU, concatenated, then 1x1 to dim_out + BN.
    `variant="reduce_sum"` (their "v2", the layout Table 4.1 draws): 1x1 to dim_inner + BN + ReLU,
    then the parallel time and frequency convs (BN + ReLU each) summed, then 1x1 + BN.
    The stride is applied by the time and frequency convs in both variants.
    """

    def __init__(
        self,
        dim_in: int,
        dim_out: int,
        dim_inner: int,
        stride: Sequence[int] = (1, 1, 1),
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
        variant: Literal["concat", "reduce_sum"] = "concat",
    ) -> None:
        super().__init__()
        if variant not in ("concat", "reduce_sum"):
            raise ValueError(f"unknown time-frequency block variant {variant!r}")
        self.variant = variant
        stride = _triple(stride)
        if variant == "reduce_sum":
            self.conv_a = nn.Conv3d(dim_in, dim_inner, 1, 1, 0, bias=False)
            self.bn_a = nn.BatchNorm3d(dim_inner, eps=bn_eps, momentum=bn_momentum)
            d_tf = dim_inner
        else:
            d_tf = dim_in
        self.conv_t = nn.Conv3d(d_tf, dim_inner, (3, 1, 1), stride, (1, 0, 0), bias=False)
        self.bn_t = nn.BatchNorm3d(dim_inner, eps=bn_eps, momentum=bn_momentum)
        self.conv_f = nn.Conv3d(d_tf, dim_inner, (1, 3, 1), stride, (0, 1, 0), bias=False)
        self.bn_f = nn.BatchNorm3d(dim_inner, eps=bn_eps, momentum=bn_momentum)
        self.conv_c = nn.Conv3d(dim_inner * (2 if variant == "concat" else 1), dim_out, 1, 1, 0, bias=False)
        self.bn_c = nn.BatchNorm3d(dim_out, eps=bn_eps, momentum=bn_momentum)
        self.bn_c.is_final_bn = True
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = (
            _Shortcut(dim_in, dim_out, stride, bn_eps, bn_momentum) if dim_in != dim_out or stride != (1, 1, 1) else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.shortcut is None else self.shortcut(x)
        if self.variant == "reduce_sum":
            x = self.relu(self.bn_a(self.conv_a(x)))
        t = self.relu(self.bn_t(self.conv_t(x)))
        f = self.relu(self.bn_f(self.conv_f(x)))
        y = torch.cat([t, f], dim=1) if self.variant == "concat" else t + f
        y = self.bn_c(self.conv_c(y))
        return self.relu(y + identity)


class ResStage3d(nn.Module):
    """`depth` residual blocks; the first one carries the stride and the width change.

    `temporal_kernels` gives the temporal kernel of conv_a for each block (I3D inflation
    patterns, SlowFast's "R101_50_50" variants); `temporal_kernels_b`, when given, the temporal
    size of each block's centre conv (I3D_3x3x3 inflation; `kernel_b`'s otherwise);
    `nonlocal_after` lists block indices after which a non-local block is inserted (stored in
    `nonlocal_blocks` under the block index), built with `nonlocal_kwargs` (more `NonLocal3d`
    arguments: scale, extent, temporal groups).
    """

    def __init__(
        self,
        dim_in: int,
        dim_out: int,
        dim_inner: int,
        depth: int,
        temporal_kernels: Sequence[int],
        stride: Sequence[int],
        block: Literal["bottleneck", "timefreq", "timefreq_reduce_sum"] = "bottleneck",
        kernel_b: Sequence[int] = (1, 3, 3),
        groups: int = 1,
        dilation: int = 1,
        nonlocal_after: Sequence[int] = (),
        nonlocal_pool: Sequence[int] = (1, 2, 2),
        nonlocal_mode: str = "softmax",
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
        temporal_kernels_b: Optional[Sequence[int]] = None,
        nonlocal_kwargs: Optional[Mapping[str, Any]] = None,
    ) -> None:
        super().__init__()
        if len(temporal_kernels) != depth:
            raise ValueError(f"temporal_kernels has {len(temporal_kernels)} entries for {depth} blocks")
        if temporal_kernels_b is not None and len(temporal_kernels_b) != depth:
            raise ValueError(f"temporal_kernels_b has {len(temporal_kernels_b)} entries for {depth} blocks")
        bad = [i for i in nonlocal_after if not 0 <= int(i) < depth]
        if bad:
            raise ValueError(f"non-local positions {bad} outside the stage's {depth} blocks")
        blocks = []
        for i in range(depth):
            d_in = dim_in if i == 0 else dim_out
            s = stride if i == 0 else (1, 1, 1)
            if block == "bottleneck":
                kb = kernel_b if temporal_kernels_b is None else (temporal_kernels_b[i], *tuple(kernel_b)[1:])
                blocks.append(
                    Bottleneck3d(d_in, dim_out, dim_inner, temporal_kernels[i], s, kb, groups, dilation, bn_eps, bn_momentum)
                )
            elif block in ("timefreq", "timefreq_reduce_sum"):
                variant = "concat" if block == "timefreq" else "reduce_sum"
                blocks.append(TimeFreqBottleneck(d_in, dim_out, dim_inner, s, bn_eps, bn_momentum, variant))
            else:
                raise ValueError(f"unknown block type {block!r}")
        self.blocks = nn.ModuleList(blocks)
        self.nonlocal_blocks = nn.ModuleDict(
            {
                str(i): NonLocal3d(dim_out, dim_out // 2, nonlocal_pool, nonlocal_mode, bn_eps, bn_momentum,  # type: ignore[arg-type]
                                   **dict(nonlocal_kwargs or {}))
                for i in nonlocal_after
            }
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, blk in enumerate(self.blocks):
            x = blk(x)
            key = str(i)
            if key in self.nonlocal_blocks:
                x = self.nonlocal_blocks[key](x)
        return x


IntOrList = Union[int, Sequence[int]]


class ResNetPathway3d(nn.Module):
    """A stem plus res2..res5 with a configurable width, temporal kernels, strides and blocks.

    Args:
        dim_in: input channels (3 for RGB, 1 for a log-mel spectrogram).
        width: channels of conv1; res2..res5 output `4, 8, 16, 32 x width` with inner widths
            `1, 2, 4, 8 x width` (so `width=64` is ResNet, `width=8` is the beta=1/8 Fast path).
        depth: 50, 101 or 152 (bottleneck counts per stage from `STAGE_DEPTHS`), or a 4-tuple.
        stem: "visual" (conv1 + pool1) or "timefreq" (the audio conv1, no pool1).
        stem_temporal_kernel: temporal size of conv1 (visual stem).
        stem_pool: whether the visual stem has pool1 (1x3x3, stride 1,2,2 unless
            `stem_pool_kernel` / `stem_pool_stride` say otherwise).
        stage_temporal_kernels: per stage, the temporal kernel of conv_a: an int for every block
            or a list with one entry per block.
        stage_strides: per stage, the (t, h, w) stride of the first block.
        stage_blocks: per stage, "bottleneck", "timefreq" (decomposed audio block, concat variant)
            or "timefreq_reduce_sum" (1x1 reduction, summed time/frequency branches).
        kernel_b: centre kernel of bottleneck blocks ((1,3,3) visual, (3,3,1) audio).
        lateral_channels: per stage, channels concatenated into this pathway *before* that stage
            (Fast->Slow lateral connections).
        pool2: optional temporal max-pool after res2 (C2D / I3D, kernel and stride (2,1,1)).
        pool2_kernel / pool2_padding: that pool's kernel and padding (default (2,1,1), no
            padding; STRG's Table 6.1 pools 3x1x1 at stride 2 with padding (1,0,0)).
        nonlocal_after: per stage, block indices followed by a non-local block.
        stem_pool_padding: pool1 padding (None: half the kernel; the original Non-local
            network: (0, 0, 0) with its 2x3x3 pool1).
        stage_temporal_kernels_b: per stage, the temporal kernel of the centre conv (I3D_3x3x3
            inflation; an int for every block or one entry per block); None: `kernel_b`'s.
        nonlocal_kwargs: more `NonLocal3d` arguments for every non-local block (scale, extent).
        nonlocal_stage_kwargs: per stage, `NonLocal3d` arguments overriding `nonlocal_kwargs`
            (the authors' temporal groups in res3 of their 128-frame models).
    """

    def __init__(
        self,
        dim_in: int = 3,
        width: int = 64,
        depth: Union[int, Sequence[int]] = 50,
        stem: Literal["visual", "timefreq"] = "visual",
        stem_temporal_kernel: int = 1,
        stem_stride: Sequence[int] = (1, 2, 2),
        stem_pool: bool = True,
        stem_pool_kernel: Sequence[int] = (1, 3, 3),
        stem_pool_stride: Sequence[int] = (1, 2, 2),
        stage_temporal_kernels: Sequence[IntOrList] = (1, 1, 3, 3),
        stage_strides: Sequence[Sequence[int]] = ((1, 1, 1), (1, 2, 2), (1, 2, 2), (1, 2, 2)),
        stage_blocks: Sequence[str] = ("bottleneck",) * 4,
        kernel_b: Sequence[int] = (1, 3, 3),
        lateral_channels: Sequence[int] = (0, 0, 0, 0),
        pool2: bool = False,
        nonlocal_after: Sequence[Sequence[int]] = ((), (), (), ()),
        nonlocal_pool: Sequence[int] = (1, 2, 2),
        nonlocal_mode: str = "softmax",
        groups: int = 1,
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
        stem_pool_padding: Optional[Sequence[int]] = None,
        stage_temporal_kernels_b: Optional[Sequence[IntOrList]] = None,
        nonlocal_kwargs: Optional[Mapping[str, Any]] = None,
        nonlocal_stage_kwargs: Optional[Sequence[Mapping[str, Any]]] = None,
        pool2_kernel: Sequence[int] = (2, 1, 1),
        pool2_padding: Sequence[int] = (0, 0, 0),
    ) -> None:
        super().__init__()
        depths = STAGE_DEPTHS[depth] if isinstance(depth, int) else tuple(depth)
        if stem == "visual":
            self.stem: nn.Module = VisualStem(
                dim_in,
                width,
                (stem_temporal_kernel, 7, 7),
                stem_stride,
                stem_pool_kernel if stem_pool else None,
                stem_pool_stride,
                bn_eps,
                bn_momentum,
                stem_pool_padding,
            )
        elif stem == "timefreq":
            self.stem = TimeFreqStem(dim_in, width, 9, bn_eps, bn_momentum)
        else:
            raise ValueError(f"unknown stem {stem!r}")
        self.out_channels: list[int] = []
        stages = []
        d_in = width
        for i in range(4):
            d_out = width * 4 * 2**i
            tk = stage_temporal_kernels[i]
            tks = [tk] * depths[i] if isinstance(tk, int) else list(tk)
            tkb = None if stage_temporal_kernels_b is None else stage_temporal_kernels_b[i]
            tkbs = None if tkb is None else ([tkb] * depths[i] if isinstance(tkb, int) else list(tkb))
            nl_kwargs = {**dict(nonlocal_kwargs or {}), **dict((nonlocal_stage_kwargs or [{}] * 4)[i] or {})}
            stages.append(
                ResStage3d(
                    d_in + lateral_channels[i],
                    d_out,
                    width * 2**i,
                    depths[i],
                    tks,
                    stage_strides[i],
                    stage_blocks[i],  # type: ignore[arg-type]
                    kernel_b,
                    groups,
                    1,
                    nonlocal_after[i],
                    nonlocal_pool,
                    nonlocal_mode,
                    bn_eps,
                    bn_momentum,
                    tkbs,
                    nl_kwargs,
                )
            )
            self.out_channels.append(d_out)
            d_in = d_out
        self.stages = nn.ModuleList(stages)
        self.pool2 = nn.MaxPool3d(_triple(pool2_kernel), (2, 1, 1), _triple(pool2_padding)) if pool2 else nn.Identity()
        self.stem_channels = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Single-pathway forward (C2D / I3D / audio-only): stem, res2, [pool2], res3..res5."""
        x = self.stem(x)
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i == 0:
                x = self.pool2(x)
        return x


def init_resnet_weights(module: nn.Module, fc_std: float = 0.01, zero_init_final_bn: bool = True) -> None:
    """Kaiming-normal (fan_out) convs, BN gamma 1 (0 for the last BN of each residual branch
    when `zero_init_final_bn`), beta 0, Linear N(0, fc_std), bias 0 (as PySlowFast does)."""
    for m in module.modules():
        if isinstance(m, nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm3d):
            zero = (zero_init_final_bn and getattr(m, "is_final_bn", False)) or getattr(m, "is_nonlocal_bn", False)
            nn.init.constant_(m.weight, 0.0 if zero else 1.0)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=fc_std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


_TV_BLOCK = {"conv1": "conv_a", "bn1": "bn_a", "conv2": "conv_b", "bn2": "bn_b", "conv3": "conv_c", "bn3": "bn_c",
             "downsample.0": "shortcut.conv", "downsample.1": "shortcut.bn"}  # fmt: skip


def _pathway_name_of_2d(key: str) -> Optional[str]:
    """`ResNetPathway3d` name of a torchvision / timm 2D ResNet key (None for the classifier)."""
    if key.startswith("fc."):
        return None
    if key.startswith("conv1."):
        return "stem.conv." + key[len("conv1."):]
    if key.startswith("bn1."):
        return "stem.bn." + key[len("bn1."):]
    parts = key.split(".")
    if parts[0].startswith("layer") and len(parts) >= 4:
        stage = int(parts[0][len("layer"):]) - 1
        layer = ".".join(parts[2:-1])
        if layer in _TV_BLOCK:
            return f"stages.{stage}.blocks.{parts[1]}.{_TV_BLOCK[layer]}.{parts[-1]}"
    raise ValueError(f"no 3D ResNet parameter for 2D ResNet key '{key}'")


def inflate_resnet2d_state_dict(
    state2d: Mapping[str, torch.Tensor],
    target: Mapping[str, torch.Tensor],
    prefix: str = "",
    mode: Literal["average", "center"] = "average",
) -> dict[str, torch.Tensor]:
    """Inflate an ImageNet 2D ResNet (torchvision / timm names: `conv1`, `bn1`, `layerL.i.convK`,
    `downsample.0/1`) into the entries of a `ResNetPathway3d` state dict `target` under `prefix`.

    A k x k kernel becomes t x k x k: "average" copies it into each of the t planes and divides by
    t (thesis ch. 5 section 5.4.1 and the authors' loader, so a static clip gives the 2D
    responses), "center" puts it in the middle plane only. The classifier (`fc`) is not
    inflated. Shapes other than the temporal size must agree; a 2D key without a 3D counterpart
    is an error. Returns the new `target` entries (pass them to `load_state_dict(strict=False)`).
    """
    if mode not in ("average", "center"):
        raise ValueError(f"inflation mode must be 'average' or 'center', got {mode!r}")
    out: dict[str, torch.Tensor] = {}
    for key, w in state2d.items():
        name = _pathway_name_of_2d(key)
        if name is None:
            continue
        name = prefix + name
        if name not in target:
            raise ValueError(f"2D key '{key}' maps to '{name}', which the 3D model does not have")
        ref = target[name]
        if w.dim() == 4 and ref.dim() == 5:
            if tuple(ref.shape[:2]) != tuple(w.shape[:2]) or tuple(ref.shape[3:]) != tuple(w.shape[2:]):
                raise ValueError(f"'{key}' {tuple(w.shape)} cannot be inflated to '{name}' {tuple(ref.shape)}")
            t = ref.shape[2]
            if mode == "average":
                w = w.unsqueeze(2).repeat(1, 1, t, 1, 1) / t
            else:
                z = torch.zeros(ref.shape, dtype=w.dtype)
                z[:, :, t // 2] = w
                w = z
        elif tuple(w.shape) != tuple(ref.shape):
            raise ValueError(f"'{key}' {tuple(w.shape)} does not fit '{name}' {tuple(ref.shape)}")
        out[name] = w.to(ref.dtype).clone()
    return out


def load_imagenet_inflated(pathway: nn.Module, depth: int) -> bool:
    """Load torchvision's ImageNet ResNet-`depth` (through timm, `resnet{depth}.tv_in1k`) into a
    `ResNetPathway3d`, inflated with `inflate_resnet2d_state_dict` ("average"). Returns False,
    leaving `pathway` as it was, when the weights cannot be had (timm's fallback says why)."""
    from mmzoo.nn.timm_backbone import create_timm_model

    net2d, ok = create_timm_model(f"resnet{depth}.tv_in1k", True,
                                  fallback_hint="Pass --model.pretrained_backbone false to silence this.")
    if ok:
        target = pathway.state_dict()
        pathway.load_state_dict({**target, **inflate_resnet2d_state_dict(net2d.state_dict(), target)})
    return bool(ok)
