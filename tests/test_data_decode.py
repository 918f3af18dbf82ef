"""PyAV decoding and JPEG frame folders on real encoded files (H.264 + AAC, JPEG)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mmzoo.data.decode import (
    CorruptFrameError,
    CorruptVideoError,
    FrameNotFoundError,
    NoAudioStreamError,
    VideoNotFoundError,
    VideoReader,
    probe,
    read_audio,
    read_frames,
    read_video_clip,
)
from mmzoo.data.media import write_jpeg_frames, write_mp4

SR = 16000
FPS = 30
T = 60


def _frames(n: int, h: int = 48, w: int = 64) -> np.ndarray:
    f = np.zeros((n, h, w, 3), dtype=np.uint8)
    f[..., 1] = 100
    for t in range(n):
        f[t, :16, :16] = 4 * t  # frame index written in pixels
    return f


def _tone(seconds: float, hz: float = 440.0) -> np.ndarray:
    n = int(round(seconds * SR))
    return (0.5 * np.sin(2 * np.pi * hz * np.arange(n) / SR)).astype(np.float32)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("decode")
    av_path = write_mp4(d / "av.mp4", _frames(T), FPS, _tone(T / FPS), SR)
    silent = write_mp4(d / "noaudio.mp4", _frames(20), FPS)
    ntsc = write_mp4(d / "ntsc.mp4", _frames(30), 30000 / 1001)
    corrupt = d / "corrupt.mp4"
    corrupt.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)))
    frames_dir = d / "P01_01"
    write_jpeg_frames(frames_dir, _frames(12), pattern="frame_{:010d}.jpg", start=1)
    return {"av": av_path, "silent": silent, "ntsc": ntsc, "corrupt": corrupt, "frames": frames_dir, "dir": d}


def _index_from_pixels(frames: torch.Tensor) -> list[int]:
    return [int(round(float(x) / 4)) for x in frames[:, 4:12, 4:12, 0].float().mean(dim=(1, 2))]


def test_probe(media):
    info = probe(media["av"])
    assert (info.fps, info.num_frames, info.width, info.height) == (30.0, T, 64, 48)
    assert info.has_audio and info.audio_sample_rate == SR and info.audio_channels == 1
    assert abs(info.duration - 2.0) < 1e-6
    assert not probe(media["silent"]).has_audio


def test_frames_by_index_exact_and_in_any_order(media):
    clip = read_video_clip(media["av"], frame_indices=[25, 3, 40, 3])
    assert clip.frames.shape == (4, 48, 64, 3) and clip.frames.dtype == torch.uint8
    assert clip.frame_indices.tolist() == [25, 3, 40, 3]
    assert _index_from_pixels(clip.frames) == [25, 3, 40, 3]
    assert torch.allclose(clip.pts_sec, torch.tensor([25, 3, 40, 3], dtype=torch.float64) / FPS)


def test_num_frames_stride_and_time_range(media):
    clip = read_video_clip(media["av"], 0.5, num_frames=4, stride=8)
    assert clip.frame_indices.tolist() == [15, 23, 31, 39]
    assert _index_from_pixels(clip.frames) == [15, 23, 31, 39]
    clip = read_video_clip(media["av"], 1.0, 1.2)
    assert clip.frame_indices.tolist() == [30, 31, 32, 33, 34, 35]
    assert _index_from_pixels(clip.frames) == [30, 31, 32, 33, 34, 35]


def test_past_the_end_is_clamped_and_reported(media):
    clip = read_video_clip(media["av"], frame_indices=[58, 59, 60, 75])
    assert clip.frame_indices.tolist() == [58, 59, 59, 59]
    with VideoReader(media["av"]) as r, pytest.raises(IndexError, match="past the last frame"):
        r.frames_by_index([70], clamp=False)


def test_short_side_in_decoder(media):
    clip = read_video_clip(media["av"], frame_indices=[0, 10], short_side=24)
    assert clip.frames.shape == (2, 24, 32, 3)


def test_fractional_frame_rate_indices(media):
    info = probe(media["ntsc"])
    assert abs(info.fps - 30000 / 1001) < 1e-9 and info.num_frames == 30
    clip = read_video_clip(media["ntsc"], frame_indices=[0, 7, 29])
    assert _index_from_pixels(clip.frames) == [0, 7, 29]


def test_audio_window_is_aligned_and_exact(media):
    w = read_audio(media["av"], 0.5, 0.75, sample_rate=SR)
    assert w.shape == (4000,) and w.dtype == torch.float32
    ref = _tone(2.0)[8000:12000]
    assert float(np.abs(w.numpy() - ref).max()) < 0.02
    # resampled to 8 kHz: same tone, half the samples
    w8 = read_audio(media["av"], 0.5, 1.0, sample_rate=8000)
    ref8 = 0.5 * np.sin(2 * np.pi * 440 * np.arange(4000, 8000) / 8000)
    assert w8.shape == (4000,) and float(np.abs(w8.numpy() - ref8)[50:-50].max()) < 0.02
    # past the end of the track: zeros, length kept
    tail = read_audio(media["av"], 1.9, 2.2, sample_rate=SR)
    assert tail.shape == (4800,) and float(tail[1700:].abs().max()) == 0.0 and float(tail[:1500].abs().max()) > 0.3


def test_missing_and_corrupt_inputs_name_the_file(media):
    with pytest.raises(NoAudioStreamError, match="noaudio.mp4: no audio stream"):
        read_audio(media["silent"], 0, 0.5)
    with pytest.raises(VideoNotFoundError, match="nope.mp4: video file not found"):
        read_video_clip(media["dir"] / "nope.mp4")
    with pytest.raises(CorruptVideoError, match="corrupt.mp4"):
        read_video_clip(media["corrupt"], frame_indices=[0])


def test_read_frames_exact_and_errors(media):
    f = read_frames(media["frames"], [1, 5, 12, 5])
    assert f.shape == (4, 48, 64, 3) and f.dtype == torch.uint8
    assert _index_from_pixels(f) == [0, 4, 11, 4]  # file n holds frame n-1
    f2 = read_frames(media["frames"], [3], pattern="frame_{:010d}.jpg")  # str.format-style pattern
    assert torch.equal(f2[0], read_frames(media["frames"], [3])[0]) and _index_from_pixels(f2) == [2]
    with pytest.raises(FrameNotFoundError, match="frame_0000000013.jpg: frame file not found"):
        read_frames(media["frames"], [12, 13])
    bad = media["dir"] / "badjpeg"
    bad.mkdir()
    (bad / "frame_0000000001.jpg").write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(CorruptFrameError, match="frame_0000000001.jpg: cannot decode JPEG"):
        read_frames(bad, [1])


def _write_late_audio(path, offset_s: float = 0.5) -> None:
    """An mp4 whose audio track starts `offset_s` after the video (pts offset), which the shared
    writer cannot produce: the audio must stay on the video's timeline."""
    import av

    c = av.open(str(path), "w")
    v = c.add_stream("libx264", rate=FPS)
    v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
    a = c.add_stream("aac", rate=SR)
    a.layout = "mono"
    for t, img in enumerate(_frames(T)):
        f = av.VideoFrame.from_ndarray(img, format="rgb24")
        f.pts = t
        for p in v.encode(f):
            c.mux(p)
    for p in v.encode():
        c.mux(p)
    x = _tone(T / FPS - offset_s)
    for s in range(0, len(x), 1024):
        f = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[None, s : s + 1024]), format="fltp", layout="mono")
        f.sample_rate, f.pts = SR, int(offset_s * SR) + s
        for p in a.encode(f):
            c.mux(p)
    for p in a.encode():
        c.mux(p)
    c.close()


