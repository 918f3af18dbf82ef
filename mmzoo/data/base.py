"""The base of every mmzoo DataModule: loader settings, the split -> dataset map, the loaders.

A concrete DataModule (``kinetics``, ``epic-kitchens``, ``vid``, ``msrvtt``, ``ave``) implements
:meth:`ZooDataModule.setup` (read and check the dataset as its authors ship it, then fill
``self.datasets`` with ``"train"`` / ``"val"`` / ``"test"`` and optionally ``"predict"``) and
may set or override three small hooks: ``collate_fn`` (a module-level function turning samples
into a batch, so that worker processes need not pickle the DataModule), :meth:`~ZooDataModule.sampler` (a custom sampler, e.g. one snippet per rank) and
:meth:`~ZooDataModule.drop_last` (e.g. in-batch negatives that need full batches).
Everything else, the four ``*_dataloader`` methods included, is written once here. Under DDP
the validation / test / predict loaders are sharded without padding (every sample exactly once:
:mod:`mmzoo.data.distributed`), so metrics equal those of one process.

Hyperparameter policy: the base ``__init__`` calls ``self.save_hyperparameters(logger=False)``
right after ``LightningDataModule.__init__``. Lightning collects the arguments of every
``__init__`` of the class chain, so ``self.hparams`` holds every constructor argument of the
concrete DataModule (including the ``**kwargs`` it passes on) and checkpoints store them under
``datamodule_hyper_parameters``. They are *not* merged into the logger's hyperparameters: a data
argument may share its name with a model argument of another meaning (``batch_size``,
``crop_size``), which Lightning refuses to merge; ``mmzoo fit`` writes the whole configuration
(``config.yaml``) instead. Subclasses never call ``save_hyperparameters`` themselves.

:meth:`ZooDataModule.defaults_from_input` maps a model's
:class:`~mmzoo.registry.InputConfig` to the constructor arguments of this DataModule that it
determines (frames, crops, audio front end, feature sets ...), so that the data a model is fed
matches what it was built for; explicit flags still win (the CLI merges them on top).
"""
from __future__ import annotations

import abc
from typing import Any, Callable, ClassVar, Optional

import torch
from pytorch_lightning import LightningDataModule
from torch.utils.data import DataLoader, Dataset, Sampler

from mmzoo.data.collate import collate_dicts
from mmzoo.data.paths import default_num_workers
from mmzoo.registry import InputConfig

__all__ = ["ZooDataModule", "LOADER_STAGES"]

#: Loader name -> the Lightning stage whose ``setup`` builds its dataset.
LOADER_STAGES = {"train": "fit", "val": "validate", "test": "test", "predict": "predict"}


