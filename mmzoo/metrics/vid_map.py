"""ImageNet VID mean average precision, computed as the ILSVRC2015 devkit does.

Rules of ``evaluation/eval_vid_detection.m`` (ILSVRC2015 devkit), reproduced here:

* every frame listed for evaluation counts; each ground-truth object of class ``c`` is a positive;
* boxes use the devkit's inclusive-pixel convention: width = x2 - x1 + 1;
* the IoU threshold of a ground-truth box of size ``w x h`` is ``min(0.5, wh / ((w+10)(h+10)))``;
* within a frame, detections are visited by descending score; each takes, among the still
  unmatched ground truths of its class that it overlaps (``iw > 0 and ih > 0``) with an IoU
  reaching *their own* threshold, the one with the largest IoU (the first on equal IoU; true
  positive), or is a false positive; duplicates are false positives;
* frames are visited in the order of the evaluation list (``ImageSets/VID/val.txt``: pass each
  frame's index in it as ``frame_ids``); per class, the detections of all frames are sorted by
  descending score with MATLAB's stable sort, so equal scores keep that frame order; precision /
  recall are cumulated and AP is the VOC area under the monotone precision envelope (``VOCap``);
* mAP is the mean over the classes that have ground truth. A class without any ground-truth
  object gets AP NaN and is left out of the mean (the devkit's recall for it is 0/0; classes
  after the last one with ground truth are not evaluated at all);
* ground-truth boxes are used exactly as given (the XML's values; no clipping, no rounding).

Besides ``map`` and the per-class ``ap``, ``compute`` returns the per-class ``recall`` (the
recall at the end of the precision-recall curve, i.e. over all detections). With
``breakdown=True`` and a ``motion_iou`` per ground-truth object (:func:`mmzoo.metrics.vid_motion.
motion_iou`), it adds the mAP of slow / medium / fast objects and of small / medium / large ones,
as FGFA evaluates them (:mod:`mmzoo.metrics.vid_motion`). Results are float64.

The metric is a ``torchmetrics.Metric`` with ``cat`` list states, DDP-correct: frames are keyed
by their evaluation-list index when given (unique across processes by construction), else by
(process rank, local counter). ``compute`` matches all frames at once, looping only over the
detection rank inside a frame, so the 176k frames of VID val take seconds.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from mmzoo.metrics.vid_motion import AREA_RANGES, MOTION_RANGES, range_ap

__all__ = ["VIDMeanAP", "voc_ap", "devkit_iou", "devkit_thresholds"]


def devkit_iou(det: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """IoU with the +1 pixel convention, broadcasting ``det[..., 4]`` against ``gt[..., 4]``;
    boxes that do not overlap (iw <= 0 or ih <= 0) get IoU 0."""
    iw = torch.minimum(det[..., 2], gt[..., 2]) - torch.maximum(det[..., 0], gt[..., 0]) + 1
    ih = torch.minimum(det[..., 3], gt[..., 3]) - torch.maximum(det[..., 1], gt[..., 1]) + 1
    inter = iw * ih
    area_d = (det[..., 2] - det[..., 0] + 1) * (det[..., 3] - det[..., 1] + 1)
    area_g = (gt[..., 2] - gt[..., 0] + 1) * (gt[..., 3] - gt[..., 1] + 1)
    iou = inter / (area_d + area_g - inter)
    return torch.where((iw > 0) & (ih > 0), iou, torch.zeros_like(iou))


def _overlap(det: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """True where the boxes intersect in the devkit's sense (``iw > 0 and ih > 0``)."""
    iw = torch.minimum(det[..., 2], gt[..., 2]) - torch.maximum(det[..., 0], gt[..., 0]) + 1
    ih = torch.minimum(det[..., 3], gt[..., 3]) - torch.maximum(det[..., 1], gt[..., 1]) + 1
    return (iw > 0) & (ih > 0)


def devkit_thresholds(gt: torch.Tensor, default: float = 0.5, tolerance: float = 10.0) -> torch.Tensor:
    """Per-box IoU threshold ``min(default, wh / ((w + tol)(h + tol)))``."""
    w = gt[:, 2] - gt[:, 0] + 1
    h = gt[:, 3] - gt[:, 1] + 1
    return torch.clamp(w * h / ((w + tolerance) * (h + tolerance)), max=default)


def _nanmean(x: torch.Tensor) -> torch.Tensor:
    valid = ~torch.isnan(x)
    return x[valid].mean() if valid.any() else torch.tensor(float("nan"), dtype=torch.float64)


