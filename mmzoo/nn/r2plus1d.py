"""R(2+1)D ResNets (Tran et al., "A Closer Look at Spatiotemporal Convolutions for Action
Recognition", CVPR 2018) at depth 34, as released with the IG-65M weights (Ghadiyaram et al.,
"Large-scale weakly-supervised pre-training for video action recognition", CVPR 2019).

Built from torchvision's video ResNet pieces (`BasicBlock`, `Bottleneck`, the R(2+1)D stem layout)
with one difference that the released weights require: the (2+1)D conv of the VMZ code
(github.com/facebookresearch/VMZ, `pt/vmz/models/utils.py`) sizes its intermediate width M_i from
*its own* input and output widths, M = floor(27 N_in N_out / (9 N_in + 3 N_out)) (Tran et al.,
Sec. 3.5), while torchvision's `BasicBlock` computes one M from the block input width and gives it
to both convs. The two differ in the second conv of each stage's first block; with
``vmz_midplanes=True`` (default) the parameter names and shapes are exactly those of the VMZ /
ig65m-pytorch checkpoints (`stem.0.weight`, `layer1.0.conv1.0.0.weight`, ..., `fc.weight`), so they
load without renaming (:mod:`mmzoo.convert.r2plus1d`). BN uses eps 1e-3 as in VMZ (Caffe2's value).

Parameters of R(2+1)D-34: 63.72M with a 400-class classifier (Kinetics), 63.67M with the
IG-65M pre-training's 359 classes; the R(2+1)D paper reports 63.8M for R(2+1)D-34 (its Table 4),
tested within 2 % in ``tests/test_nn_r2plus1d.py``. The feature map (``features``) is
``B, 512, T/8, H/16, W/16``.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchvision.models.video.resnet import BasicBlock, Bottleneck

__all__ = ["R2PLUS1D_DEPTHS", "Conv2Plus1dVMZ", "R2Plus1dResNet", "midplanes"]

#: Blocks per stage of the R(2+1)D depths (BasicBlock for 10-34, Bottleneck for 50+).
R2PLUS1D_DEPTHS: dict[int, tuple[int, int, int, int]] = {
    10: (1, 1, 1, 1),
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    152: (3, 8, 36, 3),
}


def midplanes(dim_in: int, dim_out: int) -> int:
    """Intermediate width of a (2+1)D conv replacing a 3x3x3 conv with the same parameter count
    (Tran et al., Sec. 3.5): floor(27 N_in N_out / (9 N_in + 3 N_out))."""
    return (dim_in * dim_out * 27) // (dim_in * 9 + 3 * dim_out)


class Conv2Plus1dVMZ(nn.Sequential):
    """1 x 3 x 3 spatial conv -> BN -> ReLU -> 3 x 1 x 1 temporal conv, the intermediate width from
    this conv's own in/out widths (VMZ); the `midplanes` argument torchvision passes is ignored."""

    def __init__(self, in_planes: int, out_planes: int, midplanes_hint: int | None = None, stride: int = 1,
                 padding: int = 1) -> None:
        mid = midplanes(in_planes, out_planes)
        super().__init__(
            nn.Conv3d(in_planes, mid, (1, 3, 3), (1, stride, stride), (0, padding, padding), bias=False),
            nn.BatchNorm3d(mid),
            nn.ReLU(inplace=True),
            nn.Conv3d(mid, out_planes, (3, 1, 1), (stride, 1, 1), (padding, 0, 0), bias=False),
        )

    @staticmethod
    def get_downsample_stride(stride: int) -> tuple[int, int, int]:
        return (stride, stride, stride)


class _Conv2Plus1dShared(Conv2Plus1dVMZ):
    """torchvision's behaviour: the intermediate width given by the block."""

    def __init__(self, in_planes: int, out_planes: int, midplanes_hint: int | None = None, stride: int = 1,
                 padding: int = 1) -> None:
        mid = midplanes_hint if midplanes_hint is not None else midplanes(in_planes, out_planes)
        nn.Sequential.__init__(
            self,
            nn.Conv3d(in_planes, mid, (1, 3, 3), (1, stride, stride), (0, padding, padding), bias=False),
            nn.BatchNorm3d(mid),
            nn.ReLU(inplace=True),
            nn.Conv3d(mid, out_planes, (3, 1, 1), (stride, 1, 1), (padding, 0, 0), bias=False),
        )


