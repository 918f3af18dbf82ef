"""`mmzoo predict --input video.mp4` for the classifiers: per-window top-k labels in JSON and an
annotated mp4, checked against the model run by hand on independently decoded inputs (frames and
audio decoded with PyAV here, the log-mel of the thesis' front end applied to that audio). The
reference view of a window is PySlowFast's test transform written out here: the native frames
``F.interpolate``-d (bilinear, ``align_corners=False``) to the short side, ``uniform_crop``'s
centre (``ceil`` of half the margin), normalised; the same pixels as the clip DataModules'
evaluation views (checked directly on a ``ClipDataset`` item too).

Families: SlowFast and Non-local (clip windows), IPL (verb / noun / action), TSN (25-segment test
protocol, here 4 segments), AVSlowFast (clip windows + the aligned audio window) and AudioNet
(consecutive audio windows)."""
from __future__ import annotations

import json
import math

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import mmzoo
from mmzoo.cli import main
from mmzoo.data.audio import LogMel
from mmzoo.data.constants import AVSLOWFAST_AUDIO, AVSLOWFAST_LOGMEL_MEAN, AVSLOWFAST_LOGMEL_STD, KINETICS_MEAN, KINETICS_STD
from mmzoo.data.decode import read_video_clip
from mmzoo.data.media import write_mp4
from mmzoo.data.synthetic.kinetics import write_kinetics
from mmzoo.hub.repo import save_pretrained

TINY = {"slowfast-r50-4x16": dict(depth=14, width=8, slow_frames=2, alpha=4, crop_size=32, num_classes=5),
        "i3d-r50-8x8": dict(depth=14, width=8, frames=8, crop_size=32, num_classes=5)}
AV_TINY = dict(depth=14, width=8, slow_frames=2, alpha=4, crop_size=32, num_classes=5, audio_frames=32, mel_bins=16)
AUDIO_TINY = dict(depth=14, width=8, num_classes=5, audio_frames=32, mel_bins=16)
IPL_TINY = dict(width_multiplier=0.125, frames=8, crop_size=32, num_verbs=5, num_nouns=6, top_k=2)
TSN_TINY = dict(num_classes=5, backbone_layers=[1, 1, 1, 1], backbone_channels=[8, 8, 8, 8], stem_width=8, crop_size=32,
                num_frames=4, pretrained_backbone=False)
FPS, SR, N_FRAMES, H, W = 30.0, 16000, 72, 40, 48


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    truth = write_kinetics(tmp_path_factory.mktemp("k"), per_class={"train": 1}, num_frames=72, size=(40, 48), seed=3)
    return truth["rows"]["train"][0]["path"]


@pytest.fixture(scope="module")
def noisy(tmp_path_factory):
    """Random frames and white-noise AAC audio at 16 kHz (no resampling anywhere), and the same
    frames without an audio stream."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (N_FRAMES, H, W, 3), dtype=np.uint8)
    audio = rng.uniform(-0.5, 0.5, int(N_FRAMES / FPS * SR)).astype(np.float32)
    root = tmp_path_factory.mktemp("noisy")
    write_mp4(root / "av.mp4", frames, FPS, audio=audio, sample_rate=SR)
    write_mp4(root / "mute.mp4", frames, FPS)
    return str(root / "av.mp4"), str(root / "mute.mp4")


def pyav_frames(path) -> np.ndarray:
    """Every frame at its native size, decoded by PyAV."""
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])])


def pyav_audio(path) -> np.ndarray:
    """The mono sound track on the video's timeline (sample 0 = first video frame), by PyAV."""
    with av.open(str(path)) as c:
        a, v = c.streams.audio[0], c.streams.video[0]
        tb, t_ref = float(a.time_base), (v.start_time or 0) * float(v.time_base)
        n = round(((a.start_time or 0) * tb - t_ref + a.duration * tb) * SR)
        buf = np.zeros(n, np.float32)
        for f in c.decode(a):
            x = f.to_ndarray()[0]
            s = round((f.pts * tb - t_ref) * SR)
            lo, hi = max(s, 0), min(s + len(x), n)
            buf[lo:hi] = x[lo - s:hi - s]
    return buf


def window(buf: np.ndarray, first: int, n: int) -> torch.Tensor:
    """``buf[first:first + n]``, zeros outside the track."""
    out = np.zeros(n, np.float32)
    lo, hi = max(first, 0), min(first + n, len(buf))
    out[lo - first:hi - first] = buf[lo:hi]
    return torch.from_numpy(out)


