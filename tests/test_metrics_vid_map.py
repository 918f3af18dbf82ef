"""VID mAP against hand-computed cases of the ILSVRC devkit rules."""
import math

import pytest
import torch

from mmzoo.metrics.vid_map import VIDMeanAP, devkit_iou, devkit_thresholds, voc_ap


def _p(boxes, scores, labels):
    return {"boxes": torch.tensor(boxes, dtype=torch.float).reshape(-1, 4), "scores": torch.tensor(scores),
            "labels": torch.tensor(labels, dtype=torch.long)}


def _t(boxes, labels):
    return {"boxes": torch.tensor(boxes, dtype=torch.float).reshape(-1, 4), "labels": torch.tensor(labels, dtype=torch.long)}


def test_iou_and_small_object_threshold():
    a = torch.tensor([0.0, 0, 9, 9])  # 10x10 with the +1 convention
    b = torch.tensor([5.0, 0, 14, 9])
    assert math.isclose(float(devkit_iou(a, b)), 50 / 150, rel_tol=1e-6)
    assert float(devkit_iou(a, torch.tensor([20.0, 20, 30, 30]))) == 0
    thr = devkit_thresholds(torch.tensor([[0.0, 0, 9, 9], [0, 0, 99, 99]]))
    assert math.isclose(float(thr[0]), 100 / 400, rel_tol=1e-6)  # 10x10 -> 0.25
    assert float(thr[1]) == 0.5


def test_voc_ap_hand_computed():
    # recall .5 at precision 1, then recall 1 at precision 2/3 -> 0.5*1 + 0.5*(2/3)
    ap = voc_ap(torch.tensor([0.5, 0.5, 1.0]), torch.tensor([1.0, 0.5, 2 / 3]))
    assert math.isclose(ap, 0.5 + 0.5 * 2 / 3, rel_tol=1e-6)


def test_map_hand_computed_two_classes():
    m = VIDMeanAP(num_classes=3)
    gt1 = _t([[0, 0, 99, 99], [200, 200, 299, 299]], [1, 1])
    gt2 = _t([[0, 0, 49, 49]], [2])
    # frame 1: tp (0.9), duplicate on same object -> fp (0.8), miss the second object
    p1 = _p([[0, 0, 99, 99], [2, 2, 99, 99]], [0.9, 0.8], [1, 1])
    # frame 2: class-2 box with IoU 0.4 -> fp (0.95); correct class-1 box on a class-2 object -> fp (0.7)
    p2 = _p([[0, 0, 49, 19], [0, 0, 49, 49]], [0.95, 0.7], [2, 1])
    m.update([p1], [gt1])
    m.update([p2], [gt2])
    r = m.compute()
    # class 1: scores 0.9 tp, 0.8 fp, 0.7 fp ; npos 2 -> rec [.5,.5,.5], prec [1,.5,1/3] -> AP .5
    # class 2: 0.95 fp ; npos 1 -> AP 0 ; class 3 no positives -> NaN, excluded from the mean
    assert math.isclose(float(r["ap"][0]), 0.5, rel_tol=1e-6)
    assert float(r["ap"][1]) == 0.0
    assert math.isnan(float(r["ap"][2]))
    assert math.isclose(float(r["map"]), 0.25, rel_tol=1e-6)
    assert int(r["num_frames"]) == 2


def test_small_object_threshold_decides_tp():
    # 10x10 object: a 20x20 box containing it has IoU 0.25 -> tp only thanks to the devkit rule
    gt = _t([[10, 10, 19, 19]], [1])
    det = _p([[5, 5, 24, 24]], [0.9], [1])
    m = VIDMeanAP(num_classes=1)
    m.update([det], [gt])
    assert float(m.compute()["map"]) == 1.0
    big = _t([[0, 0, 99, 99]], [1])
    m2 = VIDMeanAP(num_classes=1)
    m2.update([_p([[0, 0, 99, 49]], [0.9], [1])], [big])  # IoU exactly 0.5 -> tp (>=)
    m2.update([_p([[0, 0, 99, 48]], [0.9], [1])], [big])  # IoU 0.49 -> fp
    r = m2.compute()
    # sorted: tie at 0.9, stable by frame: tp then fp; npos 2 -> AP = 0.5 * 1
    assert math.isclose(float(r["map"]), 0.5, rel_tol=1e-6)


def test_greedy_picks_best_iou_among_unmatched():
    gt = _t([[0, 0, 99, 99], [10, 0, 109, 99]], [1, 1])
    dets = _p([[10, 0, 109, 99], [0, 0, 99, 99]], [0.9, 0.8], [1, 1])
    m = VIDMeanAP(num_classes=1)
    m.update([dets], [gt])
    assert float(m.compute()["map"]) == 1.0


