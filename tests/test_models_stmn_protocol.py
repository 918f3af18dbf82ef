"""STMN details the thesis (F. Xiao, PhD thesis, UC Davis 2020, ch. 3) fixes: the STMM initialisation
from the swapped-out conv (Sec. 3.2.2), the ConvGRU ablation's random W (Sec. 3.2.2), the strided
sliding test window (Sec. 3.4) and the evaluation plumbing (frame ids, motion IoU breakdown)."""
import pytest
import torch
import torch.nn.functional as F

from mmzoo.models.stmn import STMN
from mmzoo.nn.stmm import bn_star

TINY = dict(backbone="resnet18", pretrained_backbone=False, head_channels=16, embed_channels=16, mem_channels=8)


def test_fresh_stmn_memory_reproduces_the_rfcn_features_it_starts_from():
    """With a zero memory, ReLU(W * F) of the two directions, concatenated, is the swapped-out R-FCN
    conv's output, so the pretrained 1x1 after the memory sees the features it was trained on (channel
    halves in place); the first memory is M_1 = z . ReLU(W * F), z = BN*(those same features)."""
    torch.manual_seed(0)
    m = STMN(ensemble="score_avg", w_scale=1.0, **TINY).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        _, emb = m._trunk(x)
        ref = m.ensemble_branch["conv"](emb)  # ReLU(replaced conv(F)): the R-FCN features
        fwd, bwd = m.temporal.forward_cell, m.temporal.backward_cell
        cand = torch.cat([F.relu(fwd.w(emb)), F.relu(bwd.w(emb))], 1)
        assert torch.allclose(cand, ref, atol=1e-5)
        mem = m.temporal(emb[:, None])[:, 0]  # one frame: both directions start from M = 0
        z = torch.cat([bn_star(ref[:, :8]), bn_star(ref[:, 8:])], 1)
        assert torch.allclose(mem, z * ref, atol=1e-5)


def test_convgru_ablation_w_is_random_by_default():
    torch.manual_seed(0)
    gru = STMN(temporal="convgru", matchtrans=False, ensemble="score_avg", **TINY)
    conv = gru.ensemble_branch["conv"][0]
    cells = (gru.temporal.forward_cell, gru.temporal.backward_cell)
    assert not any(torch.equal(c.w.weight, conv.weight[:8]) or torch.equal(c.w.weight, conv.weight[8:]) for c in cells)
    assert not torch.equal(cells[0].w.weight, cells[1].w.weight)
    # the choice stays an argument; the STMM keeps the pretrained W
    gru2 = STMN(temporal="convgru", matchtrans=False, ensemble="score_avg", w_init="replaced_conv", **TINY)
    assert torch.equal(gru2.temporal.forward_cell.w.weight, gru2.ensemble_branch["conv"][0].weight[:8])
    base = STMN(temporal="none", ensemble="none", **TINY)
    gru.init_from_single_frame(base)
    assert not torch.equal(gru.temporal.forward_cell.w.weight, base.temporal[0].weight[:8])


def _recording_model(**kw):
    m = STMN(**TINY, seq_nms=False, **kw).eval()
    calls = []

    def fake(video, sizes=None, proposals=None, raw=False, window=None):
        t = video.shape[2]
        ids = video[0, 0, :, 0, 0].round().long().tolist()  # frame numbers painted into the pixels
        calls.append((ids, window))
        return [{"boxes": torch.tensor([[1.0, 1, 5 + i, 5]]), "scores": torch.tensor([0.5]), "labels": torch.tensor([1])}
                for i in ids[:t]]
    m.forward = fake
    return m, calls


def test_detect_snippet_uses_strided_overlapping_windows():
    m, calls = _recording_model()  # defaults: test_window=11, test_stride=10, test_window_step=1
    assert (m.hparams.test_window, m.hparams.test_stride, m.hparams.test_window_step) == (11, 10, 1)
    n = 130
    video = torch.arange(n, dtype=torch.float32).view(1, 1, n, 1, 1).expand(1, 3, n, 4, 4).contiguous()
    dets = m.detect_snippet(video)
    windows = [ids for ids, _ in calls]
    assert windows[:3] == [list(range(0, 101, 10)), list(range(10, 111, 10)), list(range(20, 121, 10))]
    assert len(windows) == 30 and all(w == 11 for _, w in calls)  # each call is one memory window
    # one detection set per frame; frame 10 is in 2 windows, frame 50 in 3 (same box: NMS keeps one)
    assert len(dets) == n and all(len(d["boxes"]) == 1 for d in dets)
    assert [d["boxes"][0, 2].item() for d in dets] == [5.0 + i for i in range(n)]
    # the thesis's test-window ablation (T = 3 / 7 / 11 / 15)
    long = torch.arange(200, dtype=torch.float32).view(1, 1, 200, 1, 1).expand(1, 3, 200, 4, 4).contiguous()
    for t in (3, 7, 15):
        m2, calls2 = _recording_model(test_window=t)
        assert len(m2.detect_snippet(long)) == 200
        assert {len(ids) for ids, _ in calls2} == {t}
        assert all(b - a == 10 for ids, _ in calls2 for a, b in zip(ids, ids[1:]))


def test_eval_passes_frame_ids_motion_iou_and_reports_the_breakdown():
    m = STMN(**TINY, seq_nms=False)
    assert m.test_map.breakdown
    recorded = []
    orig = m.test_map.update

    def update(preds, targets, frame_ids=None):
        recorded.append((list(frame_ids) if frame_ids is not None else None, targets))
        return orig(preds, targets, frame_ids)

    box = torch.tensor([[10.0, 10, 40, 40]])

    def oracle(video, sizes=None, proposals=None, raw=False, window=None):
        return [{"boxes": b.clone(), "scores": torch.ones(1), "labels": torch.tensor([2])} for b in cur["boxes"]]
    m.forward = oracle
    # two overlapping windows over one 3-frame snippet: frames (0, 1) and (1, 2)
    for k, frames in enumerate(([0, 1], [1, 2])):
        meta = [{"snippet": "s", "frame": f, "eval_index": 7 + f, "size": (64, 96), "orig_size": (64, 96),
                 "scale": (1.0, 1.0), "flipped": False, "last": k == 1, "track_ids": [0],
                 "xml_boxes": torch.tensor([[10.0, 10, 39, 39]], dtype=torch.float64),
                 "motion_iou": torch.tensor([0.95], dtype=torch.float64)} for f in frames]
        cur = {"boxes": [box] * 2}
        batch = {"video": torch.zeros(1, 3, 2, 64, 96), "boxes": [box] * 2, "labels": [torch.tensor([2])] * 2,
                 "meta": meta}
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(m.test_map, "update", update)
            m.test_step(batch, k)
    assert len(recorded) == 1 and recorded[0][0] == [7, 8, 9]
    assert all(torch.equal(t["boxes"], torch.tensor([[10.0, 10, 39, 39]], dtype=torch.float64)) for t in recorded[0][1])
    m.on_test_epoch_end()
    r = m.last_eval_result
    assert r["num_frames"] == 3 and abs(r["map"] - 1.0) < 1e-9
    assert set(r) >= {"map/motion_slow", "map/motion_medium", "map/motion_fast", "map/area_small", "map/area_medium",
                      "map/area_large"}
    assert abs(r["map/motion_slow"] - 1.0) < 1e-9


def test_evaluation_over_zero_frames_is_an_error():
    m = STMN(**TINY)
    with pytest.raises(RuntimeError, match="zero frames"):
        m.on_test_epoch_end()
