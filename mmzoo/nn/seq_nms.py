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

The IoUs (links between adjacent frames, overlaps inside a frame) are computed for the whole
snippet with batched tensor ops; the dynamic programme then runs over the sparse link lists
(each box links to a few boxes of the next frame) and, after each extracted sequence, is only
recomputed where it can change (from the sequence's first frame until a row comes out
unchanged).
"""
from __future__ import annotations

from typing import Literal, Sequence

import torch
__all__ = ["seq_nms", "seq_nms_class", "batched_box_iou"]


def batched_box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of ``a`` [T, N, 4] against ``b`` [T, M, 4] per leading index -> [T, N, M]."""
    area_a = (a[..., 2] - a[..., 0]).clamp(min=0) * (a[..., 3] - a[..., 1]).clamp(min=0)
    area_b = (b[..., 2] - b[..., 0]).clamp(min=0) * (b[..., 3] - b[..., 1]).clamp(min=0)
    lt = torch.maximum(a[:, :, None, :2], b[:, None, :, :2])
    rb = torch.minimum(a[:, :, None, 2:], b[:, None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, :, None] + area_b[:, None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))


def seq_nms_class(
    boxes: torch.Tensor, scores: torch.Tensor, valid: torch.Tensor, link_iou: float = 0.5,
    nms_iou: float = 0.3, rescore: Literal["avg", "max"] = "avg",
) -> torch.Tensor:
    """Seq-NMS of one class on padded inputs.

    Args:
        boxes: [T, N, 4] xyxy; scores: [T, N]; valid: [T, N] bool (padding is False).
    Returns:
        [T, N] new scores; boxes that were suppressed (or padding) get -1.

    The IoUs of all adjacent-frame pairs and of all same-frame pairs come from two batched
    tensor ops; the links are then sparse (a box links to a few boxes of the next frame), so the
    dynamic programme walks predecessor lists. After a sequence is taken, the table is
    recomputed only from the sequence's first frame, and stops as soon as a row past the
    sequence comes out unchanged (nothing further downstream can change).
    """
    t_len, n = scores.shape
    out = torch.full_like(scores, -1.0)
    if t_len == 0 or n == 0:
        return out
    neg = float("-inf")
    s = scores.tolist()
    alive = valid.tolist()
    n_alive = int(valid.sum())
    preds: list[list[list[int]]] = [[[] for _ in range(n)] for _ in range(t_len)]
    if t_len > 1:
        links = (batched_box_iou(boxes[:-1], boxes[1:]) > link_iou) & valid[:-1, :, None] & valid[1:, None, :]
        for t, i, j in torch.nonzero(links).tolist():
            preds[t + 1][j].append(i)
    same = (batched_box_iou(boxes, boxes) > nms_iou) & valid[:, :, None] & valid[:, None, :]
    overlaps: list[list[list[int]]] = [[[] for _ in range(n)] for _ in range(t_len)]
    for t, j, k in torch.nonzero(same).tolist():
        overlaps[t][j].append(k)
    best = [[neg] * n for _ in range(t_len)]
    back = [[-1] * n for _ in range(t_len)]
    rowmax = [neg] * t_len

    def run(t0: int, t_stop: int) -> None:
        for t in range(t0, t_len):
            row, brow = [neg] * n, [-1] * n
            at, st, pt = alive[t], s[t], preds[t]
            prev = best[t - 1] if t > 0 else None
            prev_alive = alive[t - 1] if t > 0 else None
            for j in range(n):
                if not at[j]:
                    continue
                b, bi = neg, -1
                if prev is not None:
                    for i in pt[j]:
                        if prev_alive[i] and prev[i] > b:
                            b, bi = prev[i], i
                if b > 0:
                    row[j], brow[j] = st[j] + b, bi
                else:
                    row[j] = st[j]
            if t > t_stop and row == best[t] and brow == back[t]:
                return
            best[t], back[t], rowmax[t] = row, brow, max(row)

    run(0, t_len)
    result = [[-1.0] * n for _ in range(t_len)]
    while n_alive > 0:
        top = max(rowmax)
        t = rowmax.index(top)
        j = best[t].index(top)
        seq = []
        while j >= 0:
            seq.append((t, j))
            j = back[t][j]
            t -= 1
        vals = [s[t][j] for t, j in seq]
        new = sum(vals) / len(vals) if rescore == "avg" else max(vals)
        for t, j in seq:
            result[t][j] = new
            for k in [j] + overlaps[t][j]:
                if alive[t][k]:
                    alive[t][k] = False
                    n_alive -= 1
        run(seq[-1][0], seq[0][0])
    return torch.tensor(result, dtype=scores.dtype, device=scores.device)


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
