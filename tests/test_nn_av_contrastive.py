"""AVTS contrastive loss, negative samplers and curriculum (mmzoo.nn.av_contrastive), on hand-computed cases."""
from __future__ import annotations

import math

import pytest
import torch

from mmzoo.nn.av_contrastive import (
    AVTSContrastiveLoss,
    NegativeCurriculum,
    contrastive_loss,
    easy_negative_indices,
    hard_negative_mask,
    pair_distance,
    sync_decisions,
)


def test_loss_slide_form_and_standard_form_by_hand():
    d = torch.tensor([0.3, 0.5, 1.2])
    y = torch.tensor([1, 0, 0])
    # slide: (0.3 + (0.99 - 0.5)^2 + max(0.99 - 1.2, 0)^2) / 3
    assert contrastive_loss(d, y, 0.99, positive_power=1).item() == pytest.approx((0.3 + 0.49 ** 2 + 0.0) / 3)
    # standard: the positive distance squared
    assert contrastive_loss(d, y, 0.99, positive_power=2).item() == pytest.approx((0.09 + 0.49 ** 2) / 3)
    with pytest.raises(ValueError, match="positive_power"):
        contrastive_loss(d, y, 0.99, positive_power=3)


def test_distance_normalised_and_halved():
    v, a = torch.tensor([[3.0, 4.0]]), torch.tensor([[4.0, 3.0]])
    # normalised x 0.5: (0.3, 0.4) vs (0.4, 0.3)
    assert pair_distance(v, a).item() == pytest.approx(math.sqrt(0.02))
    assert pair_distance(v, a, normalize=False).item() == pytest.approx(math.sqrt(2.0))
    loss = AVTSContrastiveLoss(margin=0.5, positive_power=1)
    assert loss(v, a, torch.tensor([0])).item() == pytest.approx((0.5 - math.sqrt(0.02)) ** 2)
    assert loss(v, a, torch.tensor([1])).item() == pytest.approx(math.sqrt(0.02))


def test_loss_gradient_pulls_positives_pushes_negatives():
    v = torch.tensor([[1.0, 0.0]], requires_grad=True)
    a = torch.tensor([[0.0, 1.0]])
    AVTSContrastiveLoss(margin=0.99)(v, a, torch.tensor([1])).backward()
    g_pos = v.grad.clone()
    v.grad = None
    AVTSContrastiveLoss(margin=0.99)(v, a, torch.tensor([0])).backward()
    # a step against the gradient moves v towards a for a positive (+y direction), away for a negative
    assert g_pos[0, 1] < 0 and v.grad[0, 1] > 0


def test_sync_decision_rule():
    assert sync_decisions(torch.tensor([0.1, 0.495, 0.5, 0.9]), 0.495).tolist() == [True, False, False, False]


def test_easy_negatives_come_from_another_video():
    vi = torch.tensor([0, 0, 1, 2, 2, 3])
    g = torch.Generator().manual_seed(0)
    seen = {i: set() for i in range(6)}
    for _ in range(200):
        j = easy_negative_indices(vi, g)
        assert (vi[j] != vi).all()
        for i, jj in enumerate(j.tolist()):
            seen[i].add(jj)
    # every clip of another video is drawn (uniform over them), none of the same video
    assert seen[0] == {2, 3, 4, 5} and seen[3] == {0, 1, 2, 5}
    with pytest.raises(ValueError, match="at least two videos"):
        easy_negative_indices(torch.tensor([4, 4, 4]))


def test_hard_share_is_exact_per_batch():
    g = torch.Generator().manual_seed(0)
    assert [int(hard_negative_mask(8, s, g).sum()) for s in (0.0, 0.25, 1.0)] == [0, 2, 8]
    assert [int(hard_negative_mask(b, 0.25, g).sum()) for b in (1, 2, 5, 6)] == [0, 1, 1, 2]  # half rounds up
    masks = {tuple(hard_negative_mask(8, 0.25, g).tolist()) for _ in range(20)}
    assert len(masks) > 1  # random positions
    with pytest.raises(ValueError, match="share"):
        hard_negative_mask(4, 1.5)


def test_curriculum_switches_at_epoch_50():
    c = NegativeCurriculum()
    assert [c.kind(e) for e in (0, 49, 50, 89)] == ["easy", "easy", "mixed", "mixed"]
    assert [c.hard_fraction(e) for e in (49, 50)] == [0.0, 0.25]
    hard2 = NegativeCurriculum(stage2="hard", switch_epoch=3)
    assert [hard2.hard_fraction(e) for e in (2, 3)] == [0.0, 1.0]
    for kind, share in (("easy", 0.0), ("mixed", 0.25), ("hard", 1.0)):
        single = NegativeCurriculum(negatives=kind)
        assert single.hard_fraction(0) == single.hard_fraction(80) == share
    with pytest.raises(ValueError, match="negatives"):
        NegativeCurriculum(negatives="semi-hard")
