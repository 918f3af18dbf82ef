"""AVE per-segment accuracy: the share of 1-s segments whose argmax class is right.

The thesis (Lin 2019, Sec. 4.0.2): "we compute the percentage of correct matchings over all test
input frames as the prediction accuracy", in both the supervised and the weakly supervised
setting; Tian et al.'s ``compute_acc`` takes the argmax over the C+1 classes (background
included) of every segment of every test video. Segments are pooled over the whole test set
(not averaged per video or per class).
"""
from __future__ import annotations

from typing import Optional

import torch
from torchmetrics import Metric

__all__ = ["SegmentAccuracy"]


class SegmentAccuracy(Metric):
    """Accuracy over all segments, in percent by default (the thesis's tables are in %).

    ``update(preds, target)``:
        preds: scores ``[..., C]`` (logits or probabilities; argmax is taken over the last
            axis) or class ids with the same shape as the target ids.
        target: class ids ``[...]`` (long), or one-hot / score rows ``[..., C]`` (argmax taken,
            as Tian's code does with its [N, 10, 29] label array).
    ``ignore_index``: segments whose target is this id are left out (None: all count).
    States are sums, reduced by summation across processes, so DDP gives the global figure.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, percent: bool = True, ignore_index: Optional[int] = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.percent = percent
        self.ignore_index = ignore_index
        self.add_state("correct", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        if target.is_floating_point():
            target = target.argmax(dim=-1)
        if preds.shape == target.shape and not preds.is_floating_point():
            pred_ids = preds
        elif preds.shape[:-1] == target.shape:
            pred_ids = preds.argmax(dim=-1)
        else:
            raise ValueError(f"SegmentAccuracy: preds {tuple(preds.shape)} do not match target {tuple(target.shape)}; "
                             "expected scores [..., C] or ids shaped like the target")
        keep = torch.ones_like(target, dtype=torch.bool)
        if self.ignore_index is not None:
            keep = target != self.ignore_index
        self.correct += ((pred_ids == target) & keep).sum()
        self.total += keep.sum()

    def compute(self) -> torch.Tensor:
        if self.total == 0:
            raise ValueError("SegmentAccuracy over zero segments: the evaluation set is empty")
        acc = self.correct.double() / self.total.double()
        return acc * 100.0 if self.percent else acc
