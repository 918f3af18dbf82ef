"""The base class every zoo model derives from.

A zoo model is a `LightningModule` whose constructor arguments are JSON-serialisable, typed
and documented (LightningCLI turns them into flags) and saved with `save_hyperparameters()`,
so `config.json` can rebuild it with nothing else.

Batch contract: `training_step` / `validation_step` / `test_step` / `predict_step` receive an
`mmzoo.batch.Batch`, a dict whose fields (`video`, `audio`, `label`, `verb` / `noun` /
`action`, `video_index`, `boxes`, `text`, `features`, `meta`) are documented there. A model
reads only those names; in particular the video of each view of a multi-view test is always
`batch["video_index"]`, and nothing is ever read from `meta` (bookkeeping only).

Prediction on files without a DataModule (`mmzoo predict --input`) lives in `mmzoo.predict`,
not on the model.
"""
from __future__ import annotations

import abc
from typing import Any, ClassVar, Mapping

import pytorch_lightning as pl
import torch

__all__ = ["ZooModule"]


class ZooModule(pl.LightningModule, metaclass=abc.ABCMeta):
    """Common behaviour: the registry id, the constructor config, an example input, FLOPs.

    Subclasses call `super().__init__()` and then `self.save_hyperparameters()` in `__init__`
    (a family base class may do it once for its subclasses: Lightning collects the arguments
    of every `__init__` of the chain), and implement `example_input`, which `mmzoo info` and the
    parity tests use to count FLOPs.
    """

    zoo_id: str | None = None

    #: Constructor arguments that make `__init__` download initial weights (an ImageNet backbone,
    #: say), mapped to the value that avoids the download. The hub and `mmzoo convert` apply them
    #: when a complete state dict is about to replace those weights anyway.
    init_without_download: ClassVar[dict[str, Any]] = {}

    def init_kwargs(self) -> dict[str, Any]:
        """The constructor arguments this instance was built with (written to config.json)."""
        return {k: v for k, v in dict(self.hparams).items() if not k.startswith("_")}

    @abc.abstractmethod
    def example_input(self, batch_size: int = 1) -> dict[str, Any]:
        """A representative input at paper resolution: the keyword arguments of `forward`
        (`self(**model.example_input())` runs the model)."""

    def on_train_start(self) -> None:
        """Enter training mode through `self.train(True)`.

        Lightning (2.x) does not call `train()` when fitting starts: every module keeps the mode
        it was built or loaded in, and validation restores each submodule's flag directly. A
        subclass whose `train()` keeps parts in eval mode (frozen BN statistics, a frozen
        recogniser or backbone) relies on this call; its validation passes then capture and
        restore those modes.
        """
        self.train(True)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Record the registry id in Lightning checkpoints so `mmzoo push x.ckpt` can rebuild it."""
        from mmzoo import __version__

        checkpoint["mmzoo"] = {"model_id": self.zoo_id, "mmzoo_version": __version__}

    def log(self, name: str, value: Any, *args: Any, **kwargs: Any) -> None:
        """Lightning's ``log``, with a float ``batch_size`` when ``sync_dist=True``.

        Lightning accumulates the batch sizes of an epoch-mean value in an integer tensor and,
        under DDP, averages it over the ranks in that integer dtype (``lightning_fabric``'s
        ``_sync_ddp``: ``result.copy_(result / world_size)``), which truncates: 9 evaluation
        samples on 2 ranks count as 8 and the logged mean is 9/8 too large. Exact DDP evaluation
        (``mmzoo.data.distributed``: ranks may hold different numbers of samples) needs the
        float, so the epoch mean equals that of one process."""
        if kwargs.get("sync_dist") and isinstance(kwargs.get("batch_size"), int):
            kwargs["batch_size"] = float(kwargs["batch_size"])
        return super().log(name, value, *args, **kwargs)

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def run_forward(self, example: Mapping[str, Any]) -> Any:
        """`forward` on an example from `example_input` (a dict of keyword arguments)."""
        if not isinstance(example, Mapping):
            raise TypeError(
                f"{type(self).__name__}.example_input() must return a dict of forward keyword arguments, "
                f"got {type(example).__name__}"
            )
        return self(**example)

    @torch.no_grad()
    def count_flops(self, batch_size: int = 1) -> int:
        """Multiply-adds of one forward pass on `example_input` (torch.utils.flop_counter counts
        2 FLOPs per multiply-add; we report multiply-adds, as the theses' GFLOPs columns do)."""
        from torch.utils.flop_counter import FlopCounterMode

        was_training = self.training
        self.eval()
        try:
            with FlopCounterMode(display=False) as counter:
                self.run_forward(self.example_input(batch_size))
        finally:
            self.train(was_training)
        return counter.get_total_flops() // 2
