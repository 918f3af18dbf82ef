"""HMDB51 (Kuehne et al., ICCV 2011) as a DataModule, read as the authors distribute it.

Layout read (``root``; ``hmdb51_org.rar`` with its per-class archives extracted, and
``test_train_splits.rar``)::

    root/<class>/<video>.avi                                  51 class folders
    root/testTrainMulti_7030_splits/<class>_test_split{1,2,3}.txt
        "<video>.avi 1"   1 = training, 2 = testing, 0 = not used in this split

``video_dir`` / ``splits_dir`` override the two folders (as given, else under ``root``). The
classes are the 51 ``<class>`` prefixes of the split files in sorted order (labels 0..50; the
order of the usual HMDB51 class index). Every class needs its three split files; a line that is not
``<video>.avi <0|1|2>``, a video listed twice in one file or in two classes, and a split file whose
class has no folder are :class:`AnnotationError` s naming the file and line. Each split has 70
training and 30 test videos per class in the release; the DataModule does not require it (a tiny
synthetic copy has fewer) but ``strict_counts=True`` checks it.

Splits: ``split`` = 1, 2 or 3; no validation list exists: validation during ``fit`` uses the test
videos of the split (as for UCF101). Report per split and the mean over the three
(``mmzoo.transfer.summarise_splits``).

Batch fields: those of :class:`~mmzoo.data.clips.ClipDataModule` (``video``, ``audio`` with
``with_audio``, ``has_audio``), ``label`` (0..50), ``video_index`` (views of one test video share
it), ``meta`` (``list`` / ``line`` of the split file, ``video_id``).

Missing videos raise with the count and the first paths unless ``missing_videos="skip"``.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from mmzoo.data.paths import find_path, flag, report_missing
from mmzoo.data.registry import register_datamodule
from mmzoo.data.split_lists import SplitListDataModule
from mmzoo.data.video_dataset import AnnotationError, LayoutError, VideoRecord

__all__ = ["HMDB51DataModule", "hmdb_split_files", "read_hmdb_split"]

_SPLIT_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<split>[123])\.txt$")
_ROLES = {"0": "unused", "1": "train", "2": "test"}


def hmdb_split_files(splits_dir: str | Path) -> dict[int, dict[str, Path]]:
    """split number -> class name -> split file, from the file names of ``splits_dir``."""
    out: dict[int, dict[str, Path]] = {1: {}, 2: {}, 3: {}}
    for p in sorted(Path(splits_dir).iterdir()):
        m = _SPLIT_FILE.match(p.name)
        if m and p.is_file():
            out[int(m.group("split"))][m.group("cls")] = p
    return out


def read_hmdb_split(path: str | Path) -> list[tuple[int, str, str]]:
    """One ``<class>_test_split<k>.txt`` -> ``(line, video file name, "train"|"test"|"unused")``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise AnnotationError(path, None, f"not UTF-8 text ({err})") from None
    out, seen = [], {}
    for i, raw in enumerate(text.splitlines()):
        line, s = i + 1, raw.strip()
        if not s:
            continue
        parts = s.split()
        if len(parts) != 2:
            raise AnnotationError(path, line, f"expected '<video>.avi <0|1|2>', got {s!r}")
        name, role = parts
        if not name.endswith(".avi"):
            raise AnnotationError(path, line, f"video name {name!r} is not an .avi file")
        if role not in _ROLES:
            raise AnnotationError(path, line, f"split id {role!r} is not 0 (unused), 1 (train) or 2 (test)")
        if name in seen:
            raise AnnotationError(path, line, f"{name} already listed on line {seen[name]}")
        seen[name] = line
        out.append((line, name, _ROLES[role]))
    if not out:
        raise AnnotationError(path, None, "no videos listed")
    return out


