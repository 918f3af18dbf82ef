"""Audio-guided visual attention over the 7x7 regions of a frame, for AVE event localization.

One job: turn per-segment region features ``[B, T, R, K]`` and audio features ``[B, T, A]`` into
one visual vector per segment ``[B, T, K]`` (plus the attention map ``[B, T, R]``). It covers the
thesis's CM-CoAtt (Lin 2019, NTU, Sec. 3.0.3-3.0.4) and the ablation baselines of its Sec. 4.0.4:

* intra-frame encoder (Eq. 3.4): a BiLSTM scans the R regions of one frame in raster order; the
  forward and backward outputs are *summed*, so ``v_hat`` keeps the region width K;
* inter-frame encoder (Eq. 3.5): ``v_tilde^t = g(v_hat^{t-1}, v_hat^t, v_hat^{t+1})`` with g an
  MLP on the per-region concatenation of three consecutive frames (the thesis's choice), or the
  Table 4.8 alternatives: a Conv3D over (T, 7, 7) or an LSTM over time at each location;
* scores: "dot" (Eqs. 3.6, ``softmax_r(v_tilde_r . a)``, the CM-CoAtt form) or "add" (the
  audio-guided MLP of Tian et al. ECCV 2018, ``w_h tanh(W_v relu(A_v v_r) + W_g relu(A_a a))``);
* values (Eq. 3.7): the per-frame region features (``v_hat`` with the intra encoder, else the
  projected regions), weighted by the softmax over regions.

Everything the thesis leaves open is an argument; see `RegionAttention`.
"""
from __future__ import annotations

import math
from typing import Literal, Optional

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "IntraFrameEncoder",
    "InterFrameMLP",
    "InterFrameConv3d",
    "InterFrameLSTM",
    "DotScore",
    "AddScore",
    "RegionAttention",
]


class IntraFrameEncoder(nn.Module):
    """Eq. 3.4: ``v_hat_r = LSTM_fwd(v)_r + LSTM_bwd(v)_r`` over the R regions of one frame.

    Input ``[N, R, K]`` (N = B*T frames), output ``[N, R, K]``: the hidden size of each direction
    equals the input width K, so the sum stays in the region space (the thesis writes both as K).
    Regions are scanned in raster order (row-major over the 7x7 grid), the order the thesis's
    "reshape 7x7 channels into 49" gives.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(dim, dim, num_layers=1, batch_first=True, bidirectional=True)
        self.dim = dim

    def forward(self, regions: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(regions)
        return out[..., : self.dim] + out[..., self.dim :]


def _neighbours(x: torch.Tensor, pad: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames t-1 and t+1 of ``x`` ``[B, T, ...]``, padded at t=1 and t=T with zeros or copies."""
    if pad == "zero":
        edge = torch.zeros_like(x[:, :1])
        prev = torch.cat([edge, x[:, :-1]], dim=1)
        nxt = torch.cat([x[:, 1:], edge], dim=1)
    elif pad == "replicate":
        prev = torch.cat([x[:, :1], x[:, :-1]], dim=1)
        nxt = torch.cat([x[:, 1:], x[:, -1:]], dim=1)
    else:
        raise ValueError(f"inter_pad must be 'zero' or 'replicate', got {pad!r}")
    return prev, nxt


