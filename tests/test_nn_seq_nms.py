"""Seq-NMS on constructed snippets."""
import torch

from typing import Literal

from mmzoo.nn.seq_nms import batched_box_iou, seq_nms, seq_nms_class


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


def test_batched_iou_matches_torchvision():
    from torchvision.ops import box_iou

    from mmzoo.nn.seq_nms import batched_box_iou

    g = torch.Generator().manual_seed(0)
    a = torch.rand(3, 5, 2, generator=g) * 50
    a = torch.cat([a, a + torch.rand(3, 5, 2, generator=g) * 30 + 1], -1)
    b = torch.rand(3, 4, 2, generator=g) * 50
    b = torch.cat([b, b + torch.rand(3, 4, 2, generator=g) * 30 + 1], -1)
    got = batched_box_iou(a, b)
    for t in range(3):
        assert torch.allclose(got[t], box_iou(a[t], b[t]), atol=1e-6)


def test_long_snippet_many_boxes_runs_fast():
    import time

    g = torch.Generator().manual_seed(1)
    frames = []
    for t in range(300):
        base = torch.tensor([[10.0 + t * 0.5, 10, 60 + t * 0.5, 60], [200, 100, 260, 180]])
        noise = torch.rand(18, 2, generator=g) * 300
        boxes = torch.cat([base, torch.cat([noise, noise + 40], 1)])
        frames.append({"boxes": boxes, "scores": torch.rand(20, generator=g), "labels": torch.randint(1, 4, (20,), generator=g)})
    start = time.perf_counter()
    out = seq_nms(frames, num_classes=3)
    assert time.perf_counter() - start < 10
    assert len(out) == 300 and all(len(o["boxes"]) <= 20 for o in out)


# Dense re-run-everything formulation (full DP over padded tensors after every extracted
# sequence), kept here as the reference the fast implementation must agree with.
def _reference_seq_nms_class(
    boxes: torch.Tensor, scores: torch.Tensor, valid: torch.Tensor, link_iou: float = 0.5,
    nms_iou: float = 0.3, rescore: Literal["avg", "max"] = "avg",
) -> torch.Tensor:
    """Seq-NMS of one class on padded inputs.

    Args:
        boxes: [T, N, 4] xyxy; scores: [T, N]; valid: [T, N] bool (padding is False).
    Returns:
        [T, N] new scores; boxes that were suppressed (or padding) get -1.
    """
    t_len, n = scores.shape
    out = torch.full_like(scores, -1.0)
    if t_len == 0 or n == 0:
        return out
    alive = valid.clone()
    if t_len > 1:
        links = batched_box_iou(boxes[:-1], boxes[1:]) > link_iou  # T-1, N, N: frame t box i -> frame t+1 box j
    iou_same = batched_box_iou(boxes, boxes)  # T, N, N
    neg = torch.finfo(scores.dtype).min
    while bool(alive.any()):
        best = torch.where(alive, scores, torch.full_like(scores, neg))
        back = torch.full((t_len, n), -1, dtype=torch.long, device=scores.device)
        for t in range(1, t_len):
            ok = links[t - 1] & alive[t - 1][:, None] & alive[t][None, :]  # prev i -> cur j
            cand = torch.where(ok, best[t - 1][:, None].expand(n, n), torch.full((n, n), neg, dtype=scores.dtype, device=scores.device))
            prev_best, prev_idx = cand.max(dim=0)
            extend = alive[t] & (prev_best > 0)
            best[t] = torch.where(extend, best[t] + prev_best, best[t])
            back[t] = torch.where(extend, prev_idx, back[t])
        flat = int(torch.argmax(best))
        t, j = divmod(flat, n)
        seq = []
        while j >= 0:
            seq.append((t, j))
            j = int(back[t, j])
            t -= 1
        ts = torch.tensor([s[0] for s in seq], device=scores.device)
        js = torch.tensor([s[1] for s in seq], device=scores.device)
        seq_scores = scores[ts, js]
        new = seq_scores.mean() if rescore == "avg" else seq_scores.max()
        out[ts, js] = new
        # suppress overlapping boxes (and the sequence boxes themselves) in the sequence's frames
        kill = iou_same[ts, js] > nms_iou  # len, N
        kill[torch.arange(len(js)), js] = True
        alive[ts] = alive[ts] & ~kill
    return out



def test_matches_dense_reference_on_random_snippets():
    g = torch.Generator().manual_seed(3)
    for trial in range(6):
        t_len, n = 12, 6
        xy = torch.rand(1, n, 2, generator=g) * 60 + torch.arange(t_len)[:, None, None] * torch.rand(1, n, 2, generator=g) * 3
        boxes = torch.cat([xy, xy + 20 + torch.rand(t_len, n, 2, generator=g) * 4], -1)
        scores = torch.rand(t_len, n, generator=g)
        valid = torch.rand(t_len, n, generator=g) < 0.8
        for rescore in ("avg", "max"):
            fast = seq_nms_class(boxes, scores, valid, rescore=rescore)
            ref = _reference_seq_nms_class(boxes, scores, valid, rescore=rescore)
            assert torch.allclose(fast, ref, atol=1e-6), (trial, rescore)
            kept = fast >= 0
            assert (kept.sum() < valid.sum()) and not torch.allclose(fast[kept], scores[kept])  # linked + suppressed