class R2Plus1dResNet(nn.Module):
    """R(2+1)D ResNet: (2+1)D stem (1x7x7 conv to 45 channels, 3x1x1 conv to 64), four stages of
    (2+1)D residual blocks (spatio-temporal stride 2 from the second stage on), global average
    pool, optional fc.

    Args:
        depth: 34 (the thesis's backbone), 18, 10 or 152 (`R2PLUS1D_DEPTHS`).
        num_classes: fc outputs (400 Kinetics, 359 IG-65M pre-training); 0 builds no fc.
        width: channels after the stem (64; the stages are width x 1, 2, 4, 8). Smaller widths only
            build small networks for tests.
        in_channels: input channels (3).
        vmz_midplanes: per-conv intermediate widths as VMZ (and its released weights); False uses
            torchvision's per-block width.
        bn_eps: BatchNorm eps (1e-3, VMZ / Caffe2).
    """

    def __init__(self, depth: int = 34, num_classes: int = 400, width: int = 64, in_channels: int = 3,
                 vmz_midplanes: bool = True, bn_eps: float = 1e-3) -> None:
        super().__init__()
        if depth not in R2PLUS1D_DEPTHS:
            raise ValueError(f"R(2+1)D depth must be one of {sorted(R2PLUS1D_DEPTHS)}, got {depth}")
        block: type[nn.Module] = Bottleneck if depth >= 50 else BasicBlock
        conv: type[nn.Module] = Conv2Plus1dVMZ if vmz_midplanes else _Conv2Plus1dShared
        stem_mid = max(45 * width // 64, 1)
        self.stem = nn.Sequential(
            nn.Conv3d(in_channels, stem_mid, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False),
            nn.BatchNorm3d(stem_mid),
            nn.ReLU(inplace=True),
            nn.Conv3d(stem_mid, width, (3, 1, 1), 1, (1, 0, 0), bias=False),
            nn.BatchNorm3d(width),
            nn.ReLU(inplace=True),
        )
        self.inplanes = width
        for i, blocks in enumerate(R2PLUS1D_DEPTHS[depth]):
            planes = width * 2**i
            setattr(self, f"layer{i + 1}", self._make_layer(block, conv, planes, blocks, 1 if i == 0 else 2))
        self.out_channels = self.inplanes
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(self.inplanes, num_classes) if num_classes > 0 else None
        for m in self.modules():
            if isinstance(m, nn.BatchNorm3d):
                m.eps = bn_eps
        self._init_weights()

    def _make_layer(self, block, conv, planes: int, blocks: int, stride: int) -> nn.Sequential:
        down = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            down = nn.Sequential(
                nn.Conv3d(self.inplanes, planes * block.expansion, 1, conv.get_downsample_stride(stride), bias=False),
                nn.BatchNorm3d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, conv, stride, down)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, conv) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The res5 map ``B, 8 width, T/8, H/16, W/16`` of ``B, C, T, H, W`` clips."""
        if x.ndim != 5:
            raise ValueError(f"R(2+1)D expects B,C,T,H,W clips, got shape {tuple(x.shape)}")
        x = self.stem(x)
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fc is None:
            raise ValueError("this R2Plus1dResNet has no classifier (num_classes=0): use features()")
        return self.fc(self.avgpool(self.features(x)).flatten(1))


def stage_widths(width: int = 64) -> Sequence[int]:
    """Output widths of the four stages."""
    return [width * 2**i for i in range(4)]


def r2plus1d_state_from_vmz(state: dict[str, torch.Tensor], keep_fc: bool = True) -> dict[str, torch.Tensor]:
    """A VMZ / ig65m-pytorch R(2+1)D state dict (``r2plus1d_34_clip32_ig65m_from_scratch-449a7af9.pth``
    ...) as an :class:`R2Plus1dResNet` state dict: the names are the same (torchvision's
    VideoResNet layout; a DataParallel ``module.`` prefix is removed); ``keep_fc=False`` drops the
    classifier. Keys outside that layout raise ``KeyError`` naming them."""
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    known = set(R2Plus1dResNet(34, num_classes=1, width=4).state_dict())
    out = {}
    for k, v in state.items():
        if k not in known:
            raise KeyError(f"'{k}' is not an R(2+1)D-34 (VMZ layout) parameter")
        if k.startswith("fc.") and not keep_fc:
            continue
        out[k] = v
    return out
