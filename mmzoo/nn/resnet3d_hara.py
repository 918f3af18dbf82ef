"""3D ResNet-50 of Hara et al. ("Can Spatiotemporal 3D CNNs Retrace the History of 2D CNNs and
ImageNet?", CVPR 2018; github.com/kenshohara/3D-ResNets-PyTorch), the "ResNet50-3D" backbone of
the thesis's SAOA (Wang 2021, ch. 3, ref. [35]).

Layout (as the authors' `models/resnet.py`): conv1 7x7x7 (temporal stride ``conv1_t_stride``,
spatial stride 2) + BN + ReLU, 3x3x3 max pool with stride 2 in every axis, four stages of
bottlenecks whose middle conv is a full 3x3x3 conv carrying the stage's stride 2 in every axis
(from the second stage on), projection shortcuts ("B"), global average pool, fc. The bottlenecks
are :class:`mmzoo.nn.resnet3d.Bottleneck3d` (1x1x1 -> 3x3x3 -> 1x1x1); :mod:`mmzoo.convert.resnet3d_hara`
maps the authors' names (`layer1.0.conv2.weight`, `layer1.0.downsample.0.weight`, ...) onto them.

Parameters: 47.02M with a 400-class fc (Kinetics), 46.20M without it; the authors' paper lists
46.4M for ResNet-50 (their Table 2, as we recall it: not re-checked against the paper here), 1.3 %
below our count with the fc (tested within 2 % in ``tests/test_nn_resnet3d_hara.py``).
``features`` returns the res5 map ``B, 2048, T/16, H/32, W/32``.
"""
from __future__ import annotations

import re

import torch
from torch import nn

from mmzoo.nn.resnet3d import STAGE_DEPTHS, Bottleneck3d

__all__ = ["HaraResNet3d", "hara_state_from_original"]


class HaraResNet3d(nn.Module):
    """Hara et al.'s 3D ResNet with bottleneck blocks (ResNet-50/101/152).

    Args:
        depth: 50 (the thesis's), 101, 152 (or 14: one block per stage, for tests).
        num_classes: fc outputs (400 Kinetics); 0 builds no fc.
        in_channels: 3 (RGB) or 2 (optical flow).
        width: conv1 channels (64; stage widths 4 x width x 1, 2, 4, 8). Smaller only for tests.
        conv1_t_size / conv1_t_stride: temporal kernel and stride of conv1 (7 / 1: the released
            Kinetics ResNet-50 of 2017; the 2020 code uses stride 2 for clips of >= 32 frames).
        no_max_pool: drop the max pool after conv1 (an option of the authors' 2020 code).
    """

    def __init__(self, depth: int = 50, num_classes: int = 400, in_channels: int = 3, width: int = 64,
                 conv1_t_size: int = 7, conv1_t_stride: int = 1, no_max_pool: bool = False) -> None:
        super().__init__()
        if depth not in STAGE_DEPTHS:
            raise ValueError(f"depth must be one of {sorted(STAGE_DEPTHS)}, got {depth}")
        self.in_channels = in_channels
        self.conv1 = nn.Conv3d(in_channels, width, (conv1_t_size, 7, 7), (conv1_t_stride, 2, 2),
                               (conv1_t_size // 2, 3, 3), bias=False)
        self.bn1 = nn.BatchNorm3d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if no_max_pool else nn.MaxPool3d(3, 2, 1)
        dim = width
        for i, blocks in enumerate(STAGE_DEPTHS[depth]):
            planes = width * 2**i
            stride = 1 if i == 0 else 2
            layer = []
            for b in range(blocks):
                layer.append(Bottleneck3d(dim, planes * 4, planes, temporal_kernel=1, stride=(stride,) * 3 if b == 0 else 1,
                                          kernel_b=(3, 3, 3)))
                dim = planes * 4
            setattr(self, f"layer{i + 1}", nn.Sequential(*layer))
        self.out_channels = dim
        self.fc = nn.Linear(dim, num_classes) if num_classes > 0 else None
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The res5 map of ``B, in_channels, T, H, W`` clips."""
        if x.ndim != 5 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected B,{self.in_channels},T,H,W clips, got shape {tuple(x.shape)}")
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fc is None:
            raise ValueError("this HaraResNet3d has no classifier (num_classes=0): use features()")
        return self.fc(self.features(x).mean(dim=(2, 3, 4)))


_HARA_BLOCK = {"conv1": "conv_a", "bn1": "bn_a", "conv2": "conv_b", "bn2": "bn_b", "conv3": "conv_c", "bn3": "bn_c",
               "downsample.0": "shortcut.conv", "downsample.1": "shortcut.bn"}
_HARA_KEY = re.compile(r"^(layer[1-4]\.\d+)\.(conv[123]|bn[123]|downsample\.[01])\.(\w+)$")


def hara_state_from_original(state: dict[str, torch.Tensor], keep_fc: bool = True) -> dict[str, torch.Tensor]:
    """A 3D-ResNets-PyTorch state dict (``checkpoint["state_dict"]`` of ``resnet-50-kinetics.pth``
    / ``r3d50_K_200ep.pth``; the DataParallel ``module.`` prefix removed) renamed to
    :class:`HaraResNet3d`: ``layerI.J.conv1/bn1/conv2/bn2/conv3/bn3`` -> ``conv_a/bn_a/conv_b/bn_b/
    conv_c/bn_c`` and ``downsample.0/1`` -> ``shortcut.conv/bn``; ``conv1``, ``bn1`` and ``fc`` keep
    their names. ``keep_fc=False`` drops the classifier. An unknown key raises ``KeyError``."""
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    out = {}
    for k, v in state.items():
        m = _HARA_KEY.match(k)
        if m is not None:
            out[f"{m.group(1)}.{_HARA_BLOCK[m.group(2)]}.{m.group(3)}"] = v
        elif re.match(r"^(conv1\.weight|bn1\.\w+)$", k):
            out[k] = v
        elif re.match(r"^fc\.(weight|bias)$", k):
            if keep_fc:
                out[k] = v
        else:
            raise KeyError(f"'{k}' is not a 3D-ResNets-PyTorch ResNet parameter")
    return out
