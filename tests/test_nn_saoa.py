"""SAOA blocks (thesis ch. 3, Eqs. 3.1-3.14) against hand-computed small cases."""
from __future__ import annotations

import math

import pytest
import torch

from mmzoo.nn.saoa import (
    ActionAttendedRelation,
    CrossStreamGating,
    GlobalAlignment,
    LocalAlignment,
    action_prior,
    action_scores,
    masked_pool,
)


def _set(linear, weight, bias=None):
    with torch.no_grad():
        linear.weight.copy_(torch.tensor(weight, dtype=torch.float32))
        if bias is not None:
            linear.bias.copy_(torch.tensor(bias, dtype=torch.float32))


def test_global_alignment_eq_3_1_by_hand():
    ga = GlobalAlignment(dim=2, object_dim=3)
    _set(ga.video, [[1, 0], [0, 2]])
    _set(ga.obj, [[1, 1, 0], [0, 0, -1]], [0.5, -1.0])
    f_g = torch.tensor([[1.0, -1.0]])
    f_o = torch.tensor([[[1.0, 2.0, 3.0], [0.0, 0.0, -4.0]]])
    out = ga(f_g, f_o)
    # object 0: W f_g = (1, -2); W_o f_o = (3, -3); + b (0.5, -1) = (4.5, -6) -> ReLU (4.5, 0)
    # object 1: (1, -2) + (0, 4) + (0.5, -1) = (1.5, 1)
    assert torch.allclose(out, torch.tensor([[[4.5, 0.0], [1.5, 1.0]]]))


def test_global_alignment_det_only_and_padding():
    ga = GlobalAlignment(dim=2, object_dim=2, use_video=False)
    assert ga.video is None
    _set(ga.obj, [[1, 0], [0, 1]], [0.0, 0.0])
    f_o = torch.tensor([[[2.0, 3.0], [5.0, 7.0]]])
    out = ga(torch.tensor([[100.0, 100.0]]), f_o, mask=torch.tensor([[True, False]]))
    assert torch.equal(out, torch.tensor([[[2.0, 3.0], [0.0, 0.0]]]))  # f_g ignored, padding row zero


def test_global_alignment_i3d_normalisation():
    ga = GlobalAlignment(dim=2, object_dim=2, normalize=True)
    _set(ga.video, [[1, 0], [0, 1]])
    _set(ga.obj, [[1, 0], [0, 1]], [0.0, 0.0])
    f_g = torch.tensor([[3.0, 4.0]])  # norm 5
    f_o = torch.tensor([[[0.0, 10.0]]])  # normalised (0, 1), times 5 -> (0, 5)
    assert torch.allclose(ga(f_g, f_o), torch.tensor([[[3.0, 9.0]]]))
    # two clips, two objects: each clip's objects take its own video feature's norm
    f_g2 = torch.tensor([[3.0, 4.0], [0.0, 2.0]])
    f_o2 = torch.tensor([[[0.0, 10.0], [1.0, 0.0]], [[0.0, 10.0], [1.0, 0.0]]])
    assert torch.allclose(ga(f_g2, f_o2), torch.tensor([[[3.0, 9.0], [8.0, 4.0]], [[0.0, 4.0], [2.0, 2.0]]]))


def test_local_alignment_roi_features_scale_boxes_and_pool_time():
    la = LocalAlignment(dim=1, object_dim=1, output_size=2, temporal="mean", pool="max")
    # map 1 x 1 x T=2 x 4 x 4: time mean of t0 = x index and t1 = 3 x index -> 2 x (column index)
    col = torch.arange(4.0).view(1, 4).expand(4, 4)
    fmap = torch.stack([col, 3 * col])[None, None]
    # a 16 x 16 frame (map scale 1/4): box over the right half [8, 16) -> map columns [2, 4)
    boxes = torch.tensor([[[8.0, 0.0, 16.0, 16.0], [0.0, 0.0, 8.0, 16.0]]])
    vec = la.roi_features(fmap, boxes, frame_size=(16, 16))
    # aligned RoIAlign (pixel centres at +0.5): the right box spans map x in [1.5, 3.5); its bin 1
    # samples x = 2.75 and 3.25 (read as 3, the last column): mean 2.875, times 2 = 5.75 (the max bin);
    # the left box spans [-0.5, 1.5): bin 1 samples 0.75 and 1.25: mean 1, times 2 = 2
    assert vec.shape == (1, 2, 1)
    assert vec[0, 0, 0].item() == pytest.approx(5.75)
    assert vec[0, 1, 0].item() == pytest.approx(2.0)
    la_max = LocalAlignment(dim=1, object_dim=1, output_size=2, temporal="max", pool="max")
    assert la_max.roi_features(fmap, boxes, (16, 16))[0, 0, 0].item() == pytest.approx(3 * 2.875)  # t1 = 3 x column
    la_mean = LocalAlignment(dim=1, object_dim=1, output_size=2, temporal="mean", pool="mean")
    # bin 0 of the right box samples 1.75 and 2.25: mean 2; the bins' mean (2 + 2.875) / 2, times 2
    assert la_mean.roi_features(fmap, boxes, (16, 16))[0, 0, 0].item() == pytest.approx(4.875)


