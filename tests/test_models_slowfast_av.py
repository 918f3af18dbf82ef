"""Behaviour of the AVSlowFast-specific parts: DropPathway inside the network, the hierarchical
AVS losses and their curriculum, the SSL mode, multi-view testing and the recipe."""
from __future__ import annotations

import math

import pytorch_lightning as pl
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

import mmzoo
from mmzoo.nn.av_sync import AVSyncHead, NegativeCurriculum

TINY = dict(depth=14, width=8, slow_frames=2, alpha=4, crop_size=32, dropout=0.0, num_classes=5)


def _inputs(b=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    video = [torch.randn(b, 3, 2, 32, 32, generator=g), torch.randn(b, 3, 8, 32, 32, generator=g)]
    audio = torch.randn(b, 1, 128, 80, generator=g)
    return video, audio


def test_dropped_audio_pathway_sums_zeros_into_the_visual_pathways():
    torch.manual_seed(0)
    model = mmzoo.create("avslowfast-r50-4x16", **TINY).train()
    video, audio = _inputs()
    other = torch.randn_like(audio)
    model.backbone.drop.p = 1.0  # always dropped: the visual features ignore the audio
    fa, _ = model.extract(video, audio)
    fb, _ = model.extract(video, other)
    assert model.backbone.drop.dropped
    assert torch.equal(fa[0], fb[0]) and torch.equal(fa[1], fb[1])
    assert not torch.equal(fa[2], fb[2])  # the audio pathway still runs (pool5 concatenation)
    # the dropped A->FS branch keeps (zero) gradients: no unused parameters under DDP
    model.zero_grad()
    model.head(model.extract(video, audio)[0]).sum().backward()
    g = model.backbone.afs["2"].layers[0].weight.grad
    assert g is not None and torch.count_nonzero(g) == 0
    model.backbone.drop.p = 0.0  # never dropped: audio reaches the Slow pathway
    fa, _ = model.extract(video, audio)
    fb, _ = model.extract(video, other)
    assert not torch.allclose(fa[0], fb[0])
    # eval mode never drops, whatever p is
    model.eval()
    model.backbone.drop.p = 1.0
    with torch.no_grad():
        fa, _ = model.extract(video, audio)
        fb, _ = model.extract(video, other)
    assert not model.backbone.drop.dropped and not torch.allclose(fa[0], fb[0])


def test_drop_pathway_rate_in_training():
    model = mmzoo.create("avslowfast-r50-4x16", **TINY).train()
    assert model.backbone.drop.p == 0.8
    torch.manual_seed(1)
    drops = [model.backbone.drop.sample() for _ in range(3000)]
    assert abs(sum(drops) / 3000 - 0.8) < 0.03


def test_hierarchical_avs_losses_follow_the_fusion_pattern():
    torch.manual_seed(0)
    model = mmzoo.create("avslowfast-r50-4x16", **TINY).train()
    bb = model.backbone
    assert bb.avs_pattern(dropped=False) == [False, False, True, False, False]
    assert bb.avs_pattern(dropped=True) == [False, False, True, True, True]
    every = mmzoo.create("avslowfast-r50-4x16", **TINY, avs_until_fusion=False).backbone
    assert every.avs_pattern(dropped=False) == [False, False, True, True, True]
    video, audio = _inputs()
    neg = audio.roll(1, 0)
    bb.drop.p = 0.0
    _, losses = model.extract(video, audio, neg)
    assert set(losses) == {"avs_res3", "avs_res4", "avs_res5"}
    assert losses["avs_res3"] > 0 and losses["avs_res4"] == 0 and losses["avs_res5"] == 0
    bb.drop.p = 1.0
    _, losses = model.extract(video, audio, neg)
    assert all(v > 0 for v in losses.values())
    # every AVS head still gets a gradient path (zero-weighted), as DDP needs
    model.zero_grad()
    bb.drop.p = 0.0
    _, losses = model.extract(video, audio, neg)
    sum(losses.values()).backward()
    assert bb.avs["4"].visual_proj.weight.grad is not None


def test_contrastive_avs_loss_values():
    head = AVSyncHead(4, 4, proj_dim=4, margin=0.99)
    with torch.no_grad():
        head.visual_proj.weight.copy_(torch.eye(4)), head.visual_proj.bias.zero_()
        head.audio_proj.weight.copy_(torch.eye(4)), head.audio_proj.bias.zero_()
    v = torch.tensor([[1.0, 0, 0, 0]]).view(1, 4, 1, 1, 1)
    same = v.clone()
    opposite = -v
    # in sync and far negative: (0 + max(0, 0.99 - 1)^2) / 2 = 0
    assert head(v, same, opposite).item() == pytest.approx(0.0, abs=1e-6)
    # out of sync positive (distance 1 after the 1/2 scaling), identical negative:
    # (1 + 0.99^2) / 2
    assert head(v, opposite, same).item() == pytest.approx((1 + 0.99**2) / 2, rel=1e-5)
    cls = AVSyncHead(4, 4, proj_dim=4, head="classifier")
    assert cls(v, same, opposite).item() > 0


def test_negative_curriculum_statistics_and_content():
    cur = NegativeCurriculum(switch_at=0.5, hard_ratio=0.25, hard_gap=32)
    audio = torch.arange(4000 * 64, dtype=torch.float32).view(4000, 1, 64, 1)
    g = torch.Generator().manual_seed(0)
    neg, hard = cur.negatives(audio, 0.49, generator=g)
    assert not hard.any() and torch.equal(neg, audio.roll(1, 0))  # easy: another clip
    neg, hard = cur.negatives(audio, 0.5, generator=g)
    assert abs(hard.float().mean().item() - 0.25) < 0.03
    assert torch.equal(neg[hard], audio.roll(32, dims=2)[hard])  # hard: the same clip, shifted
    assert torch.equal(neg[~hard], audio.roll(1, 0)[~hard])
    shifted = audio + 0.5
    neg, hard = cur.negatives(audio, 0.9, shifted=shifted, generator=g)
    assert torch.equal(neg[hard], shifted[hard])


class _DictClips(Dataset):
    """Synthetic dict samples with the DataModules' field names."""

    def __init__(self, n=32, views=1, classes=5):
        g = torch.Generator().manual_seed(0)
        self.video = torch.randn(n, 3, 8, 32, 32, generator=g)
        self.audio = torch.randn(n, 1, 128, 80, generator=g)
        self.label = torch.arange(n) % classes
        self.views = views

    def __len__(self):
        return len(self.label)

    def __getitem__(self, i):
        return {"video": self.video[i], "audio": self.audio[i], "label": self.label[i], "video_index": i // self.views,
                "meta": {"clip_index": i % self.views}}  # fmt: skip


def _collate(items):
    out = {k: torch.stack([it[k] for it in items]) for k in ("video", "audio", "label")}
    out["video_index"] = torch.tensor([it["video_index"] for it in items])
    out["meta"] = [it["meta"] for it in items]
    return out


class _Recorder(pl.Callback):
    def __init__(self):
        self.hard = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.hard.append(float(pl_module.last_hard_negatives.float().mean()))


def test_sync_curriculum_switches_at_half_of_training():
    torch.manual_seed(0)
    model = mmzoo.create("avslowfast-r50-4x16", **TINY, avs_hard_ratio=1.0)
    rec = _Recorder()
    trainer = pl.Trainer(max_steps=8, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[rec])  # fmt: skip
    trainer.fit(model, DataLoader(_DictClips(), batch_size=4, collate_fn=_collate))
    assert rec.hard == [0.0] * 4 + [1.0] * 4


class _FixedHead(torch.nn.Module):
    """Returns pre-set logits batch after batch (to control view vs video decisions)."""

    def __init__(self, logits, batch_size):
        super().__init__()
        self.chunks = list(logits.split(batch_size))

    def forward(self, feats):
        return self.chunks.pop(0)


def test_test_step_averages_views_per_video():
    torch.manual_seed(0)
    model = mmzoo.create("avslowfast-r50-4x16", **TINY).eval()
    data = _DictClips(n=9, views=3)  # 3 videos x 3 views
    data.label = torch.tensor([0, 0, 0, 1, 1, 1, 0, 0, 0])
    # videos 0 and 2: two views weakly wrong, one strongly right -> right after averaging
    # softmaxes; video 1: two views weakly right, one strongly wrong -> wrong after averaging.
    weak_wrong, weak_right = [0.0, 0.5, 0, 0, 0], [0.0, 0.5, 0, 0, 0]
    logits = torch.tensor([weak_wrong, weak_wrong, [9.0, 0, 0, 0, 0],
                           weak_right, weak_right, [0.0, 0, 9.0, 0, 0],
                           weak_wrong, weak_wrong, [9.0, 0, 0, 0, 0]])  # fmt: skip
    model.head = _FixedHead(logits, 3)
    loader = DataLoader(data, batch_size=3, collate_fn=_collate)
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    res = trainer.test(model, loader, verbose=False)[0]
    assert res["test/top1"] == pytest.approx(200 / 3)  # per view it would be 4/9 = 44.4


def test_pathway_packing_mismatch_is_reported():
    model = mmzoo.create("slowfast-r50-4x16", depth=14, width=8).eval()
    with pytest.raises(ValueError, match="alpha=8"):
        model([torch.randn(1, 3, 4, 32, 32), torch.randn(1, 3, 16, 32, 32)])


def test_multilabel_head_max_pools_views_and_verb_noun_head_outputs():
    m = mmzoo.create("avslowfast-r50-4x16", **TINY, head="multilabel")
    assert m.test_metric.aggregate == "max"
    vn = mmzoo.create("slowfast-r50-4x16", **{k: v for k, v in TINY.items() if k != "num_classes"}, head="verb_noun",
                      num_verbs=7, num_nouns=9).eval()  # fmt: skip
    video, _ = _inputs(2)
    out = vn(video)
    assert out["verb"].shape == (2, 7) and out["noun"].shape == (2, 9)


def test_ssl_mode_trains_with_rotation_and_avs():
    torch.manual_seed(0)
    model = mmzoo.create("avslowfast-r50-4x16", **TINY, mode="ssl").train()
    video, audio = _inputs(4)
    rotated, k = model._rotate([v.clone() for v in video])
    for i in range(4):
        assert torch.equal(rotated[1][i], torch.rot90(video[1][i], int(k[i]), dims=(-2, -1)))
    batch = {"video": torch.randn(4, 3, 8, 32, 32), "audio": audio}  # no labels needed
    model.log = lambda *a, **kw: None
    model.log_dict = lambda *a, **kw: None
    loss = model.training_step(batch, 0)
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    assert model.rotation_head.weight.grad is not None
    assert model.backbone.avs["2"].audio_proj.weight.grad is not None


def test_recipe_lr_scaling_schedule_and_no_bn_weight_decay():
    model = mmzoo.create("avslowfast-r50-4x16", **TINY, batch_size=8)
    assert model.scaled_lr() == pytest.approx(1.6 * 8 / 1024)
    total, epochs = 1000, model.hparams.recipe_epochs
    warm = round(total * 34 / epochs)
    assert model.lr_factor(0, total) == pytest.approx(0.1)
    assert model.lr_factor(warm, total) == pytest.approx(0.5 * (math.cos(math.pi * warm / total) + 1))
    assert model.lr_factor(total // 2, total) == pytest.approx(0.5)
    assert model.lr_factor(total, total) == pytest.approx(0.0, abs=1e-9)
    opt = model.configure_optimizers()["optimizer"]
    bn_ids = {id(p) for mod in model.modules() if isinstance(mod, torch.nn.BatchNorm3d) for p in mod.parameters()}
    for group in opt.param_groups:
        is_bn = {id(p) in bn_ids for p in group["params"]}
        assert len(is_bn) == 1
        assert group["weight_decay"] == (0.0 if is_bn.pop() else 1e-4)
        assert group["momentum"] == 0.9
    steps = mmzoo.create("slowfast-r50-4x16", depth=14, width=8, lr_schedule="steps", lr_steps=[2 / 3, 5 / 6], warmup_epochs=0)
    assert [steps.lr_factor(s, 600) for s in (0, 399, 400, 499, 500)] == pytest.approx([1, 1, 0.1, 0.1, 0.01])


def test_frozen_bn_keeps_statistics_and_affine():
    model = mmzoo.create("slowfast-r50-4x16", depth=14, width=8, freeze_bn=True, num_classes=3).train()
    bn = model.backbone.slow.stem.bn
    assert not bn.training and not bn.weight.requires_grad
    before = bn.running_mean.clone()
    model.log_dict = lambda *a, **kw: None
    loss = model.training_step({"video": torch.randn(2, 3, 32, 32, 32), "label": torch.tensor([0, 2])}, 0)
    loss.backward()
    assert torch.equal(bn.running_mean, before) and bn.weight.grad is None


def test_tiny_avslowfast_fits_a_fixed_batch():
    torch.manual_seed(0)
    model = mmzoo.create("avslowfast-r50-4x16", **TINY).train()
    model.log = model.log_dict = lambda *a, **kw: None
    video, audio = _inputs(4)
    batch = {"video": video, "audio": audio, "label": torch.tensor([0, 1, 2, 3])}
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(12):
        opt.zero_grad()
        feats, _ = model.extract(video, audio)
        losses.append(float(torch.nn.functional.cross_entropy(model.head(feats), batch["label"])))
        model.training_step(batch, 0).backward()
        opt.step()
    assert losses[-1] < 0.5 * losses[0], losses
