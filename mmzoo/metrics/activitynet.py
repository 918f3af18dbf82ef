"""ActivityNet untrimmed video classification: mAP and hit@k exactly as the official evaluation
computes them (github.com/activitynet/ActivityNet, ``Evaluation/eval_classification.py`` and
``Evaluation/utils.py``); the PSN thesis (ch. 5) reports this mAP on ActivityNet v1.3 and FCVID.

Definitions of the official code, reproduced here on per-video score vectors:

* ground truth: the distinct (video, class) pairs of the evaluated videos. The classes evaluated
  are those with at least one ground-truth video (the official ``activity_index`` holds only the
  labels met in the subset's annotations); mAP is the mean of their APs;
* AP of class ``c``: every scored video is one prediction of ``c`` with its score. Predictions are
  sorted by decreasing score with ``argsort()[::-1]`` (so among equal scores the prediction listed
  *last* ranks first; the predictions are listed in video order here, i.e. by ``video_index``),
  a prediction is a true positive when its video has ground truth ``c`` not matched before, a
  false positive otherwise (videos without any ground truth are false positives of every class);
  precision and recall (``tp / npos``) are turned into the VOC 2011 interpolated AP
  (``interpolated_prec_rec``: precision made monotone from the right, summed over the recall
  steps, with the sentinels precision 0 at recall 0 and at recall 1);
* hit@k over the videos that have ground truth: a video scores 1 when any of its ground-truth
  classes is among its ``k`` best-scored classes (``argsort()[::-1][:k]``: among equal scores the
  higher class index first), and ``avg_hit@k`` (the official ``avg=True``) is the mean over
  videos of the fraction of their ground-truth classes in the top ``k``; the official default
  ``k`` is 3. ``top1`` is hit@1 (top-1 accuracy for single-label videos).

The official code takes the order of tied predictions from a Python-2 ``dict`` of the submission
and numpy's default (not stable) ``argsort``, so its result on ties is implementation-defined;
this metric fixes it to what that code returns when its sort is stable, with predictions listed
by video index. Blocked videos (the challenge server's list) are the caller's business (leave
them out of the evaluation set).

Views of one video (several clips) are averaged per ``video_index`` before ranking. Results are
float64 tensors in percent.
"""
from __future__ import annotations

from typing import Literal, Optional

import torch
from torchmetrics.utilities import dim_zero_cat

from mmzoo.metrics.classification import _MultiViewBase, aggregate_views

__all__ = ["ActivityNetClassification", "interpolated_ap", "multi_hot", "official_class_ap", "official_hit_at_k"]


