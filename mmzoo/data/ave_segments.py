"""AVE's ten 1-second segments as model inputs (``mmzoo extract --data ave``), and the features
that `mmzoo extract` writes read back as one AVE stream (``--data.visual_features`` /
``--data.audio_features``).

AVE labels every video as 10 one-second segments, segment ``k`` covering ``[k, k + 1)`` s, and
its models read one visual and one audio feature per segment (the authors' VGG-19 pool5 maps
``[10, 7, 7, 512]`` and VGGish embeddings ``[10, 128]``; Tian et al., ECCV 2018, and the AVE
chapter of the thesis). The ``"segments"`` input mode of the ``ave`` DataModule turns each video
into exactly 10 views, one per segment, in the input format of any zoo model, so that
``mmzoo extract`` writes ``T = 10`` rows per video aligned with those segments.

The window of segment ``k`` (``SegmentConfig``; its text is stored in the manifest as ``window``):

* frames, ``sampling="uniform"`` (default): ``frames`` frames spread evenly over the segment, the
  centres of ``frames`` equal sub-intervals: stream index ``floor((k + (i + 0.5) / frames) * fps)``
  for ``i = 0 .. frames - 1`` (clamped to the last frame of a short video), so feature ``k`` sees
  segment ``k`` only (Tian et al. likewise sample 16 frames inside each 1-s segment);
  ``sampling="stride"``: ``frames`` frames ``stride`` frames apart (the model's own sampling
  rate), centred on the segment's centre frame ``floor((k + 0.5) * fps)``, clamped to the video
  (a long clip overlaps the neighbouring segments);
* spatial: short side scaled to ``short_side``, centre ``crop`` x ``crop``, normalised with the
  model's mean / std;
* audio: the model's own window length ``w`` (1 s for 1-s models, the segment exactly), centred on
  the segment's centre: ``[k + 0.5 - w / 2, k + 0.5 + w / 2)``, mono at the model's sample rate,
  zeros outside the track; then the model's front end (raw waveform or log-mel).

Reading an `mmzoo extract` output (:class:`ZooFeatureStream`): the ``features.h5`` rows of each
video id are the segments. A visual row of shape ``[D]`` (``--pooling mean|max``) becomes a
``1 x 1`` grid ``[1, 1, D]``; ``[C, H, W]`` (a 2-D map, ``--pooling none``) becomes ``[H, W, C]``;
``[C, T', H, W]`` (a 3-D map, ``--pooling none``) is averaged over its time axis first, as the
authors average the pool5 maps of the frames of a segment. An audio row must be a vector ``[D]``.
"""
from __future__ import annotations

import json
import math
import os
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
from torch.utils.data import Dataset

from mmzoo.data.ave_files import NUM_SEGMENTS, AVEDataError
from mmzoo.data.constants import IMAGENET_MEAN, IMAGENET_STD
from mmzoo.registry import InputConfig

#: The file `mmzoo extract` writes (mmzoo.extract.FEATURES_NAME; named here, since data sits below the CLI).
EXTRACT_FEATURES = "features.h5"

__all__ = ["SegmentConfig", "SegmentVideo", "AVESegmentDataset", "ZooFeatureStream", "segment_frame_indices",
           "segment_audio_window", "segment_defaults_from_input", "segment_videos"]


