"""Symbiotic Attention with Object-centric feature Alignment (SAOA): the blocks of Wang 2021, PhD
thesis (UTS), chapter 3, Eqs. 3.1-3.14 (spec digest 002, section 1).

Notation: ``f_g`` a branch's global (GAP) feature ``B, C``; ``f_o`` the detector's object features
``B, N, C1``; ``mask`` ``B, N`` (True = a real detection, False = padding when fewer than N boxes
were detected); aligned features ``B, N, C``.

* :class:`GlobalAlignment` (Eq. 3.1): ``ReLU(W f_g + W_o f_o_i + b)`` for every object i (a linear
  layer on the concatenation ``[f_g ; f_o_i]``).
* :class:`LocalAlignment` (Eq. 3.2): ``f_i = RoIAlign(f, l_i)`` at each object box, then
  ``ReLU(W f_i + W_o f_o_i + b)``.
* :class:`CrossStreamGating` (Eqs. 3.3-3.8): ``sigmoid(W_g f_g^other + b_g)`` broadcast over the N
  rows of the aligned matrix. Eq. 3.8 prints ``g^v (.) f^v``, but the result is stated to be
  ``N x C``: the aligned ``f^v-hat`` is gated (the typo resolved as the noun side, Eq. 3.5).
* :class:`ActionAttendedRelation` (Eqs. 3.9-3.11): ``softmax(f_g^other W_a W_c f_cs^T) f_cs``,
  a low-rank bilinear attention through ``C / reduction`` (C/4 in the thesis), masked to the real
  detections.
* :func:`action_prior` / :func:`action_scores` (Eq. 3.14): ``P(v, n) = mu(v, n) P(v) P(n)`` with
  ``mu`` the training-set frequency of the pair.

I3D normalisation (section 3.3): "I3D features and detector features are each L2-normalised
before the concatenation, then multiplied by the L2 norm of the I3D feature" (after Sun et al.):
``normalize=True`` on the alignments; R-50 features are aligned unnormalised.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import roi_align

__all__ = [
    "ActionAttendedRelation",
    "CrossStreamGating",
    "GlobalAlignment",
    "LocalAlignment",
    "action_prior",
    "action_scores",
    "masked_pool",
]


def _normalize_pair(f_a: torch.Tensor, f_o: torch.Tensor, eps: float = 1e-12) -> tuple[torch.Tensor, torch.Tensor]:
    """Section 3.3: both L2-normalised, then both scaled by ``||f_a||`` (the video feature's norm)."""
    norm = f_a.norm(dim=-1, keepdim=True).clamp_min(eps)  # B, 1
    return f_a, F.normalize(f_o, dim=-1, eps=eps) * norm[:, None, :]


def _check_objects(f_o: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if f_o.dim() != 3:
        raise ValueError(f"object features must be B, N, C1, got shape {tuple(f_o.shape)}")
    if mask is None:
        return torch.ones(f_o.shape[:2], dtype=torch.bool, device=f_o.device)
    if mask.shape != f_o.shape[:2]:
        raise ValueError(f"object mask shape {tuple(mask.shape)} does not match the features' B, N {tuple(f_o.shape[:2])}")
    return mask.bool()


class GlobalAlignment(nn.Module):
    """Eq. 3.1: ``f_i = ReLU(W f_g + W_o f_o_i + b)``, ``W in R^{C x C}``, ``W_o in R^{C x C1}``.

    Args:
        dim: C (the video feature's channels: 2048 for R-50-3D, 1024 for I3D; [SILENT] in the
            thesis, these are the backbones' output widths).
        object_dim: C1 (the detector's RoI feature width; [SILENT]).
        use_video: False drops the ``W f_g`` term (Table 3.2 "SA (Det Feat only)": attention on
            object features "without the integration of the global noun feature").
        normalize: the I3D rule of section 3.3 (module docstring).
    """

    def __init__(self, dim: int, object_dim: int, use_video: bool = True, normalize: bool = False) -> None:
        super().__init__()
        self.use_video = use_video
        self.normalize = normalize
        self.video = nn.Linear(dim, dim, bias=False) if use_video else None
        self.obj = nn.Linear(object_dim, dim)

    def forward(self, f_g: torch.Tensor, f_o: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``f_g`` ``B, C``, ``f_o`` ``B, N, C1`` -> ``B, N, C`` (padding rows zeroed)."""
        mask = _check_objects(f_o, mask)
        if self.normalize:
            f_g, f_o = _normalize_pair(f_g, f_o)
        x = self.obj(f_o)
        if self.video is not None:
            x = x + self.video(f_g)[:, None, :]
        return F.relu(x) * mask[..., None]


class LocalAlignment(nn.Module):
    """Eq. 3.2: ``f_i = RoIAlign(f, l_i)``, ``f-hat_i = ReLU(W f_i + W_o f_o_i + b)``.

    The thesis does not say how the RoIAlign of the ``T x H x W x C`` map treats time, its output
    size, or how boxes are scaled to the map ([SILENT]); the choices are arguments:

    Args:
        dim / object_dim / normalize: as :class:`GlobalAlignment`.
        output_size: RoIAlign output (7, as Faster R-CNN's box head).
        temporal: ``"mean"`` (default) or ``"max"`` over the map's T before a 2-D RoIAlign (the
            detections span 4 s at 2 fps, longer than the clip, so no box has its own time slice).
        pool: ``"max"`` (default: the detector's own RoI features are max-pooled to a vector,
            section 3.2) or ``"mean"`` over the RoIAlign grid.
        sampling_ratio: RoIAlign's samples per bin (2, as Detectron).

    Boxes are ``(x0, y0, x1, y1)`` in pixels of a frame of ``frame_size = (H, W)`` (the frame the
    detector saw); they are scaled to the map by ``map_W / W`` and ``map_H / H``.
    """

    def __init__(self, dim: int, object_dim: int, output_size: int = 7, temporal: Literal["mean", "max"] = "mean",
                 pool: Literal["max", "mean"] = "max", sampling_ratio: int = 2, normalize: bool = False) -> None:
        super().__init__()
        if temporal not in ("mean", "max") or pool not in ("max", "mean"):
            raise ValueError(f"temporal must be 'mean'/'max' and pool 'max'/'mean', got {temporal!r}, {pool!r}")
        self.output_size, self.temporal, self.pool, self.sampling_ratio = output_size, temporal, pool, sampling_ratio
        self.normalize = normalize
        self.video = nn.Linear(dim, dim, bias=False)
        self.obj = nn.Linear(object_dim, dim)

    def roi_features(self, fmap: torch.Tensor, boxes: torch.Tensor, frame_size: tuple[int, int]) -> torch.Tensor:
        """``fmap`` ``B, C, T, h, w``, ``boxes`` ``B, N, 4`` -> RoI vectors ``B, N, C``."""
        if fmap.dim() != 5:
            raise ValueError(f"the video feature map must be B, C, T, H, W, got shape {tuple(fmap.shape)}")
        if boxes.dim() != 3 or boxes.shape[-1] != 4 or boxes.shape[0] != fmap.shape[0]:
            raise ValueError(f"boxes must be B, N, 4 with B = {fmap.shape[0]}, got shape {tuple(boxes.shape)}")
        fm2d = fmap.mean(dim=2) if self.temporal == "mean" else fmap.amax(dim=2)
        b, n = boxes.shape[:2]
        h, w = fm2d.shape[-2:]
        scale = boxes.new_tensor([w / frame_size[1], h / frame_size[0], w / frame_size[1], h / frame_size[0]])
        idx = torch.arange(b, device=boxes.device, dtype=boxes.dtype).repeat_interleave(n)[:, None]
        rois = torch.cat([idx, (boxes * scale).reshape(-1, 4)], dim=1).to(fm2d.dtype)
        grid = roi_align(fm2d, rois, self.output_size, spatial_scale=1.0, sampling_ratio=self.sampling_ratio, aligned=True)
        vec = grid.amax(dim=(2, 3)) if self.pool == "max" else grid.mean(dim=(2, 3))
        return vec.view(b, n, -1)

    def forward(self, fmap: torch.Tensor, f_o: torch.Tensor, boxes: torch.Tensor, frame_size: tuple[int, int],
                mask: torch.Tensor | None = None) -> torch.Tensor:
        mask = _check_objects(f_o, mask)
        f_r = self.roi_features(fmap, boxes, frame_size)
        if self.normalize:
            norm = f_r.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            f_o = F.normalize(f_o, dim=-1) * norm
        return F.relu(self.video(f_r) + self.obj(f_o)) * mask[..., None]


class CrossStreamGating(nn.Module):
    """Eqs. 3.3-3.8: ``g = sigmoid(W_g f_g + b_g)`` (``1 x C``) and ``g (.) f-hat`` with the gate
    broadcast over the N rows. ``f_g`` is the *other* branch's global feature (the verb feature
    gates the noun branch and vice versa); the ablations pass the own branch's ("w/o Cross-Stream").
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, dim)

    def gate(self, f_g: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fc(f_g))

    def forward(self, f_g: torch.Tensor, aligned: torch.Tensor) -> torch.Tensor:
        return self.gate(f_g)[:, None, :] * aligned


class ActionAttendedRelation(nn.Module):
    """Eqs. 3.9-3.11: ``a = softmax(f_g W_a W_c f_cs^T)`` over the N objects (``W_a in R^{C x C/4}``,
    ``W_c in R^{C/4 x C}``, no biases as printed), ``f_a = a f_cs`` (``1 x C``).

    Padding objects (``mask`` False) get no attention; a clip with no detection at all attends
    nothing and gets ``f_a = 0`` (the classifier then sees only its bias).
    """

    def __init__(self, dim: int, reduction: int = 4) -> None:
        super().__init__()
        if dim % reduction:
            raise ValueError(f"ARM bottleneck: dim {dim} is not divisible by reduction {reduction}")
        self.w_a = nn.Linear(dim, dim // reduction, bias=False)
        self.w_c = nn.Linear(dim // reduction, dim, bias=False)

    def attention(self, f_g: torch.Tensor, f_cs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``B, N`` attention weights (each row sums to 1 over the real objects)."""
        mask = _check_objects(f_cs, mask)
        q = self.w_c(self.w_a(f_g))  # (f_g W_a) W_c: B, C
        logits = torch.einsum("bc,bnc->bn", q, f_cs).masked_fill(~mask, float("-inf"))
        att = logits.softmax(dim=-1)
        return torch.nan_to_num(att, nan=0.0)  # rows with no object at all

    def forward(self, f_g: torch.Tensor, f_cs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return torch.einsum("bn,bnc->bc", self.attention(f_g, f_cs, mask), f_cs)


def masked_pool(x: torch.Tensor, mask: torch.Tensor | None, mode: Literal["max", "mean"]) -> torch.Tensor:
    """Max or mean over the N real rows of ``B, N, C`` (0 for a clip without objects)."""
    mask = _check_objects(x, mask)
    m = mask[..., None]
    if mode == "max":
        out = x.masked_fill(~m, float("-inf")).amax(dim=1)
        return torch.where(torch.isinf(out), torch.zeros_like(out), out)
    if mode == "mean":
        return (x * m).sum(dim=1) / m.sum(dim=1).clamp_min(1)
    raise ValueError(f"pool mode must be 'max' or 'mean', got {mode!r}")


def action_prior(counts: torch.Tensor, unseen: float = 0.0) -> torch.Tensor:
    """Eq. 3.14's ``mu``: the frequency of each (verb, noun) pair among the training segments,
    ``counts / counts.sum()``; pairs never seen in training get ``unseen`` (0: "occurrence
    frequency" taken literally, so an unseen pair can never be predicted; [SILENT] in the thesis,
    whose LFB reference also multiplies by the raw training frequency)."""
    counts = counts.double()
    if counts.dim() != 2 or (counts < 0).any():
        raise ValueError(f"action counts must be a non-negative (num_verbs, num_nouns) table, got shape {tuple(counts.shape)}")
    total = counts.sum()
    if total <= 0:
        raise ValueError("action counts are all zero: the training split has no labelled segment")
    mu = counts / total
    return torch.where(counts > 0, mu, torch.full_like(mu, float(unseen))).float()


def action_scores(verb_probs: torch.Tensor, noun_probs: torch.Tensor, prior: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 3.14: ``P(v, n) = mu(v, n) P(v) P(n)`` -> ``B, V, N`` (``prior`` None: ``mu = 1``)."""
    out = verb_probs[:, :, None] * noun_probs[:, None, :]
    return out if prior is None else out * prior.to(out)[None]