def multi_hot(label: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(B, K) 0/1 targets from class indices (B,) (-1: no class) or pass multi-hot (B, K) through."""
    label = torch.as_tensor(label)
    if label.dim() == 2:
        if label.shape[1] != num_classes:
            raise ValueError(f"multi-hot target has {label.shape[1]} classes, scores have {num_classes}")
        return label
    out = torch.zeros(label.shape[0], num_classes, dtype=torch.long, device=label.device)
    ok = label >= 0
    if (label >= num_classes).any():
        raise ValueError(f"label {int(label.max())} out of range for {num_classes} classes")
    out[ok.nonzero().view(-1), label[ok].long()] = 1
    return out


def interpolated_ap(precision: torch.Tensor, recall: torch.Tensor) -> torch.Tensor:
    """VOC 2011 interpolated AP of a precision / recall curve (official ``interpolated_prec_rec``)."""
    zero = precision.new_zeros(1)
    mprec = torch.cat([zero, precision, zero])
    mrec = torch.cat([zero, recall, precision.new_ones(1)])
    mprec = mprec.flip(0).cummax(0).values.flip(0)  # max over this and every later point
    steps = (mrec[1:] != mrec[:-1]).nonzero().view(-1) + 1
    return ((mrec[steps] - mrec[steps - 1]) * mprec[steps]).sum()


def official_class_ap(scores: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """AP of one class: ``scores`` (V,) of the videos in listing order, ``positive`` (V,) bool.
    NaN when the class has no positive (such a class is not evaluated)."""
    positive = positive.bool()
    npos = positive.sum().double()
    if npos == 0:
        return torch.tensor(float("nan"), dtype=torch.float64, device=scores.device)
    order = scores.argsort(stable=True).flip(0)  # argsort()[::-1]: the last of equal scores first
    tp = positive[order].double().cumsum(0)
    fp = (~positive[order]).double().cumsum(0)
    return interpolated_ap(tp / (tp + fp), tp / npos)


def official_hit_at_k(scores: torch.Tensor, target: torch.Tensor, k: int, avg: bool = False) -> torch.Tensor:
    """hit@k (fraction) over the videos with ground truth; ``scores`` (V, K), ``target`` (V, K) 0/1."""
    has_gt = target.sum(1) > 0
    if not has_gt.any():
        return torch.tensor(float("nan"), dtype=torch.float64, device=scores.device)
    s, t = scores[has_gt], target[has_gt].bool()
    top = s.argsort(dim=1, stable=True).flip(1)[:, :k]  # argsort()[::-1][:k]
    in_top = torch.zeros_like(t).scatter_(1, top, True)
    found = (in_top & t).sum(1).double()
    per_video = found / t.sum(1).double()
    if not avg:
        per_video = per_video.ceil()
    return per_video.mean()


class ActivityNetClassification(_MultiViewBase):
    """mAP, hit@k, avg-hit@k and top-1 (%) of ActivityNet's official classification evaluation.

    Args:
        num_classes: K (200 for ActivityNet v1.3, 239 for FCVID).
        top_k: the ``k`` of hit@k (official default 3).
        aggregate: how the views of one video combine ("mean").

    ``update(scores (B, K), target, video_index=None)``: ``target`` is a class index (B,) (-1 for
    a video without ground truth) or multi-hot (B, K). Scores should be probabilities or logits
    of one video per row (views share their ``video_index``).
    """

    higher_is_better = True

    def __init__(self, num_classes: int, top_k: int = 3, aggregate: Literal["mean", "max"] = "mean", **kwargs) -> None:
        super().__init__(aggregate, **kwargs)
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        self.num_classes = num_classes
        self.top_k = top_k
        self.add_state("scores", default=[], dist_reduce_fx="cat")
        self.add_state("target", default=[], dist_reduce_fx="cat")

    def update(self, scores: torch.Tensor, target: torch.Tensor, video_index: Optional[torch.Tensor] = None) -> None:
        scores = scores.detach()
        if scores.dim() != 2 or scores.shape[1] != self.num_classes:
            raise ValueError(f"scores must be (B, {self.num_classes}), got {tuple(scores.shape)}")
        target = multi_hot(torch.as_tensor(target, device=scores.device), self.num_classes)
        if target.shape[0] != scores.shape[0]:
            raise ValueError(f"{target.shape[0]} targets for {scores.shape[0]} score rows")
        self.scores.append(scores.double())
        self.target.append(target.long())
        self.video_index.append(self._index(scores.shape[0], video_index, scores.device))

    def compute(self) -> dict[str, torch.Tensor]:
        if isinstance(self.video_index, list) and not self.video_index:
            raise ValueError("ActivityNet mAP over zero videos: the evaluation set is empty")
        vid = dim_zero_cat(self.video_index)
        _, agg, first = aggregate_views(dim_zero_cat(self.scores), vid, self.aggregate)
        target = dim_zero_cat(self.target)[first]
        aps = torch.stack([official_class_ap(agg[:, c], target[:, c] > 0) for c in range(agg.shape[1])])
        valid = ~torch.isnan(aps)
        nan = torch.tensor(float("nan"), dtype=torch.float64, device=agg.device)
        k = self.top_k
        return {
            "mAP": aps[valid].mean() * 100 if valid.any() else nan,
            f"hit@{k}": official_hit_at_k(agg, target, k) * 100,
            f"avg_hit@{k}": official_hit_at_k(agg, target, k, avg=True) * 100,
            "top1": official_hit_at_k(agg, target, 1) * 100,
        }

