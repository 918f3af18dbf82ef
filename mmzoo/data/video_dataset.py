"""The clip dataset shared by the video DataModules (Kinetics, EPIC-Kitchens) and their
annotation-file helpers (the DataModule base is :class:`mmzoo.data.clips.ClipDataModule`).

:class:`ClipDataset` turns :class:`VideoRecord` s (a video file, optionally a segment of it, or a
JPEG frame folder, plus integer targets) into dict samples:

* training: one random clip per record (or TSN segments), random short-side scale, random crop,
  random horizontal flip;
* evaluation: ``num_clips`` uniform clips x ``num_crops`` spatial crops per record, one dataset
  item per view; ``video_index`` (int, the record's index: an int64 ``(B,)`` tensor once collated)
  says which video a view belongs to, so scores can be averaged per video; ``meta`` also carries
  ``video_index`` / ``clip_index`` / ``crop_index``.

Sample fields: ``video`` (float ``C,T,H,W`` normalised, or ``[slow, fast]``; views with
deferred geometry carry ``video_deferred`` instead, see below), ``audio`` (log-mel
``1,T,F``, only with ``with_audio``), ``video_index`` (int), ``audio_shifted`` (the same-length window shifted by
``audio_shift_sec``: hard negatives for audio-visual synchronisation), ``has_audio`` (bool), the record's targets (``label`` or
``verb`` / ``noun`` / ``action``, ints), ``meta`` (dict) and ``skipped`` (list of ``"path: reason"``
strings for records replaced by this one under ``skip_corrupt`` / ``missing_audio="skip"``).

Deferred geometry (training and evaluation views when ``ClipConfig.deferred_geometry``; the clip
DataModules' ``deferred_geometry=None`` / ``True``): the worker decodes the frames at their native
size and, instead of a float clip, returns ``video_deferred``: the uint8 ``T,H,W,C`` source region
that the crop's pixels come from (``region``), the per-axis bilinear taps of the crop (``rows`` /
``row_w``, ``cols`` / ``col_w``; a flip is reversed column taps:
:func:`~mmzoo.data.transforms.crop_plan`) and the normalisation / packing settings.
:func:`finish_deferred_clips` turns it into ``video``. With ``finish_in_worker`` (auto mode off
the accelerator) the worker returns ``video`` itself, made from the whole clip scaled once by
``F.interpolate`` (cheaper than the taps on a CPU; equal to float32 rounding). Either way
the pixels are PySlowFast's. Training (AVSlowFast thesis ch. 4 augmentation):
``F.interpolate(mode="bilinear", align_corners=False)`` of the whole clip to the random short
side, then random crop, flip, ``(x / 255 - mean) / std``. Evaluation (thesis: 10 clips x 3 crops):
the same ``F.interpolate`` to ``test_scale``, then crop ``crop_index`` of ``uniform_crop``
(:func:`~mmzoo.data.transforms.eval_crop_offsets`); the crops of one clip share one decode of its
native frames. ``meta`` then also holds ``short_side`` and ``crop_offset`` (``y0, x0`` in the
scaled frame). Frame folders take the same path (no antialiasing, as the authors' frame loaders).
Without deferred geometry the float clip is built in the worker: swscale bilinear for video files,
torchvision's antialiased bilinear for frame folders, centre offsets floored.

Policies: ``missing_audio="zeros"`` gives an all-zero ``audio`` and ``has_audio=False``;
``"skip"`` replaces the record by the next one (counted in ``skipped``); ``"error"`` raises
:class:`~mmzoo.data.decode.NoAudioStreamError` naming the file. A corrupt video or frame raises
(:class:`~mmzoo.data.decode.DecodeError` naming the file) unless ``skip_corrupt=True``, in which case
it is replaced by the next record and listed in ``skipped``. :class:`~mmzoo.data.clips.ClipDataModule` counts both
in the main process (``on_after_batch_transfer``), warns for every skipped file, and
:class:`DataReportCallback` logs and warns the totals at the end of every epoch.
"""
from __future__ import annotations

import logging
import math
import os
import warnings
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from torch.utils.data import Dataset