class ZooDataModule(LightningDataModule, abc.ABC):
    """Base DataModule: owns the loader settings, ``self.datasets`` and the four loaders.

    Args:
        batch_size: samples per training batch.
        num_workers: DataLoader worker processes (0: load in the main process); ``None`` (the
            default): what the machine has, ``min(4, CPUs - 1)`` and at least 1
            (:func:`~mmzoo.data.paths.default_num_workers`), which also keeps Lightning from
            warning that the loaders have too few workers.
        pin_memory: pin host memory of the batches; ``None``: when CUDA is available.
        eval_batch_size: samples per validation / test / predict batch; ``None``: ``batch_size``.

    Class attributes a subclass may set: ``collate_fn`` (samples -> batch, default
    :func:`~mmzoo.data.collate.collate_dicts`), ``model_links`` (data attributes that ``mmzoo fit``
    links to the model's arguments of the same name), ``persistent_workers`` (keep the workers
    alive between epochs when ``num_workers > 0``; ``False`` when the dataset must see state
    changed in the main process, e.g. an epoch counter), ``drop_last_train`` (drop the last
    incomplete training batch), ``targets`` (the label fields its batches carry, so a model can
    refuse a DataModule whose labels it cannot train on before the first step).
    """

    datamodule_name: ClassVar[str] = "data"
    collate_fn: ClassVar[Callable[[list], dict]] = staticmethod(collate_dicts)
    model_links: ClassVar[tuple[str, ...]] = ()
    targets: ClassVar[tuple[str, ...]] = ("label",)
    persistent_workers: ClassVar[bool] = True
    drop_last_train: ClassVar[bool] = False

    def __init__(
        self,
        batch_size: int = 8,
        num_workers: Optional[int] = None,
        pin_memory: Optional[bool] = None,
        eval_batch_size: Optional[int] = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if eval_batch_size is not None and eval_batch_size < 1:
            raise ValueError(f"eval_batch_size must be >= 1, got {eval_batch_size}")
        if num_workers is None:
            num_workers = default_num_workers()
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else bool(pin_memory)
        self.datasets: dict[str, Dataset] = {}

    # ------------------------------------------------------------------ model contract
    @classmethod
    def defaults_from_input(cls, cfg: InputConfig) -> dict[str, Any]:
        """Constructor arguments this DataModule derives from a model's input contract (only
        arguments it has; none here). The CLI applies them as defaults under explicit flags."""
        return {}

    # ------------------------------------------------------------------ subclass hooks
    @abc.abstractmethod
    def setup(self, stage: Optional[str] = None) -> None:
        """Check the dataset and fill ``self.datasets`` for ``stage`` (``None``: all splits)."""

    def sampler(self, split: str, dataset: Dataset, train: bool) -> Optional[Sampler]:
        """A custom sampler for ``split`` (default ``None``: shuffle in training, in order else)."""
        return None

    def drop_last(self, split: str, dataset: Dataset, train: bool) -> bool:
        """Whether the loader of ``split`` drops its last incomplete batch."""
        return train and self.drop_last_train

    # ------------------------------------------------------------------ loaders
    def dataset(self, split: str) -> Dataset:
        """The dataset behind loader ``split`` (``predict`` falls back to ``test``); runs
        ``setup`` for the matching stage when it has not been built yet."""
        if split == "predict" and "predict" not in self.datasets and "test" in self.datasets:
            split = "test"
        if split not in self.datasets:
            self.setup(LOADER_STAGES[split])
            if split == "predict" and "predict" not in self.datasets:
                split = "test"
        if split not in self.datasets:
            raise RuntimeError(f"{type(self).__name__}: no '{split}' split was set up")
        return self.datasets[split]

    def dataloader(self, split: str) -> DataLoader:
        """The DataLoader of ``split`` (``"train"``, ``"val"``, ``"test"`` or ``"predict"``)."""
        train = split == "train"
        ds = self.dataset(split)
        sampler = self.sampler(split, ds, train)
        trainer = self._trainer_or_none()
        if not train and trainer is not None and trainer.world_size > 1:
            # DDP: each evaluation sample exactly once, no padding (mmzoo.data.distributed)
            from mmzoo.data.distributed import exact_eval_sampler

            sampler = exact_eval_sampler(ds, sampler, trainer.world_size, trainer.global_rank)
        return DataLoader(
            ds,
            batch_size=self.batch_size if train else self.eval_batch_size,
            shuffle=train and sampler is None,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=type(self).collate_fn,
            pin_memory=self.pin_memory,
            drop_last=self.drop_last(split, ds, train),
            persistent_workers=self.persistent_workers and self.num_workers > 0,
        )

    def _trainer_or_none(self):
        """The attached Trainer, or None (a DataModule used on its own)."""
        try:
            return self.trainer
        except RuntimeError:
            return None

    def train_dataloader(self) -> DataLoader:
        return self.dataloader("train")

    def val_dataloader(self) -> DataLoader:
        return self.dataloader("val")

    def test_dataloader(self) -> DataLoader:
        return self.dataloader("test")

    def predict_dataloader(self) -> DataLoader:
        return self.dataloader("predict")
