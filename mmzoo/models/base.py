"""The base class every zoo model derives from.

A zoo model is a `LightningModule` whose constructor arguments are JSON-serialisable, typed
and documented (LightningCLI turns them into flags) and saved with `save_hyperparameters()`,
so `config.json` can rebuild it with nothing else. Batches are dicts with named fields
(`video`, `audio`, `label`, `boxes`, `text`, `meta`, ...) as the DataModules produce them.
"""
from __future__ import annotations

from typing import Any, ClassVar

import pytorch_lightning as pl
import torch


class ZooModule(pl.LightningModule):
    """Common behaviour: the registry id, the constructor config, and an example input.

    Subclasses call `self.save_hyperparameters()` first thing in `__init__` and implement
    `example_input`, which `mmzoo info` and the parity tests use to count FLOPs.
    """

    zoo_id: str | None = None

    #: Constructor arguments that make `__init__` download initial weights (an ImageNet backbone,
    #: say), mapped to the value that avoids the download. The hub and `mmzoo convert` apply them
    #: when a complete state dict is about to replace those weights anyway.
    init_without_download: ClassVar[dict[str, Any]] = {}

    def init_kwargs(self) -> dict[str, Any]:
        """The constructor arguments this instance was built with (written to config.json)."""
        return {k: v for k, v in dict(self.hparams).items() if not k.startswith("_")}

    def example_input(self, batch_size: int = 1) -> Any:
        """A representative input for `forward` (a tensor, tuple or dict) at paper resolution."""
        raise NotImplementedError(f"{type(self).__name__} does not define example_input().")

    def predict_input(self, path: str, output_dir: str, query: str | None = None, top_k: int = 10) -> Any:
        """`mmzoo predict --model <id> --input PATH`: run on a file or folder without a DataModule
        (a video to annotate, a feature set to search with `query`). Families that support it
        override this; it writes its results under `output_dir` and returns them."""
        from mmzoo.errors import NotSupportedError

        raise NotSupportedError(
            f"{type(self).__name__} does not predict from --input; use "
            "`mmzoo predict --model <id> --data <name> --data.root DIR`."
        )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Record the registry id in Lightning checkpoints so `mmzoo push x.ckpt` can rebuild it."""
        from mmzoo import __version__

        checkpoint["mmzoo"] = {"model_id": self.zoo_id, "mmzoo_version": __version__}

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def run_forward(self, example: Any) -> Any:
        """Call forward on an example from `example_input` (tuple -> *args, dict -> **kwargs)."""
        if isinstance(example, dict):
            return self(**example)
        if isinstance(example, (tuple, list)):
            return self(*example)
        return self(example)

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