def test_local_alignment_eq_3_2():
    la = LocalAlignment(dim=1, object_dim=2, output_size=1, pool="mean")
    _set(la.video, [[2.0]])
    _set(la.obj, [[1.0, -1.0]], [0.25])
    fmap = torch.full((1, 1, 2, 3, 3), 1.5)
    out = la(fmap, torch.tensor([[[1.0, 2.0], [3.0, 0.0]]]), torch.tensor([[[0.0, 0.0, 6.0, 6.0]] * 2]), (6, 6))
    # 2 x 1.5 + (1 - 2) + 0.25 = 2.25; 3 + 3 + 0.25 = 6.25
    assert torch.allclose(out, torch.tensor([[[2.25], [6.25]]]))


def test_gate_is_broadcast_over_the_n_objects():
    csg = CrossStreamGating(dim=3)
    _set(csg.fc, torch.eye(3).tolist(), [0.0, 0.0, 0.0])
    f_g = torch.tensor([[0.0, math.log(3.0), -math.log(3.0)]])  # gates 0.5, 0.75, 0.25
    aligned = torch.tensor([[[4.0, 4.0, 4.0], [8.0, 0.0, -4.0]]])
    out = csg(f_g, aligned)
    assert torch.allclose(out, torch.tensor([[[2.0, 3.0, 1.0], [4.0, 0.0, -1.0]]]))


def test_arm_attention_sums_to_one_and_weights_by_hand():
    arm = ActionAttendedRelation(dim=4, reduction=4)
    _set(arm.w_a, [[1.0, 0.0, 0.0, 0.0]])  # C -> C/4 = 1: first channel
    _set(arm.w_c, [[1.0], [0.0], [0.0], [0.0]])  # back to C
    f_g = torch.tensor([[1.0, 9.0, 9.0, 9.0]])
    f_cs = torch.tensor([[[0.0, 1, 0, 0], [math.log(3.0), 0, 1, 0], [5.0, 0, 0, 1]]])
    mask = torch.tensor([[True, True, False]])
    att = arm.attention(f_g, f_cs, mask)
    # logits: first channels 0, log 3 (third masked): softmax 1/4, 3/4, 0
    assert torch.allclose(att, torch.tensor([[0.25, 0.75, 0.0]]))
    assert att.sum().item() == pytest.approx(1.0)
    out = arm(f_g, f_cs, mask)
    assert torch.allclose(out, torch.tensor([[0.75 * math.log(3.0), 0.25, 0.75, 0.0]]))
    # a clip without any detection attends nothing
    none = arm.attention(f_g, f_cs, torch.zeros(1, 3, dtype=torch.bool))
    assert torch.equal(none, torch.zeros(1, 3))


def test_arm_rejects_a_width_the_bottleneck_cannot_split():
    with pytest.raises(ValueError, match="divisible"):
        ActionAttendedRelation(dim=6, reduction=4)


def test_masked_pool():
    x = torch.tensor([[[1.0, -2.0], [3.0, -5.0], [100.0, 100.0]]])
    mask = torch.tensor([[True, True, False]])
    assert torch.equal(masked_pool(x, mask, "max"), torch.tensor([[3.0, -2.0]]))
    assert torch.equal(masked_pool(x, mask, "mean"), torch.tensor([[2.0, -3.5]]))
    assert torch.equal(masked_pool(x, torch.zeros(1, 3, dtype=torch.bool), "max"), torch.zeros(1, 2))


def test_prior_zeroes_unseen_pairs_and_scores_eq_3_14():
    counts = torch.tensor([[3, 0], [1, 0]])
    mu = action_prior(counts)
    assert torch.allclose(mu, torch.tensor([[0.75, 0.0], [0.25, 0.0]]))
    assert torch.allclose(action_prior(counts, unseen=1e-3), torch.tensor([[0.75, 1e-3], [0.25, 1e-3]]))
    pv, pn = torch.tensor([[0.6, 0.4]]), torch.tensor([[0.1, 0.9]])
    s = action_scores(pv, pn, mu)
    assert torch.allclose(s, torch.tensor([[[0.6 * 0.1 * 0.75, 0.0], [0.4 * 0.1 * 0.25, 0.0]]]))
    # without the prior the best pair would be (0, 1); with it, (0, 0)
    assert action_scores(pv, pn).flatten(1).argmax().item() == 1
    assert s.flatten(1).argmax().item() == 0
    with pytest.raises(ValueError, match="all zero"):
        action_prior(torch.zeros(2, 2))
