"""AudioSet (Gemmeke et al., ICASSP 2017) as a DataModule: the segment CSVs as distributed, over the
clips a user downloaded.

Layout read (``root``)::

    root/balanced_train_segments.csv      # Segments csv created Sun Mar  5 10:54:31 2017
    root/unbalanced_train_segments.csv    # num_ytids=22160, num_segs=22160, num_unique_labels=527, ...
    root/eval_segments.csv                # YTID, start_seconds, end_seconds, positive_labels
                                          --PJHxphWEs, 30.000, 40.000, "/m/09x0r,/t/dd00088"
    root/class_labels_indices.csv         index,mid,display_name     0,/m/09x0r,"Speech"
    root/<segments dir>/<clip>.<ext>      the downloaded clips (video with audio)

The segment CSVs are read as Google distributes them: ``#`` comment lines (three at the top),
fields separated by ``", "``, the label list quoted. AudioSet is distributed as YouTube ids, so
the clips are whatever a user downloaded; they are looked up as ``clip_pattern`` + one of
``clip_exts`` in ``video_dir`` (default: the folder named like the CSV, ``root/eval_segments/``
etc., else ``root/videos/``, else ``root``). ``clip_pattern`` is a ``str.format`` pattern with
the fields ``ytid``, ``start`` / ``end`` (float seconds), ``start_ms`` / ``end_ms`` and ``start_s``
/ ``end_s`` (ints); the default ``"{ytid}_{start_ms}_{end_ms}"`` is the naming of the
``audiosetdl`` downloader (the one OpenL3 used); ``"Y{ytid}"`` is the PANNs naming and
``"{ytid}_{start_s:06d}_{end_s:06d}"`` the Kinetics-crawler one. Missing clips (YouTube removals:
a large share of AudioSet) raise with the count and the first paths unless
``missing_videos="skip"``, which drops them, warns with the count and keeps them in
``self.missing_videos``: never silently.

Splits: ``train_segments`` = ``"balanced"`` (22k clips), ``"unbalanced"`` (2M) or ``"both"``;
validation and test read ``eval_segments.csv``. Labels: ``label`` is the multi-hot float vector
over the ``class_labels_indices.csv`` classes (527); metric: mAP (``MultiLabelMeanAP``).

Samples are those of :class:`~mmzoo.data.clips.ClipDataModule` (every clip flag applies;
``num_frames=1`` gives the single still frame of L3-Net) with one addition:
``audio_format="waveform"`` makes ``audio`` the mono waveform of ``audio_waveform_sec`` seconds at
``audio_sample_rate`` centred on the clip (L3-Net / OpenL3: 1 s at 48 kHz), instead of a log-mel.

Errors name file and line (:class:`~mmzoo.data.video_dataset.AnnotationError`): a data line without
4 fields, a time that is not a number, ``end <= start``, an empty or unknown label, a segment
listed twice; ``class_labels_indices.csv`` with indices not running 0..N-1 or a duplicate mid.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch

from mmzoo.data.audio_clips import Waveform, clip_waveform_defaults
from mmzoo.data.clips import ClipDataModule
from mmzoo.data.paths import find_path, flag, report_missing
from mmzoo.data.registry import register_datamodule
from mmzoo.data.video_dataset import (
    AnnotationError,
    ClipDataset,
    DataReportCallback,
    LayoutError,
    VideoRecord,
    make_report_callback,
    parse_number,
    read_csv_rows,
)
from mmzoo.registry import InputConfig

__all__ = ["AudioSetDataModule", "clip_name", "read_class_labels", "read_segments"]

SEGMENT_FILES = {"balanced": "balanced_train_segments.csv", "unbalanced": "unbalanced_train_segments.csv",
                 "eval": "eval_segments.csv"}


def read_class_labels(path: str | Path) -> tuple[list[str], list[str]]:
    """``class_labels_indices.csv`` -> (mids, display names) in index order (0..N-1, checked)."""
    mids: list[str] = []
    names: list[str] = []
    for line, r in read_csv_rows(path, ["index", "mid", "display_name"]):
        idx = parse_number(str(path), line, "index", r["index"])
        if idx != len(mids):
            raise AnnotationError(path, line, f"index {idx}, expected {len(mids)} (indices run 0..N-1 in order)")
        if r["mid"] in mids:
            raise AnnotationError(path, line, f"label {r['mid']!r} listed twice")
        mids.append(r["mid"])
        names.append(r["display_name"])
    if not mids:
        raise AnnotationError(path, None, "no classes")
    return mids, names


def read_segments(path: str | Path, known: set[str] | None = None) -> list[dict[str, Any]]:
    """A segment CSV -> ``[{line, ytid, start, end, labels (mids)}]`` (format in the module
    docstring); labels are checked against ``known`` when given."""
    path = Path(path)
    if not path.is_file():
        raise LayoutError(f"AudioSet segment file not found: {path}")
    out: list[dict[str, Any]] = []
    seen: dict[tuple, int] = {}
    with open(path, newline="", encoding="utf-8") as f:
        for line, raw in enumerate(f, start=1):
            if not raw.strip() or raw.lstrip().startswith("#"):
                continue
            try:
                fields = next(csv.reader([raw], skipinitialspace=True))
            except csv.Error as err:
                raise AnnotationError(path, line, f"cannot parse ({err})") from None
            if len(fields) != 4:
                raise AnnotationError(path, line, f"expected 4 fields 'YTID, start_seconds, end_seconds, "
                                                  f"\"labels\"', got {len(fields)}: {raw.strip()!r}")
            ytid = fields[0].strip()
            start = parse_number(str(path), line, "start_seconds", fields[1].strip(), float)
            end = parse_number(str(path), line, "end_seconds", fields[2].strip(), float)
            if not ytid:
                raise AnnotationError(path, line, "empty YTID")
            if not (math.isfinite(start) and math.isfinite(end)) or start < 0 or end <= start:
                raise AnnotationError(path, line, f"segment [{start}, {end}) is empty or negative")
            labels = [x.strip() for x in fields[3].split(",") if x.strip()]
            if not labels:
                raise AnnotationError(path, line, "no positive label")
            if known is not None:
                bad = [x for x in labels if x not in known]
                if bad:
                    raise AnnotationError(path, line, f"label(s) {bad} not in class_labels_indices.csv")
            key = (ytid, start)
            if key in seen:
                raise AnnotationError(path, line, f"segment {ytid} at {start} s already listed on line {seen[key]}")
            seen[key] = line
            out.append({"line": line, "ytid": ytid, "start": start, "end": end, "labels": labels})
    if not out:
        raise AnnotationError(path, None, "no segments listed")
    return out


def clip_name(pattern: str, ytid: str, start: float, end: float) -> str:
    """The file stem of a segment under ``pattern`` (module docstring for the fields)."""
    return pattern.format(ytid=ytid, start=start, end=end, start_ms=round(start * 1000),
                          end_ms=round(end * 1000), start_s=int(start), end_s=int(end))


class AudioSetClipDataset(ClipDataset):
    """:class:`ClipDataset` with AudioSet's multi-hot ``label`` and zero waveforms for silent clips."""

    def __init__(self, records, cfg, logmel, num_classes: int):
        super().__init__(records, cfg, logmel)
        self.num_classes = num_classes

    def _zero_audio(self) -> torch.Tensor:
        if isinstance(self.logmel, Waveform):
            return torch.zeros(self.logmel.num_samples())
        return super()._zero_audio()

    def _sample(self, rec_index: int, clip_index: int, crop_index: int) -> dict[str, Any]:
        out = super()._sample(rec_index, clip_index, crop_index)
        target = torch.zeros(self.num_classes)
        target[list(self.records[rec_index].meta["label_indices"])] = 1.0
        out["label"] = target
        return out


