"""Decoding of videos (PyAV, video and audio from one container) and of JPEG frame folders.

Everything here returns plain tensors plus the positions that were actually decoded, so that
samplers and tests can check exact frame indices:

* :class:`VideoReader` opens a container once and serves frames by index or by time range and
  the audio track resampled to any rate, seeking to the requested position and decoding only the
  packets that are needed.
* :func:`read_video_clip`, :func:`read_audio` and :func:`probe` are one-shot wrappers.
* :func:`read_frames` reads frames ``indices`` of a JPEG frame folder (EPIC-Kitchens
  ``rgb_frames``, ImageNet VID snippets, ...).

Frame index convention: the index of a video frame is ``round((pts - stream_start) * fps)``
where ``fps`` is the stream's average rate; for constant-frame-rate files (every dataset of the
zoo) this is the ordinal of the frame in the stream, starting at 0. A frame at time ``t`` seconds
has index ``round(t * fps)``.

Every failure is typed and names the file: :class:`VideoNotFoundError` (a ``FileNotFoundError``),
:class:`CorruptVideoError`, :class:`NoVideoStreamError`, :class:`NoAudioStreamError`,
:class:`FrameNotFoundError` and :class:`CorruptFrameError`. DataModules turn these into their
``missing_audio`` / ``skip_corrupt`` policies.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from mmzoo.errors import DataError

__all__ = [
    "DecodeError",
    "VideoNotFoundError",
    "CorruptVideoError",
    "NoVideoStreamError",
    "NoAudioStreamError",
    "FrameNotFoundError",
    "CorruptFrameError",
    "VideoInfo",
    "VideoClip",
    "VideoReader",
    "probe",
    "read_video_clip",
    "read_audio",
    "read_frames",
    "frame_path",
]


class DecodeError(DataError, RuntimeError):
    """Base class of every decoding failure; ``path`` is the file concerned."""

    def __init__(self, path: str | os.PathLike, message: str):
        self.path = str(path)
        super().__init__(f"{self.path}: {message}")


class VideoNotFoundError(DecodeError, FileNotFoundError):
    """The video file does not exist."""


class CorruptVideoError(DecodeError):
    """The container or one of its packets cannot be demuxed / decoded."""


class NoVideoStreamError(DecodeError):
    """The container has no video stream."""


class NoAudioStreamError(DecodeError):
    """The container has no audio stream (handled by the DataModules' ``missing_audio`` policy)."""


class FrameNotFoundError(DecodeError, FileNotFoundError):
    """A JPEG frame of a frame folder is missing."""


class CorruptFrameError(DecodeError):
    """A JPEG frame of a frame folder cannot be decoded."""


@dataclass(frozen=True)
class VideoInfo:
    """Stream properties of a video file (``num_frames`` is read from the container header when
    present, else estimated as ``round(duration * fps)``)."""

    path: str
    fps: float
    num_frames: int
    duration: float
    width: int
    height: int
    has_audio: bool
    audio_sample_rate: int | None
    audio_channels: int | None


@dataclass
class VideoClip:
    """Decoded frames ``frames`` (uint8 ``T,H,W,C``), with the stream frame index and the
    presentation time (seconds) of each returned frame."""

    frames: torch.Tensor
    frame_indices: torch.Tensor
    pts_sec: torch.Tensor
    fps: float


def _av():
    import av  # local import: keeps `import mmzoo.data` light

    return av


class VideoReader:
    """One open container serving video frames and audio.

    Use as a context manager (``with VideoReader(path) as r: ...``) or call :meth:`close`.
    ``threads`` enables the decoder's frame/slice threading (``0`` = FFmpeg's choice,
    ``1`` = single-threaded, the right choice inside DataLoader workers).
    """

    def __init__(self, path: str | os.PathLike, threads: int = 1):
        av = _av()
        self.path = str(path)
        if not os.path.isfile(self.path):
            raise VideoNotFoundError(self.path, "video file not found")
        try:
            self._container = av.open(self.path)
        except av.error.FFmpegError as e:
            raise CorruptVideoError(self.path, f"cannot open container ({e})") from e
        self._vstream = self._container.streams.video[0] if self._container.streams.video else None
        self._astream = self._container.streams.audio[0] if self._container.streams.audio else None
        if self._vstream is not None:
            cc = self._vstream.codec_context
            if threads != 1:
                self._vstream.thread_type = "AUTO"
                cc.thread_count = threads
        self._info: VideoInfo | None = None

    # ------------------------------------------------------------------ context / info
    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if getattr(self, "_container", None) is not None:
            self._container.close()
            self._container = None

    @property
    def has_audio(self) -> bool:
        return self._astream is not None

    @property
    def has_video(self) -> bool:
        return self._vstream is not None

    def _require_video(self):
        if self._vstream is None:
            raise NoVideoStreamError(self.path, "no video stream in container")
        return self._vstream

    def _require_audio(self):
        if self._astream is None:
            raise NoAudioStreamError(self.path, "no audio stream in container")
        return self._astream

    @property
    def fps(self) -> float:
        vs = self._require_video()
        rate = vs.average_rate or vs.guessed_rate or vs.base_rate
        if not rate:
            raise CorruptVideoError(self.path, "video stream has no frame rate")
        return float(rate)

    def _stream_start(self, stream) -> int:
        return stream.start_time if stream.start_time is not None else 0

    @property
    def info(self) -> VideoInfo:
        if self._info is None:
            vs = self._require_video()
            fps = self.fps
            if vs.duration is not None:
                duration = float(vs.duration * vs.time_base)
            elif self._container.duration is not None:
                duration = self._container.duration / 1_000_000
            else:
                duration = float("nan")
            n = int(vs.frames or 0)
            if n <= 0:
                n = int(round(duration * fps)) if math.isfinite(duration) else 0
            a = self._astream
            self._info = VideoInfo(
                path=self.path,
                fps=fps,
                num_frames=n,
                duration=duration,
                width=int(vs.codec_context.width),
                height=int(vs.codec_context.height),
                has_audio=a is not None,
                audio_sample_rate=int(a.codec_context.sample_rate) if a is not None else None,
                audio_channels=int(a.codec_context.channels) if a is not None else None,
            )
        return self._info

    # ------------------------------------------------------------------ video
    def _seek(self, stream, t_sec: float) -> None:
        """Seek to the last keyframe at or before ``t_sec`` (stream time, from stream start).

        At or before the start, the target is one second before the stream's start time, so the
        demuxer returns the very first packet: an AAC track's priming packet has a negative
        timestamp, and seeking to 0 skipped it, leaving the decoder without the previous frame
        its first output overlaps with (the first ~450 samples came out as zeros). A demuxer that
        refuses a target before the start (AVI) gets the start itself."""
        if t_sec <= 0:
            before = self._stream_start(stream) - max(1, int(round(1.0 / float(stream.time_base))))
            try:
                self._container.seek(before, stream=stream, backward=True, any_frame=False)
                return
            except _av().error.FFmpegError:  # demuxers that refuse a target before the start (AVI)
                offset = self._stream_start(stream)
        else:
            offset = self._stream_start(stream) + int(math.floor(t_sec / float(stream.time_base)))
        self._container.seek(offset, stream=stream, backward=True, any_frame=False)

    def _frame_index(self, frame, stream, fps: float) -> int:
        pts = frame.pts if frame.pts is not None else frame.dts
        if pts is None:
            raise CorruptVideoError(self.path, "decoded frame has no timestamp")
        return int(round((pts - self._stream_start(stream)) * float(stream.time_base) * fps))

    def _iter_video(self, first_index: int, fps: float):
        """Yield ``(index, frame)`` from the keyframe before ``first_index`` on, re-seeking from the
        start if the demuxer overshot the target."""
        av = _av()
        vs = self._require_video()
        for attempt in range(2):
            t = 0.0 if attempt == 1 else max(first_index - 1, 0) / fps
            try:
                if first_index > 0 or attempt == 1:
                    self._seek(vs, t)
                first = True
                for frame in self._container.decode(vs):
                    idx = self._frame_index(frame, vs, fps)
                    if first and idx > first_index and attempt == 0 and first_index > 0:
                        break  # overshoot: retry from the beginning
                    first = False
                    yield idx, frame
                else:
                    return
            except av.error.FFmpegError as e:
                raise CorruptVideoError(self.path, f"decoding failed ({e})") from e
        return

    @staticmethod
    def _to_array(frame, size: tuple[int, int] | None) -> np.ndarray:
        if size is None:
            return frame.to_ndarray(format="rgb24")
        return frame.reformat(width=size[1], height=size[0], format="rgb24", interpolation="BILINEAR").to_ndarray()

    def _out_size(self, short_side: int | None) -> tuple[int, int] | None:
        if short_side is None:
            return None
        info = self.info
        h, w = info.height, info.width
        if h <= w:
            return short_side, int(round(w * short_side / h))
        return int(round(h * short_side / w)), short_side

    def frames_by_index(
        self,
        indices: Sequence[int],
        short_side: int | None = None,
        clamp: bool = True,
    ) -> VideoClip:
        """Frames at stream frame ``indices`` (any order, repeats allowed).

        Indices past the last decodable frame are replaced by the last frame when ``clamp`` is
        true (the returned ``frame_indices`` say so), else raise. ``short_side`` rescales in the
        decoder (swscale, bilinear) so that the shorter side has that many pixels.
        """
        if len(indices) == 0:
            raise ValueError(f"{self.path}: empty frame index list")
        idx = [int(i) for i in indices]
        if min(idx) < 0:
            raise ValueError(f"{self.path}: negative frame index {min(idx)}")
        fps = self.fps
        size = self._out_size(short_side)
        vs = self._require_video()
        tb = float(vs.time_base)
        start = self._stream_start(vs)
        wanted = sorted(set(idx))
        # wanted index -> (decoded index, rgb array, time); each wanted index is served by the
        # first decoded frame whose index is >= it (identical for constant-frame-rate files)
        got: dict[int, tuple[int, np.ndarray, float]] = {}
        pos = 0
        last = None
        for fi, frame in self._iter_video(wanted[0], fps):
            last = (fi, frame)
            if fi < wanted[pos]:
                continue
            arr = self._to_array(frame, size)
            while pos < len(wanted) and wanted[pos] <= fi:
                got[wanted[pos]] = (fi, arr, (frame.pts - start) * tb)
                pos += 1
            if pos >= len(wanted):
                break
        if pos < len(wanted):
            if last is None:
                raise CorruptVideoError(self.path, f"no frame could be decoded at or after index {wanted[0]}")
            if not clamp:
                raise IndexError(f"{self.path}: frame index {wanted[pos]} is past the last frame ({last[0]})")
            fi, frame = last
            arr = self._to_array(frame, size)
            for w in wanted[pos:]:
                got[w] = (fi, arr, (frame.pts - start) * tb)
        out = [got[i] for i in idx]
        return VideoClip(
            frames=torch.from_numpy(np.stack([o[1] for o in out])),
            frame_indices=torch.tensor([o[0] for o in out], dtype=torch.long),
            pts_sec=torch.tensor([o[2] for o in out], dtype=torch.float64),
            fps=fps,
        )

    def frames_in_range(self, start_sec: float, end_sec: float | None, short_side: int | None = None) -> VideoClip:
        """Every frame whose presentation time ``t`` satisfies ``start_sec <= t < end_sec``
        (``end_sec=None``: to the end of the stream)."""
        fps = self.fps
        first = max(int(math.ceil(start_sec * fps - 1e-6)), 0)
        vs = self._require_video()
        tb = float(vs.time_base)
        start = self._stream_start(vs)
        size = self._out_size(short_side)
        frames, idxs, pts = [], [], []
        for fi, frame in self._iter_video(first, fps):
            t = (frame.pts - start) * tb
            if end_sec is not None and t >= end_sec - 1e-9:
                break
            if t < start_sec - 1e-9:
                continue
            frames.append(self._to_array(frame, size))
            idxs.append(fi)
            pts.append(t)
        if not frames:
            raise CorruptVideoError(self.path, f"no frame in [{start_sec:.3f}s, {end_sec}s)")
        return VideoClip(
            frames=torch.from_numpy(np.stack(frames)),
            frame_indices=torch.tensor(idxs, dtype=torch.long),
            pts_sec=torch.tensor(pts, dtype=torch.float64),
            fps=fps,
        )

    # ------------------------------------------------------------------ audio
    def _timeline_start(self) -> float:
        """Seconds (container time) of time 0: the video stream's start, else the audio's."""
        s = self._vstream if self._vstream is not None else self._astream
        return self._stream_start(s) * float(s.time_base)

    def audio_duration(self) -> float | None:
        """End of the audio track on the clip timeline (seconds), if the container records it."""
        a = self._require_audio()
        if a.duration is None:
            return None
        tb = float(a.time_base)
        return self._stream_start(a) * tb - self._timeline_start() + a.duration * tb

    def audio(
        self,
        start_sec: float,
        end_sec: float,
        sample_rate: int | None = 16000,
        mono: bool = True,
    ) -> torch.Tensor:
        """Audio samples of ``[start_sec, end_sec)`` as float32 in [-1, 1]: ``(S,)`` when ``mono``
        else ``(channels, S)``, with exactly ``round((end_sec - start_sec) * sample_rate)``
        samples. Times are on the video's timeline (0 = the video stream's start), so audio and
        frames stay in sync when the tracks start at different times. Parts of the window before
        the start or past the end of the track are zeros.
        ``sample_rate=None`` keeps the file's rate. Raises :class:`NoAudioStreamError`."""
        av = _av()
        if end_sec <= start_sec:
            raise ValueError(f"{self.path}: empty audio window [{start_sec}, {end_sec})")
        a = self._require_audio()
        src_rate = int(a.codec_context.sample_rate)
        layout = "mono" if mono else None
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=src_rate)
        tb = float(a.time_base)
        # time 0 is the first video frame (the clip timeline); the audio track may start later
        ref_sec = self._timeline_start()
        offset_sec = self._stream_start(a) * tb - ref_sec
        first_sample = int(math.floor(start_sec * src_rate))
        end_sample = int(math.ceil(end_sec * src_rate))
        chunks: list[tuple[int, np.ndarray]] = []
        try:
            self._seek(a, max(start_sec - 0.1 - offset_sec, 0.0))
            for frame in self._container.decode(a):
                if frame.pts is None:
                    raise CorruptVideoError(self.path, "audio frame without timestamp")
                f0 = int(round((frame.pts * tb - ref_sec) * src_rate))
                if f0 >= end_sample:
                    break
                for rf in resampler.resample(frame):
                    arr = rf.to_ndarray()  # (channels, n) for planar float
                    chunks.append((f0, arr.astype(np.float32, copy=False)))
                    f0 += arr.shape[1]
            for rf in resampler.resample(None):
                arr = rf.to_ndarray()
                if chunks:
                    s = chunks[-1][0] + chunks[-1][1].shape[1]
                    chunks.append((s, arr.astype(np.float32, copy=False)))
        except av.error.FFmpegError as e:
            raise CorruptVideoError(self.path, f"audio decoding failed ({e})") from e
        n_ch = 1 if mono else int(a.codec_context.channels)
        # AAC pads the last block: samples past the duration recorded by the container are zeros
        track_end = end_sample
        if a.duration is not None:
            track_end = min(end_sample, int(round((offset_sec + a.duration * tb) * src_rate)))
        chunks = [(s, arr[:, : max(track_end - s, 0)]) for s, arr in chunks]
        n = end_sample - first_sample
        buf = np.zeros((n_ch, n), dtype=np.float32)
        for s, arr in chunks:
            lo, hi = max(s, first_sample), min(s + arr.shape[1], end_sample)
            if hi > lo:
                buf[:, lo - first_sample : hi - first_sample] = arr[:n_ch, lo - s : hi - s]
        wav = torch.from_numpy(buf)
        # cut exactly [start_sec, end_sec) at the source rate, then resample
        off = int(round(start_sec * src_rate)) - first_sample
        n_src = int(round((end_sec - start_sec) * src_rate))
        wav = wav[:, off : off + n_src]
        if wav.shape[1] < n_src:
            wav = torch.nn.functional.pad(wav, (0, n_src - wav.shape[1]))
        if sample_rate is not None and sample_rate != src_rate:
            import torchaudio.functional as AF

            wav = AF.resample(wav, src_rate, sample_rate)
            n_out = int(round((end_sec - start_sec) * sample_rate))
            if wav.shape[1] >= n_out:
                wav = wav[:, :n_out]
            else:
                wav = torch.nn.functional.pad(wav, (0, n_out - wav.shape[1]))
        return wav[0] if mono else wav