def test_matches_loop_reference_on_random_data():
    g = torch.Generator().manual_seed(0)
    preds, gts = [], []
    for _ in range(40):
        ng = int(torch.randint(0, 4, (1,), generator=g))
        xy = torch.rand(ng, 2, generator=g) * 200
        wh = torch.rand(ng, 2, generator=g) * 80 + 5
        gb = torch.cat([xy, xy + wh], 1)
        gl = torch.randint(1, 4, (ng,), generator=g)
        nd = int(torch.randint(0, 6, (1,), generator=g))
        pick = torch.randint(0, max(ng, 1), (nd,), generator=g)
        db = (gb[pick] if ng else torch.rand(nd, 4, generator=g) * 100) + torch.randn(nd, 4, generator=g) * 8
        db[:, 2:] = torch.maximum(db[:, 2:], db[:, :2] + 1)
        dl = gl[pick] if ng else torch.randint(1, 4, (nd,), generator=g)
        flip = torch.rand(nd, generator=g) < 0.2
        dl = torch.where(flip, torch.randint(1, 4, (nd,), generator=g), dl)
        preds.append({"boxes": db, "scores": torch.rand(nd, generator=g), "labels": dl})
        gts.append({"boxes": gb, "labels": gl})
    m = VIDMeanAP(num_classes=3)
    m.update(preds[:20], gts[:20])
    m.update(preds[20:], gts[20:])
    got = m.compute()["ap"]
    # straightforward per-frame loop, as eval_vid_detection.m is written
    tps, scores, labels = [], [], []
    npos = torch.zeros(4)
    for p, t in zip(preds, gts):
        for lab in t["labels"]:
            npos[lab] += 1
        thr = devkit_thresholds(t["boxes"].double())
        used = [False] * len(t["labels"])
        order = torch.argsort(-p["scores"], stable=True)
        for j in order.tolist():
            best, kbest = -math.inf, -1
            for k in range(len(t["labels"])):
                if t["labels"][k] != p["labels"][j] or used[k]:
                    continue
                ov = float(devkit_iou(p["boxes"][j].double(), t["boxes"][k].double()))
                if ov >= float(thr[k]) and ov > best:
                    best, kbest = ov, k
            if kbest >= 0:
                used[kbest] = True
            tps.append(kbest >= 0)
            scores.append(float(p["scores"][j]))
            labels.append(int(p["labels"][j]))
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    for c in range(1, 4):
        t = torch.tensor([float(tps[i]) for i in order if labels[i] == c])
        ctp, cfp = torch.cumsum(t, 0), torch.cumsum(1 - t, 0)
        ref = voc_ap(ctp / npos[c], ctp / (ctp + cfp))
        assert math.isclose(float(got[c - 1]), ref, rel_tol=1e-5, abs_tol=1e-6), c


def test_state_is_list_cat_for_ddp():
    m = VIDMeanAP(num_classes=2)
    assert all(m._reductions[k].__name__ in ("dim_zero_cat", "_cat") or "cat" in str(m._reductions[k])
               for k in ("det_boxes", "gt_boxes", "det_keys"))
    m.update([_p([[0, 0, 9, 9]], [0.5], [1])], [_t([[0, 0, 9, 9]], [1])])
    m.reset()
    assert len(m.det_boxes) == 0


def test_states_from_two_ranks_merge_like_one_process(monkeypatch):
    """Simulated DDP gather: each rank keys its frames (rank, counter); cat-merged states give the
    same result as one process that saw every frame (frame keys do not collide)."""
    import mmzoo.metrics.vid_map as vm

    g = torch.Generator().manual_seed(5)
    frames = []
    for _ in range(12):
        gb = torch.rand(2, 2, generator=g) * 100
        gb = torch.cat([gb, gb + 30], 1)
        db = gb + torch.randn(2, 4, generator=g) * 9
        frames.append((_p(db.tolist(), torch.rand(2, generator=g).tolist(), [1, 2]), _t(gb.tolist(), [1, 2])))
    single = VIDMeanAP(num_classes=2)
    single.update([f[0] for f in frames], [f[1] for f in frames])
    ranks = []
    for r, part in enumerate((frames[:6], frames[6:])):
        monkeypatch.setattr(vm, "_rank", lambda r=r: r)
        m = VIDMeanAP(num_classes=2)
        m.update([f[0] for f in part], [f[1] for f in part])
        ranks.append(m)
    merged = VIDMeanAP(num_classes=2)
    for name in merged._defaults:  # every metric state
        setattr(merged, name, torch.cat([torch.cat(getattr(m, name)) for m in ranks]))  # what a cat-gather yields
    a, b = single.compute(), merged.compute()
    assert int(b["num_frames"]) == 12
    assert torch.allclose(a["ap"], b["ap"], equal_nan=True) and 0 < float(a["map"]) < 1



