"""Multi-view top-k, EPIC verb/noun/action top-k and multi-label mAP."""
from __future__ import annotations

import itertools

import pytest
import torch

from mmzoo.metrics.classification import (
    EpicActionAccuracy,
    MultiLabelMeanAP,
    MultiViewAccuracy,
    aggregate_views,
    average_precision,
)


def test_aggregate_views_mean_and_max():
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.2, 0.4], [0.5, 0.5]])
    vid = torch.tensor([7, 3, 7, 3])
    ids, mean, first = aggregate_views(s, vid, "mean")
    assert ids.tolist() == [3, 7]
    assert torch.allclose(mean, torch.tensor([[0.25, 0.75], [0.6, 0.2]]))
    assert first.tolist() == [1, 0]
    _, mx, _ = aggregate_views(s, vid, "max")
    assert torch.allclose(mx, torch.tensor([[0.5, 1.0], [1.0, 0.4]]))


def test_multiview_average_changes_the_decision():
    # video 0 (label 0): 3 views, two weakly wrong, one strongly right -> right after averaging
    # video 1 (label 1): 3 views, two weakly right, one strongly wrong -> wrong after averaging
    scores = torch.tensor(
        [[0.4, 0.6, 0.0], [0.45, 0.55, 0.0], [1.0, 0.0, 0.0],
         [0.35, 0.4, 0.25], [0.3, 0.45, 0.25], [0.0, 0.0, 1.0]]
    )  # fmt: skip
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    vid = torch.tensor([0, 0, 0, 1, 1, 1])
    m = MultiViewAccuracy(top_k=(1, 2))
    # feed in two batches that split views of the same video
    m.update(scores[:2], labels[:2], vid[:2])
    m.update(scores[2:], labels[2:], vid[2:])
    res = m.compute()
    assert res["top1"].item() == pytest.approx(50.0)  # video 0 right, video 1 wrong
    assert res["top2"].item() == pytest.approx(100.0)
    # clip-level (no video index): view-wise top1 = [F, F, T, T, T, F]
    clip = MultiViewAccuracy(top_k=(1,))
    clip.update(scores, labels)
    assert clip.compute()["top1"].item() == pytest.approx(50.0)
    # max aggregation: video 1 max scores = [0.35, 0.45, 1.0] -> class 2, wrong; video 0 -> class 0
    mx = MultiViewAccuracy(top_k=(1,), aggregate="max")
    mx.update(scores, labels, vid)
    assert mx.compute()["top1"].item() == pytest.approx(50.0)


def test_multiview_rejects_inconsistent_labels_and_bad_index():
    m = MultiViewAccuracy()
    m.update(torch.rand(2, 5), torch.tensor([1, 2]), torch.tensor([0, 0]))
    with pytest.raises(ValueError, match="different labels"):
        m.compute()
    with pytest.raises(ValueError):
        MultiViewAccuracy().update(torch.rand(2, 5), torch.tensor([1, 2]), torch.tensor([0]))


def test_views_of_a_video_split_across_processes_are_merged():
    # two "ranks" each see some views of video 5; merging states (what the DDP gather does
    # with dist_reduce_fx='cat') must give the same result as one process seeing all views.
    torch.manual_seed(0)
    scores = torch.rand(12, 10).softmax(-1)
    labels = torch.tensor([3] * 6 + [7] * 6)
    vid = torch.tensor([5] * 6 + [9] * 6)
    single = MultiViewAccuracy()
    single.update(scores, labels, vid)
    r0, r1 = MultiViewAccuracy(), MultiViewAccuracy()
    idx0, idx1 = [0, 2, 4, 6, 8, 10], [1, 3, 5, 7, 9, 11]
    r0.update(scores[idx0], labels[idx0], vid[idx0])
    r1.update(scores[idx1], labels[idx1], vid[idx1])
    r0.merge_state(r1)
    a, b = single.compute(), r0.compute()
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k]) for k in a)
    # every state is gathered by concatenation under DDP
    assert all(r0._reductions[k] is not None for k in ("scores", "target", "video_index"))


def _brute_force_epic(vs, ns, verb, noun, k):
    correct = 0
    for i in range(vs.shape[0]):
        pairs = sorted(itertools.product(range(vs.shape[1]), range(ns.shape[1])), key=lambda p: -(vs[i, p[0]] * ns[i, p[1]]).item())
        correct += (verb[i].item(), noun[i].item()) in pairs[:k]
    return 100.0 * correct / vs.shape[0]