# ---------------------------------------------------------------------- one-shot helpers
def probe(path: str | os.PathLike) -> VideoInfo:
    """Stream properties of a video file (fps, frame count, size, audio presence and rate)."""
    with VideoReader(path) as r:
        return r.info


def read_video_clip(
    path: str | os.PathLike,
    start_sec: float = 0.0,
    end_sec: float | None = None,
    *,
    num_frames: int | None = None,
    stride: int = 1,
    frame_indices: Sequence[int] | None = None,
    short_side: int | None = None,
) -> VideoClip:
    """Decode part of a video, seeking to it and decoding only what is needed.

    Three ways to say which frames:

    * ``frame_indices``: exactly these stream frame indices (past-the-end ones are clamped to the
      last frame; see :meth:`VideoReader.frames_by_index`);
    * ``num_frames`` (+ ``stride``): ``num_frames`` frames ``stride`` apart starting with the first
      frame at or after ``start_sec``;
    * otherwise every frame with ``start_sec <= t < end_sec``.

    Returns a :class:`VideoClip` (uint8 ``T,H,W,C`` frames + decoded indices and times).
    """
    with VideoReader(path) as r:
        if frame_indices is not None:
            return r.frames_by_index(frame_indices, short_side=short_side)
        if num_frames is not None:
            if num_frames <= 0 or stride <= 0:
                raise ValueError(f"{path}: num_frames and stride must be positive")
            first = max(int(math.ceil(start_sec * r.fps - 1e-6)), 0)
            return r.frames_by_index([first + stride * k for k in range(num_frames)], short_side=short_side)
        return r.frames_in_range(start_sec, end_sec, short_side=short_side)


