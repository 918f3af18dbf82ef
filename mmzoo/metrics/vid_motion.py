"""ImageNet VID AP by object speed and size, as Flow-Guided Feature Aggregation (FGFA, Zhu et al.,
ICCV 2017) reports it, and the motion IoU it is based on.

Motion IoU of a ground-truth object: the mean IoU of its box with the boxes of the same track in
the frames within +-10 frames of it (``motion_iou``); an object with no such neighbour gets 0
(FGFA's released per-object table stores those as empty and reads them as 0). Objects are
*slow* above 0.9, *medium* in [0.7, 0.9] and *fast* below 0.7; by area (pixels, +1 convention)
*small* below 50^2, *medium* in [50^2, 150^2], *large* above 150^2.

AP for one (motion range, area range), following FGFA's ``vid_eval_motion``: every ground truth
still takes part in the devkit's greedy matching (same class, IoU >= its own threshold, best IoU
first); ground truths outside the ranges are *ignored*: they are not positives, and a detection
matched to one is neither a true nor a false positive. An unmatched detection whose own area is
outside the area range is ignored; otherwise it is a false positive with weight 1 when it overlaps
an in-range object more than an out-of-range one, 0 in the opposite case, and on a tie the share
of out-of-range objects in its frame (the share over the whole set for a frame without objects).
"""
from __future__ import annotations

from typing import Sequence

import torch

__all__ = ["MOTION_RANGES", "AREA_RANGES", "motion_iou", "range_ap"]

MOTION_RANGES: dict[str, tuple[float, float]] = {"all": (0.0, 1.0), "fast": (0.0, 0.7), "medium": (0.7, 0.9),
                                                 "slow": (0.9, 1.0)}
AREA_RANGES: dict[str, tuple[float, float]] = {"all": (0.0, 1e10), "small": (0.0, 50.0**2),
                                               "medium": (50.0**2, 150.0**2), "large": (150.0**2, 1e10)}


def _iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Devkit IoU (+1 pixels) of boxes ``a[..., 4]`` and ``b[..., 4]``; 0 without overlap."""
    iw = torch.minimum(a[..., 2], b[..., 2]) - torch.maximum(a[..., 0], b[..., 0]) + 1
    ih = torch.minimum(a[..., 3], b[..., 3]) - torch.maximum(a[..., 1], b[..., 1]) + 1
    inter = iw * ih
    union = (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1) + (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1) - inter
    return torch.where((iw > 0) & (ih > 0), inter / union, torch.zeros_like(inter))


def motion_iou(frame_numbers: Sequence[int], track_ids: Sequence[int], boxes: torch.Tensor, window: int = 10) -> torch.Tensor:
    """Motion IoU of every object of one snippet.

    Args:
        frame_numbers / track_ids: per object (one row per object per frame), its frame number in
            the snippet and its ``trackid``.
        boxes: ``(N, 4)`` xyxy boxes of those objects.
        window: neighbours within ``+-window`` frames (FGFA: 10).
    """
    boxes = torch.as_tensor(boxes, dtype=torch.float64).reshape(-1, 4)
    f = torch.as_tensor(list(frame_numbers), dtype=torch.long)
    t = torch.as_tensor(list(track_ids), dtype=torch.long)
    if not (len(f) == len(t) == len(boxes)):
        raise ValueError("motion_iou: frame_numbers, track_ids and boxes differ in length")
    same = (t[:, None] == t[None, :]) & ((f[:, None] - f[None, :]).abs() <= window) & (f[:, None] != f[None, :])
    iou = _iou(boxes[:, None, :], boxes[None, :, :])
    n = same.sum(1)
    return torch.where(n > 0, (iou * same).sum(1) / n.clamp_min(1), torch.zeros(len(f), dtype=torch.float64))


def _area(b: torch.Tensor) -> torch.Tensor:
    return (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)


def range_ap(frames: Sequence[dict], num_classes: int, motion_range: tuple[float, float], area_range: tuple[float, float],
             voc_ap) -> torch.Tensor:
    """Per-class AP (NaN where no in-range positive) for one motion / area range.

    ``frames``, in evaluation order, each ``{"det_boxes" (N,4), "det_scores" (N,), "det_labels"
    (N,)}`` sorted by descending score, and ``{"gt_boxes" (G,4), "gt_labels" (G,), "gt_thr" (G,),
    "gt_motion" (G,)}``; ``voc_ap(recall, precision)`` is the devkit's area under the curve.
    """
    m_lo, m_hi = motion_range
    a_lo, a_hi = area_range
    all_motion = torch.cat([fr["gt_motion"] for fr in frames]) if frames else torch.zeros(0)
    empty_weight = float(((all_motion >= m_lo) & (all_motion <= m_hi)).double().mean()) if len(all_motion) else 0.0
    npos = torch.zeros(num_classes + 1, dtype=torch.float64)
    tps, fps, labels, scores = [], [], [], []
    for fr in frames:
        gb, gl, thr, mot = fr["gt_boxes"], fr["gt_labels"], fr["gt_thr"], fr["gt_motion"]
        db, dl = fr["det_boxes"], fr["det_labels"]
        ig_motion = (mot < m_lo) | (mot > m_hi)
        ig = ig_motion | (_area(gb) < a_lo) | (_area(gb) > a_hi)
        npos += torch.bincount(gl[~ig], minlength=num_classes + 1).double()
        detected = torch.zeros(len(gl), dtype=torch.bool)
        tp = torch.zeros(len(dl), dtype=torch.float64)
        fp = torch.zeros(len(dl), dtype=torch.float64)
        ov_all = _iou(db[:, None, :], gb[None, :, :]) if len(gl) else torch.zeros(len(dl), 0, dtype=torch.float64)
        for j in range(len(dl)):
            ov = ov_all[j]
            ok = (ov >= thr) & ~detected & (gl == dl[j])
            if ok.any():
                k = int(torch.where(ok, ov, torch.full_like(ov, -1.0)).argmax())
                detected[k] = True
                tp[j] = 0.0 if ig[k] else 1.0
                continue
            d_area = float(_area(db[j]))
            if d_area < a_lo or d_area > a_hi:
                continue
            ov_ig = float(ov[ig_motion].max()) if ig_motion.any() else -1.0
            ov_nig = float(ov[~ig_motion].max()) if (~ig_motion).any() else -1.0
            if ov_nig > ov_ig:
                fp[j] = 1.0
            elif ov_ig > ov_nig:
                fp[j] = 0.0
            elif len(gl) == 0:
                fp[j] = empty_weight
            else:
                fp[j] = float(ig_motion.double().mean())
        tps.append(tp), fps.append(fp), labels.append(dl), scores.append(fr["det_scores"])
    ap = torch.full((num_classes,), float("nan"), dtype=torch.float64)
    if not tps:
        return ap
    tp, fp, lab, sc = torch.cat(tps), torch.cat(fps), torch.cat(labels), torch.cat(scores)
    order = torch.argsort(-sc, stable=True)
    tp, fp, lab = tp[order], fp[order], lab[order]
    for c in range(1, num_classes + 1):
        if npos[c] <= 0:
            continue
        ctp, cfp = torch.cumsum(tp[lab == c], 0), torch.cumsum(fp[lab == c], 0)
        if len(ctp) == 0:
            ap[c - 1] = 0.0
            continue
        prec = ctp / torch.clamp(ctp + cfp, min=torch.finfo(torch.float64).eps)
        ap[c - 1] = voc_ap(ctp / npos[c], prec)
    return ap
