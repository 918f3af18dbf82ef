"""Retrieval metrics against the definitions of the reference evaluation code (Collaborative
Experts ``model/metric.py``: ``t2v_metrics`` / ``v2t_metrics`` / ``cols2metrics``, copied by the
PaddleVideo T2VLAD port): tie averaging, duplicate captions in video->text, masked (padded)
queries, fractional MdR. Every expected number is worked out by hand in the comments."""
import pytest
import torch

from mmzoo.metrics.retrieval import RetrievalMetrics, ranks_to_metrics, retrieval_ranks, t2v_ranks, v2t_ranks


def test_text_to_video_ties_are_averaged_over_the_tied_positions():
    sims = torch.tensor([
        [0.7, 0.7, 0.7, 0.1, 0.7, 0.0],  # gt 0 ties with 1, 2, 4: positions 0..3 -> 1.5
        [0.9, 0.5, 0.5, 0.5, 0.2, 0.0],  # gt 1: one above, tie with 2, 3: positions 1..3 -> 2.0
        [0.3, 0.3, 0.8, 0.3, 0.3, 0.3],  # gt 2 alone on top -> 0
        [0.4, 0.4, 0.4, 0.4, 0.4, 0.4],  # gt 3: all six tied: positions 0..5 -> 2.5
        [0.2, 0.9, 0.9, 0.0, 0.5, 0.9],  # gt 4: three above, no tie -> 3
        [0.1, 0.1, 0.0, 0.0, 0.0, 0.1],  # gt 5 ties with 0, 1 at the top: positions 0..2 -> 1.0
    ])
    q2v = torch.arange(6)
    assert t2v_ranks(sims, q2v).tolist() == [1.5, 2.0, 0.0, 2.5, 3.0, 1.0]
    # the reference's other option ("optimistically": first tied position) and the pessimistic one
    assert t2v_ranks(sims, q2v, ties="optimistic").tolist() == [0.0, 1.0, 0.0, 0.0, 3.0, 0.0]
    assert t2v_ranks(sims, q2v, ties="pessimistic").tolist() == [3.0, 3.0, 0.0, 5.0, 3.0, 2.0]
    r = ranks_to_metrics(t2v_ranks(sims, q2v), ks=(1, 2, 3, 5, 10))
    assert r["R@1"] == pytest.approx(100 / 6)  # only the rank-0 query; 1.0 and 1.5 are no hits
    assert r["R@2"] == pytest.approx(300 / 6)  # 0, 1.0, 1.5
    assert r["R@3"] == pytest.approx(500 / 6)  # 0, 1.0, 1.5, 2.0, 2.5 (< 3); 3.0 is not
    # sorted ranks 0, 1, 1.5, 2, 2.5, 3 -> median (1.5 + 2) / 2 = 1.75 -> MdR 2.75; mean 10/6
    assert r["MdR"] == pytest.approx(2.75)
    assert r["MnR"] == pytest.approx(10 / 6 + 1)
    assert r["R1-R5-R10"] == pytest.approx((100 / 6 * 100 * 100) ** (1 / 3))


def test_averaged_rank_counts_for_recall_at_k_when_below_k():
    # ground truth tied with nine other videos at the top: positions 0..9 -> rank 4.5
    sims = torch.zeros(1, 10)
    r = ranks_to_metrics(t2v_ranks(sims, torch.tensor([0])), ks=(1, 5, 10))
    assert (r["R@1"], r["R@5"], r["R@10"], r["MdR"], r["MnR"]) == (0.0, 100.0, 100.0, 5.5, 5.5)