def test_epic_verb_noun_action_topk_against_brute_force():
    torch.manual_seed(1)
    n, nv, nn_ = 40, 6, 7
    vs = torch.rand(n, nv).softmax(-1)
    ns = torch.rand(n, nn_).softmax(-1)
    verb = torch.randint(0, nv, (n,))
    noun = torch.randint(0, nn_, (n,))
    m = EpicActionAccuracy(top_k=(1, 5))
    m.update(vs, ns, verb, noun)
    res = m.compute()
    for k in (1, 5):
        assert res[f"action_top{k}"].item() == pytest.approx(_brute_force_epic(vs, ns, verb, noun, k), abs=1e-4)
        v_ok = sum(verb[i].item() in vs[i].topk(k).indices.tolist() for i in range(n))
        assert res[f"verb_top{k}"].item() == pytest.approx(100.0 * v_ok / n, abs=1e-4)
    # action top-1 needs both verb and noun right: never above either of them
    assert res["action_top1"] <= min(res["verb_top1"], res["noun_top1"])


def _ap_reference(scores, target):
    # precision at each positive, ranks counted by hand (no ties in the fixtures)
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    hits, precisions = 0, []
    for rank, i in enumerate(order, 1):
        if target[i]:
            hits += 1
            precisions.append(hits / rank)
    return sum(precisions) / len(precisions)


def test_average_precision_known_values():
    s = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5])
    t = torch.tensor([1, 0, 1, 0, 1])
    # positives at ranks 1, 3, 5: (1/1 + 2/3 + 3/5) / 3
    assert average_precision(s, t).item() == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)
    assert torch.isnan(average_precision(s, torch.zeros(5, dtype=torch.long)))


def test_multilabel_map_with_max_pooled_views():
    torch.manual_seed(2)
    v, c = 8, 5
    target = (torch.rand(v, c) > 0.6).long()
    target[:, 4] = 0  # a class without positives is left out of the mean
    views = torch.rand(v, 3, c)
    m = MultiLabelMeanAP()
    vid = torch.arange(v).repeat_interleave(3)
    m.update(views.reshape(v * 3, c), target.repeat_interleave(3, 0), vid)
    res = m.compute()["mAP"].item()
    pooled = views.max(1).values
    aps = [_ap_reference(pooled[:, j].tolist(), target[:, j].tolist()) for j in range(c) if target[:, j].any()]
    assert res == pytest.approx(100 * sum(aps) / len(aps), abs=1e-4)
    with pytest.raises(ValueError, match="multi-hot"):
        m.update(torch.rand(2, c), torch.tensor([1, 2]))


def test_charades_ties_without_video_index_follow_input_order():
    # two videos with the same score; the first (in input order) is the positive: the official
    # script's stable sort keeps it first, so AP = 1
    m = MultiLabelMeanAP()
    m.update(torch.tensor([[0.5], [0.5], [0.1]]), torch.tensor([[1], [0], [0]]))
    assert m.compute()["mAP"].item() == pytest.approx(100.0)
    m2 = MultiLabelMeanAP()
    m2.update(torch.tensor([[0.5], [0.5], [0.1]]), torch.tensor([[0], [1], [0]]))
    assert m2.compute()["mAP"].item() == pytest.approx(50.0)


@pytest.mark.parametrize("seed", [0, 1])
def test_sklearn_tie_convention_matches_scikit_learn(seed):
    from sklearn.metrics import average_precision_score

    g = torch.Generator().manual_seed(seed)
    v, c = 30, 6
    scores = (torch.rand(v, c, generator=g) * 4).round() / 4  # 5 distinct values: many ties
    target = (torch.rand(v, c, generator=g) > 0.6).long()
    target[:, 5] = 0
    target[0, :5] = 1
    m = MultiLabelMeanAP(ties="sklearn", per_class=True)
    m.update(scores, target, torch.arange(v))
    res = m.compute()
    ref = average_precision_score(target[:, :5].numpy(), scores[:, :5].numpy(), average=None)
    for j in range(5):
        assert res[f"AP/{j}"].item() == pytest.approx(100 * ref[j], rel=1e-12)
    assert torch.isnan(res["AP/5"])
    assert res["mAP"].item() == pytest.approx(100 * ref.mean(), rel=1e-12)
    official = MultiLabelMeanAP()
    official.update(scores, target, torch.arange(v))
    assert official.compute()["mAP"].item() != pytest.approx(res["mAP"].item())  # ties matter here


def test_weighted_ap_and_float64_results():
    scores = torch.tensor([[0.9, 0.2], [0.8, 0.9], [0.1, 0.8], [0.3, 0.1]])
    target = torch.tensor([[1, 0], [0, 1], [1, 1], [0, 1]])
    m = MultiLabelMeanAP(per_class=True)
    m.update(scores, target, torch.arange(4))
    res = m.compute()
    ap0 = (1 + 2 / 4) / 2  # positives of class 0 at ranks 1 and 4
    ap1 = (1 + 2 / 2 + 3 / 4) / 3  # positives of class 1 at ranks 1, 2, 4
    assert res["AP/0"].item() == pytest.approx(100 * ap0) and res["AP/1"].item() == pytest.approx(100 * ap1)
    assert res["wAP"].item() == pytest.approx(100 * (2 * ap0 + 3 * ap1) / 5)
    assert all(v.dtype == torch.float64 for v in res.values())
    acc = MultiViewAccuracy(top_k=(1,))
    acc.update(torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]), torch.tensor([0, 1, 1]))
    top1 = acc.compute()["top1"]
    assert top1.dtype == torch.float64 and top1.item() == pytest.approx(100 * 2 / 3, rel=1e-12)  # not 66.66666412
    with pytest.raises(ValueError, match="zero videos"):
        MultiLabelMeanAP().compute()


