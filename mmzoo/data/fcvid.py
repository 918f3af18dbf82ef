"""FCVID (Fudan-Columbia Video Dataset) as a DataModule (PSN thesis, ch. 5: 91,223 videos, 239
classes, 45,611 train / 45,612 test, average 167 s, decoded at 1 fps, mAP).

Layout read (``root``), as the dataset is distributed (videos in one folder per category, the
``materials`` of the release)::

    root/materials/FCVID_VideoName_TrainTestSplit.txt   <category>/<video>.<ext> train|test
    root/materials/FCVID_Label.txt                      one line per line of the split file:
                                                        K whitespace-separated 0/1 labels
    root/FCVID/<category>/<video>.<ext>                 (the video folder: ``video_dir``; found as
                                                        root/FCVID, root/videos or root)

Line ``i`` of ``FCVID_Label.txt`` gives the classes of the video on line ``i`` of the split file
(FCVID is multi-label: a video may have several classes); ``K`` (239) is the number of columns.
Class names are optional: ``category_file`` names a text file with one name per line (line ``i`` =
class ``i``). Every line is checked (field count, 0/1 values, split name, a label line per
video); errors name the file and line.

Batch fields: as :mod:`mmzoo.data.activitynet` (``video_id`` is the split file's relative path
without extension).

Missing videos raise unless ``missing_videos="skip"`` (dropped, counted in
``self.missing_videos``, warned); undecodable ones follow ``skip_corrupt``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

from mmzoo.data.paths import find_path, flag, report_missing
from mmzoo.data.registry import register_datamodule
from mmzoo.data.untrimmed import UntrimmedDataModule
from mmzoo.data.video_dataset import AnnotationError, LayoutError, VideoRecord

__all__ = ["LABEL_FILE", "SPLIT_FILE", "FCVIDDataModule", "read_fcvid_labels", "read_fcvid_split"]


SPLIT_FILE = "materials/FCVID_VideoName_TrainTestSplit.txt"
LABEL_FILE = "materials/FCVID_Label.txt"


def _lines(path: Path) -> list[tuple[int, str]]:
    out = [(i, t.strip()) for i, t in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)]
    out = [(i, t) for i, t in out if t]
    if not out:
        raise AnnotationError(path, None, "empty file")
    return out


def read_fcvid_split(path: Path) -> list[tuple[int, str, str]]:
    """``(line, relative video path, "train" | "test")`` of the split file."""
    out, seen = [], {}
    for line, text in _lines(path):
        parts = text.rsplit(None, 1)
        if len(parts) != 2 or parts[1] not in ("train", "test"):
            raise AnnotationError(path, line, f"expected '<category>/<video> train|test', got {text!r}")
        rel = parts[0].replace("\\", "/")
        if rel in seen:
            raise AnnotationError(path, line, f"{rel} already listed at line {seen[rel]}")
        seen[rel] = line
        out.append((line, rel, parts[1]))
    return out


def read_fcvid_labels(path: Path) -> list[tuple[int, list[int]]]:
    """``(line, classes)`` of the label matrix (0/1 per column); every line has the same width."""
    out, width = [], None
    for line, text in _lines(path):
        fields = text.split()
        try:
            values = [float(x) for x in fields]
        except ValueError:
            raise AnnotationError(path, line, f"non-numeric label in {text[:80]!r}") from None
        if any(v not in (0.0, 1.0) for v in values):
            raise AnnotationError(path, line, "labels must be 0 or 1")
        if width is None:
            width = len(values)
        elif len(values) != width:
            raise AnnotationError(path, line, f"{len(values)} labels, the first line has {width}")
        out.append((line, [i for i, v in enumerate(values) if v == 1.0]))
    return out


@register_datamodule("fcvid")
class FCVIDDataModule(UntrimmedDataModule):
    """FCVID (module docstring). ``num_classes`` (the label file's width) is linked to the model's.

    Args:
        root: dataset folder.
        split_file / label_file: the release's ``materials`` files (under ``root`` or as given).
        category_file: optional class names, one per line.
        video_dir: the category folders' parent; None: ``root/FCVID``, ``root/videos`` or ``root``.
        val_split: split used for validation during training (``"test"``; FCVID has no
            validation split).
        missing_videos: ``"error"`` or ``"skip"``.
        **kwargs: :class:`~mmzoo.data.untrimmed.UntrimmedDataModule` settings and loader settings.
    """

    def __init__(
        self,
        root: str,
        split_file: str = SPLIT_FILE,
        label_file: str = LABEL_FILE,
        category_file: Optional[str] = None,
        video_dir: Optional[str] = None,
        val_split: Optional[Literal["train", "test"]] = "test",
        missing_videos: Literal["error", "skip"] = "error",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if missing_videos not in ("error", "skip"):
            raise ValueError(f"{flag('missing_videos')} must be 'error' or 'skip', got {missing_videos!r}")
        self.root = Path(root)
        self.split_file, self.label_file, self.category_file = split_file, label_file, category_file
        self.video_dir_arg = video_dir
        self.train_split, self.val_split, self.test_split = "train", val_split, "test"
        self.missing_videos_policy = missing_videos
        self.missing_videos: list[str] = []
        self.classes: Optional[list[str]] = None
        self._rows: Optional[list[tuple[int, str, str, list[int]]]] = None

    def _validate_layout(self) -> None:
        if self._rows is not None:
            return
        if not self.root.is_dir():
            raise LayoutError(f"FCVID root not found: {self.root} ({flag('root')})")
        self._split_path = find_path("split_file", self.split_file, self.root, what="FCVID split file")
        self._label_path = find_path("label_file", self.label_file, self.root, what="FCVID label file")
        split = read_fcvid_split(self._split_path)
        labels = read_fcvid_labels(self._label_path)
        if len(labels) != len(split):
            raise AnnotationError(self._label_path, None,
                                  f"{len(labels)} label lines for the {len(split)} videos of {self._split_path}")
        width = len(_lines(self._label_path)[0][1].split())
        if self.category_file is not None:
            cpath = find_path("category_file", self.category_file, self.root, under=("", "materials"),
                              what="FCVID category file")
            names = [t for _, t in _lines(cpath)]
            if len(names) != width:
                raise AnnotationError(cpath, None, f"{len(names)} categories, {self._label_path} has {width} columns")
            self.classes = names
        else:
            self.classes = [str(i) for i in range(width)]
        if self.video_dir_arg is not None:
            self._video_dir = find_path("video_dir", self.video_dir_arg, self.root, kind="dir", what="FCVID video folder")
        else:
            self._video_dir = next((self.root / d for d in ("FCVID", "videos") if (self.root / d).is_dir()), self.root)
        self._rows = [(line, rel, sp, cls) for (line, rel, sp), (_, cls) in zip(split, labels)]

    @property
    def num_classes(self) -> int:
        if self.classes is None:
            self._validate_layout()
        return len(self.classes)

    def _records(self, split: str) -> list[VideoRecord]:
        self._validate_layout()
        records, missing = [], []
        for line, rel, sp, classes in self._rows:
            if sp != split:
                continue
            path = self._video_dir / rel
            if not path.is_file():
                missing.append(f"{self._split_path}:{line}: {path}")
                continue
            meta = {"video_id": rel.rsplit(".", 1)[0], "classes": classes, "list": str(self._split_path), "line": line}
            records.append(VideoRecord(targets={"label": classes[0] if classes else -1}, meta=meta, video=str(path)))
        report_missing(self, missing, f"the FCVID {split} split", split, "listed")
        if not records:
            raise LayoutError(f"no video of the FCVID {split} split found under {self._video_dir}")
        return records
