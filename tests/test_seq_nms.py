"""Seq-NMS on constructed snippets."""
import torch

from mmzoo.nn.seq_nms import seq_nms, seq_nms_class


def _f(boxes, scores, labels):
    return {"boxes": torch.tensor(boxes, dtype=torch.float).reshape(-1, 4), "scores": torch.tensor(scores),
            "labels": torch.tensor(labels, dtype=torch.long)}


def test_links_track_rescoring_and_suppression():
    # an object moving right: a strong track with one weak frame, a duplicate box in frame 1,
    # and a far-away low-score box that forms its own sequence
    frames = [
        _f([[0, 0, 10, 10], [1, 0, 11, 10]], [0.9, 0.6], [1, 1]),
        _f([[1, 0, 11, 10]], [0.1], [1]),
        _f([[2, 0, 12, 10], [50, 50, 60, 60]], [0.8, 0.3], [1, 1]),
    ]
    out = seq_nms(frames, num_classes=1)
    track_score = (0.9 + 0.1 + 0.8) / 3
    assert len(out[0]["scores"]) == 1 and torch.allclose(out[0]["scores"], torch.tensor([track_score]))
    assert torch.allclose(out[1]["scores"], torch.tensor([track_score]))  # weak frame lifted
    s2 = sorted(out[2]["scores"].tolist())
    assert torch.allclose(torch.tensor(s2), torch.tensor([0.3, track_score]))
    assert torch.equal(out[0]["boxes"][0], torch.tensor([0.0, 0, 10, 10]))


def test_classes_independent_and_max_rescoring():
    frames = [_f([[0, 0, 10, 10], [0, 0, 10, 10]], [0.5, 0.4], [1, 2]), _f([[0, 0, 10, 10]], [0.7], [1])]
    out = seq_nms(frames, num_classes=2, rescore="max")
    lab0 = dict(zip(out[0]["labels"].tolist(), out[0]["scores"].tolist()))
    assert abs(lab0[1] - 0.7) < 1e-6 and abs(lab0[2] - 0.4) < 1e-6
    assert out[1]["labels"].tolist() == [1]


def test_no_link_below_iou():
    boxes = torch.tensor([[[0.0, 0, 10, 10]], [[8.0, 0, 18, 10]]])  # IoU 3/19 < 0.5
    scores = torch.tensor([[0.9], [0.2]])
    out = seq_nms_class(boxes, scores, torch.ones(2, 1, dtype=torch.bool))
    assert torch.allclose(out, scores)
