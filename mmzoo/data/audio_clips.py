"""The audio-file DataModule base shared by ESC-50 and DCASE2014: labelled WAV files, windowed.

Audio classification on these sets is evaluated the way L3-Net (Arandjelovic & Zisserman 2017,
section 4.2) and SoundNet evaluate it, the protocol the AVTS audio table (seed 004, digest part B.2)
compares with: a clip is cut into fixed windows (``window_sec``, 1 s: the length the audio-visual
networks are trained on), every window is classified, and the clip's prediction is the mean of its
windows' scores. Here each window is one dataset item in evaluation (``num_windows`` per clip,
spread uniformly over the clip; ESC-50's 5 s clips give the 5 non-overlapping 1-s windows), sharing
the clip's ``video_index`` so :class:`~mmzoo.metrics.classification.MultiViewAccuracy` averages
them; training draws one random window per clip and epoch. The seed does not say any of this
([SILENT]); ``window_sec`` and ``num_windows`` are arguments.

Each window is given to the model in its own input format (``audio_format``):

* ``"waveform"``: the mono waveform, ``(S,)`` floats in [-1, 1] at ``sample_rate``
  (L3-Net / OpenL3 take 1 s at 48 kHz and compute their spectrogram inside the network);
* ``"logmel"``: a :class:`~mmzoo.data.audio.LogMel` spectrogram ``(1, T, F)`` with the ``audio_*``
  front-end arguments (AVTS-style models).

:meth:`AudioFileDataModule.defaults_from_input` sets these from a model's ``InputConfig.audio``
so that a probe and its data agree. Stereo files are mixed to mono. Files named in the metadata
but absent are counted and reported (:func:`~mmzoo.data.paths.report_missing`), never dropped
silently.
"""
from __future__ import annotations

import abc
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from torch import nn
from torch.utils.data import Dataset

from mmzoo.data.audio import LogMel
from mmzoo.data.base import ZooDataModule
from mmzoo.data.decode import CorruptVideoError, VideoReader
from mmzoo.data.paths import flag
from mmzoo.registry import InputConfig

__all__ = ["AudioFileDataModule", "AudioFileDataset", "AudioRecord", "Waveform", "clip_waveform_defaults",
           "window_starts"]


@dataclass
class AudioRecord:
    """One labelled audio file (``label`` 0-based) and its bookkeeping (file/line of the metadata)."""

    path: str
    label: int
    meta: dict[str, Any] = field(default_factory=dict)


class Waveform(nn.Module):
    """The identity front end: a mono window cropped / zero-padded to exactly ``num_samples``.

    It has the attributes the clip datasets expect of a front end (``sample_rate``,
    ``num_samples()``, ``window_seconds``), so it can stand where a :class:`LogMel` stands."""

    def __init__(self, sample_rate: int = 48000, seconds: float = 1.0):
        super().__init__()
        if sample_rate <= 0 or seconds <= 0:
            raise ValueError(f"sample_rate and seconds must be > 0, got {sample_rate}, {seconds}")
        self.sample_rate = int(sample_rate)
        self.samples = round(seconds * sample_rate)
        self.num_frames = None
        self.n_mels = None

    def num_samples(self, num_frames: int | None = None) -> int:
        return self.samples

    @property
    def window_seconds(self) -> float:
        return self.samples / self.sample_rate

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        have, need = waveform.shape[-1], self.samples
        if have > need:
            off = (have - need) // 2
            return waveform[..., off : off + need].float()
        if have < need:
            left = (need - have) // 2
            waveform = torch.nn.functional.pad(waveform, (left, need - have - left))
        return waveform.float()


def clip_waveform_defaults(cfg: InputConfig) -> dict[str, Any]:
    """The clip-DataModule arguments (``kinetics``, ``audioset``: ``audio_format`` /
    ``audio_waveform_sec``) that a model's raw-waveform audio input implies; {} for any other input."""
    a = cfg.audio
    if a is None or a.kind != "waveform":
        return {}
    out: dict[str, Any] = {"with_audio": True, "audio_format": "waveform"}
    if a.sample_rate:
        out["audio_sample_rate"] = int(a.sample_rate)
        if a.num_frames:
            out["audio_waveform_sec"] = a.num_frames / a.sample_rate
    return out


def window_starts(duration: float, window_sec: float, num_windows: int) -> list[float]:
    """Start times of ``num_windows`` windows of ``window_sec`` spread uniformly over ``[0,
    duration)``: the first at 0, the last ending at ``duration`` (one centred window when the clip
    is not longer than a window). ``window_starts(5, 1, 5) == [0, 1, 2, 3, 4]``."""
    if num_windows < 1:
        raise ValueError(f"num_windows must be >= 1, got {num_windows}")
    span = duration - window_sec
    if span <= 0:
        return [span / 2] * num_windows
    if num_windows == 1:
        return [span / 2]
    return [span * k / (num_windows - 1) for k in range(num_windows)]