def test_epic_action_scoring_in_chunks_over_top_n_equals_the_full_product():
    torch.manual_seed(3)
    n, nv, nn_ = 50, 12, 15
    vs, ns = torch.rand(n, nv).softmax(-1), torch.rand(n, nn_).softmax(-1)
    verb, noun = torch.randint(0, nv, (n,)), torch.randint(0, nn_, (n,))
    small = EpicActionAccuracy(top_k=(1, 5), top_n=5)
    small.chunk = 7  # several chunks, one partial
    small.update(vs, ns, verb, noun)
    got = small.compute()
    for k in (1, 5):
        assert got[f"action_top{k}"].item() == pytest.approx(_brute_force_epic(vs, ns, verb, noun, k), rel=1e-12)
    with pytest.raises(ValueError, match="top_n"):
        EpicActionAccuracy(top_k=(1, 5), top_n=3)


def test_epic_unseen_and_tail_subsets_as_the_toolkit_defines_them():
    # 4 segments; perfect verb scores, noun right only for segments 0 and 2
    verb = torch.tensor([0, 1, 2, 3])
    noun = torch.tensor([0, 1, 2, 0])
    vs = torch.nn.functional.one_hot(verb, 4).double() * 0.9 + 0.025
    ns_pred = torch.tensor([0, 2, 2, 1])
    ns = torch.nn.functional.one_hot(ns_pred, 3).double() * 0.9 + 0.05
    m = EpicActionAccuracy(top_k=(1,), tail_verbs=[3], tail_nouns=[2])
    m.update(vs, ns, verb, noun, unseen=torch.tensor([False, True, True, False]))
    r = m.compute()
    assert r["noun_top1"].item() == 50.0 and r["action_top1"].item() == 50.0
    assert r["unseen_noun_top1"].item() == 50.0 and r["unseen_verb_top1"].item() == 100.0   # segments 1, 2
    assert r["tail_verb_top1"].item() == 100.0                                              # segment 3
    assert r["tail_noun_top1"].item() == 100.0                                              # segment 2
    assert r["tail_action_top1"].item() == 50.0                                             # segments 2 (hit), 3 (miss)
    plain = EpicActionAccuracy(top_k=(1,))
    plain.update(vs, ns, verb, noun)
    assert not any(k.startswith(("unseen", "tail")) for k in plain.compute())


def test_epic55_many_shot_class_mean_precision_recall_match_scikit_learn():
    from sklearn.metrics import precision_recall_fscore_support

    g = torch.Generator().manual_seed(4)
    n, nv, nn_ = 60, 6, 5
    verb, noun = torch.randint(0, nv, (n,), generator=g), torch.randint(0, nn_, (n,), generator=g)
    vs, ns = torch.rand(n, nv, generator=g).softmax(-1), torch.rand(n, nn_, generator=g).softmax(-1)
    many_v, many_n, many_a = [0, 1, 2, 5], [1, 3], [(0, 1), (2, 3), (5, 4)]
    m = EpicActionAccuracy(top_k=(1,), many_shot_verbs=many_v, many_shot_nouns=many_n, many_shot_actions=many_a)
    m.update(vs, ns, verb, noun)
    r = m.compute()

    def ref(truth, pred, classes):
        classes = [c for c in classes if c in set(truth.tolist())]
        p, rec, _, _ = precision_recall_fscore_support(truth.numpy(), pred.numpy(), labels=classes, average=None,
                                                       zero_division=0)
        return 100 * p.mean(), 100 * rec.mean()

    pv, rv = ref(verb, vs.argmax(1), many_v)
    assert r["many_shot_verb_precision"].item() == pytest.approx(pv, rel=1e-12)
    assert r["many_shot_verb_recall"].item() == pytest.approx(rv, rel=1e-12)
    pn, rn = ref(noun, ns.argmax(1), many_n)
    assert r["many_shot_noun_precision"].item() == pytest.approx(pn, rel=1e-12)
    action_pred = (vs[:, :, None] * ns[:, None, :]).flatten(1).argmax(1)  # = verb * nn_ + noun
    pa, ra = ref(verb * nn_ + noun, action_pred, [v * nn_ + x for v, x in many_a])
    assert r["many_shot_action_precision"].item() == pytest.approx(pa, rel=1e-12)
    assert r["many_shot_action_recall"].item() == pytest.approx(ra, rel=1e-12)
