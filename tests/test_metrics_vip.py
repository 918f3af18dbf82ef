"""VIP part mIoU equals the TimeCycle-lineage eval_vip.py definition on hand-computed cases."""
from __future__ import annotations

import pytest
import torch

from mmzoo.metrics.vip import PartMeanIoU


def test_miou_over_one_histogram_ignoring_absent_classes_and_void():
    gt = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 255]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 3, 3]])
    m = PartMeanIoU(num_classes=4)
    m.update(pred, gt)
    out = m.compute()
    # class 0: tp 1, gt 2, pred 2 -> 1/3; class 1: tp 2, gt 2, pred 3 -> 2/3; class 2: 1/(2+1-1) = 1/2;
    # class 3: no gt, predicted only on void (ignored) -> 0/0 = NaN, left out of the mean
    assert out["mIoU"].item() == pytest.approx(100 * (1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert out["pixel_acc"].item() == pytest.approx(100 * 4 / 6)


def test_frames_are_pooled_in_one_histogram_not_averaged():
    m = PartMeanIoU(num_classes=2, percent=False)
    m.update(torch.tensor([1, 1, 1, 1]), torch.tensor([1, 1, 1, 1]))  # a perfect frame
    m.update(torch.tensor([0, 0]), torch.tensor([1, 1]))  # a bad, smaller frame
    # pooled: class 0 IoU 0 / (0 + 2 - 0) = 0, class 1 IoU 4 / (6 + 4 - 4); per-frame means would give 0.5
    assert m.compute()["mIoU"].item() == pytest.approx((0 + 4 / 6) / 2)


def test_out_of_range_predictions_are_refused():
    with pytest.raises(ValueError, match="0..1"):
        PartMeanIoU(num_classes=2).update(torch.tensor([2]), torch.tensor([1]))
