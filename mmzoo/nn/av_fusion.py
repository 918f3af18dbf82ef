"""Lateral connections of SlowFast and AVSlowFast.

* `FuseFastToSlow`: the time-strided convolution of SlowFast: a (k x 1 x 1) conv with temporal
  stride alpha from the Fast features to `ratio x C_fast` channels, BN, ReLU; the result is
  concatenated to the Slow features.
* `FuseAudioToVisual`: the A->FS connection of AVSlowFast. The thesis leaves the operator
  unspecified; this follows the authors' public code: average the audio features over
  frequency, then `num_convs` convs along time (kernel k, the last one with stride
  `audio_T / slow_T` and as many output channels as the fused Slow tensor), each with BN + ReLU,
  and *sum* the result, broadcast over H and W, onto the [Slow, Fast->Slow] tensor.
  The same module, built with the Fast width and the audio-to-Fast time ratio, is the A->F
  half of the A->F->S variant (Table 4.5b): audio summed into Fast, which then feeds the
  Fast->Slow lateral.
* `AudioVisualNonLocal`: the "AV Nonlocal" variant of Table 4.5b, a non-local block
  (`mmzoo.nn.nonlocal_block.NonLocal3d`) whose queries come from the audio and whose keys and
  values are the visual T x H x W positions; see its docstring for the choices the thesis leaves open.

Audio features are laid out `B, C, T, F, 1` (see `mmzoo.nn.resnet3d`).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from mmzoo.nn.nonlocal_block import NonLocal3d

__all__ = ["AudioVisualNonLocal", "FuseAudioToVisual", "FuseFastToSlow"]


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
        time_upsample: repeat each output frame this many times (nearest upsampling), when the
            audio is temporally coarser than the visual pathway it is summed onto; this happens
            with the thesis' res2 audio downsampling (section 4.2.3) at res4 for A->F, and at res5
            for the 16x4 model's A->FS / AVS branch.
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
        time_upsample: int = 1,
    ) -> None:
        super().__init__()
        if num_convs < 1:
            raise ValueError("num_convs must be >= 1")
        if time_upsample < 1:
            raise ValueError("time_upsample must be >= 1")
        self.time_upsample = time_upsample
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
        """`B, C, T_a, F, 1` -> `B, C_visual, T_visual, 1, 1` (broadcastable over H, W)."""
        x = self.layers(audio.mean(dim=(3, 4), keepdim=True))
        if self.time_upsample > 1:
            x = x.repeat_interleave(self.time_upsample, dim=2)
        return x


class AudioVisualNonLocal(NonLocal3d):
    """AV Nonlocal fusion: audio queries attend over the visual T x H x W positions.

    The thesis (section 4.2.4 (iii), Fig. 4.2 right) adapts a non-local block to two inputs:
    audio features are matched to every visual location (along T, H and W) and the affinity
    combines the visual features of the locations the audio selects into a new visual feature.
    The authors' public code does not contain this variant; the choices the thesis leaves open are:

    * queries: the audio features averaged over frequency and over the audio frames of each
      visual (Slow) frame, one query per Slow frame (`time_window` audio frames), then `theta`
      (1x1) to `dim_inner` channels; keys / values: `phi` / `g` (1x1) on the max-pooled visual
      tensor (`pool`, 1x2x2 as in the block's default);
    * affinity: `mode` "softmax" (embedded Gaussian, scaled by dim_inner^-0.5: each query's
      weights sum to 1 over the visual positions) or "dot_product" (divided by the number of
      positions);
    * output: the attended feature of Slow frame t goes through `W_z` (1x1) and BN (gamma
      initialised to 0, so the block starts as an identity) and is *summed*, broadcast over
      H and W, onto the visual tensor of frame t (the caller does the sum, so that DropPathway
      can sum zeros instead);
    * `dim_inner` = 64 (the A->FS intermediate width): with it the measured cost over A->FS is
      +0.11 GFLOPs for R50 4x16, matching Table 4.5b (39.9 vs 39.8); a non-local-like width of
      320 would cost +0.62 GFLOPs.

    Args:
        dim_audio: audio channels at this junction.
        dim_visual: channels of the visual tensor the result is summed onto.
        time_window: audio frames per visual frame at this junction.
        dim_inner: width of theta / phi / g.
        pool: max-pool kernel applied to the visual tensor before phi and g.
        mode: "softmax" or "dot_product".
    """

    def __init__(
        self,
        dim_audio: int,
        dim_visual: int,
        time_window: int,
        dim_inner: int = 64,
        pool: tuple[int, int, int] = (1, 2, 2),
        mode: str = "softmax",
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
    ) -> None:
        super().__init__(dim_visual, dim_inner, pool, mode, bn_eps, bn_momentum)
        if time_window < 1:
            raise ValueError("time_window must be >= 1")
        self.time_window = time_window
        self.theta = nn.Conv3d(dim_audio, dim_inner, 1)  # queries come from the audio
        self.out_channels = dim_visual

    def _queries(self, audio: torch.Tensor) -> torch.Tensor:
        a = audio.mean(dim=(3, 4))  # B, C_a, T_a
        a = F.avg_pool1d(a, self.time_window, self.time_window)  # B, C_a, T_visual
        return self.theta(a[..., None, None]).flatten(2)  # B, C', T_visual

    def attention(self, visual: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Affinity `B, T_visual, M` of each audio query over the M (pooled) visual positions,
        and the values `B, C', M`."""
        q = self._queries(audio)
        if q.shape[-1] != visual.shape[2]:
            raise ValueError(f"{q.shape[-1]} audio queries for {visual.shape[2]} visual frames: wrong time_window")
        pooled = self.pool(visual)
        k = self.phi(pooled).flatten(2)
        v = self.g(pooled).flatten(2)
        aff = torch.einsum("bct,bcm->btm", q, k)
        if self.mode == "softmax":
            aff = (aff * self.dim_inner**-0.5).softmax(dim=-1)
        else:
            aff = aff / k.shape[-1]
        return aff, v

    def forward(self, visual: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """`visual` B, C_v, T, H, W and `audio` B, C_a, T_a, F, 1 -> the term `B, C_v, T, 1, 1`
        to sum onto `visual`."""
        aff, v = self.attention(visual, audio)
        y = torch.einsum("btm,bcm->bct", aff, v)[..., None, None]
        return self.bn(self.out(y))
