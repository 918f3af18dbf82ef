"""Both TimeCycle ids train on a tiny folder of videos (a moving textured patch) with the real
DataModule, and the cycle loss falls."""
from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch

import mmzoo
from mmzoo.data import get_datamodule
from mmzoo.data.synthetic.video_folder import write_video_folder

TINY = {"width": 8, "feature_dim": 16, "crop_size": 72, "patch_size": 24, "localizer_channels": [16, 8], "localizer_kernel": 2,
            "video_len": 2, "lr": 1e-3}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_video_folder(tmp_path_factory.mktemp("videos"), num_videos=4, num_frames=8, size=96, patch=32)


def _dm(root):
    return get_datamodule("video-folder")(root=str(root), frames=3, frame_gap=1, short_side=96, crop_size=72,
                                          batch_size=4, num_workers=0)


def _fixed_loss(model, video, theta):
    """The training loss on a fixed batch and patch (batch statistics in BN, as in training)."""
    model.train()
    with torch.no_grad():
        losses = model.cycle_losses(video, theta)
    return float(losses["sim"] + 0.1 * losses["skip"] + 0.1 * losses["long"])


def test_video_folder_reads_mp4_files_and_frame_folders(folder):
    dm = _dm(folder)
    dm.setup("fit")
    ids = sorted(s["video_id"] for s in dm.dataset("train"))
    assert ids == sorted([f"frames/clip_{k}" for k in range(4)] + [f"videos/clip_{k}.mp4" for k in range(4)])
    batch = next(iter(dm.train_dataloader()))
    assert batch["video"].shape == (4, 3, 3, 72, 72)


def test_timecycle_r18_cycle_loss_falls(folder):
    """Overfitting one batch of moving textured patches: the real training_step (patch drawn
    with a fixed seed) and optimizer, 40 steps; the loss on that batch and patch must fall."""
    dm = _dm(folder)
    dm.setup("fit")
    torch.manual_seed(0)
    batch = next(iter(dm.train_dataloader()))
    model = mmzoo.create("timecycle-r18", depth=10, **TINY, flip=False, patch_seed=0)
    theta = model.sample_theta(batch["video"], torch.Generator().manual_seed(0))
    before = _fixed_loss(model, batch["video"], theta)
    opt = model.configure_optimizers()
    for _ in range(40):
        opt.zero_grad()
        model.training_step(batch, 0).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), model.hparams.grad_clip_norm)
        opt.step()
    after = _fixed_loss(model, batch["video"], theta)
    print(f"cycle loss on a fixed batch: {before:.4f} -> {after:.4f}")
    assert after < before - 0.1, (before, after)


def test_lightning_fit_on_the_video_folder_updates_the_weights(folder):
    torch.manual_seed(0)
    model = mmzoo.create("timecycle-r18", depth=10, **TINY)
    before = [p.detach().clone() for p in model.parameters()]
    trainer = pl.Trainer(max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=1)
    trainer.fit(model, datamodule=_dm(folder))
    assert torch.isfinite(trainer.callback_metrics["train/loss"]) and torch.isfinite(trainer.callback_metrics["val/loss"])
    assert all(not torch.equal(a, p) for a, p in zip(before, model.localizer.parameters()))


def test_timecycle_r50_bottleneck_variant_takes_a_step_with_both_similarities(folder):
    dm = _dm(folder)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    for similarity in ("inlier", "frobenius"):
        torch.manual_seed(0)
        model = mmzoo.create("timecycle-r50", **{**TINY, "width": 4}, similarity=similarity)
        assert model.hparams.depth == 50  # Bottleneck blocks, as the full model
        opt = model.configure_optimizers()
        assert opt.defaults["betas"] == (0.5, 0.999) and opt.defaults["lr"] == 1e-3
        before = [p.detach().clone() for p in model.parameters()]
        loss = model.training_step(batch, 0)
        loss.backward()
        assert torch.isfinite(loss)
        assert all(p.grad is not None for p in model.localizer.parameters())
        opt.step()
        assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))