class AudioFileDataset(Dataset):
    """Windows of labelled audio files (module docstring). ``train``: one random window per record;
    else ``num_windows`` items per record, in order."""

    def __init__(self, records: list[AudioRecord], frontend: nn.Module, window_sec: float, num_windows: int,
                 train: bool):
        if not records:
            raise ValueError("AudioFileDataset needs at least one record")
        self.records, self.frontend, self.train = records, frontend, train
        self.window_sec, self.num_windows = float(window_sec), int(num_windows)
        self.sample_rate = int(frontend.sample_rate)
        self.views = 1 if train else self.num_windows
        self._cache: tuple[int, torch.Tensor] | None = None

    def __len__(self) -> int:
        return len(self.records) * self.views

    @staticmethod
    def _duration(r: VideoReader, path: str) -> float:
        end = r.audio_duration()
        if end is None and r._container.duration:
            end = r._container.duration / 1_000_000
        if end is None or end <= 0:
            raise CorruptVideoError(path, "audio duration unknown or zero")
        return float(end)

    def waveform(self, rec_index: int) -> torch.Tensor:
        """The whole file, mono, at ``sample_rate`` (the last one read is cached: the evaluation
        windows of one clip are consecutive items)."""
        if self._cache is not None and self._cache[0] == rec_index:
            return self._cache[1]
        rec = self.records[rec_index]
        with VideoReader(rec.path) as r:
            wav = r.audio(0.0, self._duration(r, rec.path), sample_rate=self.sample_rate, mono=True)
        self._cache = (rec_index, wav)
        return wav

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        rec_index, view = divmod(i, self.views)
        rec = self.records[rec_index]
        n = round(self.window_sec * self.sample_rate)
        if self.train:  # decode only the random window (DCASE recordings are 30 s)
            with VideoReader(rec.path) as r:
                duration = self._duration(r, rec.path)
                span = duration - self.window_sec
                start = float(torch.rand(())) * span if span > 0 else span / 2
                window = r.audio(start, start + self.window_sec, sample_rate=self.sample_rate, mono=True)[:n]
        else:
            wav = self.waveform(rec_index)
            start = window_starts(wav.shape[-1] / self.sample_rate, self.window_sec, self.num_windows)[view]
            s0 = round(start * self.sample_rate)
            lo, hi = max(s0, 0), min(s0 + n, wav.shape[-1])
            window = torch.zeros(n)
            window[lo - s0 : hi - s0] = wav[lo:hi]
        meta = dict(rec.meta, source=rec.path, video_index=rec_index, window_index=view, start_sec=start)
        return {"audio": self.frontend(window), "label": int(rec.label), "video_index": rec_index, "meta": meta}