def logmel(frames: int, mels: int) -> LogMel:
    """The AVSlowFast front end (thesis ch. 4: 16 kHz, 32 ms / 16 ms, HTK mels; FFT 512, log offset
    and -7.03 / 4.66 normalisation from the authors' code) at a narrowed size."""
    a = AVSLOWFAST_AUDIO
    return LogMel(sample_rate=a["sample_rate"], win_ms=a["window_ms"], hop_ms=a["hop_ms"], n_mels=mels, n_fft=a["n_fft"],
                  num_frames=frames, mel_scale=a["mel_scale"], log_offset=a["log_offset"], normalization="fixed",
                  mean=AVSLOWFAST_LOGMEL_MEAN, std=AVSLOWFAST_LOGMEL_STD)


def crops(frames: np.ndarray, short: int, size: int, mean, std) -> torch.Tensor:
    """PySlowFast's test view of native uint8 ``T, H, W, C`` frames: ``short_side_scale`` (long side
    ``floor(long / short * size)``, ``F.interpolate`` bilinear), the centre of ``uniform_crop``
    (``ceil`` of half the margin), ``(x - mean) / std``; ``1, C, T, size, size``."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255  # T, C, H, W
    h, w = x.shape[-2:]
    if min(h, w) != short:
        nh, nw = (int(math.floor(float(h) / w * short)), short) if w < h else (short, int(math.floor(float(w) / h * short)))
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False)
    h, w = x.shape[-2:]
    y0, x0 = int(math.ceil((h - size) / 2)), int(math.ceil((w - size) / 2))
    x = x[..., y0:y0 + size, x0:x0 + size].transpose(0, 1)  # C, T, size, size
    m, s = torch.tensor(mean).view(-1, 1, 1, 1), torch.tensor(std).view(-1, 1, 1, 1)
    return ((x - m) / s)[None]


def run(model, path, tmp_path, top_k=3, extra=()):
    folder = save_pretrained(model, tmp_path / "tiny")
    out = tmp_path / "pred"
    main(["predict", "--model", str(folder), "--input", str(path), "--output_dir", str(out), "--top_k", str(top_k),
          *extra])
    return json.loads((out / "predictions.json").read_text()), out


def check_top(entries, p: torch.Tensor, k: int = 3) -> None:
    assert [e["index"] for e in entries] == p.topk(k).indices.tolist()
    assert [e["score"] for e in entries] == pytest.approx(p.topk(k).values.tolist(), abs=1e-5)


@pytest.mark.parametrize("model_id", sorted(TINY))
def test_windows_top_k_and_annotated_video(model_id, video, tmp_path):
    torch.manual_seed(0)
    model = mmzoo.create(model_id, **TINY[model_id]).eval()
    res, out = run(model, video, tmp_path)
    stride = mmzoo.model_info(model_id)["input"]["sampling_rate"]
    span = 8 * stride  # 8 frames at the id's stride
    assert [(w["start"], w["end"]) for w in res["windows"]] == [(s, s + span) for s in range(0, 72 - span + 1, span)]

    frames = read_video_clip(video, short_side=32).frames.numpy()  # what predictions.mp4 shows
    h, w = frames.shape[1:3]
    native = pyav_frames(video)
    probs = []
    for win in res["windows"]:
        clip = crops(native[win["start"]:win["end"]:stride], 32, 32, KINETICS_MEAN, KINETICS_STD)
        with torch.no_grad():
            p = model(clip)[0].softmax(-1)
        probs.append(p)
        check_top(win["top_k"]["class"], p)
    video_p = torch.stack(probs).mean(0)
    assert [e["index"] for e in res["top_k"]["class"]] == video_p.topk(3).indices.tolist()

    drawn = read_video_clip(out / "predictions.mp4").frames.numpy()
    assert drawn.shape[0] == 72 and drawn.shape[1:3] == (h, w)
    band = slice(0, 8)
    # the label band is darkened and carries white text: darker on average, with bright pixels in it
    assert drawn[:, band].mean() < frames[:, band].mean() - 10
    assert drawn[:, band].max() > 200


def test_ipl_verb_noun_and_action_per_window(noisy, tmp_path):
    torch.manual_seed(1)
    model = mmzoo.create("ipl-i3d-rgb", **IPL_TINY).eval()
    res, _ = run(model, noisy[0], tmp_path)
    frames = pyav_frames(noisy[0])  # test view: short side 256 and a 256 crop, here 32 / 32
    span = 16  # 8 frames at stride 2
    assert [(w["start"], w["end"]) for w in res["windows"]] == [(0, 16), (16, 32), (32, 48), (48, 64)]
    verbs, nouns = [], []
    for win in res["windows"]:
        with torch.no_grad():
            out = model(crops(frames[win["start"]:win["start"] + span:2], 32, 32, (0.5,) * 3, (0.5,) * 3))
        pv, pn = out["verb"][0].softmax(-1), out["noun"][0].softmax(-1)
        verbs.append(pv)
        nouns.append(pn)
        check_top(win["top_k"]["verb"], pv)
        check_top(win["top_k"]["noun"], pn)
        best = max(((v, n) for v in range(5) for n in range(6)), key=lambda vn: float(pv[vn[0]] * pn[vn[1]]))
        top = win["top_k"]["action"][0]
        assert (top["verb"], top["noun"], top["index"]) == (best[0], best[1], best[0] * 6 + best[1])
        assert top["score"] == pytest.approx(float(pv[best[0]] * pn[best[1]]), abs=1e-6)
    pv, pn = torch.stack(verbs).mean(0), torch.stack(nouns).mean(0)
    check_top(res["top_k"]["verb"], pv)
    action = (pv[:, None] * pn[None, :]).flatten()  # the video's verbs x nouns, not the mean of products
    check_top(res["top_k"]["action"], action)


def test_tsn_centre_frames_of_equal_segments(noisy, tmp_path):
    torch.manual_seed(2)
    model = mmzoo.create("tsn-r50", **TSN_TINY).eval()
    torch.nn.init.normal_(model.net.fc.weight, std=0.5)  # the paper's std 0.001 gives near-uniform scores
    res, out = run(model, noisy[0], tmp_path)
    # 4 segments of 72 frames: [0, 18), [18, 36), ...; the centre frame of each (TSN test protocol)
    bounds = [(18 * i, 18 * (i + 1)) for i in range(4)]
    centres = [lo + (hi - lo - 1) // 2 for lo, hi in bounds]
    assert [(w["start"], w["end"], w["frame"]) for w in res["windows"]] == [(lo, hi, c) for (lo, hi), c in zip(bounds, centres)]
    short = round(32 * 256 / 224)  # the id's 256 short side for 224 crops, scaled to the 32 crop
    frames = pyav_frames(noisy[0])  # 40 x 48 -> 37 x 44: an odd vertical margin, centre row 3 (ceil)
    clip = crops(frames[centres], short, 32, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    with torch.no_grad():
        logits = torch.stack([model.net(clip[0, :, t][None])[0] for t in range(4)])  # each frame alone
    for win, lg in zip(res["windows"], logits):
        check_top(win["top_k"]["class"], lg.softmax(-1))
    check_top(res["top_k"]["class"], logits.mean(0).softmax(-1))  # consensus: mean logits, then softmax
    assert read_video_clip(out / "predictions.mp4").frames.shape[0] == 72


@pytest.mark.parametrize("stride", [None, 6])
def test_avslowfast_windows_with_aligned_audio(noisy, tmp_path, stride):
    torch.manual_seed(3)
    model = mmzoo.create("avslowfast-r50-4x16", **AV_TINY).eval()
    res, out = run(model, noisy[0], tmp_path, extra=() if stride is None else ("--predictor.window_stride", str(stride)))
    frames, track, lm = pyav_frames(noisy[0]), pyav_audio(noisy[0]), logmel(32, 16)
    need = 31 * 256 + 512  # samples of 32 log-mel frames
    assert res["has_audio"] is True
    assert [w["start"] for w in res["windows"]] == list(range(0, N_FRAMES - 16 + 1, stride or 16))
    for win in res["windows"]:
        s = win["start"]
        t0, t1 = s / FPS, (s + 16) / FPS  # first frame to one step (2 frames) past the last
        a0 = (t0 + t1) / 2 - need / SR / 2  # centred on the clip
        assert (win["audio_start_sec"], win["audio_end_sec"]) == pytest.approx((a0, a0 + need / SR), abs=1e-6)
        audio = lm(window(track, round(a0 * SR), need))
        with torch.no_grad():
            clip = crops(frames[s:s + 16:2], 32, 32, KINETICS_MEAN, KINETICS_STD)
            p = model(clip, audio[None])[0].softmax(-1)
            muted = model(clip, torch.zeros_like(audio)[None])
        check_top(win["top_k"]["class"], p)
        assert not torch.allclose(p, muted[0].softmax(-1), atol=1e-5)  # the audio does change the scores
    with av.open(str(out / "predictions.mp4")) as c:  # the annotated video keeps the sound
        assert len(c.streams.audio) == 1 and len(c.streams.video) == 1


def test_avslowfast_without_audio_stream_uses_zeros_and_says_so(noisy, tmp_path, capsys):
    torch.manual_seed(4)
    model = mmzoo.create("avslowfast-r50-4x16", **AV_TINY).eval()
    res, _ = run(model, noisy[1], tmp_path)
    assert res["has_audio"] is False and res["missing_audio"] == "zeros"
    err = [line for line in capsys.readouterr().err.splitlines() if "no audio stream" in line]
    assert len(err) == 1 and "zeros" in err[0]
    frames = pyav_frames(noisy[1])
    for win in res["windows"]:
        with torch.no_grad():
            p = model(crops(frames[win["start"]:win["end"]:2], 32, 32, KINETICS_MEAN, KINETICS_STD),
                      torch.zeros(1, 1, 32, 16))[0].softmax(-1)
        check_top(win["top_k"]["class"], p)


def test_audionet_consecutive_audio_windows(noisy, tmp_path):
    torch.manual_seed(5)
    model = mmzoo.create("audionet-r50", **AUDIO_TINY).eval()
    res, out = run(model, noisy[0], tmp_path)
    track, lm = pyav_audio(noisy[0]), logmel(32, 16)
    need = 31 * 256 + 512
    count = len(track) // need  # 2.4 s of sound, 0.528 s windows
    assert count == 4 and len(res["windows"]) == count
    probs = []
    for k, win in enumerate(res["windows"]):
        assert (win["start_sec"], win["end_sec"]) == pytest.approx((k * need / SR, (k + 1) * need / SR), abs=1e-6)
        assert (win["start"], win["end"]) == (math.ceil(k * need / SR * FPS), math.ceil((k + 1) * need / SR * FPS))
        with torch.no_grad():
            p = model(lm(window(track, k * need, need))[None])[0].softmax(-1)
        probs.append(p)
        check_top(win["top_k"]["class"], p)
    assert read_video_clip(out / "predictions.mp4").frames.shape[0] == N_FRAMES
    with av.open(str(out / "predictions.mp4")) as c:
        assert len(c.streams.audio) == 1


def test_audionet_first_window_matches_the_track(noisy, tmp_path):
    torch.manual_seed(5)
    model = mmzoo.create("audionet-r50", **AUDIO_TINY).eval()
    res, _ = run(model, noisy[0], tmp_path)
    need = 31 * 256 + 512
    with torch.no_grad():
        p = model(logmel(32, 16)(window(pyav_audio(noisy[0]), 0, need))[None])[0].softmax(-1)
    check_top(res["windows"][0]["top_k"]["class"], p)


def test_audionet_refuses_a_video_without_sound_in_one_line(noisy, tmp_path, capsys):
    model = mmzoo.create("audionet-r50", **AUDIO_TINY)
    folder = save_pretrained(model, tmp_path / "a")
    with pytest.raises(SystemExit) as e:
        main(["predict", "--model", str(folder), "--input", noisy[1], "--output_dir", str(tmp_path / "o")])
    assert e.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "mute.mp4" in err[0] and "no audio stream" in err[0]


def test_audionet_refuses_a_window_stride_in_one_line(noisy, tmp_path, capsys):
    folder = save_pretrained(mmzoo.create("audionet-r50", **AUDIO_TINY), tmp_path / "a")
    with pytest.raises(SystemExit) as e:
        main(["predict", "--model", str(folder), "--input", noisy[0], "--output_dir", str(tmp_path / "o"),
              "--predictor.window_stride", "4"])
    assert e.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "window_stride" in err[0] and "audio windows" in err[0]


def test_window_view_equals_the_datamodule_evaluation_view(noisy):
    """A window of `predict --input` (centre_view) and the ClipDataset evaluation view of the same
    frames are the same tensor: one function makes both (40 x 48 at short side 37: 37 x 44, an odd
    vertical margin whose centre offset is ceil(5 / 2) = 3, as PySlowFast's uniform_crop)."""
    from types import SimpleNamespace

    from mmzoo.data.decode import VideoReader
    from mmzoo.data.video_dataset import ClipConfig, ClipDataset, VideoRecord
    from mmzoo.predict.classify import centre_view

    cfg = ClipConfig(train=False, num_frames=8, stride=2, num_clips=1, num_crops=1, test_scale=37, test_crop_size=32,
                     deferred_geometry=True)
    ds = ClipDataset([VideoRecord(targets={"label": 0}, video=noisy[0], start_sec=16 / FPS, end_sec=32 / FPS)], cfg)
    ds.finish_in_worker = True
    item = ds[0]
    idx = item["meta"]["frame_indices"]
    assert idx == list(range(16, 32, 2)) and item["meta"]["crop_offset"] == (3, 6)
    with VideoReader(noisy[0]) as r:
        view = centre_view(r, idx, 37, 32, SimpleNamespace(mean=KINETICS_MEAN, std=KINETICS_STD))
    assert torch.equal(view[0], item["video"])
    ref = crops(pyav_frames(noisy[0])[idx], 37, 32, KINETICS_MEAN, KINETICS_STD)
    torch.testing.assert_close(view, ref, rtol=0, atol=1e-5)
