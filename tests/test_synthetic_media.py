"""write_mp4 / write_jpeg_frames produce real files that PyAV / PIL read back faithfully."""
from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
import torch
from PIL import Image

from mmzoo.data.media import write_jpeg_frames, write_mp4


def _frames(t=12, h=48, w=64):
    out = np.zeros((t, h, w, 3), np.uint8)
    for i in range(t):
        out[i, :, :, 0] = 20 * i  # red ramps with time
        out[i, :, : w // 2, 2] = 200  # blue left half
    return out


@pytest.mark.parametrize("fps", [10.0, 29.97])
def test_write_mp4_video_and_audio_read_back(tmp_path, fps):
    frames = _frames()
    sr = 16000
    seconds = len(frames) / fps
    n = int(round(seconds * sr))
    wav = 0.5 * np.sin(2 * np.pi * 440 * np.arange(n) / sr)
    path = write_mp4(tmp_path / "a" / "clip.mp4", frames, fps=fps, audio=wav, sample_rate=sr)
    assert path.is_file()
    with av.open(str(path)) as c:
        vs, as_ = c.streams.video[0], c.streams.audio[0]
        assert vs.codec_context.name in ("h264", "mpeg4")
        assert (vs.width, vs.height) == (64, 48)
        assert vs.average_rate == Fraction(fps).limit_denominator(1001)
        assert vs.frames == len(frames)
        assert float(vs.duration * vs.time_base) == pytest.approx(seconds, abs=1e-3)
        assert as_.codec_context.name == "aac"
        assert as_.rate == sr and as_.channels == 1
        # the mp4 edit list stores the duration in milliseconds
        assert abs(round(float(as_.duration * as_.time_base) * sr) - n) <= sr // 1000
    with av.open(str(path)) as c:
        decoded = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(decoded) == len(frames)
    err = np.abs(np.stack(decoded).astype(int) - frames.astype(int)).mean()
    assert err < 4, err  # near-lossless at crf 18 on flat colours
    with av.open(str(path)) as c:
        pcm = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])
    # AAC pads the last 1024-sample block; the content before that is the tone.
    assert n <= len(pcm) < n + 1024
    spec = np.abs(np.fft.rfft(pcm[:n]))
    assert abs(np.argmax(spec) * sr / n - 440) < 5


def test_write_mp4_video_only_tensor_input_and_stereo(tmp_path):
    frames = torch.from_numpy(_frames(t=5))
    p1 = write_mp4(tmp_path / "v.mp4", frames, fps=5)
    with av.open(str(p1)) as c:
        assert len(c.streams.audio) == 0 and c.streams.video[0].frames == 5
    stereo = torch.zeros(2, 16000)
    p2 = write_mp4(tmp_path / "s.mp4", frames, fps=5, audio=stereo, sample_rate=16000)
    with av.open(str(p2)) as c:
        assert c.streams.audio[0].channels == 2


def test_write_mp4_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="even"):
        write_mp4(tmp_path / "x.mp4", np.zeros((2, 15, 16, 3), np.uint8), fps=1)
    with pytest.raises(ValueError, match="uint8"):
        write_mp4(tmp_path / "x.mp4", np.zeros((2, 16, 16, 3), np.float32), fps=1)
    with pytest.raises(ValueError, match="channels"):
        write_mp4(tmp_path / "x.mp4", np.zeros((2, 16, 16, 3), np.uint8), fps=1, audio=np.zeros((3, 10)))
    assert not (tmp_path / "x.mp4").exists()


def test_write_jpeg_frames(tmp_path):
    frames = _frames(t=3)
    paths = write_jpeg_frames(tmp_path / "f", frames)
    assert [p.name for p in paths] == ["frame_0000000001.jpg", "frame_0000000002.jpg", "frame_0000000003.jpg"]
    img = np.asarray(Image.open(paths[2]))
    assert img.shape == (48, 64, 3)
    assert np.abs(img.astype(int) - frames[2].astype(int)).mean() < 4
    paths = write_jpeg_frames(tmp_path / "g", frames, pattern="{:06d}.JPEG", start=0)
    assert paths[0].name == "000000.JPEG"