class InterFrameMLP(nn.Module):
    """Eq. 3.5: per region, an MLP over the concatenation ``[v^{t-1}, v^t, v^{t+1}]`` (3K -> D).

    ``layers`` Linear layers with ReLU between them (none after the last: its output is a key
    for the dot product with the audio). ``pad`` fills the missing neighbour at t=1 and t=T.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 512, layers: int = 2, pad: str = "zero") -> None:
        super().__init__()
        if layers < 1:
            raise ValueError("inter_layers must be >= 1")
        dims = [3 * in_dim] + [hidden] * (layers - 1) + [out_dim]
        mods: list[nn.Module] = []
        for i in range(layers):
            mods.append(nn.Linear(dims[i], dims[i + 1]))
            if i < layers - 1:
                mods.append(nn.ReLU(inplace=True))
        self.mlp = nn.Sequential(*mods)
        self.pad = pad
        _neighbours(torch.zeros(1, 1), pad)  # validate the padding mode early

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, R, K] -> [B, T, R, D]
        prev, nxt = _neighbours(x, self.pad)
        return self.mlp(torch.cat([prev, x, nxt], dim=-1))


class InterFrameConv3d(nn.Module):
    """Table 4.8 "Conv3D": one 3x3x3 convolution over (T, 7, 7), K -> D channels, zero padded.

    The thesis gives only "modeled by Conv3D directly"; one layer with the same +-1 frame reach
    as the MLP is our reading.
    """

    def __init__(self, in_dim: int, out_dim: int, grid: int = 7, kernel: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_dim, out_dim, kernel_size=kernel, padding=kernel // 2)
        self.grid = grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, R, K] -> [B, T, R, D]
        b, t, r, k = x.shape
        g = self.grid
        if g * g != r:
            raise ValueError(f"Conv3D inter-frame encoder needs a {g}x{g} grid, got {r} regions")
        y = self.conv(x.reshape(b, t, g, g, k).permute(0, 4, 1, 2, 3))
        return y.permute(0, 2, 3, 4, 1).reshape(b, t, r, -1)


class InterFrameLSTM(nn.Module):
    """Table 4.8 "LSTM": an LSTM over time at each spatial location (K -> D), unidirectional."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(in_dim, out_dim, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, R, K] -> [B, T, R, D]
        b, t, r, k = x.shape
        seq = x.permute(0, 2, 1, 3).reshape(b * r, t, k)
        out, _ = self.lstm(seq)
        return out.reshape(b, r, t, -1).permute(0, 2, 1, 3)