def read_audio(
    path: str | os.PathLike,
    start_sec: float = 0.0,
    end_sec: float | None = None,
    sample_rate: int | None = 16000,
    mono: bool = True,
) -> torch.Tensor:
    """Float waveform of ``[start_sec, end_sec)`` of the audio track of ``path`` resampled to
    ``sample_rate`` (``None`` = the file's rate); ``end_sec=None`` means the end of the file.
    Raises :class:`NoAudioStreamError` for files without audio."""
    with VideoReader(path) as r:
        r._require_audio()
        if end_sec is None:
            end_sec = r.audio_duration()
            if end_sec is None and r._container.duration is not None:
                end_sec = r._container.duration / 1_000_000
            if end_sec is None:
                raise CorruptVideoError(path, "audio duration unknown; pass end_sec")
        return r.audio(start_sec, end_sec, sample_rate=sample_rate, mono=mono)


def frame_path(folder: str | os.PathLike, index: int, pattern: str = "frame_%010d.jpg") -> Path:
    """Path of frame ``index`` in ``folder``; ``pattern`` is printf-style (``frame_%010d.jpg``)
    or str.format-style (``{:06d}.JPEG``)."""
    name = pattern % index if "%" in pattern else pattern.format(index)
    return Path(folder) / name


def read_frames(
    folder: str | os.PathLike,
    indices: Sequence[int],
    pattern: str = "frame_%010d.jpg",
) -> torch.Tensor:
    """Read JPEG frames ``indices`` of a frame folder as uint8 ``T,H,W,C`` (RGB).

    ``pattern`` names frame files from their index (EPIC-Kitchens: ``frame_%010d.jpg`` with
    1-based indices; ImageNet VID: ``%06d.JPEG`` with 0-based indices). Repeated indices are read
    once. Raises :class:`FrameNotFoundError` / :class:`CorruptFrameError` naming the file."""
    from torchvision.io import ImageReadMode, decode_jpeg

    if len(indices) == 0:
        raise ValueError(f"{folder}: empty frame index list")
    cache: dict[int, torch.Tensor] = {}
    out = []
    for i in indices:
        i = int(i)
        if i not in cache:
            p = frame_path(folder, i, pattern)
            try:
                data = torch.frombuffer(bytearray(p.read_bytes()), dtype=torch.uint8)
            except FileNotFoundError as e:
                raise FrameNotFoundError(p, "frame file not found") from e
            try:
                img = decode_jpeg(data, mode=ImageReadMode.RGB)
            except RuntimeError as e:
                raise CorruptFrameError(p, f"cannot decode JPEG ({e})") from e
            cache[i] = img.permute(1, 2, 0)
        out.append(cache[i])
    shapes = {tuple(t.shape) for t in out}
    if len(shapes) > 1:
        raise CorruptFrameError(folder, f"frames have different sizes {sorted(shapes)}")
    return torch.stack(out).contiguous()
