"""Tiny IPL / baseline / ensemble configurations fit and test through `mmzoo fit` / `mmzoo test`
on synthetic EPIC-100 (RGB), EPIC-55 (flow), EPIC-100 (RGB + flow, two-stream ensemble) and EGTEA
data in the official layouts."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from mmzoo.cli import main as mmzoo_main
from mmzoo.data.synthetic.egtea import write_egtea
from mmzoo.data.synthetic.epic_kitchens import write_epic

TRAINER = ["--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.logger", "false",
           "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]  # fmt: skip
TINY = ["--model.width_multiplier", "0.125", "--model.frames", "8", "--model.crop_size", "32"]
CLIP = ["--data.num_workers", "0", "--data.batch_size", "2", "--data.num_frames", "8", "--data.stride", "2",
        "--data.crop_size", "32", "--data.train_scale", "[32, 40]", "--data.test_scale", "32",
        "--data.test_crop_size", "32", "--data.num_clips", "2", "--data.num_crops", "1"]  # fmt: skip


def _on_grid(percent: float, n: int) -> bool:
    k = percent * n / 100
    return abs(k - round(k)) < 1e-6


def _fit_and_test(model_id, data, root, extra, tmp_path, steps=2):
    torch.manual_seed(0)
    common = ["--model", model_id, "--data", data, "--data.root", str(root), *TINY, *CLIP, *extra, *TRAINER,
              "--trainer.default_root_dir", str(tmp_path)]
    mmzoo_main(["fit", *common, "--trainer.max_steps", str(steps), "--trainer.limit_val_batches", "0"])
    ckpts = sorted(Path(tmp_path).rglob("*.ckpt"))
    assert ckpts, "fit wrote no checkpoint"
    ckpt = torch.load(ckpts[-1], map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == steps
    out = tmp_path / "results.json"
    mmzoo_main(["test", *common, "--ckpt_path", str(ckpts[-1]), "--pretrained", "false", "--results_json", str(out)])
    return ckpt, json.loads(out.read_text())["metrics"]


@pytest.fixture(scope="module")
def epic100(tmp_path_factory):
    root = tmp_path_factory.mktemp("e100")
    return write_epic(root, version="100", num_frames=90, size=(40, 48), seed=2, write_videos=False, write_flow=True)


def test_ipl_i3d_rgb_on_epic100(epic100, tmp_path):
    ckpt, metrics = _fit_and_test("ipl-i3d-rgb", "epic-kitchens", epic100["root"],
                                  ["--model.num_verbs", "5", "--model.num_nouns", "6", "--model.top_k", "2",
                                   "--data.version", "100"], tmp_path)
    assert ckpt["state_dict"]["backbone.Conv3d_1a_7x7.conv3d.weight"].shape[1] == 3
    assert "head.prototypes" in ckpt["state_dict"]
    val = epic100["rows"]["val"]
    assert _on_grid(metrics["test/verb_top1"], len(val))  # 2 clips per segment averaged
    for task in ("verb", "noun", "action"):  # every validation participant is unseen
        assert metrics[f"test/unseen_{task}_top1"] == pytest.approx(metrics[f"test/{task}_top1"])


def test_ipl_i3d_flow_on_epic55(tmp_path_factory, tmp_path):
    info = write_epic(tmp_path_factory.mktemp("e55"), version="55", num_frames=90, size=(40, 48), seed=3,
                      write_videos=False, write_flow=True)
    ckpt, metrics = _fit_and_test("ipl-i3d-flow", "epic-kitchens", info["root"],
                                  ["--model.num_verbs", "5", "--model.num_nouns", "6", "--model.top_k", "2",
                                   "--data.version", "55"], tmp_path)
    # the flow model's first conv reads 2 channels: the DataModule took modality="flow" from it
    assert ckpt["state_dict"]["backbone.Conv3d_1a_7x7.conv3d.weight"].shape[1] == 2
    assert ckpt["datamodule_hyper_parameters"]["modality"] == "flow"
    assert "test/many_shot_verb_precision" in metrics


def test_r2plus1d_baseline_on_egtea(tmp_path_factory, tmp_path):
    info = write_egtea(tmp_path_factory.mktemp("egtea"), clips_per_action=2, num_frames=16, size=(40, 48))
    _, metrics = _fit_and_test("r2plus1d-34-epic", "egtea", info["root"],
                               ["--model.num_verbs", "4", "--model.num_nouns", "3", "--data.split", "2"], tmp_path)
    n_test = len(info["splits"][2]["test"])
    assert _on_grid(metrics["test/action_top1"], n_test)
    assert "test/action_mean_class_accuracy" in metrics and "test/verb_mean_class_accuracy" in metrics


def test_two_stream_ensemble_tests_on_epic100_rgb_and_flow(epic100, tmp_path):
    tiny = {"width_multiplier": 0.125, "frames": 8, "crop_size": 32, "num_verbs": 5, "num_nouns": 6, "top_k": 2}
    out = tmp_path / "results.json"
    mmzoo_main(["test", "--model", "ipl-i3d-2stream", "--data", "epic-kitchens", "--data.root", epic100["root"],
                "--model.member_kwargs", json.dumps([tiny, tiny]), *CLIP, "--data.version", "100", *TRAINER,
                "--pretrained", "false", "--results_json", str(out), "--trainer.default_root_dir", str(tmp_path)])
    metrics = json.loads(out.read_text())["metrics"]
    assert _on_grid(metrics["test/verb_top1"], len(epic100["rows"]["val"]))
    assert "test/unseen_action_top1" in metrics


def test_epic55_seen_unseen_submission_from_flow_predictions(tmp_path_factory, tmp_path):
    """`predict` on the unlabelled EPIC-55 test sets (s1, s2) writes seen.json / unseen.json into one
    zip, in the challenge's v0.1 schema."""
    from zipfile import ZipFile

    import pytorch_lightning as pl

    import mmzoo
    from mmzoo.data.epic_kitchens import EpicKitchensDataModule
    from mmzoo.predict.epic import EpicSubmissionWriter

    info = write_epic(tmp_path_factory.mktemp("e55s"), version="55", num_frames=90, size=(40, 48), seed=5,
                      write_videos=False, write_flow=True)
    torch.manual_seed(0)
    model = mmzoo.create("ipl-i3d-flow", width_multiplier=0.125, frames=8, crop_size=32, num_verbs=5, num_nouns=6,
                         top_k=2).eval()
    out = tmp_path / "sub.zip"
    for test_set in ("s1", "s2"):
        dm = EpicKitchensDataModule(root=info["root"], version="55", modality="flow", test_set=test_set, num_frames=8,
                                    stride=2, test_scale=32, test_crop_size=32, num_clips=2, num_crops=1, batch_size=3,
                                    num_workers=0)
        trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                             callbacks=[EpicSubmissionWriter(str(out), version="55")])
        trainer.predict(model, dm, return_predictions=False)
    with ZipFile(out) as zf:
        assert sorted(zf.namelist()) == ["seen.json", "unseen.json"]
        files = {n: json.loads(zf.read(n)) for n in zf.namelist()}
    for name, split in (("seen.json", "s1"), ("unseen.json", "s2")):
        sub = files[name]
        assert sub["version"] == "0.1" and sub["challenge"] == "action_recognition"
        assert sorted(sub["results"]) == sorted(str(r["uid"]) for r in info["rows"][split])
        for entry in sub["results"].values():
            assert sorted(entry) == ["noun", "verb"]
            assert sorted(entry["verb"], key=int) == [str(i) for i in range(5)]
            assert len(entry["noun"]) == 6
            # log-probabilities: the server's softmax gives back the averaged probabilities
            assert sum(math.exp(v) for v in entry["verb"].values()) == pytest.approx(1.0, abs=1e-6)


def test_testing_an_unlabelled_split_is_refused(epic100, tmp_path, capsys):
    with pytest.raises(SystemExit):
        mmzoo_main(["test", "--model", "ipl-i3d-rgb", "--data", "epic-kitchens", "--data.root", epic100["root"], *TINY,
                    *CLIP, "--model.num_verbs", "5", "--model.num_nouns", "6", "--model.top_k", "2",
                    "--data.version", "100", "--data.test_set", "test", *TRAINER, "--pretrained", "false",
                    "--trainer.default_root_dir", str(tmp_path)])
    assert "this split has no labels" in capsys.readouterr().err
