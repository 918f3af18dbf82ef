"""DAVIS J / F equal the official davis2017-evaluation definitions on hand-computed cases."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mmzoo.metrics.davis import DavisJF, boundary_f, decay, disk, jaccard, seg2bmap


def square(h, w, y0, x0, s):
    m = np.zeros((h, w), dtype=bool)
    m[y0 : y0 + s, x0 : x0 + s] = True
    return m


def test_jaccard_hand_cases():
    a, b = square(8, 8, 0, 0, 4), square(8, 8, 2, 2, 4)
    assert jaccard(a, b) == pytest.approx(4 / 28)  # 4 shared pixels, 16 + 16 - 4 in the union
    assert jaccard(np.zeros((4, 4)), np.zeros((4, 4))) == 1.0  # empty union counts as perfect
    assert jaccard(a, np.zeros_like(a)) == 0.0


def test_seg2bmap_marks_pixels_whose_right_lower_or_diagonal_neighbour_differs():
    seg = np.zeros((4, 4), dtype=bool)
    seg[1:3, 1:3] = True
    want = np.array([[1, 1, 1, 0],   # (0,0): lower-right neighbour (1,1) differs
                     [1, 0, 1, 0],
                     [1, 1, 1, 0],
                     [0, 0, 0, 0]], dtype=bool)
    assert np.array_equal(seg2bmap(seg), want)


def test_disk_is_skimage_disk():
    assert disk(1).tolist() == [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
    assert disk(2).sum() == 13


def _brute_force_f(gt, pred, r):
    """F from Euclidean distances between boundary pixels (no morphology)."""
    fb, gb = np.argwhere(seg2bmap(pred)), np.argwhere(seg2bmap(gt))
    if len(fb) == 0 or len(gb) == 0:
        return None
    d = np.sqrt(((fb[:, None, :] - gb[None, :, :]) ** 2).sum(-1))
    precision = (d.min(1) <= r).mean()
    recall = (d.min(0) <= r).mean()
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


@pytest.mark.parametrize("shift", [0, 1, 2, 3, 6])
def test_boundary_f_equals_distance_based_count(shift):
    h, w = 40, 60  # diagonal 72.1 -> tolerance ceil(0.577) = 1 pixel
    gt, pred = square(h, w, 10, 10, 12), square(h, w, 10 + shift, 10 + shift, 12)
    r = math.ceil(0.008 * math.hypot(h, w))
    assert r == 1
    assert boundary_f(gt, pred) == pytest.approx(_brute_force_f(gt, pred, r))
    if shift == 0:
        assert boundary_f(gt, pred) == 1.0


def test_boundary_f_empty_conventions():
    gt = square(20, 20, 5, 5, 6)
    empty = np.zeros_like(gt)
    assert boundary_f(gt, empty) == 0.0  # precision 1, recall 0
    assert boundary_f(empty, gt) == 0.0  # precision 0, recall 1
    assert boundary_f(empty, empty) == 1.0


def test_sequence_metric_skips_first_and_last_frames_and_treats_void_as_background():
    t, h, w = 4, 20, 20
    gt = np.zeros((t, h, w), dtype=np.int64)
    for i in range(t):
        gt[i, 5:10, 5:10] = 1
    gt[:, 0, :] = 255  # void: background for the official reader
    pred = np.zeros_like(gt)
    pred[1, 5:10, 5:10] = 1            # frame 1 perfect
    pred[2, 5:10, 5:15] = 1            # frame 2: J = 25 / 50
    pred[0] = 0                        # first and last frames are not scored
    pred[3] = 0
    m = DavisJF()
    m.update(torch.from_numpy(pred), torch.from_numpy(gt), "seq")
    out = m.compute()
    assert out["J_mean"].item() == pytest.approx(100 * (1.0 + 0.5) / 2)
    assert out["J_recall"].item() == pytest.approx(50.0)  # only frame 1 is above 0.5
    f2 = boundary_f(gt[2] == 1, pred[2] == 1)
    assert out["F_mean"].item() == pytest.approx(100 * (1.0 + f2) / 2, rel=1e-5)
    assert out["JF_mean"].item() == pytest.approx((out["J_mean"].item() + out["F_mean"].item()) / 2, rel=1e-6)
    assert m.per_sequence["seq"][0][0] == pytest.approx(0.75)
    # two scored frames: bins [0:1], [0:2], [1:2], [1:2], so D = J(frame 1) - J(frame 2)
    assert out["J_decay"].item() == pytest.approx(50.0)
    assert out["F_decay"].item() == pytest.approx(100 * (1.0 - f2), rel=1e-5)


def test_decay_bins_follow_the_official_db_statistics():
    # 8 frames: bin edges round(linspace(1, 8, 5)) - 1 = 0, 2, 4, 5, 7, each bin keeps its end frame
    v = np.array([1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3])
    assert decay(v) == pytest.approx((1.0 + 0.9 + 0.8) / 3 - (0.5 + 0.4 + 0.3) / 3)
    assert decay(np.full(5, 0.7)) == pytest.approx(0.0)
    # 5 frames: edges 0, 1, 2, 3, 4; bins [0:2] and [3:5]; improving over time is a negative decay
    assert decay(np.array([0.2, 0.4, 0.6, 0.8, 1.0])) == pytest.approx(0.3 - 0.9)


def test_objects_are_averaged_over_sequences_and_ids_above_the_first_frame_are_refused():
    gt = np.zeros((3, 10, 10), dtype=np.int64)
    gt[:, 1:4, 1:4] = 1
    gt[:, 6:9, 6:9] = 2
    pred = gt.copy()
    pred[1][pred[1] == 2] = 0  # object 2 lost in the only scored frame
    m = DavisJF(percent=False)
    m.update(pred, gt)
    m.update(gt, gt)  # a second, perfect sequence with the same two objects
    assert m.compute()["J_mean"].item() == pytest.approx((1 + 0 + 1 + 1) / 4)
    bad = gt.copy()
    bad[1, 0, 0] = 3
    with pytest.raises(ValueError, match="above the 2 objects"):
        DavisJF().update(bad, gt)
