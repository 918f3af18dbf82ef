"""SegmentAccuracy: AVE per-segment accuracy, checked on hand-computed cases."""
from __future__ import annotations


import pytest
import torch

from mmzoo.metrics.segment_accuracy import SegmentAccuracy


def _scores(ids, num_classes=4):
    """Score rows whose argmax is `ids` (a nested list), with distractor mass elsewhere."""
    ids = torch.tensor(ids)
    s = torch.rand(*ids.shape, num_classes) * 0.5
    return s.scatter(-1, ids.unsqueeze(-1), 1.0)


def test_counts_every_segment_of_every_video():
    m = SegmentAccuracy()
    # video 0: 3 of 4 right; video 1: 1 of 4 right  -> 4 / 8 = 50 %.
    m.update(_scores([[0, 1, 2, 3], [3, 3, 3, 3]]), torch.tensor([[0, 1, 2, 0], [3, 0, 0, 0]]))
    assert m.compute().item() == pytest.approx(50.0)
    m.update(_scores([[1, 1, 1, 1]]), torch.tensor([[1, 1, 1, 1]]))  # +4 right of 4
    # pooled over segments: 8 / 12, not the mean of the two batch accuracies (75 %)
    assert m.compute().item() == pytest.approx(100.0 * 8 / 12)


def test_one_hot_targets_and_id_predictions():
    target_ids = torch.tensor([[2, 2, 0], [1, 3, 3]])
    one_hot = torch.nn.functional.one_hot(target_ids, 4).float()
    preds = torch.tensor([[2, 1, 0], [1, 3, 0]])  # 4 of 6 right
    m = SegmentAccuracy(percent=False)
    m.update(preds, one_hot)
    assert m.compute().item() == pytest.approx(4 / 6)


def test_background_counts_like_any_class_and_ignore_index():
    bg = 28
    target = torch.tensor([[bg, bg, 5, 5, bg]])
    preds = torch.tensor([[bg, 5, 5, bg, bg]])  # right at 0, 2, 4
    m = SegmentAccuracy()
    m.update(preds, target)
    assert m.compute().item() == pytest.approx(60.0)
    m2 = SegmentAccuracy(ignore_index=bg)  # only the two event segments: 1 of 2
    m2.update(preds, target)
    assert m2.compute().item() == pytest.approx(50.0)


def test_reset_empty_and_shape_errors():
    m = SegmentAccuracy()
    with pytest.raises(ValueError, match="zero segments"):  # an evaluation over nothing is an error, not NaN
        m.compute()
    m.update(_scores([[0, 0]]), torch.tensor([[0, 0]]))
    assert m.compute().item() == 100.0
    m.reset()
    m.update(_scores([[0, 0]]), torch.tensor([[1, 1]]))
    assert m.compute().item() == 0.0
    with pytest.raises(ValueError, match="do not match"):
        m.update(torch.rand(2, 3, 4), torch.tensor([[1, 1]]))


def test_states_sum_across_processes():
    # Two "ranks" with different numbers of segments: the global figure is pooled, not averaged.
    a, b = SegmentAccuracy(), SegmentAccuracy()
    a.update(torch.tensor([[1, 1]]), torch.tensor([[1, 1]]))  # 2/2
    b.update(torch.tensor([[0, 0, 0, 0, 0, 0]]), torch.tensor([[1, 1, 1, 1, 1, 0]]))  # 1/6
    assert a._reductions["correct"] is not None and a._reductions["total"] is not None
    a.merge_state(b)
    assert a.compute().item() == pytest.approx(100.0 * 3 / 8)