def test_perfect_model_with_duplicate_captions_video_to_text():
    # 3 videos x 4 captions (queries 4v..4v+3 describe video v); every caption scores its own video
    # highest, i.e. a perfect model. Identical caption texts embed identically -> identical rows.
    a = [0.9, 0.1, 0.2]                                # video 0: captions a, a, a, a
    c, d = [0.1, 0.9, 0.0], [0.2, 0.7, 0.1]            # video 1: captions c, c, d, d
    e, f, g, h = [0.0, 0.2, 0.95], [0.1, 0.0, 0.6], [0.2, 0.1, 0.7], [0.0, 0.0, 0.5]  # video 2: 4 distinct
    sims = torch.tensor([a, a, a, a, c, c, d, d, e, f, g, h])
    q2v = torch.arange(12) // 4
    # text->video: every caption's own video is strictly best -> all ranks 0
    assert t2v_ranks(sims, q2v).tolist() == [0.0] * 12
    # video->text, column 0: a x4 (0.9) on top, tied: positions 0..3 -> 1.5 for each; min 1.5
    # column 1: c x2 (0.9) on top: positions 0..1 -> 0.5 (d: 0.7, positions 2..3 -> 2.5); min 0.5
    # column 2: e (0.95) alone on top -> 0
    ranks = v2t_ranks(sims, q2v)
    assert ranks.tolist() == [1.5, 0.5, 0.0]
    assert v2t_ranks(sims, q2v, ties="optimistic").tolist() == [0.0, 0.0, 0.0]
    m = RetrievalMetrics()
    m.update(sims, q2v)
    res = m.compute()
    assert res["t2v/R@1"] == 100.0
    assert res["v2t/R@1"] == pytest.approx(100 / 3)   # only video 2 (distinct captions) is a hit
    assert res["v2t/R@5"] == 100.0
    assert res["v2t/MdR"] == pytest.approx(1.5)       # median(0, 0.5, 1.5) + 1
    assert res["v2t/MnR"] == pytest.approx(2 / 3 + 1)  # mean(0, 0.5, 1.5) + 1
    # 1k-A protocol (one caption per test video): the same model, first caption of each video
    one = torch.tensor([0, 4, 8])
    t2v, v2t = retrieval_ranks(sims[one], torch.arange(3))
    assert t2v.tolist() == [0.0, 0.0, 0.0] and v2t.tolist() == [0.0, 0.0, 0.0]


def test_identical_caption_of_another_video_ties_in_video_to_text():
    # video 0's caption and video 1's second caption have the same text ("a man is running")
    same = [0.6, 0.4]
    sims = torch.tensor([same, [0.1, 0.9], same])
    q2v = torch.tensor([0, 1, 1])
    # column 0: [0.6, 0.1, 0.6]: own caption 0 ties with caption 2 at the top -> 0.5
    # column 1: [0.4, 0.9, 0.4]: own captions 1 (0.9 -> 0) and 2 (0.4, tied 1..2 -> 1.5); min 0
    assert v2t_ranks(sims, q2v).tolist() == [0.5, 0.0]
    # text->video: q0 0.6 > 0.4 -> 0; q1 0.9 > 0.1 -> 0; q2 gt video 1 (0.4) below 0.6 -> 1
    assert t2v_ranks(sims, q2v).tolist() == [0.0, 0.0, 1.0]


def _padded():
    """3 videos x 3 caption slots, video-major (the reference layout); video 2 has only 2 captions,
    its third slot is padding with arbitrary (here: top, or NaN) scores."""
    sims = torch.tensor([
        [0.9, 0.2, 0.1],  # v0 q0
        [0.3, 0.5, 0.1],  # v0 q1
        [0.4, 0.4, 0.0],  # v0 q2
        [0.1, 0.8, 0.3],  # v1 q0
        [0.6, 0.2, 0.2],  # v1 q1
        [0.0, 0.7, 0.6],  # v1 q2
        [0.2, 0.3, 0.7],  # v2 q0
        [0.5, 0.1, 0.4],  # v2 q1
        [1.0, 1.0, 1.0],  # v2 padding
    ])
    q2v = torch.arange(9) // 3
    mask = torch.tensor([True] * 8 + [False])
    return sims, q2v, mask


