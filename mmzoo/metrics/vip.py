"""VIP (video instance-level human parsing) part-segmentation mIoU (thesis Table 2.3).

As the VIP evaluation of the TimeCycle lineage (``eval_vip.py``, published with UVC, which
credits TimeCycle) computes it: one 20 x 20 confusion histogram over every evaluated pixel of
every frame (ground-truth ids outside 0..19 are ignored), ``IoU_c = hist[c, c] / (gt_c + pred_c -
hist[c, c])`` and the NaN-ignoring mean over the 20 classes (background included).

:class:`InstancePartAP` is the instance-level AP^r_vol of the VIP / CIHP release's evaluation
(``test_inst_part_ap.py``); its docstring gives the exact definition.
"""
from __future__ import annotations

import numpy as np
import torch
from torchmetrics import Metric

__all__ = ["APR_THRESHOLDS", "VIP_CLASSES", "InstancePartAP", "PartMeanIoU"]

#: The 20 VIP part categories (id = index), those of CIHP (the release's label order).
VIP_CLASSES = ("background", "hat", "hair", "glove", "sunglasses", "upper-clothes", "dress", "coat", "socks", "pants",
               "torso-skin", "scarf", "skirt", "face", "left-arm", "right-arm", "left-leg", "right-leg", "left-shoe",
               "right-shoe")