@dataclass(frozen=True)
class SegmentConfig:
    """How each 1-s segment is turned into a model input (module docstring)."""

    video: bool = True
    frames: int = 8
    sampling: str = "uniform"
    stride: int = 2
    short_side: int = 256
    crop: int = 224
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    audio: str = "none"
    audio_args: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.sampling not in ("uniform", "stride"):
            raise ValueError(f"--data.segment_sampling must be 'uniform' or 'stride', got {self.sampling!r}")
        if self.audio not in ("none", "waveform", "logmel"):
            raise ValueError(f"--data.segment_audio must be 'none', 'waveform' or 'logmel', got {self.audio!r}")
        if self.frames < 1 or self.stride < 1:
            raise ValueError(f"--data.segment_frames ({self.frames}) and --data.segment_stride ({self.stride}) must be >= 1")
        if not self.video and self.audio == "none":
            raise ValueError("input_mode='segments' needs --data.segment_video true or --data.segment_audio waveform|logmel")

    def frontend(self):
        """The audio front end (``None`` without audio): a raw waveform window or a log-mel."""
        if self.audio == "none":
            return None
        args = dict(self.audio_args)
        if self.audio == "waveform":
            from mmzoo.data.audio_clips import Waveform

            return Waveform(int(args.get("sample_rate", 16000)), float(args.get("seconds", 1.0)))
        from mmzoo.data.audio import LogMel

        lm = LogMel(**{k: v for k, v in args.items() if k != "seconds"})
        if lm.num_frames is None:  # as many frames as a 1-s segment gives
            lm.num_frames = (lm.sample_rate - lm.win_length) // lm.hop_length + 1
        return lm

    def describe(self) -> str:
        parts = []
        if self.video:
            if self.sampling == "uniform":
                parts.append(f"segment k (k = 0..9, [k, k+1) s): {self.frames} frames at stream indices "
                             f"floor((k + (i + 0.5) / {self.frames}) * fps), i < {self.frames} (evenly inside the segment)")
            else:
                parts.append(f"segment k (k = 0..9, [k, k+1) s): {self.frames} frames {self.stride} frames apart, "
                             "centred on frame floor((k + 0.5) * fps), clamped to the video")
            parts.append(f"short side {self.short_side}, centre crop {self.crop}")
        if self.audio != "none":
            fe = self.frontend()
            w = fe.window_seconds
            parts.append(f"audio of [k + 0.5 - {w / 2:g}, k + 0.5 + {w / 2:g}) s at {fe.sample_rate} Hz mono "
                         f"({self.audio}), zeros outside the track")
        return "; ".join(parts) + "; T = 10 rows per video, row k = segment k"


