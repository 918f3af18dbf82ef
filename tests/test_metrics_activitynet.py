"""ActivityNet classification mAP / hit@k against the official evaluation's definitions
(``Evaluation/eval_classification.py`` + ``utils.interpolated_prec_rec``), re-derived here as a
loop over the prediction list exactly as that code walks its data frames, on random cases with
ties, videos without ground truth, multi-label videos and classes without ground truth."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mmzoo.metrics.activitynet import (
    ActivityNetClassification,
    interpolated_ap,
    official_class_ap,
)


def _reference(scores: np.ndarray, gt: list[set[int]], top_k: int = 3) -> dict[str, float]:
    """The official evaluation on a submission listing every (video, class, score) in video order
    (then class order) and a ground truth of (video, class) pairs; its sort made stable."""
    gt_pairs = sorted({(v, c) for v, cs in enumerate(gt) for c in cs})
    preds = [(v, c, float(scores[v, c])) for v in range(scores.shape[0]) for c in range(scores.shape[1])]
    aps = []
    for cls in sorted({c for _, c in gt_pairs}):
        g = [v for v, c in gt_pairs if c == cls]
        p = [(v, s) for v, c, s in preds if c == cls]
        npos = float(len(g))
        lock = {v: -1 for v in g}
        order = np.argsort(np.array([s for _, s in p]), kind="stable")[::-1]
        tp, fp = np.zeros(len(p)), np.zeros(len(p))
        for rank, j in enumerate(order):
            v = p[j][0]
            if v not in lock or lock[v] >= 0:
                fp[rank] = 1
            else:
                tp[rank] = 1
                lock[v] = rank
        tp, fp = np.cumsum(tp), np.cumsum(fp)
        rec, prec = tp / npos, tp / (tp + fp)
        mprec, mrec = np.hstack([[0], prec, [0]]), np.hstack([[0], rec, [1]])
        for i in range(len(mprec) - 2, -1, -1):
            mprec[i] = max(mprec[i], mprec[i + 1])
        idx = np.where(mrec[1:] != mrec[:-1])[0] + 1
        aps.append(np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx]))
    out = {"mAP": float(np.mean(aps)) * 100}
    for k, name in ((top_k, f"hit@{top_k}"), (1, "top1")):
        hits, avg = [], []
        for v in sorted({v for v, _ in gt_pairs}):
            mine = [(c, s) for vv, c, s in preds if vv == v]
            top = [mine[j][0] for j in np.argsort(np.array([s for _, s in mine]), kind="stable")[::-1][:k]]
            found = [1 if c in top else 0 for c in sorted(gt[v])]
            avg.append(np.mean(found))
            hits.append(np.ceil(np.mean(found)))
        out[name] = float(np.mean(hits)) * 100
        if k == top_k:
            out[f"avg_hit@{top_k}"] = float(np.mean(avg)) * 100
    return out


def _compute(scores: np.ndarray, gt: list[set[int]], chunks: int = 1) -> dict[str, float]:
    k = scores.shape[1]
    target = torch.zeros(scores.shape, dtype=torch.long)
    for v, cs in enumerate(gt):
        target[v, sorted(cs)] = 1
    metric = ActivityNetClassification(k)
    for part in np.array_split(np.arange(scores.shape[0]), chunks):
        metric.update(torch.tensor(scores[part]), target[part], torch.tensor(part))
    return {name: float(v) for name, v in metric.compute().items()}


@pytest.mark.parametrize("seed", range(6))
def test_equals_the_official_evaluation_with_ties(seed):
    rng = np.random.default_rng(seed)
    v, k = 23, 6
    scores = rng.integers(0, 4, size=(v, k)).astype(np.float64) / 4  # many ties
    gt = [set(rng.choice(k - 1, size=rng.integers(1, 3), replace=False).tolist()) for _ in range(v)]
    gt[3] = set()  # a video without ground truth: a false positive of every class, not in hit@k
    # class k-1 has no ground truth: not evaluated (official activity_index holds GT labels only)
    ref = _reference(scores, gt)
    got = _compute(scores, gt, chunks=3)
    assert got.keys() == ref.keys()
    for name in ref:
        assert got[name] == pytest.approx(ref[name], abs=1e-9), name


def test_hand_computed_case_and_the_tie_rule():
    # one class, 4 videos: scores 0.9 (neg), 0.5 (pos), 0.5 (neg), 0.1 (pos)
    scores = torch.tensor([0.9, 0.5, 0.5, 0.1], dtype=torch.float64)
    pos = torch.tensor([False, True, False, True])
    # argsort()[::-1] ranks the later of the tied pair first: neg(0.9), neg(v2), pos(v1), pos(v3)
    # precision at recall 0.5 is 1/3, at recall 1.0 it is 2/4 -> envelope 0.5 for both steps
    assert float(official_class_ap(scores, pos)) == pytest.approx(0.5 * 0.5 + 0.5 * 0.5)
    # swapping which tied video is positive changes the order: neg, pos(v2), neg(v1), pos(v3)
    pos2 = torch.tensor([False, False, True, True])
    assert float(official_class_ap(scores, pos2)) == pytest.approx(0.5 * 0.5 + 0.5 * 0.5)
    pos3 = torch.tensor([False, True, True, False])  # ranks 2, 3 -> precision 1/2, 2/3
    assert float(official_class_ap(scores, pos3)) == pytest.approx(0.5 * (2 / 3) + 0.5 * (2 / 3))
    # a tie between a positive listed first and a negative listed after it: the negative ranks
    # first (AP 1/2); a first-listed-first rule would give 1
    tie = torch.tensor([0.5, 0.5], dtype=torch.float64)
    assert float(official_class_ap(tie, torch.tensor([True, False]))) == pytest.approx(0.5)
    assert float(official_class_ap(tie, torch.tensor([False, True]))) == pytest.approx(1.0)
    # the interpolated AP ignores the sentinels' precision beyond the last recall
    assert float(interpolated_ap(torch.tensor([1.0, 0.5]), torch.tensor([0.5, 0.5]))) == pytest.approx(0.5)


def test_hit_at_k_tie_prefers_the_higher_class_index():
    scores = np.array([[0.5, 0.5, 0.1], [0.2, 0.3, 0.3]])
    gt = [{0}, {1}]
    got = _compute(scores, gt)
    # video 0: classes 0 and 1 tie; the higher index (1) ranks first -> top-1 misses class 0
    # video 1: classes 1 and 2 tie; class 2 ranks first -> top-1 misses class 1
    assert got["top1"] == 0.0
    assert got["hit@3"] == 100.0


def test_views_of_a_video_are_averaged_before_ranking():
    metric = ActivityNetClassification(2)
    metric.update(torch.tensor([[0.9, 0.1], [0.1, 0.9], [0.6, 0.4]]), torch.tensor([1, 1, 0]), torch.tensor([0, 0, 1]))
    out = metric.compute()
    # video 0 averages to a tie (0.5, 0.5) -> class 1 first; video 1 -> class 0: both right
    assert float(out["top1"]) == 100.0
    with pytest.raises(ValueError, match="scores must be"):
        metric.update(torch.zeros(2, 3), torch.tensor([0, 1]))
