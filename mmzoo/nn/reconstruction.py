"""Frame reconstruction with long-range flow from feature affinities (thesis 003, ch. 2,
Sec. 2.3.6 and Fig. 2.6; the table numbered 2.5 in the seed, "Table 2.4" in the digest).

The thesis: given frames I_s and I_t (t = s + gap, gap 5 or 10, DAVIS-2017 val), "we compute
coordinate-wise correspondences under the acquired representation and generate a flow field for
pixel movement between I_s and I_t. We then upsample the flow field to the same size as the
image and warp it on Image I_s to generate a new image I'_t", scored by the RGB L1 distance to
I_t (:class:`mmzoo.metrics.reconstruction.FrameReconstructionL1`; the evaluation loop is
:func:`mmzoo.models.labelprop.reconstruction_error`). Here:

1. features of I_s and I_t (``dense_features``, l2-normalised) give the affinity of Eq. 2.1 with
   the label-propagation temperature, and every target cell takes its top-k source cells, as in
   label propagation (Sec. 2.4). [SILENT] The thesis does not say how a correspondence becomes
   a flow vector; the source *coordinates* ``(x, y, 1)`` of the feature grid are propagated as
   labels with :func:`mmzoo.nn.label_propagation.propagate_labels` (no min-max normalisation)
   and ``x, y`` divided by the propagated ``1``, i.e. the top-k softmax-weighted mean source
   position, the weights renormalised over the k kept (otherwise positions shrink towards 0).
   k = 5 and T = 512^-0.5 (the model's label-propagation settings); ``topk=1`` is the argmax.
2. flow = that source position minus the target cell's centre, in normalised image units
   ([-1, 1], ``align_corners=False``: cell centres at ``(2i + 1) / w - 1``), upsampled
   bilinearly to the image size (thesis);
3. I'_t = I_s bilinearly sampled at ``pixel + flow`` (every pixel of I_s can be moved; [SILENT]
   samples outside the frame take the nearest border pixel).

[SILENT] The thesis does not state the frames paired: every ``(t - gap, t)`` of a sequence,
t = gap .. T-1 (Fig. 2.6 shows I_1 -> I_6, one such pair). [SILENT] Nor the resolution: the
features come from the model's input (the DAVIS DataModule's 320 x 320 by default) and the
warp and the L1 are computed at the size of ``rgb`` (default: the input frames de-normalised;
pass the original 480p frames to score at full size, the flow is resolution independent).
``model=None`` is the "Identity" row: I'_t = I_s.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from mmzoo.data.constants import IMAGENET_MEAN, IMAGENET_STD
from mmzoo.nn.label_propagation import propagate_labels

__all__ = [
    "correspondence_flow",
    "denormalize_frames",
    "frame_pairs",
    "grid_coordinates",
    "reconstruct_frame",
    "warp",
]


def grid_coordinates(h: int, w: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """``(2, h, w)`` normalised (x, y) of the cell centres of an ``h x w`` grid (``align_corners=False``)."""
    ys = (2 * torch.arange(h, device=device, dtype=dtype) + 1) / h - 1
    xs = (2 * torch.arange(w, device=device, dtype=dtype) + 1) / w - 1
    return torch.stack([xs.view(1, w).expand(h, w), ys.view(h, 1).expand(h, w)])


def correspondence_flow(feat_src: torch.Tensor, feat_tgt: torch.Tensor, topk: int = 5,
                        temperature: float = 512 ** -0.5, normalized: bool = False) -> torch.Tensor:
    """Flow ``(2, h, w)`` from target to source in normalised units: for each cell of the target
    features ``(c, h, w)``, the top-k-weighted mean position of its matches in the source
    features ``(c, h, w)`` minus its own position (module doc, step 1-2)."""
    if feat_src.shape != feat_tgt.shape or feat_src.dim() != 3:
        raise ValueError(f"correspondence_flow: features {tuple(feat_src.shape)} and {tuple(feat_tgt.shape)} "
                         "must both be (c, h, w)")
    _c, h, w = feat_src.shape
    coords = grid_coordinates(h, w, feat_src.device)
    labels = torch.cat([coords, torch.ones(1, h, w, device=feat_src.device)])
    out = propagate_labels(torch.stack([feat_src, feat_tgt]), labels, topk=topk, context=0,
                           temperature=temperature, normalize_labels=False, normalized=normalized)[1]
    return out[:2] / out[2:].clamp_min(1e-12) - coords


def warp(source: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``source`` ``(C, H, W)`` at ``pixel + flow``; ``flow`` ``(2, h, w)`` (normalised
    units) is upsampled bilinearly to ``H x W`` first (thesis: "upsample the flow field to the
    same size as the image")."""
    _c, H, W = source.shape
    flow = F.interpolate(flow[None].float(), size=(H, W), mode="bilinear", align_corners=False)[0]
    grid = (grid_coordinates(H, W, source.device) + flow).permute(1, 2, 0)[None]
    return F.grid_sample(source[None].float(), grid, mode="bilinear", padding_mode="border", align_corners=False)[0]


def reconstruct_frame(source_rgb: torch.Tensor, feat_src: torch.Tensor, feat_tgt: torch.Tensor, topk: int = 5,
                      temperature: float = 512 ** -0.5, normalized: bool = False) -> torch.Tensor:
    """I'_t ``(3, H, W)``: ``source_rgb`` (I_s) warped by the flow of the features of I_s and I_t."""
    return warp(source_rgb, correspondence_flow(feat_src, feat_tgt, topk, temperature, normalized))


def frame_pairs(num_frames: int, gap: int) -> list[tuple[int, int]]:
    """``(source, target)`` frame indices at ``gap``: every ``(t - gap, t)`` for t = gap .. T-1."""
    return [(t - gap, t) for t in range(gap, num_frames)]


def denormalize_frames(video: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN,
                       std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """Model input ``(3, T, H, W)`` normalised with ``mean`` / ``std`` (of [0, 1] values) -> RGB
    in [0, 255]."""
    m = torch.tensor(mean, dtype=torch.float32, device=video.device).view(3, 1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=video.device).view(3, 1, 1, 1)
    return ((video.float() * s + m) * 255.0).clamp(0, 255)