def test_equal_scores_are_ranked_in_evaluation_list_order_not_update_order():
    box = [10.0, 10.0, 50.0, 50.0]
    hit = (_p([box], [0.7], [1]), _t([box], [1]))          # eval index 0: a true positive
    miss = (_p([box], [0.7], [1]), _t([], []))               # eval index 1: a false positive
    m = VIDMeanAP(num_classes=1)
    m.update([miss[0]], [miss[1]], frame_ids=[1])                 # flushed first (another snippet)
    m.update([hit[0]], [hit[1]], frame_ids=[0])
    res = m.compute()
    # devkit order: TP then FP -> precision [1, 1/2] at recall [1, 1] -> AP 1
    assert res["map"].item() == pytest.approx(1.0)
    assert res["map"].dtype == torch.float64 and float(res["recall"]) == 1.0  # (torchmetrics squeezes 1-element results)
    with pytest.raises(ValueError, match="more than once"):
        m.update([hit[0]], [hit[1]], frame_ids=[0])
        m.compute()


def test_a_match_needs_positive_overlap():
    # a degenerate ground-truth box (width 0) has threshold 0; a detection that does not touch it
    # must not match it (devkit: iw > 0 and ih > 0)
    m = VIDMeanAP(num_classes=1)
    m.update([_p([[100.0, 100.0, 120.0, 120.0]], [0.9], [1])], [_t([[10.0, 10.0, 9.0, 30.0]], [1])])
    res = m.compute()
    assert float(res["ap"]) == 0.0 and float(res["recall"]) == 0.0


def test_classes_without_ground_truth_are_nan_and_left_out():
    box = [0.0, 0.0, 30.0, 30.0]
    m = VIDMeanAP(num_classes=3)
    m.update([_p([box, box], [0.9, 0.8], [1, 3])], [_t([box], [1])])
    res = m.compute()
    assert res["ap"][0].item() == 1.0 and torch.isnan(res["ap"][1]) and torch.isnan(res["ap"][2])
    assert res["map"].item() == 1.0


def test_motion_iou_averages_the_track_over_ten_frames_either_side():
    from mmzoo.metrics.vid_motion import motion_iou

    box = [0.0, 0.0, 9.0, 9.0]  # 10 x 10
    shifted = [5.0, 0.0, 14.0, 9.0]  # overlaps 5 x 10: IoU 50 / 150
    frames, tracks = [0, 1, 11, 30, 0], [7, 7, 7, 7, 8]
    got = motion_iou(frames, tracks, torch.tensor([box, shifted, box, box, box]))
    assert got[0].item() == pytest.approx(50 / 150)        # only frame 1 is within 10 frames
    assert got[1].item() == pytest.approx((50 / 150 + 50 / 150) / 2)  # frames 0 and 11
    assert got[3].item() == 0.0 and got[4].item() == 0.0   # no neighbour of its track: 0, as FGFA reads it


def test_breakdown_by_speed_and_size_ignores_out_of_range_objects():
    big = [0.0, 0.0, 199.0, 199.0]      # area 200^2: large
    small = [300.0, 300.0, 319.0, 319.0]  # area 20^2: small
    m = VIDMeanAP(num_classes=1, breakdown=True)
    frame = _p([big, small], [0.9, 0.8], [1, 1])
    m.update([frame], [{**_t([big, small], [1, 1]), "motion_iou": torch.tensor([0.95, 0.5])}])  # slow, fast
    r = m.compute()
    assert r["map"].item() == pytest.approx(1.0)
    for key in ("map/motion_slow", "map/motion_fast", "map/area_large", "map/area_small"):
        assert r[key].item() == pytest.approx(1.0), key  # the other object is ignored, not a false positive
    assert torch.isnan(r["map/motion_medium"]) and torch.isnan(r["map/area_medium"])  # no positive in range
    # a detection touching no object, ranked first: for 'slow' it overlaps the slow and the ignored
    # fast object equally (0), so FGFA counts it as half a false positive (the frame's share of
    # motion-ignored objects): precision 1 / 1.5 at full recall
    m2 = VIDMeanAP(num_classes=1, breakdown=True)
    miss = [330.0, 330.0, 349.0, 349.0]
    m2.update([_p([miss, big], [0.99, 0.9], [1, 1])], [{**_t([big, small], [1, 1]), "motion_iou": torch.tensor([0.95, 0.5])}])
    r2 = m2.compute()
    assert r2["map/motion_slow"].item() == pytest.approx(2 / 3)
    assert r2["map/area_large"].item() == pytest.approx(1.0)  # its own area (20^2) is outside 'large': ignored
    with pytest.raises(ValueError, match="motion_iou"):
        m3 = VIDMeanAP(num_classes=1, breakdown=True)
        m3.update([frame], [_t([big], [1])])
        m3.compute()


def test_zero_frames_is_an_error():
    with pytest.raises(ValueError, match="zero frames"):
        VIDMeanAP(num_classes=2).compute()
