"""Frozen parts stay frozen through a real Lightning fit.

Lightning 2.x never calls `train()` when fitting starts and restores each submodule's flag after
validation, so a model whose `train()` keeps BN layers in eval mode (SlowFast's EPIC fine-tuning,
the Non-local Charades recipe) only gets those modes from `ZooModule.on_train_start`. Without it
the running statistics of "frozen" BN layers moved at every step.
"""
from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

import mmzoo


class _Clips(Dataset):
    def __init__(self, n: int, frames: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 3, frames, 32, 32, generator=g) * 2 + 1
        self.y = torch.randint(0, 3, (n,), generator=g)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict:
        return {"video": self.x[i], "label": int(self.y[i])}


def _bn_stats(model: nn.Module) -> dict[str, torch.Tensor]:
    return {f"{name}.{k}": v.clone() for name, m in model.named_modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm)
            for k, v in (("mean", m.running_mean), ("var", m.running_var))}  # fmt: skip


_CASES = {
    "slowfast-r50-4x16": dict(depth=14, width=8, slow_frames=2, alpha=4, crop_size=32, num_classes=3),
    "i3d-r50-8x8": dict(depth=14, width=8, frames=8, crop_size=32, num_classes=3),
}


@pytest.mark.parametrize("freeze_bn", [True, False])
@pytest.mark.parametrize("model_id", sorted(_CASES))
def test_freeze_bn_keeps_running_statistics_through_fit_and_validation(model_id, freeze_bn):
    torch.manual_seed(0)
    model = mmzoo.create(model_id, freeze_bn=freeze_bn, **_CASES[model_id])
    frames = 8
    before = _bn_stats(model)
    trainer = pl.Trainer(accelerator="cpu", max_steps=2, val_check_interval=1, limit_val_batches=1, logger=False,
                         enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)  # fmt: skip
    trainer.fit(model, DataLoader(_Clips(4, frames), batch_size=2), DataLoader(_Clips(2, frames), batch_size=2))
    after = _bn_stats(model)
    moved = [k for k in before if not torch.equal(before[k], after[k])]
    if freeze_bn:
        assert moved == []
        assert all(not m.training for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm))
    else:  # the control: the same fit does move unfrozen statistics
        assert len(moved) == len(before)