@register_datamodule("audioset")
class AudioSetDataModule(ClipDataModule):
    """AudioSet segments over downloaded clips (module docstring).

    Args (besides every clip argument of :class:`~mmzoo.data.clips.ClipDataModule`):
        root: folder with the segment CSVs.
        train_segments: ``"balanced"``, ``"unbalanced"`` or ``"both"``.
        labels_csv: ``class_labels_indices.csv`` (default: under ``root``).
        video_dir: folder of the downloaded clips (default: module docstring).
        clip_pattern: file stem pattern of a clip (default ``"{ytid}_{start_ms}_{end_ms}"``).
        clip_exts: extensions tried in order.
        audio_format: ``"logmel"`` (the clip front end) or ``"waveform"`` (raw mono samples).
        audio_waveform_sec: waveform length for ``audio_format="waveform"`` (1.0 s, L3-Net).
        missing_videos: ``"error"`` or ``"skip"``.
    """

    model_links = ("num_classes",)
    #: multi-hot ``label`` vectors: a single-label classifier must refuse this DataModule
    multilabel: ClassVar[bool] = True

    def __init__(
        self,
        root: str,
        train_segments: Literal["balanced", "unbalanced", "both"] = "balanced",
        labels_csv: str | None = None,
        video_dir: str | None = None,
        clip_pattern: str = "{ytid}_{start_ms}_{end_ms}",
        clip_exts: tuple[str, ...] = (".mp4", ".mkv", ".webm"),
        audio_format: Literal["logmel", "waveform"] = "logmel",
        audio_waveform_sec: float = 1.0,
        missing_videos: Literal["error", "skip"] = "error",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if train_segments not in ("balanced", "unbalanced", "both"):
            raise ValueError(f"{flag('train_segments')} must be balanced/unbalanced/both, got {train_segments!r}")
        if audio_format not in ("logmel", "waveform"):
            raise ValueError(f"{flag('audio_format')} must be 'logmel' or 'waveform', got {audio_format!r}")
        if missing_videos not in ("error", "skip"):
            raise ValueError(f"{flag('missing_videos')} must be 'error' or 'skip', got {missing_videos!r}")
        try:
            clip_name(clip_pattern, "x", 0.0, 10.0)
        except (KeyError, IndexError, ValueError) as err:
            raise ValueError(f"{flag('clip_pattern')} {clip_pattern!r} is not a valid pattern ({err})") from None
        self.root = Path(root)
        self.train_segments = train_segments
        self._labels_arg, self._video_dir_arg = labels_csv, video_dir
        self.clip_pattern, self.clip_exts = clip_pattern, tuple(clip_exts)
        self.audio_format, self.audio_waveform_sec = audio_format, float(audio_waveform_sec)
        self.missing_videos_policy = missing_videos
        self.missing_videos: list[str] = []
        self.train_split, self.val_split, self.test_split = "train", "eval", "eval"
        self.classes: list[str] | None = None
        self.mids: list[str] | None = None

    @classmethod
    def defaults_from_input(cls, cfg: InputConfig) -> dict[str, Any]:
        """The clip defaults, plus ``audio_format="waveform"`` (rate and length) for a waveform input."""
        return {**super().defaults_from_input(cfg), **clip_waveform_defaults(cfg)}

    def logmel(self):
        if not self.train_cfg.with_audio:
            return None
        if self.audio_format == "waveform":
            return Waveform(self.train_cfg.audio_sample_rate, self.audio_waveform_sec)
        return super().logmel()

    @property
    def num_classes(self) -> int:
        if self.classes is None:
            self._validate_layout()
        return len(self.classes)

    def _validate_layout(self) -> None:
        if self.classes is not None:
            return
        if not self.root.is_dir():
            raise LayoutError(f"AudioSet root not found: {self.root} ({flag('root')})")
        self.labels_csv = find_path("labels_csv", self._labels_arg, self.root, defaults=("class_labels_indices.csv",),
                                    what="AudioSet class list (class_labels_indices.csv)")
        self.mids, self.classes = read_class_labels(self.labels_csv)

    def _segment_files(self, split: str) -> list[str]:
        if split == "eval":
            return ["eval"]
        return ["balanced", "unbalanced"] if self.train_segments == "both" else [self.train_segments]

    def _clip_dirs(self, key: str) -> list[Path]:
        if self._video_dir_arg is not None:
            d = Path(self._video_dir_arg)
            return [d if d.is_absolute() or d.is_dir() else self.root / d]
        stem = SEGMENT_FILES[key][:-4]
        return [self.root / stem, self.root / "videos", self.root]

    def _records(self, split: str) -> list[VideoRecord]:
        index = {m: i for i, m in enumerate(self.mids)}
        records, missing = [], []
        for key in self._segment_files(split):
            csv_path = self.root / SEGMENT_FILES[key]
            dirs = self._clip_dirs(key)
            listing = {d: {p.name for p in d.iterdir() if p.is_file()} if d.is_dir() else set() for d in dirs}
            for row in read_segments(csv_path, set(index)):
                stem = clip_name(self.clip_pattern, row["ytid"], row["start"], row["end"])
                video = next((d / (stem + e) for d in dirs for e in self.clip_exts if stem + e in listing[d]), None)
                if video is None:
                    missing.append(f"{csv_path}:{row['line']}: {dirs[0] / (stem + self.clip_exts[0])}")
                    continue
                meta = {"youtube_id": row["ytid"], "time_start": row["start"], "time_end": row["end"],
                        "csv": str(csv_path), "line": row["line"], "label_indices": [index[m] for m in row["labels"]]}
                records.append(VideoRecord(targets={}, meta=meta, video=str(video)))
        report_missing(self, missing, f"AudioSet {split} segments", split)
        if not records:
            raise LayoutError(f"no clip of the {split} segments found (looked in {self._clip_dirs(key)[0]})")
        return records

    def setup(self, stage: str | None = None) -> None:
        self._validate_layout()
        fe = self.logmel()
        wanted = {"fit": [("train", self.train_split), ("val", self.val_split)], "validate": [("val", self.val_split)],
                  "test": [("test", self.test_split)], "predict": [("test", self.test_split)]}  # fmt: skip
        cfgs = {"train": self.train_cfg, "val": self.val_cfg, "test": self.eval_cfg}
        for st in [stage] if stage else ["fit", "test"]:
            for name, split in wanted[st]:
                if name not in self.datasets:
                    self.datasets[name] = AudioSetClipDataset(self._records(split), cfgs[name], fe, len(self.classes))
        trainer = getattr(self, "trainer", None)
        if trainer is not None and not any(isinstance(cb, DataReportCallback) and cb.dm is self
                                           for cb in trainer.callbacks):
            trainer.callbacks.append(make_report_callback(self))
