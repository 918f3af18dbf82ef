"""DAVIS-2017 semi-supervised region similarity J and contour accuracy F, as the official
``davis2017-evaluation`` code computes them (``davis2017/metrics.py``, ``evaluation.py``).

- Masks: object k of a sequence is ``annotation == k`` for k = 1 .. max id of the *first* frame;
  void pixels (255) count as background (the official reader sets them to 0).
- Frames: the first and the last frame of each sequence are left out (semi-supervised task).
- J: ``|pred & gt| / |pred | gt|`` per frame, 1 when both are empty.
- F: boundary F-measure; boundaries from ``_seg2bmap`` (a pixel differs from its right, lower or
  lower-right neighbour), each dilated by a disk of radius ``ceil(0.008 * image diagonal)``;
  precision/recall conventions for empty boundaries as the official ``f_measure``.
- Per object (``davis2017/utils.py: db_statistics``): mean over frames (M), the share of frames
  above 0.5 (recall, O) and the decay (D): the frames are cut into 4 bins at
  ``round(linspace(1, n, 5) + 1e-10) - 1`` (cast to uint8 as the official code does, so sequences
  over 256 evaluated frames wrap as there) with each bin's end frame included, and D is the first
  bin's mean minus the last bin's. The dataset figures average the per-object values over every
  object of every sequence.
"""
from __future__ import annotations

import math

import cv2
import numpy as np
import torch
from torchmetrics import Metric

__all__ = ["DavisJF", "boundary_f", "decay", "disk", "jaccard", "seg2bmap"]


def jaccard(gt: np.ndarray, pred: np.ndarray) -> float:
    """Region similarity of two binary masks (1.0 when their union is empty)."""
    gt, pred = gt.astype(bool), pred.astype(bool)
    union = np.logical_or(gt, pred).sum()
    if np.isclose(union, 0):
        return 1.0
    return float(np.logical_and(gt, pred).sum() / union)


def seg2bmap(seg: np.ndarray) -> np.ndarray:
    """One-pixel boundary map of a binary mask, offset half a pixel towards the origin."""
    seg = seg.astype(bool)
    e = np.zeros_like(seg)
    s = np.zeros_like(seg)
    se = np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = (seg ^ e) | (seg ^ s) | (seg ^ se)
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = False
    return b


def disk(radius: int) -> np.ndarray:
    """Disk structuring element ``x^2 + y^2 <= r^2`` on a ``(2r+1)^2`` grid (skimage's ``disk``)."""
    r = int(radius)
    y, x = np.mgrid[-r : r + 1, -r : r + 1]
    return ((x * x + y * y) <= r * r).astype(np.uint8)


def boundary_f(gt: np.ndarray, pred: np.ndarray, bound_th: float = 0.008) -> float:
    """Contour accuracy of two binary masks (the official ``f_measure``)."""
    bound_pix = bound_th if bound_th >= 1 else math.ceil(bound_th * math.hypot(*pred.shape))
    fg = seg2bmap(pred)
    gtb = seg2bmap(gt)
    kernel = disk(bound_pix)
    fg_dil = cv2.dilate(fg.astype(np.uint8), kernel)
    gt_dil = cv2.dilate(gtb.astype(np.uint8), kernel)
    n_fg, n_gt = fg.sum(), gtb.sum()
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1.0, 0.0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0.0, 1.0
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1.0, 1.0
    else:
        precision = float((fg * gt_dil).sum() / n_fg)
        recall = float((gtb * fg_dil).sum() / n_gt)
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


_STATES = ("j_mean", "f_mean", "j_recall", "f_recall", "j_decay", "f_decay")


def decay(per_frame: np.ndarray) -> float:
    """Decay of one object's per-frame values: the mean of the first of 4 bins minus the last's."""
    n = len(per_frame)
    ids = (np.round(np.linspace(1, n, 5) + 1e-10) - 1).astype(np.uint8)
    bins = [per_frame[ids[i] : ids[i + 1] + 1] for i in range(4)]
    return float(np.nanmean(bins[0]) - np.nanmean(bins[3]))


class DavisJF(Metric):
    """J and F means (and recalls) over all objects, in percent by default.

    ``update(pred, gt, sequence=None)`` takes one whole sequence: ``pred`` and ``gt`` are
    ``(T, H, W)`` integer label maps (0 background, k = object k; 255 in ``gt`` = void).
    ``compute()`` returns ``J_mean``, ``F_mean``, ``JF_mean`` (their average, DAVIS' "J&F"),
    ``J_recall``, ``F_recall``, ``J_decay``, ``F_decay``. Per-object values are concatenated states (exact under DDP);
    ``per_sequence`` (this process only) maps each sequence name to its objects' (J, F) means.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, percent: bool = True, bound_th: float = 0.008, **kwargs) -> None:
        super().__init__(**kwargs)
        self.percent = percent
        self.bound_th = bound_th
        for name in _STATES:
            self.add_state(name, default=[], dist_reduce_fx="cat")
        self.per_sequence: dict[str, list[tuple[float, float]]] = {}

    def update(self, pred: torch.Tensor | np.ndarray, gt: torch.Tensor | np.ndarray,
               sequence: str | None = None) -> None:
        pred = pred.cpu().numpy() if isinstance(pred, torch.Tensor) else np.asarray(pred)
        gt = gt.cpu().numpy() if isinstance(gt, torch.Tensor) else np.asarray(gt)
        if pred.shape != gt.shape or gt.ndim != 3:
            raise ValueError(f"DavisJF: pred {pred.shape} and gt {gt.shape} must both be (T, H, W)")
        gt = np.where(gt == 255, 0, gt)
        num_objects = int(gt[0].max())
        if pred.max() > num_objects:
            raise ValueError(f"DavisJF{'' if sequence is None else ' (' + sequence + ')'}: prediction id "
                             f"{int(pred.max())} above the {num_objects} objects of the first frame")
        frames = range(1, gt.shape[0] - 1)
        rows = []
        for k in range(1, num_objects + 1):
            js = np.array([jaccard(gt[t] == k, pred[t] == k) for t in frames], dtype=np.float64)
            fs = np.array([boundary_f(gt[t] == k, pred[t] == k, self.bound_th) for t in frames], dtype=np.float64)
            if js.size == 0:
                continue
            stats = [js.mean(), fs.mean(), (js > 0.5).mean(), (fs > 0.5).mean(), decay(js), decay(fs)]
            for name, v in zip(_STATES, stats):
                getattr(self, name).append(torch.tensor([v], dtype=torch.float64, device=self.device))
            rows.append((float(stats[0]), float(stats[1])))
        if sequence is not None:
            self.per_sequence[sequence] = rows

    def compute(self) -> dict[str, torch.Tensor]:
        def cat(x):
            if isinstance(x, torch.Tensor):
                return x.reshape(-1)
            return torch.cat(x) if x else torch.zeros(0, dtype=torch.float64)

        j, f = cat(self.j_mean), cat(self.f_mean)
        if j.numel() == 0:
            raise ValueError("DavisJF over zero objects: no sequence with an object in its first frame was seen")
        scale = 100.0 if self.percent else 1.0
        out = {"J_mean": j.mean(), "F_mean": f.mean(), "J_recall": cat(self.j_recall).mean(),
               "F_recall": cat(self.f_recall).mean(), "J_decay": cat(self.j_decay).mean(),
               "F_decay": cat(self.f_decay).mean()}
        out["JF_mean"] = (out["J_mean"] + out["F_mean"]) / 2
        return {k: (v * scale).float() for k, v in out.items()}

    def reset(self) -> None:
        super().reset()
        self.per_sequence = {}