from mmzoo.data import samplers as S
from mmzoo.data import transforms as TF
from mmzoo.data.audio import LogMel
from mmzoo.data.collate import DEFAULT_LIST_FIELDS, collate_deferred, collate_dicts
from mmzoo.data.decode import DecodeError, NoAudioStreamError, VideoReader, read_frames
from mmzoo.data.transforms import finish_deferred_clips
from mmzoo.errors import DataError

__all__ = [
    "VideoRecord", "ClipConfig", "ClipDataset", "DataReportCallback", "make_report_callback", "collate_clips",
    "finish_deferred_clips",
    "AnnotationError", "LayoutError", "read_csv_rows", "parse_number",
]  # fmt: skip

log = logging.getLogger(__name__)


@dataclass
class VideoRecord:
    """One annotated video or segment.

    Video mode: ``video`` is a file; ``start_sec`` / ``end_sec`` select a segment (``None``: whole
    video). Frame-folder mode: ``frames_dir`` + ``frame_pattern`` with frame numbers
    ``first_frame..last_frame`` (inclusive, in the file-name numbering) at ``frames_fps``;
    ``audio_video`` optionally names the video file whose audio goes with the frames (frame number
    ``n`` is at ``(n - frame_number_offset) / frames_fps`` seconds of that video;
    ``frames_fps=None``: the video's frame rate)."""

    targets: dict[str, int]
    meta: dict[str, Any] = field(default_factory=dict)
    video: str | None = None
    start_sec: float | None = None
    end_sec: float | None = None
    frames_dir: str | None = None
    frame_pattern: str = "frame_%010d.jpg"
    first_frame: int | None = None
    last_frame: int | None = None
    frames_fps: float | None = None
    frame_number_offset: int = 1
    audio_video: str | None = None

    @property
    def source(self) -> str:
        return self.video if self.video is not None else str(self.frames_dir)


@dataclass
class ClipConfig:
    """How clips are sampled and transformed (see :class:`~mmzoo.data.clips.ClipDataModule` for the meaning)."""

    train: bool = True
    num_frames: int = 32
    stride: int = 2
    temporal: Literal["clip", "tsn"] = "clip"
    num_clips: int = 10
    num_crops: int = 3
    train_scale: tuple[int, int] = (256, 320)
    crop_size: int = 224
    test_scale: int = 256
    test_crop_size: int = 256
    flip: bool = True
    mean: tuple[float, float, float] = TF.KINETICS_MEAN
    std: tuple[float, float, float] = TF.KINETICS_STD
    alpha: int | None = None
    pathway_mode: Literal["linspace", "stride"] = "linspace"
    with_audio: bool = False
    audio_sample_rate: int = 16000
    audio_align: Literal["center", "start"] = "center"
    missing_audio: Literal["zeros", "skip", "error"] = "zeros"
    audio_shift_sec: float | None = None
    skip_corrupt: bool = False
    max_retries: int = 10
    deferred_geometry: bool = False