def segment_frame_indices(k: int, fps: float, num_video_frames: int, cfg: SegmentConfig) -> list[int]:
    """Stream frame indices of segment ``k`` (module docstring), clamped to ``[0, last]``."""
    last = max(num_video_frames - 1, 0)
    if cfg.sampling == "uniform":
        idx = [math.floor((k + (i + 0.5) / cfg.frames) * fps + 1e-6) for i in range(cfg.frames)]
    else:
        centre = math.floor((k + 0.5) * fps + 1e-6)
        first = centre - (cfg.frames // 2) * cfg.stride
        idx = [first + i * cfg.stride for i in range(cfg.frames)]
    return [min(max(i, 0), last) for i in idx]


def segment_audio_window(k: int, seconds: float) -> tuple[float, float]:
    """``[start, end)`` seconds of segment ``k``'s audio window of length ``seconds``."""
    c = k + 0.5
    return c - seconds / 2, c + seconds / 2


@dataclass(frozen=True)
class SegmentVideo:
    """One video of a split in segments mode: ``source`` (the AVE video id, the key `mmzoo
    extract` writes), its file and the segment labels of its first annotation row."""

    source: str
    path: Path
    labels: tuple
    rows: tuple


def segment_videos(rows: Sequence[Any], video_dir: Path, background: int) -> tuple[list[SegmentVideo], list[Path]]:
    """One :class:`SegmentVideo` per video id of the annotation ``rows`` of a split (in order;
    the labels of its first row, every row listed), and the video files that are missing."""
    by_id: dict[str, list[Any]] = {}
    for r in rows:
        by_id.setdefault(r.video_id, []).append(r)
    videos, missing = [], []
    for vid, rs in by_id.items():
        path = Path(video_dir) / f"{vid}.mp4"
        if not path.is_file():
            missing.append(path)
            continue
        labels = tuple(int(x) for x in rs[0].segment_labels(NUM_SEGMENTS, background))
        videos.append(SegmentVideo(vid, path, labels, tuple(r.row for r in rs)))
    return videos, missing


class AVESegmentDataset(Dataset):
    """``views = 10`` items per video, item ``v * 10 + k`` = segment ``k`` of video ``v``: fields
    ``video`` (float ``[3, frames, crop, crop]``) and / or ``audio`` (the front end's output),
    ``label`` (the segment's class), ``segment``, ``meta`` (``video_id``, ``segment``,
    ``frame_indices``, ``audio_window``, ``rows``). Deterministic (no augmentation)."""

    views = NUM_SEGMENTS

    def __init__(self, videos: Sequence[SegmentVideo], cfg: SegmentConfig) -> None:
        self.records = list(videos)
        self.cfg = cfg
        self.window = cfg.describe()
        self._frontend = cfg.frontend()

    def __len__(self) -> int:
        return len(self.records) * self.views

    def __getitem__(self, i: int) -> dict[str, Any]:
        from mmzoo.data.decode import VideoReader
        from mmzoo.data.transforms import center_crop, resize_short_side_uint8, to_normalized_cthw

        if not 0 <= i < len(self):
            raise IndexError(i)
        v, k = divmod(i, self.views)
        rec, cfg = self.records[v], self.cfg
        meta: dict[str, Any] = {"video_id": rec.source, "segment": k, "rows": list(rec.rows), "path": str(rec.path)}
        out: dict[str, Any] = {"label": int(rec.labels[k]), "segment": k, "meta": meta}
        with VideoReader(rec.path) as r:
            if cfg.video:
                info = r.info
                idx = segment_frame_indices(k, info.fps, info.num_frames, cfg)
                frames = resize_short_side_uint8(r.frames_by_index(idx, clamp=True).frames, cfg.short_side)
                if min(frames.shape[1:3]) < cfg.crop:
                    raise AVEDataError(f"{rec.path}: frames {tuple(frames.shape[1:3])} after scaling the short side to "
                                       f"{cfg.short_side} are smaller than --data.segment_crop {cfg.crop}")
                chw, _ = center_crop(frames.permute(3, 0, 1, 2), cfg.crop)
                out["video"] = to_normalized_cthw(chw.permute(1, 2, 3, 0), cfg.mean, cfg.std)
                meta["frame_indices"] = idx
            if self._frontend is not None:
                fe = self._frontend
                start, end = segment_audio_window(k, fe.num_samples() / fe.sample_rate)
                wav = r.audio(start, end, sample_rate=fe.sample_rate, mono=True)
                out["audio"] = fe(wav)
                meta["audio_window"] = [start, end]
        return out


def segment_defaults_from_input(cfg: InputConfig) -> dict[str, Any]:
    """``ave`` DataModule arguments for a model that reads raw media (a ``video`` input and / or a
    raw-waveform or log-mel ``audio`` input): ``input_mode="segments"`` and the segment window in
    that model's format; ``{}`` for any other model (the AVE feature models)."""
    raw_video = "video" in cfg.shapes
    a = cfg.audio
    raw_audio = a is not None and a.kind in ("waveform", "logmel")
    if not (raw_video or raw_audio):
        return {}
    out: dict[str, Any] = {"input_mode": "segments", "segment_video": raw_video}
    if raw_video:
        for src, dst in (("frames", "segment_frames"), ("sampling_rate", "segment_stride"),
                         ("short_side", "segment_short_side"), ("test_crop", "segment_crop"),
                         ("mean", "segment_mean"), ("std", "segment_std")):
            if getattr(cfg, src) is not None:
                out[dst] = tuple(getattr(cfg, src)) if src in ("mean", "std") else getattr(cfg, src)
        if cfg.short_side is None and cfg.test_crop is not None:
            out["segment_short_side"] = cfg.test_crop
    if raw_audio:
        out["segment_audio"] = a.kind
        if a.kind == "waveform":
            sr = int(a.sample_rate or 16000)
            out["segment_audio_args"] = {"sample_rate": sr, "seconds": (a.num_frames / sr) if a.num_frames else 1.0}
        else:
            args: dict[str, Any] = {"normalization": "none"}
            for src, dst in (("sample_rate", "sample_rate"), ("window_ms", "win_ms"), ("hop_ms", "hop_ms"),
                             ("n_fft", "n_fft"), ("n_mels", "n_mels"), ("num_frames", "num_frames"),
                             ("mel_scale", "mel_scale"), ("log_offset", "log_offset")):
                if getattr(a, src) is not None:
                    args[dst] = getattr(a, src)
            if a.mean is not None and a.std is not None:
                args.update(normalization="fixed", mean=a.mean, std=a.std)
            out["segment_audio_args"] = args
    return out


# --------------------------------------------------------------------------- reading mmzoo features
def _resolve(path: str | os.PathLike, flag: str) -> tuple[Path, Path]:
    """(features.h5, manifest.json) of an `mmzoo extract` output folder or of its features file."""
    p = Path(path).expanduser()
    h5 = p / EXTRACT_FEATURES if p.is_dir() else p
    if not h5.is_file():
        raise FileNotFoundError(f"{flag} {path}: no {EXTRACT_FEATURES} there (the folder `mmzoo extract --output` wrote)")
    manifest = h5.with_name(h5.name.replace("features", "manifest", 1).replace(".h5", ".json"))
    if not manifest.is_file():
        raise FileNotFoundError(f"{h5}: no {manifest.name} beside it; AVE reads only `mmzoo extract` outputs with their manifest")
    return h5, manifest


class ZooFeatureStream:
    """One AVE stream (``"visual"`` or ``"audio"``) read from an `mmzoo extract` output.

    :meth:`check` verifies the manifest (extracted from ``--data ave``, one row per segment),
    that every needed video id is in the file and that every row has ``T = 10`` and the same
    per-segment shape; each error is one line naming the file. :meth:`read` gives a video's
    features in the AVE layout (``[10, H, W, C]`` visual, ``[10, D]`` audio, float32).
    """

    def __init__(self, path: str | os.PathLike, stream: str) -> None:
        if stream not in ("visual", "audio"):
            raise ValueError(f"stream must be 'visual' or 'audio', got {stream!r}")
        self.flag = f"--data.{stream}_features"
        self.path, self.manifest_path = _resolve(path, self.flag)
        self.stream = stream
        try:
            self.manifest = json.loads(self.manifest_path.read_text())
        except json.JSONDecodeError as e:
            raise AVEDataError(f"{self.manifest_path}: not valid JSON ({e})") from e
        self.row_shape: Optional[tuple[int, ...]] = None
        self._file = None
        self._pid: Optional[int] = None

    def __getstate__(self):
        return {**self.__dict__, "_file": None, "_pid": None}

    def _open(self):
        import h5py

        if self._pid != os.getpid() or self._file is None:
            self._file, self._pid = h5py.File(self.path, "r")["features"], os.getpid()
        return self._file

    def check(self, video_ids: Sequence[str]) -> tuple[int, ...]:
        """Check the file for ``video_ids``; return the AVE per-segment shape (``(H, W, C)`` or ``(D,)``)."""
        import h5py

        m = self.manifest
        if m.get("data") != "ave":
            raise AVEDataError(f"{self.manifest_path}: extracted with --data {m.get('data')!r}, not 'ave' (its rows are "
                               f"not AVE's 1-s segments); run `mmzoo extract --data ave --split all`")
        try:
            f = h5py.File(self.path, "r")
        except OSError as e:
            raise AVEDataError(f"{self.path}: not a readable HDF5 file ({e})") from e
        with f:
            grp = f.get("features")
            if grp is None:
                raise AVEDataError(f"{self.path}: no 'features' group (not written by `mmzoo extract`)")
            shapes = {grp[k].attrs["video"]: tuple(grp[k].shape) for k in grp}
        missing = [v for v in dict.fromkeys(video_ids) if v not in shapes]
        if missing:
            skipped = {s["video"]: s["reason"] for s in m.get("skipped", [])}
            why = f" (skipped by extract: {skipped[missing[0]]})" if missing[0] in skipped else ""
            raise AVEDataError(f"{self.path}: {len(missing)} of the {len(set(video_ids))} AVE videos of the split lists "
                               f"are not in the file, e.g. {missing[0]!r}{why}; rerun `mmzoo extract --data ave "
                               f"--split all --output {self.path.parent}` (it resumes)")
        rows = {shapes[v] for v in video_ids}
        bad_t = next((v for v in video_ids if shapes[v][0] != NUM_SEGMENTS), None)
        if bad_t is not None:
            raise AVEDataError(f"{self.path}: video {bad_t!r} has T = {shapes[bad_t][0]} rows, AVE needs {NUM_SEGMENTS} "
                               "(one per 1-s segment: extract with --data ave)")
        if len(rows) > 1:
            raise AVEDataError(f"{self.path}: videos have different feature shapes {sorted(rows)}")
        row = next(iter(rows))[1:]
        if self.stream == "audio" and len(row) != 1:
            raise AVEDataError(f"{self.path}: audio rows must be vectors [D], got {list(row)} (extract with --pooling mean)")
        if self.stream == "visual" and len(row) not in (1, 3, 4):
            raise AVEDataError(f"{self.path}: visual rows must be [D], [C, H, W] or [C, T, H, W], got {list(row)}")
        if len(row) == 1:
            self.row_shape = (1, 1, row[0]) if self.stream == "visual" else (row[0],)
        else:
            self.row_shape = (row[-2], row[-1], row[0])
        return self.row_shape

    def read(self, video_id: str) -> np.ndarray:
        x = np.asarray(self._open()[urllib.parse.quote(video_id, safe="")][()], dtype=np.float32)
        if self.stream == "audio":
            return x
        if x.ndim == 2:  # [10, D] -> a 1 x 1 grid
            return x[:, None, None, :]
        if x.ndim == 5:  # [10, C, T', H, W]: the frames of a segment averaged
            x = x.mean(axis=2)
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1))  # [10, C, H, W] -> [10, H, W, C]

    def describe(self) -> str:
        m = self.manifest
        return (f"{self.stream} from {self.path} (model {m.get('model')}, layer {m.get('layer')}, "
                f"pooling {m.get('pooling')}, per-segment shape {list(self.row_shape or ())})")

