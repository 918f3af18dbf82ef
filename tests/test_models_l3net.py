"""L3-Net: architecture sizes by hand, the log-spectrogram against numpy, the correspondence sampler,
learning correspondence on synthetic AudioSet where colour and tone co-occur, and a CLI fit."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import mmzoo
from mmzoo.cli import main
from mmzoo.data.audioset import AudioSetDataModule
from mmzoo.data.synthetic.audioset import write_audioset
from mmzoo.models.l3net import correspondence_pairs

TINY = {"widths": [4, 8, 8, 16], "fusion_dim": 8, "crop_size": 32}



def _tower_params(cin: int, widths: list[int], bn_after_last: bool, input_bn: bool) -> int:
    n, c = (2 * cin if input_bn else 0), cin
    for w in widths:
        for _ in range(2):
            n += 9 * c * w + w + 2 * w  # conv weight + bias, BN gamma + beta
            c = w
    return n - (0 if bn_after_last else 2 * widths[-1])


def test_full_size_network_by_hand():
    with torch.device("meta"):
        m = mmzoo.create("l3net-avc")
    want = _tower_params(3, [64, 128, 256, 512], True, False) + _tower_params(1, [64, 128, 256, 512], True, False)
    want += 1024 * 128 + 128 + 128 * 2 + 2
    assert m.num_parameters() == want == 9_508_738
    m = mmzoo.create("l3net-avc").eval()
    spec = m.audio_spec(torch.zeros(1, 48000))
    assert spec.shape == (1, 1, 257, 199)  # 0.01 s windows, half overlap, 1 s at 48 kHz (method paper)
    with torch.no_grad():
        maps = m.audio.conv_maps(spec)
        assert maps.shape == (1, 512, 32, 24)
        assert m.embed_audio(torch.zeros(2, 48000)).shape == (2, 4 * 3 * 512)
        assert m.vision.conv_maps(torch.zeros(1, 3, 224, 224)).shape == (1, 512, 28, 28)
    with torch.device("meta"):
        a = mmzoo.create("openl3-audio-mel128")
    assert a.num_parameters() == _tower_params(1, [64, 128, 256, 512], False, True)


def test_log_spectrogram_matches_numpy():
    m = mmzoo.create("l3net-avc", **TINY)
    x = torch.randn(1, 48000, generator=torch.Generator().manual_seed(0))
    spec = m.audio_spec(x)[0, 0]
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(480) / 480)  # periodic Hann
    for t in (0, 7, 198):
        frame = x[0, 240 * t: 240 * t + 480].double().numpy() * win
        ref = np.log(np.abs(np.fft.rfft(frame, 512)) + 1e-5)
        np.testing.assert_allclose(spec[:, t].double().numpy(), ref, atol=1e-4)


def test_embed_audio_is_grid_max_of_conv4_2():
    torch.manual_seed(0)
    m = mmzoo.create("l3net-avc", **TINY).eval()
    x = torch.randn(2, 48000)
    with torch.no_grad():
        maps = m.audio.conv_maps(m.audio_spec(x))  # (2, 16, 32, 24)
        emb = m.embed_audio(x).view(2, 16, 4, 3)
    torch.testing.assert_close(emb[:, :, 1, 2], maps[:, :, 8:16, 16:24].amax(dim=(-2, -1)))
    assert not torch.equal(emb, emb.clamp_min(0))  # before the ReLU: negative values survive


def test_correspondence_pairs_negatives_come_from_other_videos():
    vid = torch.tensor([0, 0, 1, 2, 3, 3, 4, 5])
    g = torch.Generator().manual_seed(3)
    for _ in range(20):
        idx, target = correspondence_pairs(vid, 0.5, g)
        assert int((target == 0).sum()) == 4
        pos = target == 1
        assert torch.equal(idx[pos], torch.arange(8)[pos])
        assert (vid[idx[~pos]] != vid[~pos]).all()
    idx, target = correspondence_pairs(vid, 0.0)
    assert target.all() and torch.equal(idx, torch.arange(8))
    with pytest.raises(ValueError, match="no sample of another video"):
        correspondence_pairs(torch.tensor([7, 7, 7]), 0.5)


@pytest.fixture(scope="module")
def aset(tmp_path_factory):
    return write_audioset(tmp_path_factory.mktemp("l3set"), per_class={"balanced": 3, "eval": 1}, seconds=2.0)


DM = {"num_frames": 1, "stride": 1, "with_audio": True, "audio_format": "waveform", "audio_sample_rate": 16000,
          "audio_waveform_sec": 1.0, "crop_size": 32, "train_scale": (32, 40), "test_scale": 32, "test_crop_size": 32, "num_clips": 1,
          "num_crops": 1, "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "num_workers": 0}


def test_learns_correspondence_on_synthetic_audioset(aset):
    dm = AudioSetDataModule(aset["root"], **DM)
    dm.setup("fit")
    ds = dm.datasets["train"]
    samples = [ds[i] for i in range(len(ds))]
    video = torch.stack([s["video"] for s in samples])
    audio = torch.stack([s["audio"] for s in samples])
    cls = torch.tensor([int(s["label"].argmax()) for s in samples])  # first label: colour and tone
    torch.manual_seed(0)
    # 16 kHz keeps the test fast (48 kHz in the paper); an input BN (OpenL3's) makes 100 steps enough
    m = mmzoo.create("l3net-avc", **TINY, sample_rate=16000, input_bn=True)
    n = len(samples)
    fi, ai = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    same = cls[:, None] == cls[None, :]

    def scores():
        m.eval()
        with torch.no_grad():
            return m.avc_logits(video[fi.flatten()], audio, ai.flatten()).softmax(1)[:, 1].view(n, n)

    before = scores()
    assert abs(before[same].mean() - before[~same].mean()) < 0.05  # untrained: no preference
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    m.train()
    for _ in range(100):
        idx, target = correspondence_pairs(torch.arange(len(samples)), 0.5, g)
        loss = torch.nn.functional.cross_entropy(m.avc_logits(video, audio, idx), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    p = scores()
    assert p[same].mean() > p[~same].mean() + 0.1  # a matching sound scores above a mismatched one


def test_cli_fit_on_synthetic_audioset(aset, tmp_path):
    run = tmp_path / "run"
    args = ["--model", "l3net-avc", "--model.widths", "[4, 8, 8, 16]", "--model.fusion_dim", "8",
            "--data", "audioset", "--data.root", aset["root"], "--data.crop_size", "32", "--data.train_scale", "[32, 40]",
            "--data.test_scale", "32", "--data.test_crop_size", "32", "--data.batch_size", "4",
            "--data.num_workers", "0", "--trainer.accelerator", "cpu", "--trainer.max_steps", "2",
            "--trainer.enable_progress_bar", "false", "--trainer.logger", "false", "--seed_everything", "0",
            "--trainer.default_root_dir", str(run)]
    main(["fit", *args])
    ckpt = next(run.rglob("*.ckpt"))
    main(["test", *args, "--ckpt_path", str(ckpt), "--results_json", str(run / "test.json")])
    res = json.loads((run / "test.json").read_text())["metrics"]
    correct = res["test/avc_acc"] * 3 / 100  # 3 test pairs: a whole number of them are right
    assert abs(correct - round(correct)) < 1e-6