def _per_frame(n_img, d_img, dl, ds, db, g_img, gl, gb, gm, thr) -> list[dict]:
    """Frames in evaluation order, detections by descending score (inputs already so sorted)."""
    d_cut = torch.searchsorted(d_img, torch.arange(n_img + 1, device=d_img.device)).tolist()
    g_cut = torch.searchsorted(g_img, torch.arange(n_img + 1, device=g_img.device)).tolist()
    return [{"det_boxes": db[d_cut[i]:d_cut[i + 1]].cpu(), "det_scores": ds[d_cut[i]:d_cut[i + 1]].cpu(),
             "det_labels": dl[d_cut[i]:d_cut[i + 1]].cpu(), "gt_boxes": gb[g_cut[i]:g_cut[i + 1]].cpu(),
             "gt_labels": gl[g_cut[i]:g_cut[i + 1]].cpu(), "gt_thr": thr[g_cut[i]:g_cut[i + 1]].cpu(),
             "gt_motion": gm[g_cut[i]:g_cut[i + 1]].cpu()} for i in range(n_img)]


def voc_ap(recall: torch.Tensor, precision: torch.Tensor) -> float:
    """VOC 2010+ AP: area under the monotonically decreasing precision envelope."""
    mrec = torch.cat([recall.new_zeros(1), recall, recall.new_ones(1)]).double()
    mpre = torch.cat([precision.new_zeros(1), precision, precision.new_zeros(1)]).double()
    mpre = torch.flip(torch.cummax(torch.flip(mpre, [0]), 0).values, [0])
    idx = torch.nonzero(mrec[1:] != mrec[:-1]).flatten() + 1
    return float(((mrec[idx] - mrec[idx - 1]) * mpre[idx]).sum())


#: Base of the automatic frame keys (no ``frame_ids`` given).
_AUTO_BASE = -(2**62)


def _rank() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return 0


