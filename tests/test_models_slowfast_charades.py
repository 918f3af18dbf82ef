"""SlowFast / AVSlowFast on Charades (thesis ch. 4, Table 4.4): tiny variants fit and test
through `mmzoo fit` / `mmzoo test` on a synthetic Charades in the official layout with the
Table 4.4 recipe (`CHARADES_RECIPE`: multi-label sigmoid head, dropout 0.7, lr 0.07 at batch 8,
x0.1 after 32k of 40k iterations), and a head that cannot train on multi-hot labels is refused."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import mmzoo
from mmzoo.cli import main as mmzoo_main
from mmzoo.data.synthetic.charades import write_charades
from mmzoo.data.synthetic.kinetics import write_kinetics
from mmzoo.metrics.classification import MultiLabelMeanAP
from mmzoo.models.slowfast import CHARADES_RECIPE, charades_flags
from mmzoo.registry import get_spec

TRAINER = ["--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.logger", "false",
           "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]  # fmt: skip
TINY = ["--model.depth", "14", "--model.width", "8", "--model.slow_frames", "2", "--model.alpha", "4",
        "--model.crop_size", "32"]  # fmt: skip
CLIP = ["--data.num_workers", "0", "--data.batch_size", "2", "--data.num_frames", "8", "--data.stride", "2",
        "--data.alpha", "4", "--data.crop_size", "32", "--data.train_resize", "32", "--data.train_scale", "[32, 40]",
        "--data.test_scale", "32", "--data.test_crop_size", "32", "--data.num_clips", "2", "--data.num_crops", "1"]  # fmt: skip


@pytest.fixture(scope="module")
def charades(tmp_path_factory):
    root = tmp_path_factory.mktemp("charades")
    return root, write_charades(root, num_videos={"train": 2, "test": 3}, num_frames=32, size=(32, 40), seed=3)


def test_table_4_4_recipe_values():
    # Table 4.4 / section 4.3.1: sigmoid head, dropout 0.7, lr 0.07 at batch 8, x0.1 after 32k of 40k
    m = mmzoo.create("avslowfast-r101nl-16x8", depth=14, width=8, slow_frames=2, alpha=4, audio_frames=32, nonlocal_res4=[0],
                     num_classes=157, **CHARADES_RECIPE)  # fmt: skip
    assert m.head.dropout.p == 0.7 and m.hparams.head == "multilabel"
    assert m.recipe.scaled_lr(8) == pytest.approx(0.07) and m.recipe.scaled_lr(64) == pytest.approx(0.56)
    assert m.lr_factor(31_999, 40_000) == 1.0 and m.lr_factor(32_000, 40_000) == pytest.approx(0.1)
    assert charades_flags()[:2] == ["--model.head", "multilabel"] and "[0.8]" in charades_flags()


def test_every_slowfast_id_declares_charades():
    for model_id in ("slowfast-r50-4x16", "slowfast-r50-8x8", "slowfast-r101-8x8", "avslowfast-r50-4x16",
                     "avslowfast-r101-8x8", "avslowfast-r101nl-16x8"):
        assert "charades" in get_spec(model_id).input.datamodules, model_id


def test_slowfast_fits_and_tests_on_charades_with_the_table_4_4_recipe(charades, tmp_path):
    root, truth = charades
    torch.manual_seed(0)
    common = ["--data", "charades", "--data.root", str(root), *TINY, *charades_flags(), *CLIP, *TRAINER,
              "--trainer.default_root_dir", str(tmp_path)]  # fmt: skip
    mmzoo_main(["fit", "--model", "slowfast-r50-4x16", *common, "--trainer.max_steps", "2",
                "--trainer.limit_val_batches", "0"])  # fmt: skip
    ckpt_path = max(Path(tmp_path).rglob("*.ckpt"))
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    hp = ckpt["hyper_parameters"]
    assert ckpt["global_step"] == 2
    assert (hp["head"], hp["num_classes"], hp["dropout"], hp["base_lr"]) == ("multilabel", 157, 0.7, 0.07)
    out = tmp_path / "results.json"
    mmzoo_main(["test", "--model", "slowfast-r50-4x16", *common, "--ckpt_path", str(ckpt_path),
                "--pretrained", "false", "--results_json", str(out)])  # fmt: skip
    metrics = json.loads(out.read_text())["metrics"]
    # recompute the mAP from the checkpoint: every view's sigmoid scores, max-pooled per video,
    # against the video-level labels of the test CSV
    from mmzoo.data.charades import CharadesDataModule

    model = mmzoo.create("slowfast-r50-4x16", **{k: v for k, v in hp.items() if not k.startswith("_")}).eval()
    model.load_state_dict(ckpt["state_dict"])
    dm = CharadesDataModule(root=str(root), alpha=4, num_frames=8, stride=2, crop_size=32, train_resize=32,
                            test_scale=32, test_crop_size=32, num_clips=2, num_crops=1, batch_size=2, num_workers=0)
    dm.setup("test")
    metric, labels = MultiLabelMeanAP(aggregate="max"), {}
    with torch.no_grad():
        for batch in dm.test_dataloader():
            metric.update(model(batch["video"]).sigmoid(), batch["label"], batch["video_index"])
            labels.update(zip(batch["video_index"].tolist(), batch["label"]))
    # test targets are the video-level labels of the CSV, one per video
    for i, row in enumerate(truth["rows"]["test"]):
        assert labels[i].nonzero().view(-1).tolist() == sorted({c for c, _, _ in row["actions"]})
    assert metrics["test/mAP"] == pytest.approx(float(metric.compute()["mAP"]), abs=1e-4)


def test_avslowfast_trains_on_charades_video_and_audio(charades, tmp_path):
    import pytorch_lightning as pl

    from mmzoo.data.charades import CharadesDataModule

    root, _ = charades
    dm_kwargs = CharadesDataModule.defaults_from_input(get_spec("avslowfast-r101nl-16x8").input)
    assert dm_kwargs["with_audio"] and dm_kwargs["audio_num_frames"] == 256 and dm_kwargs["train_resize"] == 224
    dm = CharadesDataModule(root=str(root), alpha=4, num_frames=8, stride=2, crop_size=32, train_resize=32,
                            train_scale=(32, 40), with_audio=True, audio_num_frames=32, audio_n_mels=16,
                            batch_size=2, num_workers=0)  # fmt: skip
    model = mmzoo.create("avslowfast-r101nl-16x8", depth=14, width=8, slow_frames=2, alpha=4, audio_frames=32,
                         mel_bins=16, crop_size=32, num_classes=dm.num_classes, nonlocal_res4=[0],
                         **CHARADES_RECIPE)  # fmt: skip
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = pl.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                         default_root_dir=str(tmp_path))  # fmt: skip
    trainer.fit(model, datamodule=dm)
    assert torch.isfinite(trainer.callback_metrics["train/cls_loss"])
    assert not torch.equal(before["head.fc.weight"], model.state_dict()["head.fc.weight"])


def test_single_label_head_is_refused_on_charades_and_multilabel_on_kinetics(charades, tmp_path, capsys):
    root, _ = charades
    base = [*TINY, *CLIP, *TRAINER, "--trainer.max_steps", "1", "--trainer.default_root_dir", str(tmp_path)]
    with pytest.raises(SystemExit):
        mmzoo_main(["fit", "--model", "slowfast-r50-4x16", "--data", "charades", "--data.root", str(root), *base])
    err = capsys.readouterr().err
    assert "multi-hot labels, which the 'single' head cannot train on" in err and " ".join(charades_flags()) in err
    kin = write_kinetics(tmp_path / "kinetics", per_class={"train": 1, "val": 1}, num_frames=20, size=(32, 40))
    i = CLIP.index("--data.train_resize")
    kin_clip = CLIP[:i] + CLIP[i + 2:]
    with pytest.raises(SystemExit):
        mmzoo_main(["fit", "--model", "slowfast-r50-4x16", "--data", "kinetics", "--data.root", kin["root"],
                    "--data.version", "any", "--model.head", "multilabel", *TINY, *kin_clip, *TRAINER,
                    "--trainer.max_steps", "1", "--trainer.default_root_dir", str(tmp_path)])  # fmt: skip
    assert "the 'multilabel' head trains on multi-hot labels, but 'kinetics'" in capsys.readouterr().err
