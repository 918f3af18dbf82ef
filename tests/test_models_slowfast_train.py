"""Tiny SlowFast-family variants train and test through `mmzoo fit` / `mmzoo test` on synthetic
Kinetics (real mp4 with audio, the real CSVs and DataModule) and EPIC-Kitchens data."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mmzoo.cli import main as mmzoo_main
from mmzoo.data.synthetic.epic_kitchens import write_epic
from mmzoo.data.synthetic.kinetics import write_kinetics

TRAINER = ["--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.logger", "false",
           "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]  # fmt: skip
TINY = ["--model.depth", "14", "--model.width", "8", "--model.slow_frames", "2", "--model.alpha", "4",
        "--model.crop_size", "32", "--model.dropout", "0.0"]  # fmt: skip
CLIP = ["--data.num_workers", "0", "--data.batch_size", "4", "--data.num_frames", "8", "--data.stride", "2",
        "--data.alpha", "4", "--data.crop_size", "32", "--data.train_scale", "[32, 40]", "--data.test_scale", "32",
        "--data.test_crop_size", "32"]  # fmt: skip


def _on_grid(percent: float, n: int) -> bool:
    """Whether `percent` is k / n x 100 for an integer k (an accuracy over n items)."""
    k = percent * n / 100
    return abs(k - round(k)) < 1e-6


@pytest.fixture(scope="module")
def kinetics_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("kinetics")
    truth = write_kinetics(root, per_class={"train": 2, "val": 1}, num_frames=40, size=(40, 48), seed=1)
    return root, truth


def _fit_and_test(model_id, data, root, extra_model, extra_data, tmp_path, steps=3):
    torch.manual_seed(0)
    mmzoo_main(["fit", "--model", model_id, "--data", data, "--data.root", str(root), *TINY, *extra_model, *CLIP,
                *extra_data, *TRAINER, "--trainer.max_steps", str(steps), "--trainer.limit_val_batches", "0",
                "--trainer.default_root_dir", str(tmp_path)])  # fmt: skip
    ckpts = sorted(Path(tmp_path).rglob("*.ckpt"))
    assert ckpts, "fit wrote no checkpoint"
    ckpt = torch.load(ckpts[-1], map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == steps
    out = tmp_path / "results.json"
    mmzoo_main(["test", "--model", model_id, "--data", data, "--data.root", str(root), *TINY, *extra_model, *CLIP,
                *extra_data, *TRAINER, "--ckpt_path", str(ckpts[-1]), "--pretrained", "false",
                "--results_json", str(out), "--trainer.default_root_dir", str(tmp_path)])  # fmt: skip
    return ckpt, json.loads(out.read_text())["metrics"]


def test_avslowfast_fits_and_tests_on_synthetic_kinetics(kinetics_root, tmp_path):
    root, truth = kinetics_root
    ckpt, metrics = _fit_and_test(
        "avslowfast-r50-4x16", "kinetics", root,
        [],  # num_classes is linked from the DataModule
        ["--data.version", "any", "--data.with_audio", "true", "--data.audio_shift_sec", "0.5",
         "--data.num_clips", "2", "--data.num_crops", "1"],
        tmp_path,
    )  # fmt: skip
    # the checkpoint holds the audio pathway and the AVS heads, and the test metrics are top-k in %
    assert any(k.startswith("backbone.audio.") for k in ckpt["state_dict"])
    assert any(k.startswith("backbone.avs.") for k in ckpt["state_dict"])
    # views are averaged per video: top-1 is a multiple of 100 / 3 (3 test videos), not of 100 / 6
    assert _on_grid(metrics["test/top1"], len(truth["rows"]["val"]))
    assert "test/loss" in metrics


def test_slowfast_verb_noun_head_fits_and_tests_on_synthetic_epic(tmp_path_factory, tmp_path):
    root = tmp_path_factory.mktemp("epic")
    info = write_epic(root, version="100", num_frames=90, size=(40, 48), seed=2)
    _, metrics = _fit_and_test(
        "slowfast-r50-4x16", "epic-kitchens", root,
        ["--model.head", "verb_noun", "--model.num_verbs", str(info["num_verbs"]), "--model.num_nouns",
         str(info["num_nouns"]), "--model.freeze_bn", "true", "--model.lr_schedule", "steps",
         "--model.lr_steps", "[0.6667, 0.8333]", "--model.warmup_epochs", "0", "--model.base_lr", "0.01",
         "--model.base_batch_size", "32"],
        ["--data.version", "100", "--data.source", "frames"],
        tmp_path, steps=2,
    )  # fmt: skip
    # the DataModule's subsets reach the metric: every validation segment is of an unseen
    # participant (P01), so the unseen accuracies are the overall ones; tail accuracies are
    # reported for the tail classes that occur, on their segments only
    val = info["rows"]["val"]
    assert all(r["participant_id"] in info["unseen_participants"]["val"] for r in val)
    for task in ("verb", "noun", "action"):
        assert metrics[f"test/unseen_{task}_top1"] == pytest.approx(metrics[f"test/{task}_top1"])
    for task, tail in (("verb", info["tail_verbs"]), ("noun", info["tail_nouns"])):
        rows = [r for r in val if r[f"{task}_class"] in tail]
        assert (f"test/tail_{task}_top1" in metrics) == bool(rows)
        if rows:
            assert _on_grid(metrics[f"test/tail_{task}_top1"], len(rows))
    assert _on_grid(metrics["test/verb_top1"], len(val))
    assert metrics["test/action_top1"] <= min(metrics["test/verb_top1"], metrics["test/noun_top1"])


def test_audionet_fits_and_tests_on_synthetic_kinetics_audio(kinetics_root, tmp_path):
    root, _ = kinetics_root
    torch.manual_seed(0)
    common = ["--model", "audionet-r50", "--data", "kinetics", "--data.root", str(root), "--model.depth", "14",
              "--model.width", "8", "--model.dropout", "0.0", *CLIP, "--data.version", "any", "--data.with_audio", "true",
              "--data.num_clips", "2", "--data.num_crops", "1", *TRAINER, "--trainer.default_root_dir", str(tmp_path)]  # fmt: skip
    mmzoo_main(["fit", *common, "--trainer.max_steps", "2", "--trainer.limit_val_batches", "0"])
    ckpt = sorted(Path(tmp_path).rglob("*.ckpt"))[-1]
    out = tmp_path / "results.json"
    mmzoo_main(["test", *common, "--ckpt_path", str(ckpt), "--pretrained", "false", "--results_json", str(out)])
    metrics = json.loads(out.read_text())["metrics"]
    assert _on_grid(metrics["test/top1"], len(kinetics_root[1]["rows"]["val"]))  # 2 views per video averaged
    state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    assert state["head.fc.weight"].shape == (3, 8 * 32)  # 3 synthetic classes, res5 width 32 x 8


class _ColourClips(torch.utils.data.Dataset):
    """Learnable clips: class c < 3 raises colour channel c, class 3 lowers every channel, plus
    noise; `shuffle` permutes the labels so that they no longer follow the clips."""

    def __init__(self, n: int, seed: int, shuffle: bool = False) -> None:
        g = torch.Generator().manual_seed(seed)
        self.y = torch.randint(0, 4, (n,), generator=g)
        self.x = torch.randn(n, 3, 8, 16, 16, generator=g) * 0.3
        for i, c in enumerate(self.y.tolist()):
            if c < 3:
                self.x[i, c] += 2.0
            else:
                self.x[i] -= 2.0
        if shuffle:
            self.y = self.y[torch.randperm(n, generator=g)]

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict:
        return {"video": self.x[i], "label": int(self.y[i])}


@pytest.mark.parametrize("shuffle", [False, True])
def test_slowfast_learns_learnable_clips_and_not_shuffled_labels(shuffle):
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader

    import mmzoo

    torch.manual_seed(0)
    model = mmzoo.create("slowfast-r50-4x16", depth=14, width=8, slow_frames=2, alpha=4, num_classes=4, dropout=0.0,
                         base_lr=0.1, base_batch_size=16, batch_size=16, warmup_epochs=0, weight_decay=0.0)  # fmt: skip
    trainer = pl.Trainer(accelerator="cpu", max_epochs=12, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, enable_checkpointing=False)  # fmt: skip
    trainer.fit(model, DataLoader(_ColourClips(64, 1, shuffle), batch_size=16, shuffle=True))
    top1 = trainer.test(model, DataLoader(_ColourClips(64, 2), batch_size=32), verbose=False)[0]["test/top1"]
    if shuffle:
        assert top1 <= 50.0  # chance is 25 %: nothing to learn from permuted labels
    else:
        assert top1 >= 95.0
