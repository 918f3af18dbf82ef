"""A tiny NL I3D trains and tests through `mmzoo fit` / `mmzoo test` on synthetic Kinetics (real
mp4 files, the real CSVs and the `kinetics` DataModule), with multi-view fully-convolutional
testing on crops larger than the training crops."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mmzoo.cli import main as mmzoo_main
from mmzoo.data.synthetic.kinetics import write_kinetics

TRAINER = ["--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.logger", "false",
           "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]  # fmt: skip
TINY = ["--model.depth", "14", "--model.width", "8", "--model.frames", "8", "--model.crop_size", "32",
        "--model.dropout", "0.0", "--model.nonlocal_placement", "custom",
        "--model.nonlocal_positions", "[[], [0], [0], []]", "--model.test_pool_size", "1"]  # fmt: skip
CLIP = ["--data.num_workers", "0", "--data.batch_size", "4", "--data.num_frames", "8", "--data.stride", "2",
        "--data.crop_size", "32", "--data.train_scale", "[32, 40]", "--data.test_scale", "40",
        "--data.test_crop_size", "40", "--data.num_clips", "2", "--data.num_crops", "1", "--data.version", "any"]  # fmt: skip


@pytest.fixture(scope="module")
def kinetics_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("kinetics")
    truth = write_kinetics(root, per_class={"train": 2, "val": 1}, num_frames=40, size=(40, 48), seed=3)
    return root, truth


def test_nl_i3d_fits_and_tests_on_synthetic_kinetics(kinetics_root, tmp_path):
    root, truth = kinetics_root
    steps = 3
    torch.manual_seed(0)
    mmzoo_main(["fit", "--model", "nl-i3d-r50", "--data", "kinetics", "--data.root", str(root), *TINY, *CLIP,
                *TRAINER, "--trainer.max_steps", str(steps), "--trainer.limit_val_batches", "0",
                "--trainer.default_root_dir", str(tmp_path)])  # fmt: skip
    ckpts = sorted(Path(tmp_path).rglob("*.ckpt"))
    assert ckpts, "fit wrote no checkpoint"
    ckpt = torch.load(ckpts[-1], map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == steps
    sd = ckpt["state_dict"]
    assert {"backbone.stages.1.nonlocal_blocks.0.theta.weight", "backbone.stages.2.nonlocal_blocks.0.bn.weight"} <= set(sd)
    assert sd["backbone.stem.conv.weight"].shape[2] == 5  # I3D conv1 5x7x7
    # Nesterov SGD at lr 0.01 x batch 4 / 64 (the recipe scaled to the global batch), divided by 10
    # at 37.5 % and 75 % of training: after the 3rd of 3 steps, 1/100 of it
    opt = ckpt["optimizer_states"][0]["param_groups"][0]
    assert opt["nesterov"] and opt["initial_lr"] == pytest.approx(0.01 * 4 / 64)
    assert opt["lr"] == pytest.approx(0.01 * 4 / 64 / 100)
    # the zero-initialised non-local BN has moved away from 0 after training
    assert float(sd["backbone.stages.2.nonlocal_blocks.0.bn.weight"].abs().sum()) > 0
    out = tmp_path / "results.json"
    mmzoo_main(["test", "--model", "nl-i3d-r50", "--data", "kinetics", "--data.root", str(root), *TINY, *CLIP,
                *TRAINER, "--ckpt_path", str(ckpts[-1]), "--pretrained", "false", "--results_json", str(out),
                "--trainer.default_root_dir", str(tmp_path)])  # fmt: skip
    metrics = json.loads(out.read_text())["metrics"]
    n_val = len(truth["rows"]["val"])
    # scores averaged over the views of each video: top-1 is a multiple of 100 / (number of videos)
    k = metrics["test/top1"] * n_val / 100
    assert abs(k - round(k)) < 1e-6
    assert "test/loss" in metrics and "test/top5" in metrics
