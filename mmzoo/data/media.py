"""Media writers: mp4 (H.264 + AAC) and JPEG frame folders.

Used by the file-in / file-out applications (:mod:`mmzoo.predict` writes annotated videos) and
by the synthetic datasets of :mod:`mmzoo.data.synthetic`.

Both writers produce files that any standard decoder reads (FFmpeg, PyAV, torchvision,
OpenCV), so the loaders under test read exactly what they would read on a real dataset.

- :func:`write_mp4` encodes RGB frames with libx264 (``yuv420p``; MPEG-4 Part 2 when the local
  FFmpeg build has no libx264) and, optionally, a float waveform as an AAC track.
- :func:`write_jpeg_frames` writes one JPEG per frame with a numbered file name pattern (the
  layout of ImageNet VID and EPIC-Kitchens ``rgb_frames``).

Note on AAC: the encoder works in blocks of 1024 samples. The mp4 container records the audio
duration (``stream.duration``, to the millisecond of the edit list), but FFmpeg-based decoders return the last block padded
with silence, i.e. up to 1023 extra trailing samples. Readers that need the exact length should
trim to ``stream.duration`` (``mmzoo.data.decode.read_audio`` does).
"""
from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

__all__ = ["write_mp4", "write_jpeg_frames", "video_codec_available"]

PathLike = Union[str, "os.PathLike[str]"]


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch.Tensor without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def video_codec_available(name: str) -> bool:
    """True when the FFmpeg build behind PyAV can encode with codec ``name``."""
    import av

    try:
        av.codec.Codec(name, "w")
    except Exception:
        return False
    return True


def _check_frames(frames: Any) -> np.ndarray:
    arr = _to_numpy(frames)
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"frames must have shape (T, H, W, 3); got {tuple(arr.shape)}")
    if arr.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 RGB; got dtype {arr.dtype}")
    if arr.shape[0] == 0:
        raise ValueError("frames is empty (T = 0)")
    return np.ascontiguousarray(arr)


def write_mp4(
    path: PathLike,
    frames: Any,
    fps: float,
    audio: Optional[Any] = None,
    sample_rate: int = 16000,
    *,
    crf: int = 18,
    audio_bitrate: int = 96000,
) -> Path:
    """Write an mp4 file with an H.264 video track and, if ``audio`` is given, an AAC track.

    Args:
        path: output file (parent folders are created).
        frames: uint8 RGB frames, shape ``(T, H, W, 3)`` (numpy array or torch tensor). ``H`` and
            ``W`` must be even (a requirement of 4:2:0 chroma subsampling).
        fps: frame rate; may be fractional (29.97 is stored as 30000/1001).
        audio: float waveform in [-1, 1], shape ``(S,)`` (mono) or ``(channels, S)`` with 1 or 2
            channels; ``None`` writes a video-only file.
        sample_rate: audio sample rate in Hz.
        crf: libx264 constant rate factor (lower = better quality). 18 keeps flat colours crisp.
        audio_bitrate: AAC bit rate in bit/s.

    Returns:
        The path written.
    """
    import av

    path = Path(path)
    arr = _check_frames(frames)
    t, h, w, _ = arr.shape
    if h % 2 or w % 2:
        raise ValueError(f"frame height and width must be even for yuv420p; got {h}x{w}")
    if not fps or fps <= 0:
        raise ValueError(f"fps must be > 0; got {fps}")
    rate = Fraction(fps).limit_denominator(1001)

    wav = None
    if audio is not None:
        wav = _to_numpy(audio).astype(np.float32)
        if wav.ndim == 1:
            wav = wav[None]
        if wav.ndim != 2 or wav.shape[0] not in (1, 2):
            raise ValueError(f"audio must have shape (S,) or (channels, S) with 1-2 channels; got {tuple(wav.shape)}")
        if wav.shape[1] == 0:
            raise ValueError("audio is empty (S = 0)")
        if int(sample_rate) <= 0:
            raise ValueError(f"sample_rate must be > 0; got {sample_rate}")
        wav = np.ascontiguousarray(np.clip(wav, -1.0, 1.0))

    path.parent.mkdir(parents=True, exist_ok=True)
    codec = "libx264" if video_codec_available("libx264") else "mpeg4"
    container = av.open(str(path), mode="w")
    try:
        vstream = container.add_stream(codec, rate=rate)
        vstream.width = w
        vstream.height = h
        vstream.pix_fmt = "yuv420p"
        if codec == "libx264":
            vstream.options = {"crf": str(crf), "preset": "veryfast"}
        else:
            vstream.bit_rate = 4_000_000
        astream = None
        if wav is not None:
            astream = container.add_stream("aac", rate=int(sample_rate))
            astream.layout = "mono" if wav.shape[0] == 1 else "stereo"
            astream.bit_rate = audio_bitrate

        for i in range(t):
            frame = av.VideoFrame.from_ndarray(arr[i], format="rgb24")
            frame.pts = i
            for packet in vstream.encode(frame):
                container.mux(packet)
        for packet in vstream.encode():
            container.mux(packet)

        if astream is not None:
            block = astream.codec_context.frame_size or 1024
            layout = "mono" if wav.shape[0] == 1 else "stereo"
            for start in range(0, wav.shape[1], block):
                chunk = np.ascontiguousarray(wav[:, start : start + block])
                aframe = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
                aframe.sample_rate = int(sample_rate)
                aframe.pts = start
                for packet in astream.encode(aframe):
                    container.mux(packet)
            for packet in astream.encode():
                container.mux(packet)
    except BaseException:
        container.close()
        path.unlink(missing_ok=True)
        raise
    container.close()
    return path


def write_jpeg_frames(
    folder: PathLike,
    frames: Any,
    pattern: str = "frame_{:010d}.jpg",
    start: int = 1,
    quality: int = 95,
) -> list[Path]:
    """Write each RGB frame as a JPEG file named ``pattern.format(start + i)`` in ``folder``.

    Args:
        folder: output folder (created if missing).
        frames: uint8 RGB frames, shape ``(T, H, W, 3)``.
        pattern: file-name pattern with one integer field (EPIC: ``frame_{:010d}.jpg``, starting
            at 1; ImageNet VID: ``{:06d}.JPEG``, starting at 0).
        start: number of the first frame.
        quality: JPEG quality (1-100).

    Returns:
        The written paths, in frame order.
    """
    from PIL import Image

    arr = _check_frames(frames)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(arr.shape[0]):
        p = folder / pattern.format(start + i)
        Image.fromarray(arr[i]).save(p, format="JPEG", quality=quality)
        paths.append(p)
    return paths
