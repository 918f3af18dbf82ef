"""Kinetics-400 / -600 (and the Kinetics-Sounds and Mini-Kinetics subsets) as a DataModule.

Layout read (``root``)::

    root/annotations/train.csv         label,youtube_id,time_start,time_end,split[,is_cc]
    root/annotations/val.csv           (file names are arguments: train_csv / val_csv / test_csv)
    root/annotations/test.csv          (optional; ``label`` may be absent -> label -1)
    root/<split>/<label>/<youtube_id>_<time_start:06d>_<time_end:06d>.mp4

``<split>`` is the CSV's ``split`` value (``train`` / ``val`` / ``test``). The ``<label>`` folder
may also be spelled with underscores instead of spaces, or be absent (flat
``root/<split>/<youtube_id>_...mp4``, the CVDF mirror layout); each video is looked up in that
order. Clips are the 10 s trimmed clips of the release, so the whole file is the sample.

Classes: the sorted set of labels of the training CSV (400 / 600). ``subset`` restricts to
Kinetics-Sounds (the 32 classes of digest-000 §3.5, re-indexed 0..31 in sorted order) or to the
classes listed in ``subset_classes_file`` (one per line; Mini-Kinetics-200 must be given this way:
its class list is not in the specs and is not shipped here).

Batch fields (``batch_size`` B):

* ``video``: float ``B,3,T,H,W`` normalised with ``mean`` / ``std``, or ``[slow, fast]`` with
  ``slow`` ``B,3,T//alpha,H,W`` when ``alpha`` is set;
* ``audio``: log-mel ``B,1,128,80`` (AVSlowFast front end), only with ``with_audio=True``;
* ``audio_shifted``: log-mel ``B,1,128,80`` shifted by ``audio_shift_sec`` (only when set);
* ``has_audio``: bool ``B`` (``False``: the video has no audio stream, ``audio`` is zeros);
* ``label``: long ``B`` (-1 for unlabelled test rows);
* ``meta``: list of dicts: ``youtube_id``, ``time_start``, ``time_end``, ``csv`` / ``line``,
  ``source`` (file), ``video_index``, ``clip_index``, ``crop_index`` (eval views of one video share
  ``video_index``), ``frame_indices``, ``flipped``;
* ``skipped``: list of ``"path: reason"`` for samples replaced under ``skip_corrupt`` /
  ``missing_audio="skip"``.

Training: random clip of ``num_frames`` at ``stride``, short side in ``train_scale``, random
``crop_size`` crop, horizontal flip. Validation: ``val_num_clips`` x ``val_num_crops`` views;
test: ``num_clips`` x ``num_crops`` (10 x 3 of ``test_crop_size`` = 256 after short side 256, as
in the thesis).

Strictness: ``setup()`` checks the root, every annotation file and line, and every video path.
Missing videos (YouTube removals are common in Kinetics) raise with the count and the first paths
unless ``missing_videos="skip"``, which drops them, warns with the count and keeps the list in
``self.missing_videos``.
"""
from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Literal, Optional

from mmzoo.data.registry import register_datamodule
from mmzoo.data.transforms import KINETICS_MEAN, KINETICS_STD
from mmzoo.data.video_dataset import (
    AnnotationError,
    ClipDataModule,
    LayoutError,
    VideoRecord,
    parse_number,
    read_csv_rows,
)

__all__ = ["KineticsDataModule", "KINETICS_SOUNDS_CLASSES", "kinetics_clip_name"]

log = logging.getLogger(__name__)

#: The 32 Kinetics-Sounds classes still present in Kinetics-400 (digest-000 §3.5, thesis Ch.4).
KINETICS_SOUNDS_CLASSES: tuple[str, ...] = (
    "blowing nose", "blowing out candles", "bowling", "chopping wood", "dribbling basketball",
    "laughing", "mowing lawn", "playing accordion", "playing bagpipes", "playing bass guitar",
    "playing clarinet", "playing drums", "playing guitar", "playing harmonica", "playing keyboard",
    "playing organ", "playing piano", "playing saxophone", "playing trombone", "playing trumpet",
    "playing violin", "playing xylophone", "ripping paper", "shoveling snow", "shuffling cards",
    "singing", "stomping grapes", "strumming guitar", "tap dancing", "tapping guitar",
    "tapping pen", "tickling",
)  # fmt: skip

