"""The audio probe on a source's frozen embed_audio: the SVM loss by hand, the fold summary, a frozen
source, learning ESC-50 tones from L3-Net features, and fit/test through the CLI with pushed source
weights (ESC-50 layout)."""
from __future__ import annotations

import json

import pytest
import torch

import mmzoo
from mmzoo.cli import main
from mmzoo.data.audio_clips import AudioFileDataset
from mmzoo.data.esc50 import ESC50DataModule
from mmzoo.data.synthetic.esc50 import write_esc50
from mmzoo.errors import MmzooError
from mmzoo.metrics.classification import MultiViewAccuracy
from mmzoo.models.audio_probe import multiclass_squared_hinge, summarise_folds

SRC = {"widths": [4, 8, 8, 16], "fusion_dim": 8, "crop_size": 32}



def test_squared_hinge_by_hand():
    scores = torch.tensor([[2.0, 0.5, -1.0], [0.0, -3.0, 0.25]])
    target = torch.tensor([0, 2])
    # sample 0: y=(+1,-1,-1): max(0,1-2)^2 + max(0,1+0.5)^2 + max(0,1-1)^2 = 0 + 2.25 + 0
    # sample 1: y=(-1,-1,+1): 1^2 + 0 + 0.75^2 = 1.5625
    assert multiclass_squared_hinge(scores, target).item() == pytest.approx((2.25 + 1.5625) / 2)


def test_summarise_folds():
    res = {k: {"test/top1": 70.0 + k} for k in range(1, 6)}
    out = summarise_folds(res)
    assert out["mean"]["test/top1"] == pytest.approx(73.0) and out["folds"][5]["test/top1"] == 75.0
    with pytest.raises(MmzooError, match="needs folds 1..5"):
        summarise_folds({1: {"test/top1": 1.0}})


def test_source_is_frozen_and_head_trains():
    torch.manual_seed(0)
    m = mmzoo.create("audio-probe", source_kwargs=SRC, num_classes=3)
    assert m.feature_dim == 4 * 3 * 16
    before = {k: v.clone() for k, v in m.source.state_dict().items()}
    head = m.head.weight.detach().clone()
    m.train()
    assert not m.source.training
    opt = m.configure_optimizers()["optimizer"]
    loss = m.training_step({"audio": torch.randn(4, 48000) * 0.1, "label": torch.tensor([0, 1, 2, 0])}, 0)
    loss.backward()
    opt.step()
    assert all(torch.equal(before[k], v) for k, v in m.source.state_dict().items())  # BN statistics too
    assert not torch.equal(head, m.head.weight)
    with pytest.raises(ValueError, match="has no embed_audio"):
        mmzoo.create("audio-probe", source="aot-tcam-vgg16", source_kwargs={"widths": [4, 8, 8, 16, 16]})


@pytest.fixture(scope="module")
def esc(tmp_path_factory):
    return write_esc50(tmp_path_factory.mktemp("esc_probe"), seconds=5.0)


def test_l3_features_classify_esc50_tones(esc):
    dm = ESC50DataModule(esc["root"], fold=1, num_workers=0)
    dm.setup()
    train = AudioFileDataset(dm.datasets["train"].records, dm.frontend(), 1.0, 5, train=False)  # every window
    test = dm.datasets["test"]
    torch.manual_seed(0)
    m = mmzoo.create("audio-probe", source_kwargs=SRC, num_classes=3)
    items = [train[i] for i in range(len(train))]
    feats = m.features(torch.stack([x["audio"] for x in items]))
    labels = torch.tensor([x["label"] for x in items])
    opt = torch.optim.Adam(m.head.parameters(), lr=1e-2)
    m.train()
    for _ in range(100):
        loss = multiclass_squared_hinge(m.head(m.norm(feats)), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    titems = [test[i] for i in range(len(test))]
    with torch.no_grad():
        scores = m(torch.stack([x["audio"] for x in titems]))
    metric = MultiViewAccuracy(top_k=(1,))
    metric.update(scores, torch.tensor([x["label"] for x in titems]), torch.tensor([x["video_index"] for x in titems]))
    assert metric.compute()["top1"] == pytest.approx(100.0)  # clip level: the mean over its 5 windows


def test_cli_fit_and_test_with_pushed_source(esc, tmp_path):
    torch.manual_seed(1)
    src = mmzoo.create("l3net-avc", **SRC)
    mmzoo.push(src, "tests/l3net-tiny")
    run = tmp_path / "run"
    args = ["--model", "audio-probe", "--model.source_kwargs", json.dumps(SRC), "--model.source_weights",
            "tests/l3net-tiny", "--data", "esc50", "--data.root", esc["root"], "--data.fold", "2",
            "--data.batch_size", "6", "--data.num_workers", "0", "--trainer.accelerator", "cpu",
            "--trainer.max_epochs", "2", "--trainer.enable_progress_bar", "false", "--trainer.logger", "false",
            "--seed_everything", "0", "--trainer.default_root_dir", str(run)]
    main(["fit", *args])
    ckpt = next(run.rglob("last.ckpt"))
    state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    torch.testing.assert_close(state["source.audio.convs.0.weight"], src.audio.convs[0].weight)  # source loaded
    assert state["head.weight"].shape == (3, 4 * 3 * 16)  # num_classes linked from the DataModule
    main(["test", *args, "--ckpt_path", str(ckpt), "--results_json", str(run / "test.json")])
    res = json.loads((run / "test.json").read_text())["metrics"]
    assert (res["test/top1"] * 3 / 100) == pytest.approx(round(res["test/top1"] * 3 / 100))  # 3 clips
    assert (res["test/window_top1"] * 15 / 100) == pytest.approx(round(res["test/window_top1"] * 15 / 100))


def test_probe_on_a_logmel_source(esc):
    """AVTS (log-mel audio): the ESC-50 DataModule takes its front end from AVTS's input contract
    and the probe classifies on AVTS's embed_audio."""
    from mmzoo.registry import get_spec

    kw = ESC50DataModule.defaults_from_input(get_spec("avts-mc3-vggmel").input)
    assert kw["audio_format"] == "logmel"
    dm = ESC50DataModule(esc["root"], num_workers=0, batch_size=4, **kw)
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    src = {"video_layers": [1, 1, 1, 1], "video_widths": [8, 8, 8, 16], "audio_widths": [8, 8, 16, 16],
           "audio_convs": [1, 1, 1, 1], "frames": 8, "crop_size": 32}
    torch.manual_seed(0)
    m = mmzoo.create("audio-probe", source="avts-mc3-vggmel", source_kwargs=src, num_classes=3).eval()
    assert batch["audio"].shape[1:] == m.example_input(1)["audio"].shape[1:]  # (1, 98, 64): 16 kHz log-mel
    with torch.no_grad():
        assert m(batch["audio"]).shape == (4, 3)
        torch.testing.assert_close(m.features(batch["audio"]), m.source.embed_audio(batch["audio"]))


def test_multi_hot_audioset_is_refused_in_one_line(tmp_path, capsys):
    from mmzoo.data.synthetic.audioset import write_audioset

    root = tmp_path / "audioset"
    write_audioset(root)
    args = ["test", "--model", "audio-probe", "--pretrained", "false", "--model.source_kwargs", json.dumps(SRC),
            "--data", "audioset", "--data.root", str(root), "--data.num_workers", "0", "--trainer.accelerator", "cpu",
            "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
            "--trainer.default_root_dir", str(tmp_path / "run")]
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "multi-hot labels" in err[0] and "'audioset'" in err[0], err
