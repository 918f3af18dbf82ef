"""Multisensory (`multisensory-av`): full-size construction, the early fusion, shifted-audio
negatives read as raw waveforms from real mp4 files, the class activation map (its mean is the
logit; the file predictor writes it over the frames), learning alignment on synthetic Kinetics
whose sound and motion co-occur, and the CLI round trip (pretext on Kinetics, fine-tune on UCF101)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _tiny import AV_CLIP, AV_CLIP_FLAGS, TRAINER_FLAGS, as_flags

from mmzoo.cli import main
from mmzoo.data.decode import read_audio, read_video_clip
from mmzoo.data.kinetics import KineticsDataModule
from mmzoo.data.synthetic.ucf101 import write_ucf101
from mmzoo.data.video_dataset import collate_clips
from mmzoo.hub.checkpoint import model_from_checkpoint
from mmzoo.models.multisensory import Multisensory
from mmzoo.predict.multisensory import heat_overlay
from mmzoo.registry import get_spec

TINY = {"audio_widths": [8, 8, 8, 16], "video_width": 8, "fusion_channels": 8, "stage_widths": [8, 16, 16],
        "stage_blocks": [1, 1, 1], "frames": 8, "crop_size": 32, "audio_samples": 16000}


def _dm(root, **kw) -> KineticsDataModule:
    """The DataModule with Multisensory's waveform contract, 1 s at 16 kHz (tiny)."""
    args = KineticsDataModule.defaults_from_input(get_spec("multisensory-av").input)
    args.update(AV_CLIP, audio_sample_rate=16000, audio_waveform_sec=1.0, audio_shift_sec=1.0, batch_size=4)
    args.update(kw)
    return KineticsDataModule(root=str(root), **args)


def test_full_size_counts_and_map_size():
    model = Multisensory()
    assert model.num_parameters() == 34_305_025
    assert sum(p.numel() for p in model.audio_net.parameters()) == 865_472
    # 64 x 224 x 224: conv1 /2 (time, space), pool /2 (space), two /2 stages -> 8 x 14 x 14
    ex = {"video": torch.zeros(1, 3, 64, 224, 224, device="meta"), "audio": torch.zeros(1, 88200, device="meta")}
    assert model.to("meta").feature_maps(**ex).shape == (1, 512, 8, 14, 14)


def test_early_fusion_uses_the_audio_at_the_fusion_layer():
    torch.manual_seed(0)
    model = Multisensory(**TINY).eval()
    video, wave = torch.randn(2, 3, 8, 32, 32), torch.randn(2, 16000) * 0.1
    with torch.no_grad():
        a = F.adaptive_avg_pool1d(model.audio_net(wave), 4)  # the video's 4 time steps after conv1
        v = model.layer1(model.stem(video))
        fused = torch.cat([v, a[..., None, None].expand(-1, -1, 4, 8, 8)], 1)
        want = model.fc(model.stages(model.fusion(fused)).mean(dim=(2, 3, 4)))[:, 0]
        assert torch.allclose(model(video, wave), want, atol=1e-6)
        # no audio ("vision only" fine-tuning): zeros in place of the audio features
        zeros = torch.cat([v, torch.zeros(2, 16, 4, 8, 8)], 1)
        assert torch.allclose(model.features(video), model.stages(model.fusion(zeros)).mean(dim=(2, 3, 4)), atol=1e-6)
        assert not torch.allclose(model.features(video), model.features(video, wave), atol=1e-4)
    with pytest.raises(ValueError, match="waveform"):
        model(video, torch.randn(2, 1, 32, 16))


def test_spectrogram_ablation_takes_log_mel():
    model = Multisensory(**{**TINY, "audio_widths": [8, 8, 16]}, audio_input="spectrogram", audio_frames=64,
                         mel_bins=16).eval()
    ex = model.example_input(2)
    assert ex["audio"].shape == (2, 1, 64, 16) and model(**ex).shape == (2,)
    assert model.embed_audio(ex["audio"]).shape == (2, 16)


def test_cam_mean_is_the_logit_and_covers_the_frames():
    torch.manual_seed(0)
    model = Multisensory(**{**TINY, "frames": 16}).eval()
    ex = model.example_input(2)
    with torch.no_grad():
        small = model.sound_localization_map(**ex, upsample=False)
        assert small.shape == (2, 2, 2, 2)  # 16 frames / 8, 32 px / 16
        assert torch.allclose(small.mean(dim=(1, 2, 3)), model(**ex), atol=1e-5)
        assert model.sound_localization_map(**ex).shape == (2, 16, 32, 32)


def test_heat_overlay_by_hand():
    frame = np.full((2, 2, 3), 100, np.uint8)
    out = heat_overlay(frame, np.array([[0.0, 1.0], [0.25, 2.0]]))
    assert out[0, 0].tolist() == [100, 100, 100]
    assert out[0, 1].tolist() == [193, 40, 40]  # 100 x 0.4 + 255 x 0.6 in red, 100 x 0.4 elsewhere
    assert out[1, 1].tolist() == out[0, 1].tolist()  # clipped to 1
    assert out[1, 0].tolist() == [123, 85, 85]  # 100 x 0.85 + 255 x 0.15 = 123.25