def test_audio_of_a_late_starting_track_stays_on_the_video_timeline(media):
    path = media["dir"] / "late_audio.mp4"
    _write_late_audio(path)
    w = read_audio(path, 0.3, 0.9, sample_rate=SR).numpy()
    assert w.shape == (9600,)
    assert np.abs(w[:3000]).max() < 0.01  # 0.3-0.49 s: before the track starts
    ref = 0.5 * np.sin(2 * np.pi * 440 * (np.arange(4800, 14400) - 8000) / SR)
    assert np.abs(w[6000:] - ref[6000:]).max() < 0.02  # the tone's phase counts from 0.5 s
    with VideoReader(path) as r:
        assert r.audio_duration() == pytest.approx(2.0, abs=1e-3)


def test_audio_from_the_start_keeps_the_aac_priming(tmp_path):
    """A window at 0 s equals PyAV decoding the track from the beginning: the seek to the start
    must not skip the AAC priming packet (negative timestamp), or the first ~450 samples are 0."""
    import av

    sr = 16000
    t = np.arange(2 * sr) / sr
    tone = (0.4 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    frames = np.zeros((20, 16, 16, 3), dtype=np.uint8)
    write_mp4(tmp_path / "tone.mp4", frames, 10, audio=tone, sample_rate=sr)
    with av.open(str(tmp_path / "tone.mp4")) as c:
        fresh = np.concatenate([f.to_ndarray()[0] for f in c.decode(c.streams.audio[0])])
    with VideoReader(tmp_path / "tone.mp4") as r:
        r.frames_by_index([5, 9])  # the reader has moved on: audio() must seek back to the start
        got = r.audio(0.0, 0.25, sample_rate=sr).numpy()
    np.testing.assert_allclose(got, fresh[: got.shape[0]], atol=1e-6)
    assert np.abs(got[:400]).max() > 0.2  # the tone, not zeros