@register_datamodule("hmdb51")
class HMDB51DataModule(SplitListDataModule):
    """HMDB51 split 1, 2 or 3 (module docstring for the layout and batch fields).

    ``mmzoo fit`` links ``num_classes`` (51) to the model's ``num_classes``.

    Args:
        root: dataset folder holding the class folders and ``testTrainMulti_7030_splits/``.
        split: official split 1, 2 or 3.
        video_dir: the folder of the class folders (default ``root``).
        splits_dir: the folder of the split files (default ``root/testTrainMulti_7030_splits``).
        strict_counts: check the release's 70 training / 30 test videos per class and split.
        missing_videos: ``"error"`` or ``"skip"`` (drop listed videos that are absent, warned and
            counted in ``self.missing_videos``).
        **kwargs: the clip settings of :class:`~mmzoo.data.clips.ClipDataModule` and the loader
            settings of :class:`~mmzoo.data.base.ZooDataModule`.
    """

    def __init__(
        self,
        root: str,
        split: int = 1,
        video_dir: str | None = None,
        splits_dir: str | None = None,
        strict_counts: bool = False,
        missing_videos: Literal["error", "skip"] = "error",
        **kwargs: Any,
    ) -> None:
        super().__init__(root, split, video_dir, splits_dir, missing_videos, **kwargs)
        self.strict_counts = strict_counts
        self._rows: dict[str, list[tuple[str, int, str, int]]] | None = None

    def _validate_layout(self) -> None:
        if not self.root.is_dir():
            raise LayoutError(f"HMDB51 root not found: {self.root} ({flag('root')})")
        if self.splits_dir is None:
            self.splits_dir = find_path("splits_dir", self._splits_dir_arg, self.root,
                                        defaults=("testTrainMulti_7030_splits",), kind="dir",
                                        what="HMDB51 split folder (testTrainMulti_7030_splits)")
        if self.video_dir is None:
            self.video_dir = find_path("video_dir", self._video_dir_arg, self.root, defaults=(".",), kind="dir",
                                       what="HMDB51 video folder")
        if self.classes is None:
            files = hmdb_split_files(self.splits_dir)
            classes = sorted(set().union(*(set(f) for f in files.values())))
            if not classes:
                raise LayoutError(f"no <class>_test_split<k>.txt file in {self.splits_dir}")
            for k, by_class in files.items():
                absent = [c for c in classes if c not in by_class]
                if absent:
                    raise LayoutError(f"HMDB51 split {k} has no file for class(es) {absent[:5]} in {self.splits_dir} "
                                      f"(expected {absent[0]}_test_split{k}.txt)")
            for c in classes:
                if not (self.video_dir / c).is_dir():
                    raise LayoutError(f"{files[self.split][c]}: class folder {self.video_dir / c} not found")
            self.classes = classes
            self._rows = self._read_split(files[self.split])

    def _read_split(self, by_class: dict[str, Path]) -> dict[str, list[tuple[str, int, str, int]]]:
        rows: dict[str, list[tuple[str, int, str, int]]] = {"train": [], "test": []}
        owner: dict[str, tuple[Path, int]] = {}
        for label, cls in enumerate(self.classes):
            path = by_class[cls]
            counts = {"train": 0, "test": 0}
            for line, name, role in read_hmdb_split(path):
                if name in owner:
                    p0, l0 = owner[name]
                    raise AnnotationError(path, line, f"{name} is also listed in {p0}:{l0}")
                owner[name] = (path, line)
                if role == "unused":
                    continue
                counts[role] += 1
                rows[role].append((str(path), line, f"{cls}/{name}", label))
            if self.strict_counts and (counts["train"], counts["test"]) != (70, 30):
                raise AnnotationError(path, None, f"{counts['train']} training / {counts['test']} test videos; "
                                      "the release has 70 / 30 per class and split")
        return rows

    def _records(self, split: str) -> list[VideoRecord]:
        records, missing = [], []
        for path, line, rel, label in self._rows[split]:
            video = self.video_dir / rel
            if not video.is_file():
                missing.append(f"{path}:{line}: {video}")
                continue
            meta = {"list": path, "line": line, "video_id": rel}
            records.append(VideoRecord(targets={"label": label}, meta=meta, video=str(video)))
        report_missing(self, missing, f"HMDB51 split {self.split} ({split})", split, "listed")
        if not records:
            raise LayoutError(f"no {split} video of HMDB51 split {self.split} found under {self.video_dir}")
        return records
