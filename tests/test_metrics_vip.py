"""VIP part mIoU (the TimeCycle-lineage eval_vip.py) and instance-part AP^r_vol (the official
test_inst_part_ap.py) on hand-computed cases."""
from __future__ import annotations

import math
import warnings

import pytest
import torch

from mmzoo.metrics.vip import APR_THRESHOLDS, InstancePartAP, PartMeanIoU


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


# ---- InstancePartAP (AP^r_vol, the official test_inst_part_ap.py definition) ----------------------


def _frame():
    """Two people, class 2 ("hair") each: ground-truth ids 2 (rows 0-1) and 22 (rows 2-3), 4 px each;
    id 5 (class 5) is listed too."""
    gt = torch.zeros(6, 4, dtype=torch.long)
    gt[0:2, 0:2] = 2
    gt[2:4, 0:2] = 22
    gt[4:6, 0:2] = 5
    return gt, torch.tensor([2, 22, 5]), torch.tensor([2, 2, 5])


def _ap(m):
    out = m.compute()
    return [out[f"APr@{t:g}"].item() for t in APR_THRESHOLDS], out["APr_vol"].item()


def test_thresholds_are_the_nine_of_ap_vol():
    assert APR_THRESHOLDS == (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def test_perfect_prediction_scores_one_at_every_threshold():
    gt, ids, cls = _frame()
    pred = torch.zeros_like(gt)
    pred[gt == 2], pred[gt == 22], pred[gt == 5] = 1, 2, 3
    m = InstancePartAP(num_classes=6, percent=False)
    m.update(pred, [2, 2, 5], [0.9, 0.8, 0.7], gt, ids, cls)
    per_t, vol = _ap(m)
    # classes 2 and 5: AP 1; classes 1, 3, 4: no ground truth, no prediction -> AP 0, kept in the mean
    assert per_t == pytest.approx([2 / 5] * 9) and vol == pytest.approx(2 / 5)
    ap = m.class_ap()
    assert ap.shape == (5, 9)
    assert ap[1].tolist() == [1.0] * 9 and ap[4].tolist() == [1.0] * 9 and ap[0].tolist() == [0.0] * 9


def test_one_of_two_instances_found_with_partial_overlap():
    gt, ids, cls = _frame()
    pred = torch.zeros_like(gt)
    pred[0:2, 0:1] = 1  # 2 of the 4 px of instance 2: IoU 0.5
    m = InstancePartAP(num_classes=3, percent=False)  # classes 1, 2 evaluated (id 5 is out of range)
    m.update(pred, [2], [0.7], gt, ids, cls)
    ap = m.class_ap()
    # class 2: one prediction, recall 1/2 at precision 1 when IoU 0.5 > t, i.e. t in 0.1..0.4; at
    # t = 0.5 the IoU is not strictly greater: a false positive, AP 0
    assert ap[1].tolist() == pytest.approx([0.5] * 4 + [0.0] * 5)
    per_t, vol = _ap(m)
    assert per_t == pytest.approx([0.25] * 4 + [0.0] * 5)  # class 1 (no gt, no prediction) counts as 0
    assert vol == pytest.approx(1.0 / 9)


def test_duplicates_are_not_suppressed_and_a_miss_ranks_by_score():
    gt, ids, cls = _frame()
    pred = torch.zeros_like(gt)
    pred[0:2, 0:2] = 1  # instance 2, exact
    pred[0:2, 2:4] = 2  # beside it: IoU 0 with everything
    m = InstancePartAP(num_classes=3, percent=False)
    m.update(pred, [2, 2], [0.4, 0.9], gt, ids, cls)  # the false positive ranks first
    # ranked: FP (0.9), TP (0.4): precision 0, 1/2 at recall 0, 1/2 -> envelope 1/2 -> AP 1/4
    assert m.class_ap()[1].tolist() == pytest.approx([0.25] * 9)
    m2 = InstancePartAP(num_classes=3, percent=False)
    m2.update(pred, [2, 2], [0.9, 0.4], gt, ids, cls)  # same masks, the true positive first
    assert m2.class_ap()[1].tolist() == pytest.approx([0.5] * 9)

    # two predictions covering the same ground-truth instance: the script takes each one's best IoU
    # with no one-to-one matching, so both are true positives and recall reaches 2/2 with one instance
    # found out of two
    dup = torch.zeros_like(gt)
    dup[0:2, 0:1], dup[0:2, 1:2] = 1, 2  # each half of instance 2: IoU 0.5 each
    m3 = InstancePartAP(num_classes=3, percent=False)
    m3.update(dup, [2, 2], [0.9, 0.8], gt, ids, cls)
    assert m3.class_ap()[1].tolist() == pytest.approx([1.0] * 4 + [0.0] * 5)


def test_duplicates_can_push_ap_above_one_as_in_the_official_script():
    gt = torch.zeros(2, 4, dtype=torch.long)
    gt[:, 0:2] = 2
    pred = torch.zeros_like(gt)
    pred[:, 0:1], pred[:, 1:2] = 1, 2
    m = InstancePartAP(num_classes=3, percent=False)
    m.update(pred, [2, 2], [0.9, 0.8], gt, [2], [2])
    # recall 1 then 2 at precision 1: area 1 + 1 (the final sentinel step back to 1 has precision 0)
    assert m.class_ap()[1, 0].item() == pytest.approx(2.0)


def test_scores_rank_across_frames_and_ties_follow_stable_reversed_argsort():
    gt, ids, cls = _frame()
    hit = torch.zeros_like(gt)
    hit[gt == 2] = 1
    miss = torch.zeros_like(gt)
    miss[0:2, 2:4] = 1
    m = InstancePartAP(num_classes=3, percent=False)
    m.update(miss, [2], [0.5], gt, ids, cls, frame_key=0)
    m.update(hit, [2], [0.5], gt, ids, cls, frame_key=1)
    # tie: the later record (frame 1, the hit) ranks first -> precision 1 at recall 1/4 (4 gt in all)
    assert m.class_ap()[1, 0].item() == pytest.approx(1 / 4)
    m2 = InstancePartAP(num_classes=3, percent=False)
    m2.update(hit, [2], [0.5], gt, ids, cls, frame_key=1)  # update order does not matter, keys do
    m2.update(miss, [2], [0.5], gt, ids, cls, frame_key=0)
    assert m2.class_ap()[1, 0].item() == pytest.approx(1 / 4)
    m3 = InstancePartAP(num_classes=3, percent=False)
    m3.update(hit, [2], [0.5], gt, ids, cls, frame_key=0)
    m3.update(miss, [2], [0.5], gt, ids, cls, frame_key=1)
    assert m3.class_ap()[1, 0].item() == pytest.approx(1 / 8)  # miss first: precision 1/2 at recall 1/4


def test_empty_predictions_and_empty_ground_truth_as_the_script():
    gt, ids, cls = _frame()
    empty = torch.zeros_like(gt)
    m = InstancePartAP(num_classes=3, percent=False)
    m.update(empty, [], [], gt, ids, cls)  # ground truth but no prediction: AP 0, not NaN
    assert m.class_ap().tolist() == [[0.0] * 9, [0.0] * 9]
    assert m.compute()["APr_vol"].item() == 0.0

    pred = torch.zeros_like(gt)
    pred[0:2, 0:2] = 1
    m2 = InstancePartAP(num_classes=3, percent=False)
    m2.update(pred, [1], [0.9], gt, ids, cls)  # class 1 predicted but never in the ground truth: 0/0
    ap = m2.class_ap()
    assert all(math.isnan(v) for v in ap[0].tolist())
    assert math.isnan(m2.compute()["APr_vol"].item())  # and it makes the mean NaN, as np.mean does

    # a frame without ground truth of a class that other frames have: its predictions are false positives
    m3 = InstancePartAP(num_classes=3, percent=False)
    m3.update(pred, [2], [0.9], torch.zeros_like(gt), [], [])
    m3.update(pred, [2], [0.1], gt, ids, cls)
    assert m3.class_ap()[1, 0].item() == pytest.approx(0.5 * 0.5)  # FP then TP: precision 1/2, recall 1/2

    with pytest.raises(ValueError, match="zero frames"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchmetrics warns of compute() before update()
        InstancePartAP().compute()


def test_ids_without_an_entry_are_ignored_and_empty_listed_masks_refused():
    gt, ids, cls = _frame()
    pred = torch.zeros_like(gt)
    pred[gt == 2] = 1
    pred[gt == 22] = 7  # no 7th entry: not a prediction (the script ignores it)
    m = InstancePartAP(num_classes=3, percent=False)
    m.update(pred, [2], [0.9], gt, torch.tensor([2, 22, 99]), torch.tensor([2, 2, 2]))  # id 99 not in the map
    assert m.class_ap()[1, 0].item() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="prediction 2 .*empty mask"):
        InstancePartAP(num_classes=3).update(pred, [2, 2], [0.9, 0.8], gt, ids, cls)


def test_states_are_concatenated_records_that_merge_like_ddp():
    gt, ids, cls = _frame()
    hit = torch.zeros_like(gt)
    hit[gt == 22] = 1
    miss = torch.zeros_like(gt)
    miss[0:2, 2:4] = 1
    whole = InstancePartAP(num_classes=3)
    whole.update(hit, [2], [0.3], gt, ids, cls, frame_key=0)
    whole.update(miss, [2], [0.8], gt, ids, cls, frame_key=1)
    a, b = InstancePartAP(num_classes=3), InstancePartAP(num_classes=3)
    a.update(hit, [2], [0.3], gt, ids, cls, frame_key=0)
    b.update(miss, [2], [0.8], gt, ids, cls, frame_key=1)
    a.merge_state(b)
    assert a.compute()["APr_vol"].item() == pytest.approx(whole.compute()["APr_vol"].item())
    assert whole.compute()["APr@0.5"].item() == pytest.approx(100 * (0 + 0.5 * 0.25) / 2)