class VIDMeanAP(Metric):
    """ImageNet VID mAP (per-class AP at the devkit's IoU rule, mean over classes).

    ``update(preds, targets, frame_ids=None)`` takes one entry per frame, as lists of dicts:
    ``preds[i] = {"boxes": [N,4] xyxy, "scores": [N], "labels": [N] (1..num_classes)}`` and
    ``targets[i] = {"boxes": [G,4], "labels": [G], "motion_iou": [G] (optional)}``; ``frame_ids[i]`` is the frame's index in the
    evaluation list (``>= 0``; frames are then ranked in that order, as the devkit does; without
    them, in the order of the updates). ``compute()`` returns ``{"map": mean AP over classes that
    have positives, "ap": [num_classes] (NaN for classes without positives), "recall":
    [num_classes], "num_frames": ...}``, float64.

    Args:
        num_classes: number of object classes (VID: 30); labels run 1..num_classes.
        iou_threshold: the default threshold (devkit: 0.5).
        pixel_tolerance: the small-object tolerance (devkit: 10 pixels).
        class_names: optional names used by :meth:`per_class`.
        breakdown: also report ``map/motion_{slow,medium,fast}`` and ``map/area_{small,medium,
            large}`` (needs ``motion_iou`` in every target).
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, num_classes: int = 30, iou_threshold: float = 0.5, pixel_tolerance: float = 10.0,
                 class_names: Optional[Sequence[str]] = None, breakdown: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.breakdown = breakdown
        self.num_classes = num_classes
        self.iou_threshold = iou_threshold
        self.pixel_tolerance = pixel_tolerance
        self.class_names = list(class_names) if class_names is not None else None
        for name in ("det_keys", "det_labels", "det_scores", "det_boxes", "gt_keys", "gt_labels", "gt_boxes", "gt_motion",
                     "frame_keys"):
            self.add_state(name, default=[], dist_reduce_fx="cat")
        self._counter = 0

    def update(self, preds: Sequence[dict], targets: Sequence[dict], frame_ids: Optional[Sequence[int]] = None) -> None:
        if len(preds) != len(targets):
            raise ValueError(f"VIDMeanAP.update: {len(preds)} predictions for {len(targets)} frames")
        if frame_ids is not None:
            frame_ids = [int(i) for i in frame_ids]
            if len(frame_ids) != len(preds) or min(frame_ids, default=0) < 0:
                raise ValueError("VIDMeanAP.update: frame_ids needs one index >= 0 per frame")
        rank = _rank()
        dev = self.device
        cols: dict[str, list] = {k: [] for k in ("fk", "dk", "dl", "ds", "db", "gk", "gl", "gb", "gm")}
        for i, (p, t) in enumerate(zip(preds, targets)):
            if frame_ids is not None:
                key = frame_ids[i]
            else:  # negative: never equal to an evaluation-list index; increasing in update order
                key = _AUTO_BASE + (rank << 40) + self._counter
                self._counter += 1
            pb = torch.as_tensor(p["boxes"], dtype=torch.float64, device=dev).reshape(-1, 4)
            ps = torch.as_tensor(p["scores"], dtype=torch.float64, device=dev).reshape(-1)
            pl = torch.as_tensor(p["labels"], dtype=torch.long, device=dev).reshape(-1)
            gb = torch.as_tensor(t["boxes"], dtype=torch.float64, device=dev).reshape(-1, 4)
            gl = torch.as_tensor(t["labels"], dtype=torch.long, device=dev).reshape(-1)
            if not (len(pb) == len(ps) == len(pl)) or len(gb) != len(gl):
                raise ValueError("VIDMeanAP.update: boxes, scores and labels of a frame differ in length")
            if len(gl) and (gl.min() < 1 or gl.max() > self.num_classes):
                raise ValueError(f"VIDMeanAP.update: ground-truth label outside 1..{self.num_classes}")
            cols["fk"].append(torch.tensor([key], dtype=torch.long, device=dev))
            cols["dk"].append(torch.full((len(pl),), key, dtype=torch.long, device=dev))
            cols["dl"].append(pl)
            cols["ds"].append(ps)
            cols["db"].append(pb)
            cols["gk"].append(torch.full((len(gl),), key, dtype=torch.long, device=dev))
            cols["gl"].append(gl)
            cols["gb"].append(gb)
            motion = t.get("motion_iou")
            gm = (torch.full((len(gl),), float("nan"), dtype=torch.float64, device=dev) if motion is None
                  else torch.as_tensor(motion, dtype=torch.float64, device=dev).reshape(-1))
            if len(gm) != len(gl):
                raise ValueError("VIDMeanAP.update: motion_iou needs one value per ground-truth box")
            cols["gm"].append(gm)
        if not cols["fk"]:
            return
        # one tensor per state and call (not per frame): short lists, cheap DDP gathers
        for state, col in (("frame_keys", "fk"), ("det_keys", "dk"), ("det_labels", "dl"), ("det_scores", "ds"),
                           ("det_boxes", "db"), ("gt_keys", "gk"), ("gt_labels", "gl"), ("gt_boxes", "gb"),
                           ("gt_motion", "gm")):
            getattr(self, state).append(torch.cat(cols[col]))

    def _cat(self, state, *shape, dtype):
        if isinstance(state, list) and len(state) == 0:
            return torch.zeros(0, *shape, dtype=dtype, device=self.device)
        return dim_zero_cat(state).reshape(-1, *shape) if shape else dim_zero_cat(state).reshape(-1)

    def compute(self) -> dict:
        frames = self._cat(self.frame_keys, dtype=torch.long)
        if frames.numel() == 0:
            raise ValueError("VID mAP over zero frames: the evaluation list is empty")
        dk = self._cat(self.det_keys, dtype=torch.long)
        dl = self._cat(self.det_labels, dtype=torch.long)
        ds = self._cat(self.det_scores, dtype=torch.float64)
        db = self._cat(self.det_boxes, 4, dtype=torch.float64)
        gk = self._cat(self.gt_keys, dtype=torch.long)
        gl = self._cat(self.gt_labels, dtype=torch.long)
        gb = self._cat(self.gt_boxes, 4, dtype=torch.float64)
        gm = self._cat(self.gt_motion, dtype=torch.float64)
        dev = db.device
        # frame order = sorted keys: the evaluation-list order when frame ids were given, else the
        # order of the updates (rank-major after a DDP gather)
        uniq = torch.unique(frames, sorted=True)
        if len(uniq) != len(frames):
            dup = frames.sort().values
            dup = dup[1:][dup[1:] == dup[:-1]][:5].tolist()
            raise ValueError(f"VIDMeanAP: frame id(s) {dup} were updated more than once")
        if (frames >= 0).any() and (frames < 0).any():
            raise ValueError("VIDMeanAP: give frame_ids in every update or in none")
        d_img = torch.searchsorted(uniq, dk) if len(dk) else dk
        g_img = torch.searchsorted(uniq, gk) if len(gk) else gk
        n_img = len(uniq)

        # detections grouped by frame (stable), descending score inside a frame
        o = torch.argsort(-ds, stable=True)
        o = o[torch.argsort(d_img[o], stable=True)]
        d_img, dl, ds, db = d_img[o], dl[o], ds[o], db[o]
        # rank of each detection inside its frame
        counts = torch.bincount(d_img, minlength=n_img)
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.arange(len(d_img), device=dev) - starts[d_img] if len(d_img) else d_img

        # ground truth padded per frame: [n_img, G]
        go = torch.argsort(g_img, stable=True)
        g_img, gl, gb, gm = g_img[go], gl[go], gb[go], gm[go]
        gcount = torch.bincount(g_img, minlength=n_img)
        gmax = int(gcount.max()) if len(gcount) and len(g_img) else 0
        gstart = torch.cumsum(gcount, 0) - gcount
        gslot = torch.arange(len(g_img), device=dev) - gstart[g_img] if len(g_img) else g_img
        pad_box = torch.zeros(n_img, max(gmax, 1), 4, dtype=torch.float64, device=dev)
        pad_lab = torch.zeros(n_img, max(gmax, 1), dtype=torch.long, device=dev)  # 0 = no object
        pad_thr = torch.zeros(n_img, max(gmax, 1), dtype=torch.float64, device=dev)
        if len(g_img):
            pad_box[g_img, gslot] = gb
            pad_lab[g_img, gslot] = gl
            pad_thr[g_img, gslot] = devkit_thresholds(gb, self.iou_threshold, self.pixel_tolerance)
        detected = torch.zeros(n_img, max(gmax, 1), dtype=torch.bool, device=dev)

        tp = torch.zeros(len(d_img), dtype=torch.bool, device=dev)
        max_rank = int(rank.max()) + 1 if len(rank) else 0
        for r in range(max_rank):  # greedy matching, all frames at once
            sel = torch.nonzero(rank == r).flatten()
            img = d_img[sel]
            iou = devkit_iou(db[sel][:, None, :], pad_box[img])  # S, G
            ok = (pad_lab[img] == dl[sel][:, None]) & ~detected[img] & (iou >= pad_thr[img])
            ok &= _overlap(db[sel][:, None, :], pad_box[img])
            iou = torch.where(ok, iou, torch.full_like(iou, -1.0))
            best_iou, best = iou.max(dim=1)
            hit = best_iou >= 0
            tp[sel[hit]] = True
            detected[img[hit], best[hit]] = True

        # AP per class over all frames (global stable sort by descending score)
        o = torch.argsort(-ds, stable=True)
        tp, dl = tp[o], dl[o]
        npos = torch.bincount(gl, minlength=self.num_classes + 1)
        ap = torch.full((self.num_classes,), float("nan"), dtype=torch.float64)
        recall = torch.full((self.num_classes,), float("nan"), dtype=torch.float64)
        for c in range(1, self.num_classes + 1):
            if npos[c] == 0:
                continue
            t = tp[dl == c].double()
            if len(t) == 0:
                ap[c - 1] = recall[c - 1] = 0.0
                continue
            ctp = torch.cumsum(t, 0)
            cfp = torch.cumsum(1 - t, 0)
            ap[c - 1] = voc_ap((ctp / npos[c]).cpu(), (ctp / (ctp + cfp)).cpu())
            recall[c - 1] = float(ctp[-1] / npos[c])
        out = {"map": _nanmean(ap), "ap": ap, "recall": recall, "num_frames": torch.tensor(n_img)}
        if self.breakdown:
            if torch.isnan(gm).any():
                raise ValueError("VIDMeanAP(breakdown=True): every target needs 'motion_iou' (one per box)")
            frames = _per_frame(n_img, d_img, dl, ds, db, g_img, gl, gb, gm,
                                devkit_thresholds(gb, self.iou_threshold, self.pixel_tolerance))
            for name in ("slow", "medium", "fast"):
                out[f"map/motion_{name}"] = _nanmean(range_ap(frames, self.num_classes, MOTION_RANGES[name], AREA_RANGES["all"], voc_ap))
            for name in ("small", "medium", "large"):
                out[f"map/area_{name}"] = _nanmean(range_ap(frames, self.num_classes, MOTION_RANGES["all"], AREA_RANGES[name], voc_ap))
        return out

    def per_class(self, result: Optional[dict] = None) -> dict:
        """{class name: AP} for a result of :meth:`compute`."""
        result = result or self.compute()
        names = self.class_names or [str(i) for i in range(1, self.num_classes + 1)]
        return {n: float(a) for n, a in zip(names, result["ap"])}

