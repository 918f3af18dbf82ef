"""Kinetics-400 / -600 (and the Kinetics-Sounds and Mini-Kinetics subsets) as a DataModule.

Layout read (``root``)::

    root/annotations/train.csv         label,youtube_id,time_start,time_end,split[,is_cc]
    root/annotations/val.csv           (file names are arguments: train_csv / val_csv / test_csv)
    root/annotations/test.csv          (optional; ``label`` may be absent -> label -1)

Unless ``train_csv`` / ``val_csv`` are given, the lists are found by themselves under the names
of both releases: ``annotations/{train,val}.csv`` (CVDF mirror) or DeepMind's archive
(``train.csv``, ``validate.csv``, ``test.csv``), directly in ``root`` or in ``root/annotations``.
A path given in a flag is used as given (absolute, or relative to the working directory) and
only then looked up under ``root`` and ``root/annotations``; errors name the flag
(``--data.val_csv``) and every path tried.
    root/<split>/<label>/<youtube_id>_<time_start:06d>_<time_end:06d>.mp4

``<split>`` is the CSV's ``split`` value (``train`` / ``val`` / ``test``). The ``<label>`` folder
may also be spelled with underscores instead of spaces, or be absent (flat
``root/<split>/<youtube_id>_...mp4``, the CVDF mirror layout); each video is looked up in that
order. Clips are the 10 s trimmed clips of the release, so the whole file is the sample.

Classes: the sorted set of labels of the training CSV (400 / 600). ``subset`` restricts to
Kinetics-Sounds (the 32 classes of the AVSlowFast thesis, ch. 4, re-indexed 0..31 in sorted order), to the
classes listed in ``subset_classes_file`` (one per line), or to Mini-Kinetics (``subset="mini"``),
read from the list files its authors distribute, in ``mini_kinetics_dir``:

* ``mini_kinetics_split="arnet"`` (default; the split the theses use, PSN thesis, Table 5.6:
  "Mini-Kinetics (ARNet split): 200 classes, 131,082 videos"): the TSM-style list files of AR-Net
  (Meng et al., ECCV 2020; github.com/mengyuest/AR-Net ``ops/dataset_config.py`` names them, the
  same author's AdaFuse repository ships the validation list and the class list)::

      mini_train_videofolder.txt   images/train/<class>/<youtube_id>_<start:06d>_<end:06d> <num_frames> <label>
      mini_val_videofolder.txt     images/val/<class>/...     (9,867 lines in the release)
      minik_classInd.txt           optional: the 200 class names, line i = label i

  Class names contain spaces, so a line is split at its last two spaces. Labels are the lists'
  indices (checked against ``minik_classInd.txt`` when present, else against the class folders).
  ``<num_frames>`` counts the authors' extracted JPEG frames and is not used (videos are decoded).
* ``mini_kinetics_split="s3d"``: Mini-Kinetics-200 of Xie et al., "Rethinking Spatiotemporal
  Feature Learning" (S3D, ECCV 2018; github.com/s9xie/Mini-Kinetics-200): ``train_ytid_list.txt``
  (80,000 lines) and ``val_ytid_list.txt`` (5,000 lines), one 11-character ``youtube_id`` per line,
  no header and no class list. The 200 classes are the sorted labels of the listed training videos
  in the training CSV (400 train / 25 val videos per class in the release).

The two splits are different subsets: only 102 of their classes coincide (checked on the public
lists: 2,542 of the 5,000 S3D validation ids are in the ARNet validation list). Each listed video
is matched to its CSV row (S3D: by ``youtube_id``; ARNet: by ``youtube_id``, ``time_start`` and
``time_end``, and the class folder must equal the CSV label). A listed video absent from the CSV
raises an :class:`AnnotationError` naming the list file and line, or, with
``mini_kinetics_missing="skip"``, is dropped, counted and kept in ``self.mini_kinetics_missing``
with a warning. ``version="400"`` checks that the subset has 200 classes. ``test_csv=None`` tests
on the validation list.

Batch fields (``batch_size`` B):

* ``video``: float ``B,3,T,H,W`` normalised with ``mean`` / ``std``, or ``[slow, fast]`` with
  ``slow`` ``B,3,T//alpha,H,W`` when ``alpha`` is set;
* ``audio``: log-mel ``B,1,audio_num_frames,audio_n_mels`` (AVSlowFast front end: ``B,1,128,80``
  by default), only with ``with_audio=True``;
* ``audio_shifted``: the same log-mel shifted by ``audio_shift_sec`` (only when set);
* ``has_audio``: bool ``B`` (``False``: the video has no audio stream, ``audio`` is zeros);
* ``label``: long ``B`` (-1 for unlabelled test rows);
* ``video_index``: long ``B``, the video each view comes from (the views of one video share it);
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
import re
import warnings
from pathlib import Path
from typing import Any, Literal, Optional

from mmzoo.data.clips import ClipDataModule
from mmzoo.data.paths import find_path, flag, report_missing
from mmzoo.data.registry import register_datamodule
from mmzoo.data.video_dataset import (
    AnnotationError,
    LayoutError,
    VideoRecord,
    parse_number,
    read_csv_rows,
)

__all__ = [
    "KINETICS_SOUNDS_CLASSES",
    "MINI_KINETICS_FILES",
    "KineticsDataModule",
    "kinetics_clip_name",
    "read_mini_kinetics_arnet_list",
    "read_mini_kinetics_s3d_list",
]  # fmt: skip

log = logging.getLogger(__name__)

#: The 32 Kinetics-Sounds classes still present in Kinetics-400 (AVSlowFast thesis, ch. 4).
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
#: Where ``train_csv`` / ``val_csv`` are looked for when not given (CVDF mirror, then DeepMind's archive).
DEFAULT_CSVS = {
    "train": ("annotations/train.csv", "train.csv"),
    "val": ("annotations/val.csv", "annotations/validate.csv", "val.csv", "validate.csv"),
}

#: File names of the Mini-Kinetics distributions: split -> (train list, val list, class list or None).
MINI_KINETICS_FILES: dict[str, tuple[str, str, Optional[str]]] = {
    "arnet": ("mini_train_videofolder.txt", "mini_val_videofolder.txt", "minik_classInd.txt"),
    "s3d": ("train_ytid_list.txt", "val_ytid_list.txt", None),
}
_YTID = re.compile(r"^[A-Za-z0-9_-]{11}$")
_CLIP = re.compile(r"^([A-Za-z0-9_-]{11})_(\d{6})_(\d{6})$")


def _list_lines(path: Path) -> list[tuple[int, str]]:
    """Non-empty lines of a list file as ``(line_number, text)`` (trailing newline optional)."""
    if not path.is_file():
        raise LayoutError(f"Mini-Kinetics list file not found: {path}")
    out = []
    for i, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if text.strip():
            out.append((i, text.rstrip("\r")))
    if not out:
        raise AnnotationError(path, None, "empty list file")
    return out


def read_mini_kinetics_s3d_list(path: str | os.PathLike) -> list[tuple[int, str]]:
    """``(line, youtube_id)`` of an S3D Mini-Kinetics-200 list (``train_ytid_list.txt`` /
    ``val_ytid_list.txt``: one 11-character YouTube id per line). Malformed or repeated ids raise
    an :class:`AnnotationError` naming the line."""
    path = Path(path)
    seen: dict[str, int] = {}
    out = []
    for line, text in _list_lines(path):
        yid = text.strip()
        if not _YTID.match(yid):
            raise AnnotationError(path, line, f"expected one 11-character youtube_id, got {text!r}")
        if yid in seen:
            raise AnnotationError(path, line, f"youtube_id {yid} already listed at line {seen[yid]}")
        seen[yid] = line
        out.append((line, yid))
    return out


def read_mini_kinetics_arnet_list(path: str | os.PathLike) -> list[tuple[int, dict]]:
    """Entries of an AR-Net Mini-Kinetics list (``mini_{train,val}_videofolder.txt``): ``(line,
    {"class", "youtube_id", "time_start", "time_end", "num_frames", "label"})``. A line is
    ``<folder> <num_frames> <label>`` with ``<folder>`` = ``images/<split>/<class>/<clip>``; it is
    split at its last two spaces because class names contain spaces."""
    path = Path(path)
    seen: dict[tuple, int] = {}
    out = []
    for line, text in _list_lines(path):
        parts = text.strip().rsplit(" ", 2)
        if len(parts) != 3:
            raise AnnotationError(path, line, f"expected '<folder> <num_frames> <label>', got {text!r}")
        folder, nf, lab = parts
        try:
            num_frames, label = int(nf), int(lab)
        except ValueError:
            raise AnnotationError(path, line, f"<num_frames> and <label> must be integers, got {nf!r} {lab!r}") from None
        comps = folder.split("/")
        m = _CLIP.match(comps[-1]) if len(comps) >= 2 else None
        if m is None or not comps[-2]:
            raise AnnotationError(
                path, line, f"folder {folder!r} is not '<...>/<class>/<youtube_id>_<start:06d>_<end:06d>'"
            )
        if label < 0:
            raise AnnotationError(path, line, f"negative label {label}")
        key = (m.group(1), int(m.group(2)), int(m.group(3)))
        if key in seen:
            raise AnnotationError(path, line, f"clip {comps[-1]} already listed at line {seen[key]}")
        seen[key] = line
        out.append((line, {"class": comps[-2], "youtube_id": key[0], "time_start": key[1], "time_end": key[2],
                           "num_frames": num_frames, "label": label}))  # fmt: skip
    return out


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
        train_csv / val_csv / test_csv: annotation files: as given (absolute, or relative to the
            working directory), else under ``root`` or ``root/annotations``. ``None`` (train / val):
            found in ``root`` under the release's names (``[annotations/]train.csv``,
            ``[annotations/]val.csv`` or DeepMind's ``validate.csv``). ``test_csv=None`` tests on
            the validation list (Kinetics results are reported on val); ``test_csv="test.csv"``
            finds DeepMind's test list in either folder.
        subset: ``None`` (all classes), ``"kinetics-sounds"``, ``"custom"`` (classes of
            ``subset_classes_file``) or ``"mini"`` (Mini-Kinetics from its official list files).
        subset_classes_file: text file, one class name per line (for ``subset="custom"``).
        mini_kinetics_dir: folder holding the Mini-Kinetics list files (for ``subset="mini"``).
        mini_kinetics_split: ``"arnet"`` (the AR-Net split used by the theses: 200 classes, 9,867
            validation videos in the release, 131,082 in all per the thesis) or ``"s3d"`` (Xie et
            al.'s Mini-Kinetics-200, 80k + 5k); file names and line formats in the module docstring.
        mini_kinetics_missing: a listed video absent from the CSV: ``"error"`` (raise, naming the
            list file and line) or ``"skip"`` (dropped, counted in ``self.mini_kinetics_missing``,
            warned).
        missing_videos: ``"error"`` or ``"skip"`` (drop annotation rows whose video is absent,
            with a warning giving the count).
        audio_format: ``"logmel"`` (default: the clip front end) or ``"waveform"``: ``audio`` (and
            ``audio_shifted``) are raw mono windows of ``audio_waveform_sec`` seconds at
            ``audio_sample_rate`` (``B,S``; Multisensory's raw-waveform subnet and its shifted-audio
            negatives); clips without audio must then be skipped or raise (``missing_audio``).
        audio_waveform_sec: the waveform window (s) of ``audio_format="waveform"``.
        **kwargs: the clip settings of :class:`~mmzoo.data.clips.ClipDataModule` (frames,
            stride, ``alpha``, scales, crops, test views (default 10 x 3, as in the thesis), audio
            front end, missing-audio / corrupt-video policies) and the loader settings of
            :class:`~mmzoo.data.base.ZooDataModule` (``batch_size``, ``num_workers``, ...).
    """

    model_links = ("num_classes",)

    def __init__(
        self,
        root: str,
        version: Literal["400", "600", "any"] = "400",
        train_csv: Optional[str] = None,
        val_csv: Optional[str] = None,
        test_csv: Optional[str] = None,
        subset: Optional[Literal["kinetics-sounds", "custom", "mini"]] = None,
        subset_classes_file: Optional[str] = None,
        mini_kinetics_dir: Optional[str] = None,
        mini_kinetics_split: Literal["arnet", "s3d"] = "arnet",
        mini_kinetics_missing: Literal["error", "skip"] = "error",
        missing_videos: Literal["error", "skip"] = "error",
        audio_format: Literal["logmel", "waveform"] = "logmel",
        audio_waveform_sec: float = 1.0,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if audio_format not in ("logmel", "waveform"):
            raise ValueError(f"{flag('audio_format')} must be 'logmel' or 'waveform', got {audio_format!r}")
        if audio_format == "waveform" and self.train_cfg.missing_audio == "zeros":
            raise ValueError(f"{flag('audio_format')} waveform needs {flag('missing_audio')} skip or error "
                             "(clips without audio cannot be zero-filled as waveforms here)")
        self.audio_format = audio_format
        self.audio_waveform_sec = float(audio_waveform_sec)
        self.root = Path(root)
        self.version = version
        self.csvs = {"train": train_csv, "val": val_csv, "test": test_csv if test_csv is not None else val_csv}
        self.subset = subset
        self.subset_classes_file = subset_classes_file
        if subset == "custom" and not subset_classes_file:
            raise ValueError(f"subset='custom' needs {flag('subset_classes_file')} (one class name per line)")
        if subset == "mini" and not mini_kinetics_dir:
            raise ValueError(f"subset='mini' needs {flag('mini_kinetics_dir')} (the folder of the official list files)")
        if mini_kinetics_split not in MINI_KINETICS_FILES:
            raise ValueError(f"{flag('mini_kinetics_split')} must be one of {sorted(MINI_KINETICS_FILES)}, got {mini_kinetics_split!r}")
        if mini_kinetics_missing not in ("error", "skip"):
            raise ValueError(f"{flag('mini_kinetics_missing')} must be 'error' or 'skip', got {mini_kinetics_missing!r}")
        self._mini_kinetics_dir_arg = mini_kinetics_dir
        self.mini_kinetics_dir: Path | None = None  # resolved by _validate_layout
        self.mini_kinetics_split = mini_kinetics_split
        self.mini_kinetics_missing_policy = mini_kinetics_missing
        self.mini_kinetics_missing: list[str] = []
        self._test_on_val = test_csv is None
        self._mini: dict[str, list[tuple[str, int, dict]]] = {}
        if missing_videos not in ("error", "skip"):
            raise ValueError(f"{flag('missing_videos')} must be 'error' or 'skip', got {missing_videos!r}")
        self.missing_videos_policy = missing_videos
        self.train_split, self.val_split, self.test_split = "train", "val", "test"
        self.classes: list[str] | None = None
        self.missing_videos: list[str] = []
        self._index: dict[str, dict[str, list[Path]]] = {}
        self._rows: dict[str, list[tuple[str, int, dict]]] = {}
        self._csv_paths: dict[str, Path] = {}

    @classmethod
    def defaults_from_input(cls, cfg: Any) -> dict[str, Any]:
        """The clip defaults, plus ``audio_format="waveform"`` (rate, length, ``missing_audio="skip"``)
        for a model whose audio input is a raw waveform."""
        from mmzoo.data.audio_clips import clip_waveform_defaults

        waveform = clip_waveform_defaults(cfg)
        if waveform:
            waveform["missing_audio"] = "skip"  # zeros cannot stand in for a waveform (see __init__)
        return {**super().defaults_from_input(cfg), **waveform}

    def logmel(self):
        """The audio front end: a log-mel, or the raw-waveform window of ``audio_format="waveform"``."""
        if self.train_cfg.with_audio and self.audio_format == "waveform":
            from mmzoo.data.audio_clips import Waveform

            return Waveform(self.train_cfg.audio_sample_rate, self.audio_waveform_sec)
        return super().logmel()

    # ------------------------------------------------------------------ layout
    def _csv_path(self, split: str) -> Path:
        """The annotation file of ``split`` (see ``train_csv``); :class:`LayoutError` naming the flag."""
        if split == "test" and self._test_on_val:
            split = "val"
        if split not in self._csv_paths:
            self._csv_paths[split] = find_path(
                f"{split}_csv", self.csvs[split], self.root, defaults=DEFAULT_CSVS.get(split, ()),
                under=("", "annotations"), what=f"Kinetics {split} annotation file",
            )
        return self._csv_paths[split]

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
        if self.subset == "mini":
            return self._mini_classes()
        if self.subset == "kinetics-sounds":
            wanted = list(KINETICS_SOUNDS_CLASSES)
            source = "Kinetics-Sounds (AVSlowFast thesis, ch. 4)"
        else:
            f = find_path("subset_classes_file", self.subset_classes_file, self.root, what="class list")
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

    # ------------------------------------------------------------------ Mini-Kinetics
    def _mini_list_path(self, split: str) -> Path:
        train_f, val_f, _ = MINI_KINETICS_FILES[self.mini_kinetics_split]
        return self.mini_kinetics_dir / (train_f if split == "train" else val_f)

    def _mini_rows(self, split: str) -> list[tuple[str, int, dict]]:
        """The CSV rows of the videos listed for ``split`` (``"train"`` / ``"val"``), in list order;
        each row also carries ``mini_list`` / ``mini_line`` (and ``mini_label`` for ARNet)."""
        if split in self._mini:
            return self._mini[split]
        lpath = self._mini_list_path(split)
        csv_rows = self._read_csv(split)
        csv_path = self._csv_path(split)
        out, missing = [], []
        if self.mini_kinetics_split == "s3d":
            by_id: dict[str, list[tuple[str, int, dict]]] = {}
            for r in csv_rows:
                by_id.setdefault(r[2]["youtube_id"], []).append(r)
            for ln, yid in read_mini_kinetics_s3d_list(lpath):
                hits = by_id.get(yid, [])
                if not hits:
                    missing.append((ln, f"{lpath}:{ln}: youtube_id {yid}"))
                    continue
                if len(hits) > 1:
                    raise AnnotationError(
                        lpath, ln, f"youtube_id {yid} is ambiguous: lines {[h[1] for h in hits]} of {csv_path}"
                    )
                path, line, row = hits[0]
                out.append((path, line, {**row, "mini_list": str(lpath), "mini_line": ln}))
        else:
            by_key = {(r[2]["youtube_id"], int(r[2]["time_start"]), int(r[2]["time_end"])): r for r in csv_rows}
            for ln, e in read_mini_kinetics_arnet_list(lpath):
                hit = by_key.get((e["youtube_id"], e["time_start"], e["time_end"]))
                if hit is None:
                    name = kinetics_clip_name(e["youtube_id"], e["time_start"], e["time_end"])
                    missing.append((ln, f"{lpath}:{ln}: {e['class']}/{name}"))
                    continue
                path, line, row = hit
                if row.get("label", "") != e["class"]:
                    raise AnnotationError(
                        lpath, ln, f"class folder {e['class']!r}, but {path}:{line} labels the clip {row.get('label', '')!r}"
                    )
                out.append((path, line, {**row, "mini_list": str(lpath), "mini_line": ln, "mini_label": e["label"]}))
        if missing:
            if self.mini_kinetics_missing_policy == "error":
                raise AnnotationError(
                    lpath, missing[0][0],
                    f"{len(missing)} listed video(s) are not in {csv_path}, e.g. " + "; ".join(m for _, m in missing[:5])
                    + " (mini_kinetics_missing='skip' drops them with a warning)",
                )
            msg = f"[kinetics] Mini-Kinetics {split}: {len(missing)} listed video(s) not in {csv_path}, skipped, e.g. {missing[0][1]}"
            log.warning(msg)
            warnings.warn(msg, stacklevel=2)
            self.mini_kinetics_missing.extend(m for _, m in missing)
        if not out:
            raise AnnotationError(lpath, None, f"none of the listed videos is in {csv_path}")
        self._mini[split] = out
        return out

    def _mini_classes(self) -> list[str]:
        """S3D: sorted labels of the listed training videos. ARNet: class ``i`` is the folder of the
        entries labelled ``i`` (checked against ``minik_classInd.txt`` when present)."""
        rows = self._mini_rows("train")
        lpath = self._mini_list_path("train")
        if self.mini_kinetics_split == "s3d":
            classes = sorted({r[2]["label"] for r in rows})
        else:
            by_label: dict[int, tuple[str, int]] = {}
            by_class: dict[str, int] = {}
            for _, _, r in rows:
                lab, cls, ln = r["mini_label"], r["label"], r["mini_line"]
                if by_label.setdefault(lab, (cls, ln))[0] != cls:
                    raise AnnotationError(lpath, ln, f"label {lab} is {by_label[lab][0]!r} at line {by_label[lab][1]}, here {cls!r}")
                if by_class.setdefault(cls, lab) != lab:
                    raise AnnotationError(lpath, ln, f"class {cls!r} has label {by_class[cls]} elsewhere, here {lab}")
            n = len(by_label)
            if sorted(by_label) != list(range(n)):
                absent = sorted(set(range(max(by_label) + 1)) - set(by_label))[:10]
                raise AnnotationError(lpath, None, f"labels are not 0..{n - 1}: no entry for label(s) {absent}")
            classes = [by_label[i][0] for i in range(n)]
            class_file = MINI_KINETICS_FILES["arnet"][2]
            cpath = self.mini_kinetics_dir / class_file
            if cpath.is_file():
                names = [t.strip() for _, t in _list_lines(cpath)]
                if len(names) != n:
                    raise AnnotationError(cpath, None, f"{len(names)} classes, the training list uses {n}")
                for i, (a, b) in enumerate(zip(names, classes)):
                    if a != b:
                        raise AnnotationError(cpath, i + 1, f"class {i} is {a!r}, the training list labels {b!r} as {i}")
        if self.version != "any" and len(classes) != 200:
            raise AnnotationError(
                lpath, None, f"Mini-Kinetics has 200 classes, the list gives {len(classes)} (pass version='any' otherwise)"
            )
        return classes

    def _split_rows(self, split: str) -> list[tuple[str, int, dict]]:
        if self.subset == "mini" and (split in ("train", "val") or (split == "test" and self._test_on_val)):
            return self._mini_rows("train" if split == "train" else "val")
        return self._read_csv(split)

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
            raise LayoutError(f"Kinetics root not found: {self.root} ({flag('root')})")
        for split in ("train", "val", "test"):
            self._csv_path(split)
        if self.subset == "mini" and self.mini_kinetics_dir is None:
            self.mini_kinetics_dir = find_path("mini_kinetics_dir", self._mini_kinetics_dir_arg, self.root,
                                               kind="dir", what="Mini-Kinetics list folder")
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
        for path, line, row in self._split_rows(split):
            label = row.get("label", "")
            if "mini_list" in row and label not in index:
                raise AnnotationError(
                    row["mini_list"], row["mini_line"],
                    f"{row['youtube_id']} ({path}:{line}) has label {label!r}, not a class of the training list",
                )
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
            meta = {"youtube_id": row["youtube_id"], "time_start": row["time_start"],
                    "time_end": row["time_end"], "csv": path, "line": line}  # fmt: skip
            if "mini_list" in row:
                if "mini_label" in row and row["mini_label"] != target:
                    raise AnnotationError(
                        row["mini_list"], row["mini_line"],
                        f"label {row['mini_label']} for {label!r}, which is label {target} in the training list",
                    )
                meta.update(list=row["mini_list"], list_line=row["mini_line"])
            records.append(VideoRecord(targets={"label": target}, meta=meta, video=str(video)))
        report_missing(self, missing, f"the {split} split", split)
        if not records:
            raise LayoutError(f"no video found for the {split} split ({self._csv_path(split)})")
        return records