REQUIRED_COLUMNS = ["youtube_id", "time_start", "time_end", "split"]


def kinetics_clip_name(youtube_id: str, time_start: int, time_end: int) -> str:
    """File name of a trimmed Kinetics clip: ``<youtube_id>_<start:06d>_<end:06d>.mp4``."""
    return f"{youtube_id}_{int(time_start):06d}_{int(time_end):06d}.mp4"


@register_datamodule("kinetics")
class KineticsDataModule(ClipDataModule):
    """Kinetics-400/600 clips with labels, optional audio, train / val / test views.

    ``mmzoo fit`` links ``num_classes`` (read from the CSV, after ``subset``) to the model's
    ``num_classes`` (``model_links``).

    Args:
        root: dataset folder (layout in the module docstring).
        version: ``"400"`` or ``"600"`` (checked against the number of training classes unless
            ``subset`` is set; ``"any"`` skips the check, e.g. for synthetic data).
        train_csv / val_csv / test_csv: annotation files, relative to ``root`` or absolute;
            ``test_csv=None`` tests on ``val_csv`` (Kinetics results are reported on val).
        subset: ``None`` (all classes), ``"kinetics-sounds"`` or ``"custom"`` (classes of
            ``subset_classes_file``; use this for Mini-Kinetics-200).
        subset_classes_file: text file, one class name per line (for ``subset="custom"``).
        batch_size / num_workers / pin_memory: DataLoader settings.
        num_frames / stride: frames per clip and sampling stride (AVSlowFast 4x16: 32 at 2).
        num_clips / num_crops: test views (thesis: 10 x 3).
        val_num_clips / val_num_crops: validation views during training (default 1 x 1).
        train_scale: short-side range for training (thesis: [256, 320]; [256, 340] for R101).
        crop_size: training crop (224). test_scale / test_crop_size: 256 / 256.
        mean / std: normalisation (PySlowFast: 0.45 / 0.225).
        alpha: SlowFast speed ratio for pathway packing (AVSlowFast: 8); ``None`` = one tensor.
        pathway_mode: slow-frame selection (``"linspace"``: PySlowFast / PyTorchVideo convention;
            ``"stride"``: ``frames[::alpha]``).
        with_audio: add the AVSlowFast log-mel (16 kHz, 32/16 ms, 80 mels, 128 frames centred on the
            clip) as ``audio``.
        audio_normalization: ``"fixed"`` ([EXT] mean -7.03 / std 4.66), ``"instance"`` or
            ``"none"`` (the thesis is [SILENT]).
        missing_audio: videos without an audio stream: ``"zeros"`` (zero audio, ``has_audio=False``,
            counted), ``"skip"`` (replaced by the next video, counted and reported) or ``"error"``.
        audio_shift_sec: with ``with_audio``, also return ``audio_shifted``: the log-mel of the same
            window shifted by this many seconds (later when the track allows, else earlier; random
            direction in training when both fit): hard negatives for AVSlowFast's AVS loss (>= 0.5 s
            in the thesis). ``None``: no such field.
        skip_corrupt: replace undecodable videos by the next one, counted and reported, instead of
            raising.
        missing_videos: ``"error"`` or ``"skip"`` (drop annotation rows whose video is absent,
            with a warning giving the count).
    """

    model_links = ("num_classes",)

    def __init__(
        self,
        root: str,
        version: Literal["400", "600", "any"] = "400",
        train_csv: str = "annotations/train.csv",
        val_csv: str = "annotations/val.csv",
        test_csv: Optional[str] = None,
        subset: Optional[Literal["kinetics-sounds", "custom"]] = None,
        subset_classes_file: Optional[str] = None,
        batch_size: int = 8,
        num_workers: int = 4,
        pin_memory: bool = False,
        num_frames: int = 32,
        stride: int = 2,
        num_clips: int = 10,
        num_crops: int = 3,
        val_num_clips: int = 1,
        val_num_crops: int = 1,
        train_scale: tuple[int, int] = (256, 320),
        crop_size: int = 224,
        test_scale: int = 256,
        test_crop_size: int = 256,
        mean: tuple[float, float, float] = KINETICS_MEAN,
        std: tuple[float, float, float] = KINETICS_STD,
        alpha: Optional[int] = None,
        pathway_mode: Literal["linspace", "stride"] = "linspace",
        with_audio: bool = False,
        audio_normalization: Literal["fixed", "instance", "none"] = "fixed",
        missing_audio: Literal["zeros", "skip", "error"] = "zeros",
        audio_shift_sec: Optional[float] = None,
        skip_corrupt: bool = False,
        missing_videos: Literal["error", "skip"] = "error",
    ):
        super().__init__()
        # no save_hyperparameters(): Lightning would merge these with the model's hparams and fail on
        # shared names (crop_size, batch_size, ...); the CLI saves the full config anyway
        self.root = Path(root)
        self.version = version
        self.csvs = {"train": train_csv, "val": val_csv, "test": test_csv if test_csv is not None else val_csv}
        self.subset = subset
        self.subset_classes_file = subset_classes_file
        if subset == "custom" and not subset_classes_file:
            raise ValueError("subset='custom' needs subset_classes_file (one class name per line)")
        if missing_videos not in ("error", "skip"):
            raise ValueError(f"missing_videos must be 'error' or 'skip', got {missing_videos!r}")
        self.missing_videos_policy = missing_videos
        self.train_split, self.val_split, self.test_split = "train", "val", "test"
        self._init_clip_args(
            batch_size=batch_size, num_workers=num_workers, num_frames=num_frames, stride=stride,
            temporal="clip", num_segments=None, num_clips=num_clips, num_crops=num_crops,
            val_num_clips=val_num_clips, val_num_crops=val_num_crops, train_scale=train_scale,
            crop_size=crop_size, test_scale=test_scale, test_crop_size=test_crop_size, mean=mean, std=std,
            alpha=alpha, pathway_mode=pathway_mode, with_audio=with_audio,
            audio_normalization=audio_normalization, missing_audio=missing_audio,
            skip_corrupt=skip_corrupt, pin_memory=pin_memory, audio_shift_sec=audio_shift_sec,
        )  # fmt: skip
        self.classes: list[str] | None = None
        self.missing_videos: list[str] = []
        self._index: dict[str, dict[str, list[Path]]] = {}
        self._rows: dict[str, list[tuple[str, int, dict]]] = {}

    # ------------------------------------------------------------------ layout
    def _csv_path(self, split: str) -> Path:
        p = Path(self.csvs[split])
        return p if p.is_absolute() else self.root / p

    def _read_csv(self, split: str) -> list[tuple[str, int, dict]]:
        if split in self._rows:
            return self._rows[split]
        path = self._csv_path(split)
        required = REQUIRED_COLUMNS + (["label"] if split == "train" else [])
        rows = []
        for line, row in read_csv_rows(path, required):
            for col in ("youtube_id", "split"):
                if not row[col]:
                    raise AnnotationError(path, line, f"empty '{col}'")
            row["time_start"] = parse_number(str(path), line, "time_start", row["time_start"])
            row["time_end"] = parse_number(str(path), line, "time_end", row["time_end"])
            if row["time_end"] <= row["time_start"]:
                raise AnnotationError(path, line, f"time_end {row['time_end']} <= time_start {row['time_start']}")
            rows.append((str(path), line, row))
        if not rows:
            raise AnnotationError(path, None, "no annotation rows")
        self._rows[split] = rows
        return rows

    def _class_list(self) -> list[str]:
        labels = sorted({row["label"] for _, _, row in self._read_csv("train")})
        if "" in labels:
            path, line, _ = next(r for r in self._read_csv("train") if r[2]["label"] == "")
            raise AnnotationError(path, line, "empty label")
        expected = {"400": 400, "600": 600}.get(self.version)
        if expected is not None and self.subset is None and len(labels) != expected:
            raise AnnotationError(
                self._csv_path("train"), None,
                f"Kinetics-{self.version} has {expected} classes, the training CSV has {len(labels)} "
                "(pass version='any' for another class set)",
            )
        if self.subset is None:
            return labels
        if self.subset == "kinetics-sounds":
            wanted = list(KINETICS_SOUNDS_CLASSES)
            source = "Kinetics-Sounds (digest-000 §3.5)"
        else:
            f = Path(self.subset_classes_file)
            if not f.is_file():
                raise LayoutError(f"subset_classes_file not found: {f}")
            wanted = [x.strip() for x in f.read_text(encoding="utf-8").splitlines() if x.strip()]
            source = str(f)
            if len(set(wanted)) != len(wanted):
                raise AnnotationError(f, None, "duplicate class names")
        missing = [c for c in wanted if c not in labels]
        if missing:
            raise AnnotationError(
                self._csv_path("train"), None,
                f"{len(missing)} class(es) of the {source} subset are absent from the training CSV: {missing[:10]}",
            )
        return sorted(wanted)

    def _split_index(self, split_dir: str) -> dict[str, list[Path]]:
        """File name -> paths under ``root/<split_dir>`` (flat and one folder deep), scanned once."""
        if split_dir not in self._index:
            idx: dict[str, list[Path]] = {}
            base = self.root / split_dir
            if base.is_dir():
                with os.scandir(base) as it:
                    for e in it:
                        if e.is_file():
                            idx.setdefault(e.name, []).append(Path(e.path))
                        elif e.is_dir():
                            with os.scandir(e.path) as it2:
                                for f in it2:
                                    if f.is_file():
                                        idx.setdefault(f.name, []).append(Path(f.path))
            self._index[split_dir] = idx
        return self._index[split_dir]

    def _video_path(self, row: dict) -> Path | None:
        """``<split>/<label>/<name>``, ``<split>/<label with _>/<name>``, ``<split>/<name>``; for
        unlabelled rows, the file in any folder of the split (an error if it is in several)."""
        name = kinetics_clip_name(row["youtube_id"], row["time_start"], row["time_end"])
        found = self._split_index(row["split"]).get(name, [])
        if not found:
            return None
        base = self.root / row["split"]
        label = row.get("label", "")
        order = ([base / label / name, base / label.replace(" ", "_") / name] if label else []) + [base / name]
        for c in order:
            if c in found:
                return c
        if not label and len(found) == 1:
            return found[0]
        return None

    def _validate_layout(self) -> None:
        if not self.root.is_dir():
            raise LayoutError(f"Kinetics root not found: {self.root}")
        for split in ("train", "val", "test"):
            if not self._csv_path(split).is_file():
                raise LayoutError(f"Kinetics annotation file not found: {self._csv_path(split)} ({split}_csv)")
        if self.classes is None:
            self.classes = self._class_list()

    @property
    def num_classes(self) -> int:
        if self.classes is None:
            self._validate_layout()
        return len(self.classes)

    def _records(self, split: str) -> list[VideoRecord]:
        index = {c: i for i, c in enumerate(self.classes)}
        all_labels = set(r["label"] for _, _, r in self._read_csv("train"))
        records, missing = [], []
        for path, line, row in self._read_csv(split):
            label = row.get("label", "")
            if label == "" and split != "train":
                target = -1
            elif label in index:
                target = index[label]
            elif self.subset is not None and label in all_labels:
                continue  # outside the requested subset
            else:
                raise AnnotationError(path, line, f"label {label!r} is not a class of the training CSV")
            video = self._video_path(row)
            if video is None:
                want = self.root / row["split"] / (label or "") / kinetics_clip_name(row["youtube_id"], row["time_start"], row["time_end"])
                missing.append(f"{path}:{line}: {want}")
                continue
            records.append(
                VideoRecord(
                    targets={"label": target},
                    meta={"youtube_id": row["youtube_id"], "time_start": row["time_start"],
                          "time_end": row["time_end"], "csv": path, "line": line},
                    video=str(video),
                )
            )  # fmt: skip
        if missing:
            if self.missing_videos_policy == "error":
                raise LayoutError(
                    f"{len(missing)} video(s) of the {split} split are missing, e.g.: " + "; ".join(missing[:5])
                    + " (missing_videos='skip' drops them with a warning)"
                )
            msg = f"[kinetics] {split}: {len(missing)} annotated video(s) missing and skipped, e.g. {missing[0]}"
            log.warning(msg)
            warnings.warn(msg, stacklevel=2)
            self.missing_videos.extend(missing)
        if not records:
            raise LayoutError(f"no video found for the {split} split ({self._csv_path(split)})")
        return records
