"""Label propagation through feature affinities, for any dense feature extractor (thesis Sec. 2.4).

Given l2-normalised features of every frame ``(T, c, h, w)`` and soft labels of the first frame
``(L, h, w)`` (one-hot instances with background, or one map per keypoint), each later frame t
gets ``y_t(i) = mean over references r of sum over the top-k j of A_{r,t}(j, i) y_r(j)``, with
``A_{r,t} = softmax_j(x_r(j)^T x_t(i) / temperature)`` and references = the first frame plus the
``context`` frames before t (K = 7 for DAVIS and JHMDB). Predicted frames become references of
later ones. The authors' code (xiaolonw/TimeCycle ``test_davis.py``) also min-max normalises each
label channel of every predicted frame before it is stored and argmax'ed; ``normalize_labels``
keeps that step switchable. The k weights are the softmax values over *all* positions, not
renormalised over the k kept, as in that code.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "keypoint_maps",
    "keypoints_from_maps",
    "labels_to_onehot",
    "propagate_labels",
    "reference_frames",
    "upsample_labels",
]


def reference_frames(t: int, context: int) -> list[int]:
    """Indices of the frames labels are propagated from into frame ``t`` (> 0): the first frame
    and up to ``context`` frames before t (never the first frame twice)."""
    if t < 1:
        raise ValueError(f"frame {t} has no reference frames (the first frame is given)")
    return [0] + list(range(max(1, t - context), t))


def propagate_labels(
    feats: torch.Tensor,
    first_labels: torch.Tensor,
    topk: int = 5,
    context: int = 7,
    temperature: float = 512 ** -0.5,
    normalize_labels: bool = True,
    normalized: bool = False,
) -> torch.Tensor:
    """Soft labels ``(T, L, h, w)`` of every frame; frame 0 is ``first_labels``.

    Args:
        feats: ``(T, c, h, w)`` dense features of the frames in temporal order.
        first_labels: ``(L, h, w)`` labels of the first frame at the feature resolution.
        topk: neighbours kept per target position (5).
        context: previous frames used besides the first (7).
        temperature: softmax temperature of the affinity (the authors' 512^-0.5).
        normalize_labels: min-max normalise each label channel of predicted frames (authors).
        normalized: the features are already l2-normalised over channels.
    """
    if feats.dim() != 4 or first_labels.dim() != 3 or feats.shape[-2:] != first_labels.shape[-2:]:
        raise ValueError(f"expected feats (T, c, h, w) and first_labels (L, h, w) of the same h, w; got "
                         f"{tuple(feats.shape)} and {tuple(first_labels.shape)}")
    t_len, _, h, w = feats.shape
    x = feats if normalized else F.normalize(feats.float(), dim=1)
    x = x.flatten(2)  # T, c, hw
    labels = [first_labels.float().flatten(1)]  # each L, hw
    k = min(topk, h * w)
    for t in range(1, t_len):
        refs = reference_frames(t, context)
        pred = torch.zeros_like(labels[0])
        for r in refs:
            aff = (x[r].transpose(0, 1) @ x[t] / temperature).softmax(dim=0)  # hw_src, hw_tgt
            vals, idx = aff.topk(k, dim=0)  # k, hw_tgt
            pred += (labels[r][:, idx] * vals.unsqueeze(0)).sum(1)
        pred /= len(refs)
        if normalize_labels:
            lo = pred.min(dim=1, keepdim=True).values
            pred = pred - lo
            hi = pred.max(dim=1, keepdim=True).values
            pred = torch.where(hi > 0, pred / hi.clamp_min(1e-12), pred)
        labels.append(pred)
    return torch.stack(labels).reshape(t_len, -1, h, w)


def labels_to_onehot(ids: torch.Tensor, num_labels: int, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Label map ``(H, W)`` of ids ``0..num_labels-1`` -> one-hot ``(num_labels, h, w)`` float,
    bilinearly resized to ``size`` (the feature grid) when given (the authors resize the one-hot
    maps with bilinear interpolation)."""
    onehot = F.one_hot(ids.long().clamp(0, num_labels - 1), num_labels).permute(2, 0, 1).float()
    onehot = onehot * (ids < num_labels).unsqueeze(0)
    if size is not None and tuple(size) != tuple(ids.shape[-2:]):
        onehot = F.interpolate(onehot[None], size=size, mode="bilinear", align_corners=False)[0]
    return onehot


def upsample_labels(soft: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(T, L, h, w)`` soft labels -> ``(T, L, H, W)`` (bilinear), before the per-pixel argmax."""
    return F.interpolate(soft, size=size, mode="bilinear", align_corners=False)


def keypoint_maps(keypoints: torch.Tensor, image_size: tuple[int, int], grid: tuple[int, int],
                  sigma: float = 0.5) -> torch.Tensor:
    """One label map per joint ``(K, h, w)`` on the feature grid from joints ``(K, 2)`` (x, y
    pixels of an ``image_size`` = (H, W) frame): a Gaussian of std ``sigma`` cells around each
    joint (a one-hot cell when ``sigma`` is 0), plus nothing for joints outside the frame."""
    H, W = image_size
    h, w = grid
    kp = keypoints.float()
    cx = (kp[:, 0] + 0.5) * w / W - 0.5
    cy = (kp[:, 1] + 0.5) * h / H - 0.5
    ys = torch.arange(h, dtype=torch.float32, device=kp.device).view(1, h, 1)
    xs = torch.arange(w, dtype=torch.float32, device=kp.device).view(1, 1, w)
    d2 = (xs - cx.view(-1, 1, 1)) ** 2 + (ys - cy.view(-1, 1, 1)) ** 2
    if sigma > 0:
        maps = torch.exp(-d2 / (2 * sigma * sigma))
    else:
        maps = (d2 == d2.flatten(1).amin(1).view(-1, 1, 1)).float()
    inside = (kp[:, 0] >= 0) & (kp[:, 0] < W) & (kp[:, 1] >= 0) & (kp[:, 1] < H)
    return maps * inside.view(-1, 1, 1)


def keypoints_from_maps(maps: torch.Tensor) -> torch.Tensor:
    """``(T, K, H, W)`` joint maps -> ``(T, K, 2)`` (x, y) of each map's maximum."""
    _t, _k, _h, w = maps.shape
    idx = maps.flatten(2).argmax(-1)
    return torch.stack([idx % w, idx // w], -1).float()