class DotScore(nn.Module):
    """Eq. 3.6 logits ``v_r . a`` (optionally divided by sqrt(D), which the thesis does not do)."""

    def __init__(self, dim: int, scale: bool = False) -> None:
        super().__init__()
        self.factor = 1.0 / math.sqrt(dim) if scale else 1.0

    def forward(self, keys: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        # keys [B, T, R, D], audio [B, T, D] -> [B, T, R]
        return torch.einsum("btrd,btd->btr", keys, audio) * self.factor


class AddScore(nn.Module):
    """"Add" attention (Tian et al. 2018, the thesis's [40, 24]): an MLP on added projections.

    ``z_r = w_h . tanh(W_v relu(A_v v_r) + W_g relu(A_a a))`` with A_v, A_a: -> ``hidden`` (512 in
    Tian's public code), W_v, W_g: ``hidden`` -> ``proj`` (49 there, without bias), w_h: -> 1.
    """

    def __init__(self, visual_dim: int, audio_dim: int, hidden: int = 512, proj: int = 49) -> None:
        super().__init__()
        self.visual_in = nn.Linear(visual_dim, hidden)
        self.audio_in = nn.Linear(audio_dim, hidden)
        self.visual_proj = nn.Linear(hidden, proj, bias=False)
        self.audio_proj = nn.Linear(hidden, proj, bias=False)
        self.score = nn.Linear(proj, 1, bias=False)
        for lin in (self.visual_in, self.audio_in, self.visual_proj, self.audio_proj, self.score):
            nn.init.xavier_uniform_(lin.weight)  # Tian's init

    def forward(self, keys: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        v = self.visual_proj(F.relu(self.visual_in(keys)))  # [B, T, R, P]
        a = self.audio_proj(F.relu(self.audio_in(audio))).unsqueeze(2)  # [B, T, 1, P]
        return self.score(torch.tanh(v + a)).squeeze(-1)


class RegionAttention(nn.Module):
    """Audio-guided attention over regions: ``[B,T,R,K]``, ``[B,T,A]`` -> ``[B,T,K]``, ``[B,T,R]``.

    Args:
        region_dim: K, the width of the (projected) region features and of ``v_hat``.
        audio_dim: width of the audio feature a^t (128, VGGish).
        attention: "none" (mean over regions, no map), "add", "dot", or "cmcoatt" (= "dot" with
            the inter-frame encoder; it requires ``inter_v != "none"``).
        intra_v: apply the intra-frame BiLSTM (Eq. 3.4) before scoring ("Intra-V" in Tables
            4.6-4.8). Its output also becomes the attended values.
        inter_v: keys from an inter-frame encoder: "mlp" (Eq. 3.5), "conv3d", "lstm" (Table
            4.8), or "none" (keys from the frame alone).
        attn_dim: D, the key width for dot scoring; it must equal the audio width unless
            ``audio_proj`` (the thesis: "visual and audio representation are in the same
            dimension", and the ablation text gives 128-d a and v_r). With "dot" and no
            inter-frame encoder a bias-free Linear K -> D makes the keys [SILENT].
        audio_proj: project the audio to D with a Linear before scoring (the thesis has none).
        scale: divide dot scores by sqrt(D) (the thesis does not).
        values: "frame" = Eq. 3.7 as written, the weights pool the per-frame features (v_hat or
            v); "keys" = pool the inter-frame features v_tilde instead (reading Eq. 3.7's v_hat
            as a typo for v_tilde). Then the output width is D.
        inter_hidden / inter_layers / inter_pad: the inter-frame MLP's hidden width, depth and
            padding of the missing neighbour at t=1 and t=T ("zero" or "replicate").
        add_hidden / add_proj: the "add" MLP's widths (Tian's code: 512 and 49).
        grid: the side of the square region grid (7 for ResNet / VGG pool5 maps).
    """

    def __init__(
        self,
        region_dim: int = 512,
        audio_dim: int = 128,
        attention: Literal["none", "add", "dot", "cmcoatt"] = "cmcoatt",
        intra_v: bool = True,
        inter_v: Literal["none", "mlp", "conv3d", "lstm"] = "mlp",
        attn_dim: int = 128,
        audio_proj: bool = False,
        scale: bool = False,
        values: Literal["frame", "keys"] = "frame",
        inter_hidden: int = 512,
        inter_layers: int = 2,
        inter_pad: Literal["zero", "replicate"] = "zero",
        add_hidden: int = 512,
        add_proj: int = 49,
        grid: int = 7,
    ) -> None:
        super().__init__()
        if attention not in ("none", "add", "dot", "cmcoatt"):
            raise ValueError(f"attention must be none|add|dot|cmcoatt, got {attention!r}")
        if inter_v not in ("none", "mlp", "conv3d", "lstm"):
            raise ValueError(f"inter_v must be none|mlp|conv3d|lstm, got {inter_v!r}")
        if values not in ("frame", "keys"):
            raise ValueError(f"values must be 'frame' or 'keys', got {values!r}")
        if attention == "cmcoatt" and inter_v == "none":
            raise ValueError("attention='cmcoatt' needs an inter-frame encoder (inter_v=mlp|conv3d|lstm); "
                             "use attention='dot' for dot-product attention on single frames")
        if attention == "none" and (intra_v or inter_v != "none"):
            raise ValueError("intra_v / inter_v only act through an attention; set attention=add|dot|cmcoatt")
        if values == "keys" and inter_v == "none":
            raise ValueError("values='keys' pools the inter-frame features; it needs inter_v != 'none'")
        self.attention = attention
        self.values = values
        self.region_dim = region_dim
        self.out_dim = attn_dim if values == "keys" else region_dim
        self.intra = IntraFrameEncoder(region_dim) if intra_v else None

        dot = attention in ("dot", "cmcoatt")
        if inter_v == "mlp":
            self.inter: Optional[nn.Module] = InterFrameMLP(region_dim, attn_dim, inter_hidden, inter_layers, inter_pad)
        elif inter_v == "conv3d":
            self.inter = InterFrameConv3d(region_dim, attn_dim, grid=grid)
        elif inter_v == "lstm":
            self.inter = InterFrameLSTM(region_dim, attn_dim)
        elif dot:
            self.inter = nn.Linear(region_dim, attn_dim, bias=False)  # single-frame keys for "dot"
        else:
            self.inter = None
        key_dim = attn_dim if self.inter is not None else region_dim

        self.audio_map: Optional[nn.Module] = None
        if dot:
            if audio_proj:
                self.audio_map = nn.Linear(audio_dim, attn_dim)
            elif attn_dim != audio_dim:
                raise ValueError(f"dot attention compares D={attn_dim}-d keys with {audio_dim}-d audio; "
                                 "set attn_dim=audio_dim or audio_proj=True")
            self.scorer: Optional[nn.Module] = DotScore(attn_dim, scale)
        elif attention == "add":
            self.scorer = AddScore(key_dim, audio_dim, add_hidden, add_proj)
        else:
            self.scorer = None

    def forward(self, regions: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        if self.scorer is None:
            return regions.mean(dim=2), None
        b, t, r, k = regions.shape
        frame = regions
        if self.intra is not None:
            frame = self.intra(regions.reshape(b * t, r, k)).reshape(b, t, r, k)
        keys = self.inter(frame) if self.inter is not None else frame
        a = self.audio_map(audio) if self.audio_map is not None else audio
        weights = torch.softmax(self.scorer(keys, a), dim=-1)  # [B, T, R], sums to 1 over regions
        vals = keys if self.values == "keys" else frame
        return torch.einsum("btr,btrk->btk", weights, vals), weights
