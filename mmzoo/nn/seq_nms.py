"""Seq-NMS (Han et al., 2016): temporal linking and rescoring of per-frame detections.

The thesis (Sec. 3.4) links STMN detections over a snippet with Seq-NMS; its parameters are
[SILENT] (the authors used D&T's MATLAB dynamic programming). For each class independently:

1. boxes in adjacent frames are linked when their IoU exceeds ``link_iou``;
2. dynamic programming finds the linked sequence with the largest summed score
   (``best[t, j] = s[t, j] + max(0, max_{i linked to j} best[t-1, i])``);
3. its boxes are rescored with the mean (or max) score of the sequence;
4. in each frame of the sequence, the remaining boxes with IoU > ``nms_iou`` with the sequence
   box are suppressed;
5. repeat on what is left until no box remains.

The dynamic programme is vectorised over boxes (a padded ``[T, N]`` score table, ``[T-1, N, N]``
link masks); only the time loop and the sequence loop are Python.
"""
from __future__ import annotations

from typing import Literal, Sequence

import torch
from torchvision.ops import box_iou

__all__ = ["seq_nms", "seq_nms_class"]


def seq_nms_class(
    boxes: torch.Tensor, scores: torch.Tensor, valid: torch.Tensor, link_iou: float = 0.5,
    nms_iou: float = 0.3, rescore: Literal["avg", "max"] = "avg",
) -> torch.Tensor:
    """Seq-NMS of one class on padded inputs.

    Args:
        boxes: [T, N, 4] xyxy; scores: [T, N]; valid: [T, N] bool (padding is False).
    Returns:
        [T, N] new scores; boxes that were suppressed (or padding) get -1.
    """
    t_len, n = scores.shape
    out = torch.full_like(scores, -1.0)
    if t_len == 0 or n == 0:
        return out
    alive = valid.clone()
    if t_len > 1:
        links = torch.stack([box_iou(boxes[t], boxes[t + 1]) for t in range(t_len - 1)]) > link_iou  # T-1, N, N
    iou_same = torch.stack([box_iou(boxes[t], boxes[t]) for t in range(t_len)])  # T, N, N
    neg = torch.finfo(scores.dtype).min
    while bool(alive.any()):
        best = torch.where(alive, scores, torch.full_like(scores, neg))
        back = torch.full((t_len, n), -1, dtype=torch.long, device=scores.device)
        for t in range(1, t_len):
            ok = links[t - 1] & alive[t - 1][:, None] & alive[t][None, :]  # prev i -> cur j
            cand = torch.where(ok, best[t - 1][:, None].expand(n, n), torch.full((n, n), neg, dtype=scores.dtype, device=scores.device))
            prev_best, prev_idx = cand.max(dim=0)
            extend = alive[t] & (prev_best > 0)
            best[t] = torch.where(extend, best[t] + prev_best, best[t])
            back[t] = torch.where(extend, prev_idx, back[t])
        flat = int(torch.argmax(best))
        t, j = divmod(flat, n)
        seq = []
        while j >= 0:
            seq.append((t, j))
            j = int(back[t, j])
            t -= 1
        ts = torch.tensor([s[0] for s in seq], device=scores.device)
        js = torch.tensor([s[1] for s in seq], device=scores.device)
        seq_scores = scores[ts, js]
        new = seq_scores.mean() if rescore == "avg" else seq_scores.max()
        out[ts, js] = new
        # suppress overlapping boxes (and the sequence boxes themselves) in the sequence's frames
        kill = iou_same[ts, js] > nms_iou  # len, N
        kill[torch.arange(len(js)), js] = True
        alive[ts] = alive[ts] & ~kill
    return out


def seq_nms(
    frames: Sequence[dict], num_classes: int, link_iou: float = 0.5, nms_iou: float = 0.3,
    rescore: Literal["avg", "max"] = "avg", score_threshold: float = 0.0, top_k: int = 0,
) -> list[dict]:
    """Seq-NMS over a snippet of per-frame detections ``{"boxes", "scores", "labels"}``.

    ``score_threshold`` drops weak boxes first and ``top_k`` (>0) keeps the top boxes of each
    class and frame, both to bound the N of the dynamic programme. Returns one dict per frame
    with the surviving boxes and their rescored scores.
    """
    outs = []
    t_len = len(frames)
    per_class = [[] for _ in range(num_classes + 1)]
    for c in range(1, num_classes + 1):
        for f in frames:
            m = (f["labels"] == c) & (f["scores"] > score_threshold)
            b, s = f["boxes"][m], f["scores"][m]
            if top_k > 0 and len(s) > top_k:
                keep = torch.topk(s, top_k).indices
                b, s = b[keep], s[keep]
            per_class[c].append((b, s))
    result = [{"boxes": [], "scores": [], "labels": []} for _ in range(t_len)]
    for c in range(1, num_classes + 1):
        n = max((len(s) for _, s in per_class[c]), default=0)
        if n == 0:
            continue
        ref = frames[0]["boxes"]
        boxes = torch.zeros(t_len, n, 4, dtype=ref.dtype, device=ref.device)
        scores = torch.zeros(t_len, n, dtype=ref.dtype, device=ref.device)
        valid = torch.zeros(t_len, n, dtype=torch.bool, device=ref.device)
        for t, (b, s) in enumerate(per_class[c]):
            boxes[t, : len(s)] = b
            scores[t, : len(s)] = s
            valid[t, : len(s)] = True
        new = seq_nms_class(boxes, scores, valid, link_iou, nms_iou, rescore)
        for t in range(t_len):
            keep = new[t] >= 0
            if keep.any():
                result[t]["boxes"].append(boxes[t][keep])
                result[t]["scores"].append(new[t][keep])
                result[t]["labels"].append(torch.full((int(keep.sum()),), c, dtype=torch.long, device=ref.device))
    for t in range(t_len):
        r = result[t]
        dev = frames[t]["boxes"].device
        if r["boxes"]:
            outs.append({k: torch.cat(v) for k, v in r.items()})
        else:
            outs.append({"boxes": torch.zeros(0, 4, device=dev), "scores": torch.zeros(0, device=dev),
                         "labels": torch.zeros(0, dtype=torch.long, device=dev)})
    return outs