class ClipDataset(Dataset):
    """Map-style dataset of clip views over :class:`VideoRecord` s (module docstring).

    Deferred geometry (training and evaluation views, ``cfg.deferred_geometry``): the item
    carries ``video_deferred`` instead of ``video`` (module docstring), or, with
    ``finish_in_worker``, the finished ``video`` made in the worker. A subclass gets it only if it sets
    ``deferred_geometry_safe = True`` in its own body, i.e. says that it never reads or changes
    the pixels of ``video`` after :meth:`_sample`; others keep the float clip. ``defer_geometry``
    (``None``: follow the config) lets a DataModule turn it off for a dataset it wraps."""

    deferred_geometry_safe: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "deferred_geometry_safe" not in cls.__dict__:
            cls.deferred_geometry_safe = False  # opt-in per subclass

    def __init__(self, records: list[VideoRecord], cfg: ClipConfig, logmel: LogMel | None = None):
        if not records:
            raise ValueError("ClipDataset needs at least one record")
        self.records = records
        self.cfg = cfg
        self.logmel = logmel
        if cfg.with_audio and logmel is None:
            raise ValueError("with_audio=True needs a LogMel front end")
        self.views = 1 if cfg.train else cfg.num_clips * cfg.num_crops
        self._last: tuple | None = None  # (record, clip) -> decoded clip, shared by its crops
        self._scaled: tuple | None = None  # ((record, clip), short side) -> scaled clip, shared by its crops
        self.defer_geometry: bool | None = None
        #: finish deferred views here, in the worker (set by the DataModule: auto mode off the accelerator)
        self.finish_in_worker = False

    @property
    def defers_geometry(self) -> bool:
        """Whether items (training and evaluation views) come with ``video_deferred`` (see the
        class docstring)."""
        on = self.cfg.deferred_geometry if self.defer_geometry is None else self.defer_geometry
        return bool(on and type(self).deferred_geometry_safe)

    def __len__(self) -> int:
        return len(self.records) * self.views

    # ------------------------------------------------------------------ sampling
    def _temporal(self, n: int, clip_index: int) -> tuple[torch.Tensor, int]:
        """Relative frame indices in a range of ``n`` frames, and the time step between them."""
        c = self.cfg
        if c.temporal == "tsn":
            idx = S.segment_indices(n, c.num_frames, train=c.train)
            return idx, max(n // c.num_frames, 1)
        if c.train:
            return S.random_clip(n, c.num_frames, c.stride), c.stride
        return S.uniform_clips(n, c.num_frames, c.stride, c.num_clips)[clip_index], c.stride

    # ------------------------------------------------------------------ loading
    def _load_video(self, rec: VideoRecord, clip_index: int, short_side: int, with_audio: bool):
        with VideoReader(rec.video) as r:
            if with_audio and not r.has_audio:
                raise NoAudioStreamError(rec.video, "no audio stream in container")
            fps = r.fps
            n_stream = r.info.num_frames
            lo = 0 if rec.start_sec is None else int(math.ceil(rec.start_sec * fps - 1e-6))
            hi = n_stream if rec.end_sec is None else min(int(math.ceil(rec.end_sec * fps - 1e-6)), n_stream)
            if hi <= lo:
                raise DecodeError(rec.video, f"segment [{rec.start_sec}, {rec.end_sec}) s holds no frame (video has {n_stream} frames at {fps:g} fps)")
            rel, step = self._temporal(hi - lo, clip_index)
            clip = r.frames_by_index((rel + lo).tolist(), short_side=short_side)
            audio = None
            if with_audio:
                t0, t1 = S.clip_time_span(clip.frame_indices, fps, step)
                audio = self._audio(r, t0, t1)
            has = r.has_audio
        return clip.frames, clip.frame_indices, audio, has

    def _load_frames(self, rec: VideoRecord, clip_index: int, short_side: int, with_audio: bool):
        first, last = int(rec.first_frame), int(rec.last_frame)
        rel, step = self._temporal(last - first + 1, clip_index)
        numbers = rel + first
        frames = read_frames(rec.frames_dir, numbers.tolist(), rec.frame_pattern)
        audio = None
        if with_audio:
            if rec.audio_video is None:
                raise NoAudioStreamError(rec.frames_dir, "frame-folder record has no video to take audio from")
            with VideoReader(rec.audio_video) as r:
                if not r.has_audio:
                    raise NoAudioStreamError(rec.audio_video, "no audio stream in container")
                fps = float(rec.frames_fps) if rec.frames_fps else r.fps  # frames at the video's rate
                t0, t1 = S.clip_time_span(numbers - rec.frame_number_offset, fps, step)
                audio = self._audio(r, t0, t1)
        return frames, numbers, audio, rec.audio_video is not None

    def _audio(self, reader: VideoReader, t0: float, t1: float) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Log-mel of the window aligned with ``[t0, t1)`` and, with ``audio_shift_sec``, of the
        same-length window shifted by that many seconds (later if the track allows, else earlier;
        random direction when both fit, in training)."""
        win = self.logmel.window_seconds
        a0, a1 = S.aligned_audio_window(t0, t1, window_sec=win, align=self.cfg.audio_align)
        if win is not None:  # exact sample count for the fixed number of mel frames
            a1 = a0 + self.logmel.num_samples() / self.cfg.audio_sample_rate
        sr = self.cfg.audio_sample_rate
        aligned = self.logmel(reader.audio(a0, a1, sample_rate=sr, mono=True))
        shift = self.cfg.audio_shift_sec
        if not shift:
            return aligned, None
        dur = reader.audio_duration()
        dur = reader.info.duration if dur is None else dur
        fits_after = not math.isfinite(dur) or a1 + shift <= dur
        fits_before = a0 - shift >= 0
        if fits_after and fits_before:
            sign = 1 if (not self.cfg.train or bool(torch.rand(()) < 0.5)) else -1
        else:
            sign = 1 if fits_after or not fits_before else -1
        d = sign * shift
        shifted = self.logmel(reader.audio(a0 + d, a1 + d, sample_rate=sr, mono=True))
        return aligned, shifted

    def _zero_audio(self) -> torch.Tensor:
        lm = self.logmel
        n = lm.num_frames if lm.num_frames is not None else 1
        return torch.zeros(1, n, lm.n_mels)

    def _sample(self, rec_index: int, clip_index: int, crop_index: int) -> dict[str, Any]:
        c = self.cfg
        rec = self.records[rec_index]
        if c.train:
            short = int(torch.randint(c.train_scale[0], c.train_scale[1] + 1, (1,)))
        else:
            short = c.test_scale
        load = self._load_video if rec.video is not None else self._load_frames
        deferred = self.defers_geometry
        decode_short = None if deferred else short  # deferred: native size, scaled in finish
        key = (rec_index, clip_index)
        if not c.train and self._last is not None and self._last[0] == key:
            # the crops of one clip are consecutive items: decode the clip once for all of them
            frames, indices, audio, has_audio = self._last[1]
        else:
            try:
                frames, indices, audio, has_audio = load(rec, clip_index, decode_short, c.with_audio)
            except NoAudioStreamError:
                if c.missing_audio != "zeros":
                    raise
                frames, indices, _, _ = load(rec, clip_index, decode_short, False)
                has_audio = False
                audio = (self._zero_audio(), self._zero_audio() if c.audio_shift_sec else None)
            if not c.train:
                self._last = (key, (frames, indices, audio, has_audio))
        out: dict[str, Any] = {}
        if deferred and self.finish_in_worker:
            out["video"], flipped, geometry = self._worker_view(rec, frames, short, crop_index, key)
        elif deferred:
            out["video_deferred"], flipped, geometry = self._deferred_view(rec, frames, short, crop_index)
        else:
            out["video"], flipped = self._float_view(rec, frames, short, crop_index)
            geometry = {}
        if c.with_audio:
            out["audio"] = audio[0]
            if c.audio_shift_sec:
                out["audio_shifted"] = audio[1]
        out["has_audio"] = has_audio
        out["video_index"] = rec_index
        out.update({k: int(v) for k, v in rec.targets.items()})
        meta = dict(rec.meta)
        meta.update(
            source=rec.source,
            video_index=rec_index,
            clip_index=clip_index,
            crop_index=crop_index,
            frame_indices=indices.tolist(),
            flipped=flipped,
            **geometry,
        )
        out["meta"] = meta
        return out

    def _deferred_view(
        self, rec: VideoRecord, frames: torch.Tensor, short: int, crop_index: int
    ) -> tuple[dict[str, Any], bool, dict]:
        """A view as the uint8 source region of its crop + the bilinear taps
        (:func:`~mmzoo.data.transforms.deferred_view`), finished by :func:`finish_deferred_clips`."""
        c = self.cfg
        y0, x0, crop, flipped = self._view_geometry(rec, frames, short, crop_index)
        view = TF.deferred_view(frames, short, y0, x0, crop, flipped, c.mean, c.std, c.alpha, c.pathway_mode)
        return view, flipped, {"short_side": short, "crop_offset": (y0, x0)}

    def _worker_view(
        self, rec: VideoRecord, frames: torch.Tensor, short: int, crop_index: int, key: tuple
    ) -> tuple[Any, bool, dict]:
        """The same view finished here (``finish_in_worker``): the whole clip scaled once by
        ``F.interpolate`` (:func:`~mmzoo.data.transforms.scaled_clip`, shared by the crops of an
        evaluation clip), then cropped and normalised; equal to the taps path to float32 rounding
        and cheaper than it on a CPU."""
        c = self.cfg
        y0, x0, crop, flipped = self._view_geometry(rec, frames, short, crop_index)
        if not c.train and self._scaled is not None and self._scaled[0] == (key, short):
            scaled = self._scaled[1]
        else:
            scaled = TF.scaled_clip(frames, short)
            if not c.train:
                self._scaled = ((key, short), scaled)
        video = TF.view_of_scaled(scaled, y0, x0, crop, flipped, c.mean, c.std, c.alpha, c.pathway_mode)
        return video, flipped, {"short_side": short, "crop_offset": (y0, x0)}

    def _view_geometry(self, rec: VideoRecord, frames: torch.Tensor, short: int, crop_index: int):
        """``(y0, x0, crop, flipped)`` of a view in the frame scaled to ``short``. Training: the
        random draws (crop offset, flip) of :meth:`_float_view`. Evaluation: crop ``crop_index``
        of PySlowFast's ``uniform_crop`` (:func:`~mmzoo.data.transforms.eval_crop_offsets`), not
        flipped."""
        c = self.cfg
        h, w = int(frames.shape[1]), int(frames.shape[2])
        nh, nw = TF.short_side_size(h, w, short)
        crop = c.crop_size if c.train else c.test_crop_size
        if crop > nh or crop > nw:
            raise ValueError(f"{rec.source}: crop {crop} larger than frame {nh}x{nw}")
        if c.train:
            y0 = int(torch.randint(0, nh - crop + 1, (1,)))
            x0 = int(torch.randint(0, nw - crop + 1, (1,)))
            flipped = bool(c.flip and torch.rand(()) < 0.5)
        else:
            y0, x0 = TF.eval_crop_offsets(h, w, short, crop, c.num_crops)[crop_index]
            flipped = False
        return y0, x0, crop, flipped

    def _float_view(self, rec: VideoRecord, frames: torch.Tensor, short: int, crop_index: int):
        """The normalised float clip of a view without deferred geometry (``deferred_geometry=False``,
        or a dataset subclass that is not ``deferred_geometry_safe``)."""
        c = self.cfg
        # geometry on uint8 T,H,W,C (cheap views), then one contiguous float conversion + normalise
        if min(frames.shape[1:3]) != short:  # frame folders are resized here (uint8 bilinear, antialiased)
            frames = TF.resize_short_side_uint8(frames, short)
        h, w = int(frames.shape[1]), int(frames.shape[2])
        flipped = False
        if c.train:
            if c.crop_size > h or c.crop_size > w:
                raise ValueError(f"{rec.source}: crop {c.crop_size} larger than frame {h}x{w}")
            y0 = int(torch.randint(0, h - c.crop_size + 1, (1,)))
            x0 = int(torch.randint(0, w - c.crop_size + 1, (1,)))
            frames = frames[:, y0 : y0 + c.crop_size, x0 : x0 + c.crop_size]
            if c.flip and bool(torch.rand(()) < 0.5):
                frames = frames.flip(2)
                flipped = True
        else:
            y0, x0 = S.spatial_crop_offsets(h, w, c.test_crop_size, c.num_crops)[crop_index]
            frames = frames[:, y0 : y0 + c.test_crop_size, x0 : x0 + c.test_crop_size]
        video = TF.to_normalized_cthw(frames, c.mean, c.std)
        return (TF.pack_pathway(video, c.alpha, c.pathway_mode) if c.alpha else video), flipped

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        rec_index, view = divmod(i, self.views)
        clip_index, crop_index = divmod(view, self.cfg.num_crops) if not self.cfg.train else (0, 0)
        skipped: list[str] = []
        for attempt in range(self.cfg.max_retries + 1):
            r = (rec_index + attempt) % len(self.records)
            try:
                out = self._sample(r, clip_index, crop_index)
                out["skipped"] = skipped
                return out
            except NoAudioStreamError as e:
                if self.cfg.missing_audio != "skip":
                    raise
                skipped.append(f"{self.records[r].source}: no audio stream ({e})")
            except (DecodeError, OSError) as e:
                if not self.cfg.skip_corrupt or isinstance(e, NoAudioStreamError):
                    raise
                skipped.append(f"{self.records[r].source}: {e}")
        raise RuntimeError(
            f"{self.cfg.max_retries + 1} consecutive records could not be loaded, last errors: {skipped[-3:]}"
        )


def collate_clips(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """:func:`~mmzoo.data.collate.collate_dicts` with ``skipped`` flattened into one list and
    ``video_deferred`` batched by :func:`~mmzoo.data.collate.collate_deferred` (padded regions)."""
    batch = collate_dicts(samples, keep_as_list=DEFAULT_LIST_FIELDS | {"skipped", "video_deferred"})
    if "skipped" in batch:
        batch["skipped"] = [s for per in batch["skipped"] for s in per]
    if "video_deferred" in batch:
        batch["video_deferred"] = collate_deferred(batch["video_deferred"])
    return batch


class DataReportCallback:
    """Lightning callback (duck-typed; :class:`~mmzoo.data.clips.ClipDataModule` adds it to its
    trainer) that logs ``data/skipped`` and ``data/missing_audio`` and warns with the totals at each epoch end."""

    def __init__(self, datamodule: Any):
        self.dm = datamodule

    def _report(self, trainer, stage: str) -> None:
        rep = self.dm.pop_epoch_report(stage)
        if rep["skipped"] or rep["missing_audio"]:
            msg = (
                f"[{self.dm.datamodule_name}] {stage} epoch: {len(rep['skipped'])} sample(s) skipped, "
                f"{rep['missing_audio']} clip(s) without audio (zeros)."
            )
            if rep["skipped"]:
                msg += " Skipped: " + "; ".join(rep["skipped"][:20]) + (" ..." if len(rep["skipped"]) > 20 else "")
            log.warning(msg)
            warnings.warn(msg, stacklevel=2)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._report(trainer, "train")

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        self._report(trainer, "val")

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        self._report(trainer, "test")


def make_report_callback(dm) -> "DataReportCallback":
    """A :class:`DataReportCallback` that is also a Lightning ``Callback`` (for ``trainer.callbacks``)."""
    import pytorch_lightning as pl

    class _Cb(DataReportCallback, pl.Callback):
        pass

    return _Cb(dm)


# ---------------------------------------------------------------------- annotation files
class AnnotationError(DataError, ValueError):
    """A malformed annotation file or line; the message starts with ``path:line:``."""

    def __init__(self, path: str | os.PathLike, line: int | None, message: str):
        self.path, self.line = str(path), line
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


class LayoutError(DataError, FileNotFoundError):
    """The dataset folder does not have the expected layout; the message names what is missing."""


def read_csv_rows(path: str | os.PathLike, required: list[str], optional_header: bool = False):
    """Rows of a CSV annotation file as ``(line_number, dict)``; checks that the header holds the
    ``required`` columns and that every row has as many fields as the header."""
    import csv

    path = str(path)
    if not os.path.isfile(path):
        raise LayoutError(f"annotation file not found: {path}")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise AnnotationError(path, 1, "empty file (no header line)") from None
        header = [h.strip() for h in header]
        missing = [c for c in required if c not in header]
        if missing:
            raise AnnotationError(path, 1, f"header lacks column(s) {missing}; found {header}")
        for row in reader:
            line = reader.line_num
            if not row or all(not x.strip() for x in row):
                continue
            if len(row) != len(header):
                raise AnnotationError(path, line, f"expected {len(header)} fields ({','.join(header)}), got {len(row)}: {row}")
            yield line, dict(zip(header, (x.strip() for x in row)))


def parse_number(path: str, line: int, column: str, value: str, kind: type = int):
    """``kind(value)`` or an :class:`AnnotationError` naming file, line and column."""
    try:
        if kind is int:
            f = float(value)
            if f != int(f):
                raise ValueError
            return int(f)
        return kind(value)
    except (TypeError, ValueError):
        raise AnnotationError(path, line, f"column '{column}': cannot parse {value!r} as {kind.__name__}") from None