class PartMeanIoU(Metric):
    """``update(pred, target)`` with integer part maps of equal shape; ``compute()`` ->
    ``{"mIoU": ..., "pixel_acc": ...}`` in percent. The histogram is a sum state (exact under DDP)."""

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, num_classes: int = len(VIP_CLASSES), percent: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.percent = percent
        self.add_state("hist", default=torch.zeros(num_classes, num_classes, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        if pred.shape != target.shape:
            raise ValueError(f"PartMeanIoU: pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
        n = self.num_classes
        t = target.reshape(-1).long().to(self.hist.device)
        p = pred.reshape(-1).long().to(self.hist.device)
        keep = (t >= 0) & (t < n)
        if (p[keep] < 0).any() or (p[keep] >= n).any():
            raise ValueError(f"PartMeanIoU: predicted ids must lie in 0..{n - 1}")
        self.hist += torch.bincount(n * t[keep] + p[keep], minlength=n * n).reshape(n, n)

    def compute(self) -> dict[str, torch.Tensor]:
        hist = self.hist.double().cpu().numpy()
        if hist.sum() == 0:
            raise ValueError("PartMeanIoU over zero pixels: the evaluation set is empty")
        diag = np.diag(hist)
        with np.errstate(divide="ignore", invalid="ignore"):
            iu = diag / (hist.sum(1) + hist.sum(0) - diag)
        scale = 100.0 if self.percent else 1.0
        return {"mIoU": torch.tensor(float(np.nanmean(iu)) * scale),
                "pixel_acc": torch.tensor(float(diag.sum() / hist.sum()) * scale)}


#: IoU thresholds of AP^r_vol (the official instance-part AP script and the thesis: 0.1, 0.2, ..., 0.9).
APR_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def _as_int_map(x, what: str) -> torch.Tensor:
    x = torch.as_tensor(x)
    if x.dim() != 2 or x.is_floating_point():
        raise ValueError(f"InstancePartAP: {what} must be an (H, W) integer id map, got {x.dtype} {tuple(x.shape)}")
    return x.long().cpu()


def _voc_area(tp: np.ndarray, n_gt: int) -> float:
    """Area under the monotone precision envelope (VOC 2010+, not 11-point), with the sentinels
    (0, 0) in front and (recall 1, precision 0) at the end, as the official script. ``n_gt = 0`` with
    predictions gives 0/0 = NaN recall and a NaN AP there, exactly like the script."""
    ctp = np.cumsum(tp, dtype=np.float64)
    cfp = np.cumsum(1.0 - tp, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        rec = ctp / float(n_gt)
    prec = ctp / np.maximum(ctp + cfp, np.finfo(np.float64).eps)
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    step = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[step + 1] - mrec[step]) * mpre[step + 1]))


class InstancePartAP(Metric):
    """AP^r_vol of instance-level human parsing on VIP (thesis Table 2.3), as the official
    ``test_inst_part_ap.py`` (HCPLab-SYSU/ATEN ``evaluate/``, the same script as CIHP_PGN's) computes it.

    "vol" is the mean over the IoU thresholds 0.1..0.9 (the AP^r_vol of SDS / Holistic human
    parsing), not a video volume: every evaluated frame is scored on its own, all frames pooled.

    ``update(pred, pred_classes, pred_scores, gt, gt_ids, gt_classes, frame_key=None)`` per frame:

    * ``pred`` ``(H, W)``: 0 background, ``k`` = the k-th predicted instance part (1-based), whose
      part class is ``pred_classes[k-1]`` and confidence ``pred_scores[k-1]`` (the submission's
      indexed PNG + ``<class_id score>`` lines). Map ids without an entry are ignored, as by the script.
    * ``gt`` ``(H, W)``: the ``Instance_ids`` map; ``gt_ids`` / ``gt_classes``: the frame's ``.txt``
      (instance id -> part class). Ids absent from the map, or from the table, are not instances.

    Per part class c in 1..C-1 (background excluded) and frame: each predicted instance of class c
    takes its largest IoU with the frame's ground-truth instances of class c (0 when there are
    none); it is a true positive at threshold t when that IoU is **strictly greater** than t, else
    a false positive. There is **no one-to-one assignment**: two predictions on one ground-truth
    instance both count as true positives (recall, and AP, can then exceed 1). Predictions of a
    class are ranked over all frames by descending score; ``AP_c(t)`` is the VOC area above. The
    result is ``APr@t`` = mean over the C-1 classes (a class with neither ground truth nor
    predictions scores 0 and stays in the mean; one with predictions but no ground truth is NaN and
    makes the mean NaN, as in the script) and ``APr_vol`` = mean over the thresholds.

    Ties: the script ranks with ``np.argsort(scores)[::-1]`` in ``os.listdir`` frame order; numpy's
    default sort kind is not stable (numpy 2.x reorders equal scores even in short arrays), so its
    tie order depends on the machine. This class uses the stable kind on records ordered by
    (``frame_key``, prediction index): among equal scores the later record ranks first, which is the
    script's result under a stable sort. Pass ``frame_key`` (default: the update counter) for an
    order that does not depend on the DDP rank layout.

    A listed prediction whose mask is empty is an error: the script would then pair scores with
    the wrong masks. States are concatenated records (class, score, max IoU, frame key, index) and
    a per-class ground-truth count, exact under DDP.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, num_classes: int = len(VIP_CLASSES), thresholds: tuple[float, ...] = APR_THRESHOLDS,
                 percent: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_classes, self.thresholds, self.percent = num_classes, tuple(float(t) for t in thresholds), percent
        for name in ("rec_class", "rec_key", "rec_index"):
            self.add_state(name, default=[], dist_reduce_fx="cat")
        for name in ("rec_score", "rec_iou"):
            self.add_state(name, default=[], dist_reduce_fx="cat")
        self.add_state("gt_count", default=torch.zeros(num_classes, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("frames", default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self._counter = 0

    def update(self, pred, pred_classes, pred_scores, gt, gt_ids, gt_classes, frame_key: int | None = None) -> None:
        pred, gt = _as_int_map(pred, "pred"), _as_int_map(gt, "gt")
        if pred.shape != gt.shape:
            raise ValueError(f"InstancePartAP: pred {tuple(pred.shape)} and gt {tuple(gt.shape)} differ")
        pc = torch.as_tensor(pred_classes).reshape(-1).long().cpu()
        ps = torch.as_tensor(pred_scores).reshape(-1).double().cpu()
        gi = torch.as_tensor(gt_ids).reshape(-1).long().cpu()
        gc = torch.as_tensor(gt_classes).reshape(-1).long().cpu()
        if pc.numel() != ps.numel() or gi.numel() != gc.numel():
            raise ValueError("InstancePartAP: pred_classes / pred_scores (and gt_ids / gt_classes) must have equal lengths")
        key = self._counter if frame_key is None else int(frame_key)
        self._counter += 1
        self.frames += 1
        n = self.num_classes
        # areas of the predicted ids 1..N, of the ground-truth ids present, and their intersections
        n_pred = pc.numel()
        pflat = pred.reshape(-1)
        pflat = torch.where((pflat > 0) & (pflat <= n_pred), pflat, torch.zeros_like(pflat))
        gvals, gflat = torch.unique(gt.reshape(-1), return_inverse=True)
        m = gvals.numel()
        joint = torch.bincount(pflat * m + gflat, minlength=(n_pred + 1) * m).reshape(n_pred + 1, m)
        parea, garea = joint.sum(1), joint.sum(0)
        col = {int(v): j for j, v in enumerate(gvals.tolist()) if v != 0}
        gt_of: dict[int, set[int]] = {}
        for i, c in zip(gi.tolist(), gc.tolist()):
            if i in col and 1 <= c < n:
                gt_of.setdefault(c, set()).add(col[i])
        for c, cols in gt_of.items():
            self.gt_count[c] += len(cols)
        classes, scores, ious, index = [], [], [], []
        for k in range(n_pred):
            c = int(pc[k])
            if not 1 <= c < n:
                continue
            if parea[k + 1] == 0:
                raise ValueError(f"InstancePartAP: prediction {k + 1} (class {c}) has an empty mask in its map; "
                                 "drop it from pred_classes / pred_scores (the official script would misalign scores)")
            best = 0.0
            for j in sorted(gt_of.get(c, ())):
                inter = int(joint[k + 1, j])
                best = max(best, inter / (int(parea[k + 1]) + int(garea[j]) - inter))
            classes.append(c), scores.append(float(ps[k])), ious.append(best), index.append(k)
        if classes:
            self.rec_class.append(torch.tensor(classes, dtype=torch.long, device=self.gt_count.device))
            self.rec_score.append(torch.tensor(scores, dtype=torch.float64, device=self.gt_count.device))
            self.rec_iou.append(torch.tensor(ious, dtype=torch.float64, device=self.gt_count.device))
            self.rec_key.append(torch.full((len(classes),), key, dtype=torch.long, device=self.gt_count.device))
            self.rec_index.append(torch.tensor(index, dtype=torch.long, device=self.gt_count.device))

    def _records(self) -> tuple[np.ndarray, ...]:
        def cat(x, dtype):
            if isinstance(x, torch.Tensor):
                return x.cpu().numpy()
            return torch.cat(x).cpu().numpy() if x else np.zeros(0, dtype=dtype)

        return (cat(self.rec_class, np.int64), cat(self.rec_score, np.float64), cat(self.rec_iou, np.float64),
                cat(self.rec_key, np.int64), cat(self.rec_index, np.int64))

    def class_ap(self) -> torch.Tensor:
        """``(C-1, len(thresholds))`` AP per part class 1..C-1 (fractions, NaN as the script gives it)."""
        if int(self.frames) == 0:
            raise ValueError("InstancePartAP over zero frames: the evaluation set is empty")
        cls, score, iou, key, index = self._records()
        order = np.lexsort((index, key))  # frame by frame, predictions in id order: the script's record order
        cls, score, iou = cls[order], score[order], iou[order]
        gt = self.gt_count.cpu().numpy()
        out = np.zeros((self.num_classes - 1, len(self.thresholds)))
        for c in range(1, self.num_classes):
            sel = cls == c
            rank = np.argsort(score[sel], kind="stable")[::-1]
            ranked = iou[sel][rank]
            for j, t in enumerate(self.thresholds):
                out[c - 1, j] = _voc_area((ranked > t).astype(np.float64), int(gt[c]))
        return torch.from_numpy(out)

    def compute(self) -> dict[str, torch.Tensor]:
        ap = self.class_ap().numpy()
        scale = 100.0 if self.percent else 1.0
        per_t = ap.mean(axis=0) * scale
        res = {f"APr@{t:g}": torch.tensor(float(v)) for t, v in zip(self.thresholds, per_t)}
        res["APr_vol"] = torch.tensor(float(per_t.mean()))
        return res

    def reset(self) -> None:
        super().reset()
        self._counter = 0
