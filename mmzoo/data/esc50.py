"""ESC-50 (Piczak, ACM MM 2015) and its ESC-10 subset as a DataModule, read as distributed.

Layout read (``root``: the extracted ``ESC-50-master`` of the GitHub release)::

    root/meta/esc50.csv     filename,fold,target,category,esc10,src_file,take
                            1-100032-A-0.wav,1,0,dog,True,100032,A
    root/audio/<fold>-<src_file>-<take>-<target>.wav     5 s, 44.1 kHz, mono

2000 clips, 50 classes (``target`` 0..49, ``category`` its name), 5 folds of 400 prepared by the
author so that clips cut from one recording stay in one fold. ``esc10`` marks the 400 clips of the
10-class ESC-10 subset (``subset="esc10"``: labels re-indexed 0..9 in the order of their ESC-50
targets). The protocol is the dataset's own: 5-fold cross-validation, accuracy per fold and the
mean over the 5 folds (``mmzoo.models.audio_probe.summarise_folds``); ``fold`` is the held-out
fold.

Checks (errors name file and line, :class:`~mmzoo.data.video_dataset.AnnotationError`): the header,
integer fold in 1..5 and target in range, one category name per target, ``esc10`` ``True`` /
``False``, a file name whose fold and target agree with its columns, no file listed twice.
Missing audio files raise with the count and the first paths unless ``missing_videos="skip"``.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar, Literal

from mmzoo.data.audio_clips import AudioFileDataModule, AudioRecord
from mmzoo.data.paths import find_path, flag, report_missing
from mmzoo.data.registry import register_datamodule
from mmzoo.data.video_dataset import (
    AnnotationError,
    LayoutError,
    parse_number,
    read_csv_rows,
)

__all__ = ["ESC50_COLUMNS", "ESC50DataModule", "read_esc50_csv"]

ESC50_COLUMNS = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
_NAME = re.compile(r"^(?P<fold>\d+)-(?P<src>[^-]+)-(?P<take>[A-Za-z0-9]+)-(?P<target>\d+)\.wav$")


def read_esc50_csv(path: str | Path, num_folds: int = 5) -> tuple[list[dict[str, Any]], dict[int, str]]:
    """``meta/esc50.csv`` -> rows ``{line, filename, fold, target, category, esc10}`` and the
    target -> category map (checked as the module docstring says)."""
    path = Path(path)
    rows: list[dict[str, Any]] = []
    names: dict[int, str] = {}
    seen: dict[str, int] = {}
    for line, r in read_csv_rows(path, ESC50_COLUMNS):
        fold = parse_number(str(path), line, "fold", r["fold"])
        target = parse_number(str(path), line, "target", r["target"])
        if not 1 <= fold <= num_folds:
            raise AnnotationError(path, line, f"fold {fold} is not in 1..{num_folds}")
        if target < 0:
            raise AnnotationError(path, line, f"target {target} is negative")
        if r["esc10"] not in ("True", "False"):
            raise AnnotationError(path, line, f"column 'esc10' must be True or False, got {r['esc10']!r}")
        cat = r["category"]
        if target in names and names[target] != cat:
            raise AnnotationError(path, line, f"target {target} is {cat!r} here but {names[target]!r} before")
        names[target] = cat
        m = _NAME.match(r["filename"])
        if m is None:
            raise AnnotationError(path, line, f"file name {r['filename']!r} does not match <fold>-<src>-<take>-<target>.wav")
        if int(m.group("fold")) != fold or int(m.group("target")) != target:
            raise AnnotationError(path, line, f"file name {r['filename']!r} disagrees with fold {fold} / target {target}")
        if r["filename"] in seen:
            raise AnnotationError(path, line, f"{r['filename']} already listed on line {seen[r['filename']]}")
        seen[r["filename"]] = line
        rows.append({"line": line, "filename": r["filename"], "fold": fold, "target": target, "category": cat,
                         "esc10": r["esc10"] == "True"})
    if not rows:
        raise AnnotationError(path, None, "no clips listed")
    if sorted(names) != list(range(len(names))):
        raise AnnotationError(path, None, f"targets must run 0..N-1 without gaps, got {sorted(names)}")
    return rows, names


@register_datamodule("esc50")
class ESC50DataModule(AudioFileDataModule):
    """ESC-50 / ESC-10, fold ``fold`` held out (module docstring for the layout).

    Args (besides those of :class:`~mmzoo.data.audio_clips.AudioFileDataModule`: ``root``,
    ``fold``, the audio front end, ``window_sec`` = 1.0, ``num_windows`` = 5 by default, the five
    1-s windows of a clip):
        subset: ``"esc50"`` (50 classes) or ``"esc10"`` (the 10-class subset).
        meta_csv: the metadata file (default ``root/meta/esc50.csv``).
        audio_dir: the folder of the WAV files (default ``root/audio``).
    """

    default_num_windows: ClassVar[int] = 5

    def __init__(
        self,
        root: str,
        subset: Literal["esc50", "esc10"] = "esc50",
        meta_csv: str | None = None,
        audio_dir: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(root=root, **kwargs)
        if subset not in ("esc50", "esc10"):
            raise ValueError(f"{flag('subset')} must be 'esc50' or 'esc10', got {subset!r}")
        if not 1 <= self.fold <= 5:
            raise ValueError(f"{flag('fold')} must be 1..5, got {self.fold}")
        self.subset = subset
        self._meta_arg, self._audio_arg = meta_csv, audio_dir
        self._rows: list[dict[str, Any]] | None = None

    def _validate_layout(self) -> None:
        if self._rows is not None:
            return
        if not self.root.is_dir():
            raise LayoutError(f"ESC-50 root not found: {self.root} ({flag('root')})")
        self.meta_csv = find_path("meta_csv", self._meta_arg, self.root, defaults=("meta/esc50.csv",),
                                  under=("", "meta"), what="ESC-50 metadata (meta/esc50.csv)")
        self.audio_dir = find_path("audio_dir", self._audio_arg, self.root, defaults=("audio",), kind="dir",
                                   what="ESC-50 audio folder")
        rows, names = read_esc50_csv(self.meta_csv)
        if self.subset == "esc10":
            rows = [r for r in rows if r["esc10"]]
            if not rows:
                raise AnnotationError(self.meta_csv, None, "no clip has esc10=True")
        targets = sorted({r["target"] for r in rows})
        self._index = {t: i for i, t in enumerate(targets)}
        self.classes = [names[t] for t in targets]
        self._rows = rows

    def _records(self, split: str) -> list[AudioRecord]:
        keep = [r for r in self._rows if (r["fold"] == self.fold) == (split == "test")]
        records, missing = [], []
        for r in keep:
            p = self.audio_dir / r["filename"]
            if not p.is_file():
                missing.append(f"{self.meta_csv}:{r['line']}: {p}")
                continue
            meta = {"list": str(self.meta_csv), "line": r["line"], "fold": r["fold"], "video_id": r["filename"]}
            records.append(AudioRecord(str(p), self._index[r["target"]], meta))
        report_missing(self, missing, f"ESC-50 fold {self.fold} {split}", split)
        if not records:
            raise LayoutError(f"no {split} clip of fold {self.fold} found in {self.audio_dir}")
        return records
