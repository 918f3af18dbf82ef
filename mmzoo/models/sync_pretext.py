"""Evaluation hooks shared by the audio-visual synchronisation pretexts (AVTS, Multisensory).

Both score each clip's in-sync pair and one out-of-sync pair per batch in their own `_eval`
(seed 004's sync-accuracy pretext table); this mixin routes validation / test batches to it and
logs the accumulated `val/sync_acc` / `test/sync_acc`.
"""
from __future__ import annotations

import torch


class SyncAccuracyHooks:
    """Mixin for a `ZooModule` with `_eval(batch, batch_idx, metric, prefix)` and `val_acc` /
    `test_acc` metrics; list it before the base class."""

    def validation_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._eval(batch, batch_idx, self.val_acc, "val")

    def test_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._eval(batch, batch_idx, self.test_acc, "test")

    def on_validation_epoch_end(self) -> None:
        self.log("val/sync_acc", self.val_acc.compute())
        self.val_acc.reset()

    def on_test_epoch_end(self) -> None:
        self.log("test/sync_acc", self.test_acc.compute())
        self.test_acc.reset()