def test_masked_queries_are_dropped_like_the_reference_query_masks():
    sims, q2v, mask = _padded()
    # text->video (8 real queries): q0 0.9 top -> 0; q1 0.3 < 0.5 -> 1; q2 0.4 ties 0.4 -> 0.5;
    # q3 0.8 -> 0; q4 0.2 < 0.6, tie 0.2 -> positions 1..2 -> 1.5; q5 0.7 -> 0; q6 0.7 -> 0;
    # q7 0.4 < 0.5 -> 1
    assert t2v_ranks(sims, q2v, query_mask=mask).tolist() == [0.0, 1.0, 0.5, 0.0, 1.5, 0.0, 0.0, 1.0]
    # video->text over the 8 real captions:
    # column 0 [0.9, 0.3, 0.4, 0.1, 0.6, 0.0, 0.2, 0.5]: own q0 0.9 -> 0
    # column 1 [0.2, 0.5, 0.4, 0.8, 0.2, 0.7, 0.3, 0.1]: own q3 0.8 -> 0
    # column 2 [0.1, 0.1, 0.0, 0.3, 0.2, 0.6, 0.7, 0.4]: own q6 0.7 -> 0 (q7 0.4 -> 2)
    assert v2t_ranks(sims, q2v, query_mask=mask).tolist() == [0.0, 0.0, 0.0]
    m = RetrievalMetrics(ks=(1, 2))
    m.update(sims, q2v, query_mask=mask)
    res = m.compute()
    assert res["t2v/R@1"] == pytest.approx(100 * 4 / 8)   # denominator: 8 real queries, not 9
    assert res["t2v/R@2"] == pytest.approx(100 * 8 / 8)
    assert res["t2v/MdR"] == pytest.approx(1.25)          # sorted 0,0,0,0,0.5,1,1,1.5 -> (0+0.5)/2 + 1
    assert res["t2v/MnR"] == pytest.approx(4 / 8 + 1)     # sum of ranks 4
    assert res["v2t/R@1"] == 100.0
    # without the mask the padding row is a query and a candidate: it takes the top of every
    # column (v0: q0 0.9 below 1.0 -> 1; v1: 0.8 -> 1; v2: the padding is "its" caption -> 0) and
    # its own t2v rank is 1 (three-way tie, positions 0..2) -> the numbers change; the reference
    # code never ranks it, neither do we with the mask
    assert v2t_ranks(sims, q2v).tolist() == [1.0, 1.0, 0.0]
    assert t2v_ranks(sims, q2v)[8].item() == 1.0


def test_masked_rows_may_hold_nan_and_subsets_respect_the_mask():
    sims, q2v, mask = _padded()
    sims[8] = float("nan")
    whole = RetrievalMetrics(ks=(1, 2))
    whole.update(sims, q2v, query_mask=mask)
    parts = RetrievalMetrics(ks=(1, 2))
    for r in range(2):  # two DDP ranks' disjoint subsets
        parts.update(sims, q2v, torch.arange(r, 9, 2), torch.arange(r, 3, 2), query_mask=mask)
    assert sorted(parts.ranks()["t2v"]) == [0.0, 0.0, 0.0, 0.0, 0.5, 1.0, 1.0, 1.5]
    assert whole.compute() == pytest.approx(parts.compute())
    with pytest.raises(ValueError, match="NaN"):
        t2v_ranks(sims, q2v)  # unmasked NaN row


def test_mask_errors():
    sims, q2v, mask = _padded()
    with pytest.raises(ValueError, match="query_mask must be a bool tensor"):
        t2v_ranks(sims, q2v, query_mask=mask[:5])
    with pytest.raises(ValueError, match="query_mask must be a bool tensor"):
        t2v_ranks(sims, q2v, query_mask=mask.long())
    only_v0 = torch.tensor([True, True, True] + [False] * 6)
    with pytest.raises(ValueError, match="video 1 has no"):
        v2t_ranks(sims, q2v, query_mask=only_v0)  # the reference code would give rank inf
