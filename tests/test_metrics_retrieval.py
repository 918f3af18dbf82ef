"""Retrieval metrics against hand-computed ranks (1k-A: one caption per video; full: several)."""
import math

import numpy as np

import pytest
import torch

from mmzoo.metrics.retrieval import RetrievalMetrics, ranks_to_metrics, t2v_ranks, v2t_ranks


def test_one_caption_per_video_hand_computed():
    # rows = texts, cols = videos; text i describes video i
    sims = torch.tensor([
        [0.9, 0.1, 0.3, 0.0],   # gt 0.9 is best            -> rank 0
        [0.8, 0.5, 0.6, 0.1],   # gt 0.5 below 0.8 and 0.6  -> rank 2
        [0.2, 0.7, 0.4, 0.9],   # gt 0.4 below 0.7, 0.9     -> rank 2
        [0.1, 0.2, 0.3, 0.25],  # gt 0.25 below 0.3         -> rank 1
    ])
    q2v = torch.arange(4)
    assert t2v_ranks(sims, q2v).tolist() == [0, 2, 2, 1]
    # video j ranks the texts by column j
    # col0 [0.9,0.8,0.2,0.1] gt 0.9 -> 0 ; col1 [0.1,0.5,0.7,0.2] gt 0.5 -> 1
    # col2 [0.3,0.6,0.4,0.3] gt 0.4 -> 1 ; col3 [0,0.1,0.9,0.25] gt 0.25 -> 1
    assert v2t_ranks(sims, q2v).tolist() == [0, 1, 1, 1]
    m = RetrievalMetrics()
    m.update(sims, q2v)
    r = m.compute()
    assert r["t2v/R@1"] == pytest.approx(25.0)
    assert r["t2v/R@5"] == pytest.approx(100.0)
    assert r["t2v/MdR"] == pytest.approx(2.5)  # median of ranks 1,3,3,2 (1-based) = 2.5
    assert r["t2v/MnR"] == pytest.approx((1 + 3 + 3 + 2) / 4)
    assert r["v2t/R@1"] == pytest.approx(25.0)
    assert r["v2t/MdR"] == pytest.approx(2.0)


def test_multi_caption_video_to_text_uses_best_caption():
    # 2 videos x 2 captions (full protocol style): queries 0,1 -> video 0; 2,3 -> video 1
    sims = torch.tensor([
        [0.2, 0.9],   # q0 of v0: gt 0.2 < 0.9 -> t2v rank 1
        [0.8, 0.1],   # q1 of v0: rank 0
        [0.3, 0.4],   # q2 of v1: rank 0
        [0.6, 0.5],   # q3 of v1: rank 1
    ])
    q2v = torch.tensor([0, 0, 1, 1])
    assert t2v_ranks(sims, q2v).tolist() == [1, 0, 0, 1]
    # v0 column [0.2,0.8,0.3,0.6]: q0 rank 3, q1 rank 0 -> best 0
    # v1 column [0.9,0.1,0.4,0.5]: q2 rank 2, q3 rank 1 -> best 1
    assert v2t_ranks(sims, q2v).tolist() == [0, 1]
    m = RetrievalMetrics(ks=(1, 2))
    m.update(sims, q2v)
    r = m.compute()
    assert r["t2v/R@1"] == pytest.approx(50.0) and r["v2t/R@1"] == pytest.approx(50.0)
    assert r["v2t/R@2"] == pytest.approx(100.0)


def test_ties_are_averaged_by_default():
    sims = torch.tensor([[0.5, 0.5, 0.5], [0.1, 0.9, 0.0], [0.0, 0.0, 1.0]])
    q2v = torch.arange(3)
    # row 0: all tied -> positions 0,1,2 -> average 1
    assert t2v_ranks(sims, q2v).tolist() == [1.0, 0.0, 0.0]
    assert t2v_ranks(sims, q2v, ties="optimistic").tolist() == [0.0, 0.0, 0.0]
    assert t2v_ranks(sims, q2v, ties="pessimistic").tolist() == [2.0, 0.0, 0.0]


def test_disjoint_subsets_give_the_same_result_as_one_update():
    g = torch.Generator().manual_seed(0)
    sims = torch.randn(12, 4, generator=g)
    q2v = torch.arange(12) // 3
    whole = RetrievalMetrics()
    whole.update(sims, q2v)
    parts = RetrievalMetrics()
    for r in range(2):  # what two DDP ranks record; sync concatenates the states
        parts.update(sims, q2v, torch.arange(r, 12, 2), torch.arange(r, 4, 2))
    a, b = whole.compute(), parts.compute()
    assert a.keys() == b.keys()
    for k in a:
        assert a[k] == pytest.approx(b[k])