def test_shifted_waveform_negatives_from_the_same_video(av_events):
    dm = _dm(av_events["root"])
    dm.setup("fit")
    ds = dm.datasets["val"]
    batch = collate_clips([ds[0], ds[1]])
    assert batch["audio"].shape == batch["audio_shifted"].shape == (2, 16000)
    model = Multisensory(**TINY)
    assert model.negative_audio(batch) is batch["audio_shifted"]
    for i, meta in enumerate(batch["meta"]):
        idx = meta["frame_indices"]
        c = 0.5 * (idx[0] + idx[-1] + 4) / 30
        aligned = read_audio(meta["source"], c - 0.5, c + 0.5)
        assert torch.allclose(batch["audio"][i], aligned, atol=1e-4)
        offsets = (-1.0, 0.0, 1.0, 2.0)
        err = [(read_audio(meta["source"], c - 0.5 + o, c + 0.5 + o) - batch["audio_shifted"][i]).abs().mean().item()
               for o in offsets]
        assert offsets[err.index(min(err))] == 1.0 and min(err) < 0.01
    rand = Multisensory(**TINY, negatives="random").negative_audio(batch)
    assert torch.equal(rand, batch["audio"].flip(0))  # the other video of the batch
    with pytest.raises(ValueError, match="audio_shift_sec"):
        model.negative_audio({k: v for k, v in batch.items() if k != "audio_shifted"})


def test_waveform_needs_a_missing_audio_policy(av_events):
    with pytest.raises(ValueError, match="missing_audio"):
        _dm(av_events["root"], missing_audio="zeros")


def test_aligned_audio_scores_higher_after_training(av_events):
    torch.manual_seed(0)
    dm = _dm(av_events["root"])
    dm.setup("fit")
    ds = dm.datasets["train"]
    samples = [ds[i % len(ds)] for i in range(192)]
    # training items leave scale / crop / flip to the DataModule: finish them as on_after_batch_transfer does
    train = [dm.finish_batch(collate_clips(samples[i:i + 8])) for i in range(0, 128, 8)]
    held = dm.finish_batch(collate_clips(samples[128:]))
    differ = (held["audio"] - held["audio_shifted"]).abs().amax(1) > 1e-3
    model = Multisensory(**TINY)
    opt = torch.optim.Adam(model.parameters(), 1e-3)

    def gap() -> tuple[float, float]:
        model.eval()
        with torch.no_grad():
            logits, _ = model._pairs(held)
        model.train()
        diff = logits[:64] - logits[64:]  # aligned minus shifted, per clip
        return diff[differ].mean().item(), (diff[differ] > 0).float().mean().item()

    before = gap()
    for step in range(80):
        logits, y = model._pairs(train[step % len(train)])
        loss = F.binary_cross_entropy_with_logits(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = gap()
    print("logit gap, share aligned higher: before", before, "after", after)
    assert int(differ.sum()) >= 48
    assert after[0] > 0.5 and after[0] > before[0] + 0.5
    assert after[1] > 0.65


def test_cli_pretext_predict_and_finetune(av_events, tmp_path):
    tiny, clip, trainer = as_flags(TINY), AV_CLIP_FLAGS, TRAINER_FLAGS
    run = tmp_path / "pretext"
    main(["fit", "--model", "multisensory-av", *tiny, "--data", "kinetics", "--data.root", av_events["root"],
          "--data.version", "any", "--data.audio_sample_rate", "16000", "--data.audio_waveform_sec", "1.0",
          "--data.audio_shift_sec", "1.0", *clip, *trainer, "--trainer.default_root_dir", str(run)])
    ckpt = next(run.rglob("last.ckpt"))
    model = model_from_checkpoint(ckpt, "multisensory-av").eval()
    assert model.hparams.audio_samples == 16000

    # the sound-localisation maps of a file (40 frames: two windows of 8 frames at the contract's stride 2)
    video = av_events["rows"]["val"][0]["path"]
    out = tmp_path / "pred"
    main(["predict", "--model", "multisensory-av", "--ckpt_path", str(ckpt), "--input", video,
          "--output_dir", str(out)])  # the real CLI: `mmzoo predict --input` dispatches to the family's predictor
    res = json.loads((out / "multisensory.json").read_text())
    assert [w["start"] for w in res["windows"]] == list(range(0, 180 - 15, 16))
    first = res["windows"][0]
    frames = read_video_clip(video, short_side=32).frames.numpy()
    assert len(first["images"]) == 1 and (out / first["images"][0]).is_file() and (out / first["video"]).is_file()
    assert read_video_clip(out / first["video"]).frames.shape[:3] == (8, 32, 32)
    assert frames.shape[1] == 32 and json.loads((out / "multisensory.json").read_text())["p_aligned"] == pytest.approx(
        float(np.mean([w["p_aligned"] for w in res["windows"]])))

    root = write_ucf101(tmp_path / "ucf", num_frames=40)["root"]
    ft = tmp_path / "ft"
    main(["fit", "--model", "transfer", "--model.source", "multisensory-av", "--model.source_kwargs", json.dumps(TINY),
          "--model.source_weights", str(ckpt), "--model.protocol", "finetune-all", "--data", "ucf101",
          "--data.root", root, "--data.split", "1", "--data.with_audio", "false", *clip, *trainer,
          "--trainer.limit_train_batches", "1", "--trainer.default_root_dir", str(ft)])
    tuned = model_from_checkpoint(next(ft.rglob("last.ckpt")), "transfer")
    assert tuned.hparams.source == "multisensory-av" and tuned.fc.in_features == 16
    w0, w1 = model.stages[2][0].conv2[0].weight, tuned.source.stages[2][0].conv2[0].weight
    assert (w1 - w0).abs().max() < 0.05 * w0.abs().max() + 1e-3