class AudioFileDataModule(ZooDataModule):
    """Base of the audio-file DataModules (ESC-50, DCASE2014).

    Subclasses implement ``_validate_layout()`` (sets ``self.classes``) and ``_records(split) ->
    list[AudioRecord]`` for ``"train"`` / ``"test"``; validation uses the test fold (the
    cross-validation protocols of these sets have no separate validation data).

    Args:
        root: dataset folder.
        fold: the held-out fold (1-based); training uses the others.
        audio_format: ``"waveform"`` or ``"logmel"`` (module docstring).
        sample_rate: rate the audio is resampled to (48 kHz: L3-Net / OpenL3).
        window_sec: window length in seconds (1.0).
        num_windows: evaluation windows per clip, uniformly spread (None: the subclass' default,
            ESC-50 5, DCASE2014 30: the non-overlapping 1-s windows of a full clip).
        audio_window_ms / audio_hop_ms / audio_n_fft / audio_n_mels / audio_num_frames /
            audio_mel_scale / audio_log_offset / audio_normalization / audio_mean / audio_std: the
            :class:`~mmzoo.data.audio.LogMel` front end of ``audio_format="logmel"``
            (``audio_num_frames=None``: as many frames as ``window_sec`` gives).
        missing_videos: ``"error"`` or ``"skip"`` for audio files listed but absent.
        **kwargs: loader settings of :class:`~mmzoo.data.base.ZooDataModule`.
    """

    model_links = ("num_classes",)
    default_num_windows: ClassVar[int] = 1
    drop_last_train: ClassVar[bool] = True  # a probe's BatchNorm needs more than one window per batch

    def __init__(
        self,
        root: str,
        fold: int = 1,
        audio_format: Literal["waveform", "logmel"] = "waveform",
        sample_rate: int = 48000,
        window_sec: float = 1.0,
        num_windows: int | None = None,
        audio_window_ms: float = 25.0,
        audio_hop_ms: float = 10.0,
        audio_n_fft: int | None = None,
        audio_n_mels: int = 64,
        audio_num_frames: int | None = None,
        audio_mel_scale: Literal["htk", "slaney"] = "htk",
        audio_log_offset: float = 1e-6,
        audio_normalization: Literal["fixed", "instance", "none"] = "none",
        audio_mean: float = 0.0,
        audio_std: float = 1.0,
        missing_videos: Literal["error", "skip"] = "error",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if audio_format not in ("waveform", "logmel"):
            raise ValueError(f"{flag('audio_format')} must be 'waveform' or 'logmel', got {audio_format!r}")
        if missing_videos not in ("error", "skip"):
            raise ValueError(f"{flag('missing_videos')} must be 'error' or 'skip', got {missing_videos!r}")
        if window_sec <= 0:
            raise ValueError(f"{flag('window_sec')} must be > 0, got {window_sec}")
        self.root = Path(root)
        self.fold = int(fold)
        self.audio_format = audio_format
        self.sample_rate = int(sample_rate)
        self.window_sec = float(window_sec)
        self.num_windows = int(num_windows or self.default_num_windows)
        self.logmel_args = {
            "sample_rate": self.sample_rate, "win_ms": audio_window_ms, "hop_ms": audio_hop_ms, "n_fft": audio_n_fft,
            "n_mels": audio_n_mels, "num_frames": audio_num_frames, "mel_scale": audio_mel_scale, "log_offset": audio_log_offset,
            "normalization": audio_normalization, "mean": audio_mean, "std": audio_std,
        }  # fmt: skip
        self.missing_videos_policy = missing_videos
        self.missing_videos: list[str] = []
        self.classes: list[str] | None = None

    @classmethod
    def defaults_from_input(cls, cfg: InputConfig) -> dict[str, Any]:
        """A ``waveform`` audio input sets ``audio_format``, ``sample_rate`` and ``window_sec``
        (``num_frames`` of a waveform input counts samples); a ``logmel`` one sets the log-mel
        front end (and ``window_sec`` from its frames)."""
        a = cfg.audio
        if a is None:
            return {}
        out: dict[str, Any] = {}
        if a.kind == "waveform":
            out["audio_format"] = "waveform"
            if a.sample_rate:
                out["sample_rate"] = int(a.sample_rate)
                if a.num_frames:
                    out["window_sec"] = a.num_frames / a.sample_rate
        elif a.kind == "logmel":
            out["audio_format"] = "logmel"
            for src, dst in (("sample_rate", "sample_rate"), ("window_ms", "audio_window_ms"), ("hop_ms", "audio_hop_ms"),
                             ("n_fft", "audio_n_fft"), ("n_mels", "audio_n_mels"), ("num_frames", "audio_num_frames"),
                             ("mel_scale", "audio_mel_scale"), ("log_offset", "audio_log_offset")):
                v = getattr(a, src)
                if v is not None:
                    out[dst] = v
            if a.mean is not None and a.std is not None:
                out.update(audio_normalization="fixed", audio_mean=a.mean, audio_std=a.std)
            if a.num_frames and a.hop_ms and a.window_ms:
                out["window_sec"] = ((a.num_frames - 1) * a.hop_ms + a.window_ms) / 1000.0
        return out

    def frontend(self) -> nn.Module:
        """The per-window front end of these settings."""
        if self.audio_format == "waveform":
            return Waveform(self.sample_rate, self.window_sec)
        args = dict(self.logmel_args)
        if args["num_frames"] is None:
            lm = LogMel(**args)
            args["num_frames"] = math.floor((round(self.window_sec * self.sample_rate) - lm.win_length)
                                                / lm.hop_length) + 1
        return LogMel(**args)

    @property
    def num_classes(self) -> int:
        if self.classes is None:
            self._validate_layout()
        return len(self.classes)

    @abc.abstractmethod
    def _validate_layout(self) -> None:
        """Check the dataset folder and metadata; set ``self.classes``."""

    @abc.abstractmethod
    def _records(self, split: str) -> list[AudioRecord]:
        """The records of ``"train"`` or ``"test"``."""

    def setup(self, stage: str | None = None) -> None:
        self._validate_layout()
        fe = self.frontend()
        wanted = {"fit": ["train", "val"], "validate": ["val"], "test": ["test"], "predict": ["test"]}
        for st in [stage] if stage else ["fit", "test"]:
            for name in wanted[st]:
                if name not in self.datasets:
                    train = name == "train"
                    self.datasets[name] = AudioFileDataset(self._records("train" if train else "test"), fe,
                                                            self.window_sec, self.num_windows, train)