def test_errors_and_median_definition():
    with pytest.raises(ValueError, match="one entry per row"):
        t2v_ranks(torch.zeros(3, 2), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="no caption"):
        v2t_ranks(torch.zeros(2, 3), torch.tensor([0, 1]))
    r = ranks_to_metrics(torch.tensor([0.0, 4.0, 9.0]))
    assert r["MdR"] == 5.0 and r["R@5"] == pytest.approx(200 / 3) and math.isclose(r["MnR"], 13 / 3 + 1)


def _ddp_worker(rank, world, port, sims, q2v, out_dir):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        m = RetrievalMetrics()
        m.update(sims, q2v, torch.arange(rank, sims.shape[0], world), torch.arange(rank, sims.shape[1], world))
        res = m.compute()  # torchmetrics syncs the concatenation states across the two processes
        torch.save(res, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_process_gloo_sync_matches_single_process(tmp_path):
    import socket

    import torch.multiprocessing as mp

    g = torch.Generator().manual_seed(1)
    sims = torch.randn(15, 5, generator=g)
    q2v = torch.arange(15) // 3
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # fork: the children inherit the imported modules (spawn would re-import torch twice)
    mp.start_processes(_ddp_worker, args=(2, port, sims, q2v, str(tmp_path)), nprocs=2, join=True, start_method="fork")
    single = RetrievalMetrics()
    single.update(sims, q2v)
    expected = single.compute()
    for r in range(2):
        got = torch.load(tmp_path / f"rank{r}.pt")
        assert got.keys() == expected.keys()
        for k in expected:
            assert got[k] == pytest.approx(expected[k]), k


def _reference_t2v(sims: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Independent sort-based ranks: each query's ground-truth score is located in its sorted
    row and the positions it occupies are averaged (the reference code's tie rule)."""
    out = []
    for q in range(sims.shape[0]):
        row = -np.sort(-sims[q])
        out.append(np.flatnonzero(row == sims[q, gt[q]]).mean())
    return np.asarray(out)


def _reference_summary(cols: np.ndarray) -> dict:
    r1, r5, r10 = (100.0 * np.mean(cols == 0), 100.0 * np.mean(cols < 5), 100.0 * np.mean(cols < 10))
    return {"R@1": r1, "R@5": r5, "R@10": r10, "MdR": np.median(cols) + 1, "MnR": cols.mean() + 1,
            "R1-R5-R10": float(np.prod([r1, r5, r10]) ** (1 / 3))}


def test_r1_counts_only_rank_zero_when_the_ground_truth_ties():
    sims = torch.tensor([[1.0, 1.0, 0.0], [0.0, 2.0, 2.0], [0.0, 0.0, 3.0]])
    ranks = t2v_ranks(sims, torch.tensor([0, 1, 2]))
    assert ranks.tolist() == [0.5, 0.5, 0.0]
    r = ranks_to_metrics(ranks, ks=(1, 5))
    assert r["R@1"] == pytest.approx(100.0 / 3)  # the two tied queries are not hits
    assert r["R@5"] == pytest.approx(100.0)


def test_float64_similarities_are_ranked_in_float64():
    sims = torch.tensor([[1.0 + 1e-12, 1.0], [1.0, 1.0 + 1e-12]], dtype=torch.float64)
    m = RetrievalMetrics(ks=(1,))
    m.update(sims, torch.tensor([0, 1]))
    r = m.compute()
    assert r["t2v/R@1"] == 100.0 and r["v2t/R@1"] == 100.0  # float32 would make both ties (R@1 = 0)
    assert isinstance(r["t2v/MdR"], float)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_summary_matches_an_independent_reference_with_ties(seed):
    g = np.random.default_rng(seed)
    sims = np.round(g.normal(size=(40, 40)), 1)  # rounding makes many ties
    gt = np.arange(40)
    mine = t2v_ranks(torch.from_numpy(sims), torch.from_numpy(gt))
    ref = _reference_t2v(sims, gt)
    np.testing.assert_allclose(mine.numpy(), ref)
    got, want = ranks_to_metrics(mine), _reference_summary(ref)
    assert got.keys() == want.keys()
    for k in want:
        assert got[k] == pytest.approx(want[k], rel=1e-12), k


def test_geometric_mean_is_zero_when_a_recall_is_zero_and_ranks_are_kept():
    assert ranks_to_metrics(torch.tensor([3.0, 7.0]))["R1-R5-R10"] == 0.0
    m = RetrievalMetrics()
    sims = torch.tensor([[0.9, 0.1], [0.8, 0.2]], dtype=torch.float64)
    m.update(sims, torch.tensor([0, 1]))
    assert m.ranks() == {"t2v": [0.0, 1.0], "v2t": [0.0, 0.0]}


def test_zero_queries_is_an_error():
    with pytest.raises(ValueError, match="zero queries"):
        RetrievalMetrics().compute()
