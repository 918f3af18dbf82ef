"""VIP (video instance-level human parsing) part-segmentation mIoU (thesis Table 2.3).

As the VIP evaluation of the TimeCycle lineage (``eval_vip.py``, published with UVC, which
credits TimeCycle) computes it: one 20 x 20 confusion histogram over every evaluated pixel of
every frame (ground-truth ids outside 0..19 are ignored), ``IoU_c = hist[c, c] / (gt_c + pred_c -
hist[c, c])`` and the NaN-ignoring mean over the 20 classes (background included). The instance
metric AP^r_vol is not implemented here.
"""
from __future__ import annotations

import numpy as np
import torch
from torchmetrics import Metric

__all__ = ["VIP_CLASSES", "PartMeanIoU"]

#: The 20 VIP part categories (id = index).
VIP_CLASSES = ("background", "hat", "hair", "sun-glasses", "upper-clothes", "dress", "coat", "socks", "pants",
               "gloves", "scarf", "skirt", "torso-skin", "face", "right-arm", "left-arm", "right-leg", "left-leg",
               "right-shoe", "left-shoe")


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
