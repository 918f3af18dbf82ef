"""UCF101 (Soomro, Zamir, Shah, 2012) as a DataModule, read as the authors distribute it.

Layout read (``root``; the two archives of the release, ``UCF101.rar`` and
``UCF101TrainTestSplits-RecognitionTask.zip``, extracted side by side)::

    root/UCF-101/<Class>/v_<Class>_g<GG>_c<CC>.avi
    root/ucfTrainTestlist/classInd.txt       "1 ApplyEyeMakeup" ... "101 YoYo" (1-based)
    root/ucfTrainTestlist/trainlist0{1,2,3}.txt   "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1"
    root/ucfTrainTestlist/testlist0{1,2,3}.txt    "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"

``video_dir`` / ``splits_dir`` override the two folders (as given, else under ``root``). The
release's list files have Windows line ends; they are read as such. Labels are ``classInd`` index
- 1 (0..100). A train-list label must equal the ``classInd`` index of the video's folder; the
test lists carry no label, which is taken from the folder. File names keep the release's
spelling (``HandstandPushups/v_HandStandPushups_g01_c01.avi``): the class in the file name is
compared with the folder case-insensitively. A video listed twice, or in both the train and the
test list of a split (the splits separate the 25 groups: test groups 1-7, 8-14, 15-21), is an
:class:`AnnotationError` naming the file and line.

Splits: ``split`` = 1, 2 or 3. UCF101 has no validation list; validation during ``fit`` uses the
test list of the split (``val_num_clips`` x ``val_num_crops`` views, 1 x 1 by default), as the
literature reports the test accuracy of the last epoch. Results are reported per split and as
the mean over the three (``mmzoo.transfer.summarise_splits``).

Batch fields: those of :class:`~mmzoo.data.clips.ClipDataModule` (``video``, ``audio`` with
``with_audio``, ``has_audio``: about half of UCF101's videos have no audio stream and get zero
log-mels, counted, unless ``missing_audio`` says otherwise), ``label`` (0..100),
``video_index`` (test views of one video share it: clip- and video-level accuracy), ``meta``
(``list`` / ``line`` of the annotation, ``group``, ``clip``).

Missing videos raise with the count and the first paths unless ``missing_videos="skip"`` (dropped,
counted in ``self.missing_videos``, warned).
"""
from __future__ import annotations

import re
from pathlib import Path

from mmzoo.data.paths import find_path, flag, report_missing
from mmzoo.data.registry import register_datamodule
from mmzoo.data.split_lists import SplitListDataModule
from mmzoo.data.video_dataset import AnnotationError, LayoutError, VideoRecord

__all__ = ["UCF101_NAME", "UCF101DataModule", "read_class_index", "read_ucf_list"]

UCF101_NAME = re.compile(r"^v_(?P<cls>[A-Za-z]+)_g(?P<group>\d{2})_c(?P<clip>\d{2})\.avi$")


