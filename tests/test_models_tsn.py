"""The PSN recognisers (thesis Sec. 5.3.2): TSN consensus vs frame-based training, multi-hot
targets, the recipes of both strategies, and the frame-averaged test output. (Full-size FLOPs are
checked against Tables 5.4-5.5 in tests/test_models_psn.py.)"""
from __future__ import annotations

import pytest
import torch

import mmzoo
from mmzoo.models.tsn import TSNRecognizer, video_targets

TINY = dict(num_classes=5, backbone_layers=[1, 1, 1, 1], backbone_channels=[8, 8, 8, 8], stem_width=8, dropout=0.0,
            crop_size=32, num_frames=4, pretrained_backbone=False)


def _model(model_id: str = "tsn-r50", **kw) -> TSNRecognizer:
    torch.manual_seed(0)
    return mmzoo.create(model_id, **{**TINY, **kw})


def test_tsn_averages_logits_before_the_loss_and_frame_mode_does_not():
    video = torch.randn(2, 3, 4, 32, 32)
    batch = {"video": video, "label": torch.tensor([1, 4])}
    tsn, frame = _model("tsn-r50").eval(), _model("tsn-r50", training_mode="frame").eval()
    with torch.no_grad():
        tsn.net.fc.weight.normal_(0.0, 1.0)  # away from the near-zero initial classifier
    frame.load_state_dict(tsn.state_dict())
    with torch.no_grad():
        logits = tsn.net.video_logits(video)  # B, T, K
        loss_tsn, _ = tsn._train_loss(batch)
        loss_frame, _ = frame._train_loss(batch)
    target = torch.tensor([1, 4])
    assert float(loss_tsn) == pytest.approx(float(torch.nn.functional.cross_entropy(logits.mean(1), target)), rel=1e-5)
    per_frame = torch.nn.functional.cross_entropy(logits.flatten(0, 1), target.repeat_interleave(4))
    assert float(loss_frame) == pytest.approx(float(per_frame), rel=1e-5)
    assert float(loss_tsn) != pytest.approx(float(loss_frame), rel=1e-3)
    with torch.no_grad():
        assert torch.allclose(tsn(video), logits.mean(1), atol=1e-6)


def test_multi_hot_targets_take_every_class():
    batch = {"label": torch.tensor([0, 2]), "video_label": torch.tensor([[1.0, 1, 0, 0, 0], [0, 0, 1, 0, 0]])}
    t = video_targets(batch, 5, torch.device("cpu"))
    assert t.tolist() == batch["video_label"].tolist()
    model = _model().eval()
    video = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        loss, _ = model._train_loss({"video": video, **batch})
        logp = model(video).log_softmax(-1)
    assert float(loss) == pytest.approx(float(-(batch["video_label"] * logp).sum(-1).mean()), rel=1e-5)
    with pytest.raises(ValueError, match="num_classes"):
        video_targets({"video_label": torch.zeros(2, 3)}, 5, torch.device("cpu"))


@pytest.mark.parametrize("model_id,lr,batch", [("tsn-r101", 0.002, 32), ("frame-r101", 0.001, 64)])
def test_recipes_of_both_strategies(model_id, lr, batch):
    spec = mmzoo.model_info(model_id)
    assert spec["defaults"].get("base_lr", 0.002) == lr
    model = _model(model_id)
    recipe = model.recipe
    assert recipe.scaled_lr(batch) == pytest.approx(lr)
    assert recipe.momentum == 0.9 and recipe.weight_decay == 1e-4 and recipe.epochs == 50
    # lr / 10 every 20 of 50 epochs
    assert [recipe.lr_factor(s, 50) for s in (19, 20, 39, 40)] == pytest.approx([1, 0.1, 0.1, 0.01])
