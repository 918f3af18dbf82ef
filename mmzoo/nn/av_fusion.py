"""Lateral connections of SlowFast and AVSlowFast.

* `FuseFastToSlow`: the time-strided convolution of SlowFast: a (k x 1 x 1) conv with temporal
  stride alpha from the Fast features to `ratio x C_fast` channels, BN, ReLU; the result is
  concatenated to the Slow features.
* `FuseAudioToVisual`: the A->FS connection of AVSlowFast. The thesis leaves the operator
  unspecified; this follows the authors' public code: average the audio features over
  frequency, then `num_convs` convs along time (kernel k, the last one with stride
  `audio_T / slow_T` and as many output channels as the fused Slow tensor), each with BN + ReLU,
  and *sum* the result, broadcast over H and W, onto the [Slow, Fast->Slow] tensor.

Audio features are laid out `B, C, T, F, 1` (see `mmzoo.nn.resnet3d`).
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["FuseFastToSlow", "FuseAudioToVisual"]


class FuseFastToSlow(nn.Module):
    """Args: fast channels, channel ratio (2), temporal kernel (5 or 7), temporal stride alpha."""

    def __init__(self, dim_fast: int, ratio: int = 2, kernel: int = 5, alpha: int = 8, bn_eps: float = 1e-5, bn_momentum: float = 0.1) -> None:
        super().__init__()
        self.conv = nn.Conv3d(dim_fast, dim_fast * ratio, (kernel, 1, 1), (alpha, 1, 1), (kernel // 2, 0, 0), bias=False)
        self.bn = nn.BatchNorm3d(dim_fast * ratio, eps=bn_eps, momentum=bn_momentum)
        self.relu = nn.ReLU(inplace=True)
        self.out_channels = dim_fast * ratio

    def lateral(self, fast: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(fast)))

    def forward(self, slow: torch.Tensor, fast: torch.Tensor) -> torch.Tensor:
        return torch.cat([slow, self.lateral(fast)], dim=1)


class FuseAudioToVisual(nn.Module):
    """Audio -> (Slow+Fast) fusion features.

    Args:
        dim_audio: audio channels at this stage.
        dim_visual: channels of the fused Slow tensor the result is summed onto.
        time_stride: audio frames per Slow frame at this stage (stride of the last conv).
        dim_inner: width of the intermediate convs (64 in the authors' code).
        kernel: temporal kernel of the convs (5).
        num_convs: number of conv + BN + ReLU layers (2).
    """

    def __init__(
        self,
        dim_audio: int,
        dim_visual: int,
        time_stride: int,
        dim_inner: int = 64,
        kernel: int = 5,
        num_convs: int = 2,
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        if num_convs < 1:
            raise ValueError("num_convs must be >= 1")
        layers: list[nn.Module] = []
        d_in = dim_audio
        for i in range(num_convs):
            last = i == num_convs - 1
            d_out = dim_visual if last else dim_inner
            stride = time_stride if last else 1
            layers += [
                nn.Conv3d(d_in, d_out, (kernel, 1, 1), (stride, 1, 1), (kernel // 2, 0, 0), bias=False),
                nn.BatchNorm3d(d_out, eps=bn_eps, momentum=bn_momentum),
                nn.ReLU(inplace=True),
            ]
            d_in = d_out
        self.layers = nn.Sequential(*layers)
        self.out_channels = dim_visual

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """`B, C, T_a, F, 1` -> `B, C_visual, T_slow, 1, 1` (broadcastable over H, W)."""
        x = audio.mean(dim=(3, 4), keepdim=True)
        return self.layers(x)