def _lines(path: Path) -> list[tuple[int, str]]:
    """(1-based line number, stripped text) of the non-blank lines (CRLF or LF)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise AnnotationError(path, None, f"not UTF-8 text ({err})") from None
    return [(i + 1, ln.strip()) for i, ln in enumerate(text.splitlines()) if ln.strip()]


def read_class_index(path: str | Path) -> list[str]:
    """``classInd.txt`` -> class names in index order; indices must run 1..N without gaps."""
    path = Path(path)
    names: list[str] = []
    for line, text in _lines(path):
        parts = text.split()
        if len(parts) != 2:
            raise AnnotationError(path, line, f"expected '<index> <ClassName>', got {text!r}")
        try:
            idx = int(parts[0])
        except ValueError:
            raise AnnotationError(path, line, f"class index {parts[0]!r} is not an integer") from None
        if idx != len(names) + 1:
            raise AnnotationError(path, line, f"class index {idx}, expected {len(names) + 1} (indices run 1..N in order)")
        if parts[1] in names:
            raise AnnotationError(path, line, f"class {parts[1]!r} listed twice")
        names.append(parts[1])
    if not names:
        raise AnnotationError(path, None, "no classes")
    return names


def read_ucf_list(path: str | Path, classes: list[str], with_label: bool) -> list[tuple[int, str, int]]:
    """A train or test list -> ``(line, "Class/v_Class_gXX_cYY.avi", label 0-based)``.

    Checks the path shape, the folder class, the file-name class (case-insensitive), the label
    of train lists against ``classInd`` and duplicates; errors name the file and line."""
    path = Path(path)
    index = {c: i for i, c in enumerate(classes)}
    seen: dict[str, int] = {}
    out = []
    for line, text in _lines(path):
        parts = text.split()
        if len(parts) != (2 if with_label else 1):
            want = "'<Class>/<video>.avi <label>'" if with_label else "'<Class>/<video>.avi'"
            raise AnnotationError(path, line, f"expected {want}, got {text!r}")
        rel = parts[0].replace("\\", "/")
        folder, _, name = rel.rpartition("/")
        if not folder or "/" in folder:
            raise AnnotationError(path, line, f"expected '<Class>/<video>.avi', got {rel!r}")
        if folder not in index:
            raise AnnotationError(path, line, f"class folder {folder!r} is not in classInd.txt")
        m = UCF101_NAME.match(name)
        if m is None:
            raise AnnotationError(path, line, f"video name {name!r} does not match v_<Class>_gXX_cYY.avi")
        if m.group("cls").lower() != folder.lower():
            raise AnnotationError(path, line, f"video {name!r} is filed under class {folder!r}")
        label = index[folder]
        if with_label:
            try:
                given = int(parts[1])
            except ValueError:
                raise AnnotationError(path, line, f"label {parts[1]!r} is not an integer") from None
            if given != label + 1:
                raise AnnotationError(path, line, f"label {given}, but classInd.txt gives {folder!r} index {label + 1}")
        if rel in seen:
            raise AnnotationError(path, line, f"{rel} already listed on line {seen[rel]}")
        seen[rel] = line
        out.append((line, rel, label))
    if not out:
        raise AnnotationError(path, None, "no videos listed")
    return out


@register_datamodule("ucf101")
class UCF101DataModule(SplitListDataModule):
    """UCF101 split 1, 2 or 3 (module docstring for the layout and batch fields).

    ``mmzoo fit`` links ``num_classes`` (101) to the model's ``num_classes``. Arguments: those of
    :class:`~mmzoo.data.split_lists.SplitListDataModule`; ``root`` holds ``UCF-101/`` and
    ``ucfTrainTestlist/``, ``video_dir`` defaults to ``root/UCF-101`` (else ``root``),
    ``splits_dir`` (``classInd.txt`` and the lists) to ``root/ucfTrainTestlist``.
    """

    def _validate_layout(self) -> None:
        if not self.root.is_dir():
            raise LayoutError(f"UCF101 root not found: {self.root} ({flag('root')})")
        if self.splits_dir is None:
            self.splits_dir = find_path("splits_dir", self._splits_dir_arg, self.root, defaults=("ucfTrainTestlist",),
                                        kind="dir", what="UCF101 split folder (ucfTrainTestlist)")
        if self.video_dir is None:
            self.video_dir = find_path("video_dir", self._video_dir_arg, self.root, defaults=("UCF-101", "."),
                                       kind="dir", what="UCF101 video folder")
        for name in ("classInd.txt", f"trainlist0{self.split}.txt", f"testlist0{self.split}.txt"):
            if not (self.splits_dir / name).is_file():
                raise LayoutError(f"UCF101 split file not found: {self.splits_dir / name}")
        if self.classes is None:
            self.classes = read_class_index(self.splits_dir / "classInd.txt")

    def _list(self, which: str) -> tuple[Path, list[tuple[int, str, int]]]:
        path = self.splits_dir / f"{which}list0{self.split}.txt"
        return path, read_ucf_list(path, self.classes, with_label=which == "train")

    def _records(self, split: str) -> list[VideoRecord]:
        path, rows = self._list(split)
        other_path, other = self._list("test" if split == "train" else "train")
        where = {rel: line for line, rel, _ in other}
        for line, rel, _ in rows:
            if rel in where:
                raise AnnotationError(path, line, f"{rel} is also in {other_path.name} (line {where[rel]}): "
                                      f"split {self.split}'s train and test lists must be disjoint")
        records, missing = [], []
        for line, rel, label in rows:
            video = self.video_dir / rel
            if not video.is_file():
                missing.append(f"{path}:{line}: {video}")
                continue
            m = UCF101_NAME.match(rel.rpartition("/")[2])
            meta = {"list": str(path), "line": line, "video_id": rel, "group": int(m.group("group")),
                    "clip": int(m.group("clip"))}
            records.append(VideoRecord(targets={"label": label}, meta=meta, video=str(video)))
        report_missing(self, missing, f"UCF101 {split}list0{self.split}", split, "listed")
        if not records:
            raise LayoutError(f"no video of {path} found under {self.video_dir}")
        return records
