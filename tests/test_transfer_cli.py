"""`mmzoo fit --model transfer ...`: a self-supervised AVSlowFast (tiny, rotation + AVS mode) is
linearly probed on UCF101 and fine-tuned on HMDB51 through the CLI, from source weights pushed to
the local hub. A probe on features that carry the label (class-coloured videos) beats a probe on
features that do not (label-independent noise videos), with the same network and recipe."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import mmzoo
from mmzoo.cli import main
from mmzoo.data.synthetic.hmdb51 import write_hmdb51
from mmzoo.data.synthetic.ucf101 import write_ucf101

SRC = {"depth": 14, "width": 8, "slow_frames": 2, "alpha": 4, "crop_size": 32, "audio_frames": 32, "mel_bins": 16, "mode": "ssl"}
DATA = ["--data.num_frames", "8", "--data.stride", "1", "--data.alpha", "4", "--data.crop_size", "32",
        "--data.train_scale", "[32, 32]", "--data.flip", "false", "--data.test_scale", "32",
        "--data.test_crop_size", "32", "--data.num_clips", "2", "--data.num_crops", "1",
        "--data.audio_num_frames", "32", "--data.audio_n_mels", "16", "--data.batch_size", "6",
        "--data.num_workers", "0"]
TRAINER = ["--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.enable_progress_bar", "false",
           "--trainer.check_val_every_n_epoch", "100", "--seed_everything", "0"]



@pytest.fixture
def ssl_source() -> str:
    torch.manual_seed(0)
    model = mmzoo.create("avslowfast-r50-4x16", **SRC)
    mmzoo.push(model, "tests/avslowfast-ssl-tiny")
    return "tests/avslowfast-ssl-tiny"


def _model_args(source: str, protocol: str, *extra: str) -> list[str]:
    return ["--model", "transfer", "--model.source", "avslowfast-r50-4x16", "--model.source_kwargs", json.dumps(SRC),
            "--model.source_weights", source, "--model.protocol", protocol, *extra]


def _fit_and_test(tmp_path: Path, name: str, model: list[str], data: list[str], epochs: int) -> dict:
    run = tmp_path / name
    args = [*model, *data, *DATA, *TRAINER, "--trainer.default_root_dir", str(run)]
    main(["fit", *args, "--trainer.max_epochs", str(epochs)])
    ckpt = next(run.rglob("last.ckpt"))
    main(["test", *args, "--ckpt_path", str(ckpt), "--results_json", str(run / "test.json")])
    return json.loads((run / "test.json").read_text())


def test_linear_probe_on_label_carrying_features_beats_random_features(tmp_path, ssl_source):
    probe = _model_args(ssl_source, "linear-probe", "--model.head_bn", "true", "--model.base_lr", "0.5",
                        "--model.base_batch_size", "null")
    acc = {}
    for content in ("colour", "noise"):
        root = write_ucf101(tmp_path / f"ucf-{content}", groups=6, clips_per_group=2,
                            test_groups=((1, 2), (3, 4), (5, 6)), content=content)["root"]
        res = _fit_and_test(tmp_path, content, probe, ["--data", "ucf101", "--data.root", root, "--data.split", "1"], 15)
        assert res["model"] == "transfer" and res["data"] == "ucf101"
        acc[content] = res["metrics"]
    print({k: (v["test/top1"], v["test/clip_top1"]) for k, v in acc.items()})
    assert acc["colour"]["test/top1"] >= 90.0 and acc["colour"]["test/clip_top1"] >= 90.0
    assert acc["noise"]["test/top1"] <= 66.7  # 12 test videos of 3 classes: chance is 33 %
    assert acc["colour"]["test/top1"] - acc["noise"]["test/top1"] >= 30.0


def test_finetune_all_on_hmdb51_starts_from_the_source_weights(tmp_path, ssl_source):
    root = write_hmdb51(tmp_path / "hmdb", per_class=4)["root"]
    run = tmp_path / "ft"
    args = [*_model_args(ssl_source, "finetune-all", "--model.base_lr", "0.01", "--model.freeze_bn", "true"),
            "--data", "hmdb51", "--data.root", root, "--data.split", "2", *DATA, *TRAINER,
            "--trainer.default_root_dir", str(run), "--trainer.max_epochs", "1"]
    main(["fit", *args])
    ckpt = torch.load(next(run.rglob("last.ckpt")), map_location="cpu", weights_only=True)
    assert ckpt["hyper_parameters"]["protocol"] == "finetune-all" and ckpt["hyper_parameters"]["num_classes"] == 3
    source = mmzoo.load(ssl_source).state_dict()
    state = ckpt["state_dict"]
    conv = "source.backbone.slow.stem.conv.weight"
    assert conv in state
    changed = not torch.equal(state[conv], source[conv[len("source."):]])
    close = torch.allclose(state[conv], source[conv[len("source."):]], atol=0.05)
    assert changed and close  # fine-tuned from the pushed source weights, not from scratch
    bn = "source.backbone.slow.stem.bn.running_mean"
    assert torch.equal(state[bn], source[bn[len("source."):]])  # freeze_bn: statistics untouched
