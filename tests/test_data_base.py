"""The DataModule base: the shared loaders and `defaults_from_input` of every DataModule."""
from __future__ import annotations

import pytest
import torch

from mmzoo.data import all_datamodules
from mmzoo.data.base import ZooDataModule
from mmzoo.registry import AudioInput, InputConfig


class _Toy(ZooDataModule):
    def __init__(self, n: int = 5, **kwargs):
        super().__init__(**kwargs)
        self.n = n

    def setup(self, stage=None):
        if not self.datasets:
            data = [{"x": torch.tensor([float(i)]), "label": i} for i in range(self.n)]
            self.datasets = {"train": data, "val": data[:2], "test": data[2:]}


def test_base_loaders_hparams_and_abstract_setup():
    with pytest.raises(TypeError):
        ZooDataModule()
    dm = _Toy(n=5, batch_size=2, num_workers=0, pin_memory=False, eval_batch_size=3)
    assert dict(dm.hparams) == {"n": 5, "batch_size": 2, "num_workers": 0, "pin_memory": False, "eval_batch_size": 3}
    assert not dm._log_hyperparams  # kept in checkpoints, not merged into the model's logged hparams
    train = list(dm.train_dataloader())  # setup runs lazily
    assert sorted(int(i) for b in train for i in b["label"]) == [0, 1, 2, 3, 4]
    assert [b["label"].tolist() for b in dm.val_dataloader()] == [[0, 1]]
    assert [b["label"].tolist() for b in dm.predict_dataloader()] == [[2, 3, 4]]  # predict = test
    assert ZooDataModule.defaults_from_input(InputConfig(shapes={}, frames=8)) == {}


def test_every_registered_datamodule_derives_from_the_base():
    mods = all_datamodules()
    assert {"kinetics", "epic-kitchens", "vid", "msrvtt", "ave"} <= set(mods)
    for cls in mods.values():
        assert issubclass(cls, ZooDataModule)


def test_defaults_from_input_per_datamodule():
    mods = all_datamodules()
    cfg = InputConfig(shapes={}, short_side=600, mean=(0.1, 0.2, 0.3), std=(0.3, 0.2, 0.1), frames=7)
    assert mods["vid"].defaults_from_input(cfg) == {"short_side": 600, "mean": (0.1, 0.2, 0.3), "std": (0.3, 0.2, 0.1)}
    feats = InputConfig(shapes={}, features=("rgb", "audio"), text_max_length=30)
    assert mods["msrvtt"].defaults_from_input(feats) == {"input": "features", "experts": ["rgb", "audio"]}
    assert mods["ave"].defaults_from_input(feats) == {"input_mode": "features"}
    assert mods["ave"].defaults_from_input(InputConfig(shapes={})) == {}
    epic = mods["epic-kitchens"].defaults_from_input(
        InputConfig(shapes={}, frames=32, test_views=(1, 3), audio=AudioInput(kind="logmel", n_mels=64, num_frames=128))
    )
    assert epic == {"num_frames": 32, "num_clips": 1, "num_crops": 3, "with_audio": True, "audio_n_mels": 64,
                    "audio_num_frames": 128}  # fmt: skip
    assert "with_audio" not in mods["kinetics"].defaults_from_input(InputConfig(shapes={}, audio=AudioInput(kind="vggish")))


@pytest.mark.parametrize("cpus,expected", [(1, 1), (2, 1), (3, 2), (4, 3), (16, 4)])
def test_num_workers_default_fits_the_machine(cpus, expected, monkeypatch):
    import inspect
    import os

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus)), raising=False)
    assert _Toy().num_workers == expected
    assert _Toy(num_workers=0).num_workers == 0  # an explicit value wins
    for name, cls in all_datamodules().items():  # no DataModule fixes its own count
        params = {}
        for klass in cls.__mro__:
            if "__init__" in vars(klass):
                params = {**inspect.signature(klass.__init__).parameters, **params}
        if "num_workers" in params:
            assert params["num_workers"].default is None, name


@pytest.mark.parametrize("cpus", [2, 3])
def test_a_normal_run_gets_no_worker_warning(cpus, monkeypatch, tmp_path):
    import os
    import warnings

    import pytorch_lightning as pl

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus)), raising=False)

    class Tiny(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(1, 1)

        def training_step(self, batch, i):
            return self.lin(batch["x"]).sum()

        def validation_step(self, batch, i):
            self.log("v", self.lin(batch["x"]).sum())

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    dm = _Toy(n=4, batch_size=2, pin_memory=False)
    assert dm.num_workers == min(4, cpus - 1)
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(Tiny(), datamodule=dm)
    assert not [str(w.message) for w in caught if "num_workers" in str(w.message) or "workers" in str(w.message)]
