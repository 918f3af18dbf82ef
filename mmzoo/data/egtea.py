"""EGTEA Gaze+ action recognition (Li et al., "In the Eye of Beholder: Joint Learning of Gaze and
Actions in First Person Video", ECCV 2018) as a DataModule with verb, noun and action targets.

Layout, as distributed (cbs.ic.gatech.edu/fpv: ``video_clips.tar`` and ``action_annotation.zip``
extracted under ``root``):

* trimmed clips ``cropped_clips/<session>/<clip>.mp4`` (``<clip>.mp4`` directly under
  ``root/<session>/`` is accepted too), where ``<session>`` is the first three ``-``-separated
  fields of the clip name: ``OP01-R01-PastaSalad-66680-68130-F001597-F001639`` lives in
  ``OP01-R01-PastaSalad/``;
* ``action_annotation/train_split{1,2,3}.txt`` and ``test_split{1,2,3}.txt``: one clip per line,
  ``<clip> <action> <verb> <noun>`` separated by spaces, ids **1-based**;
* ``action_annotation/action_idx.txt`` / ``verb_idx.txt`` / ``noun_idx.txt``: one class per line,
  ``<name words> <id>`` (the id last, 1-based, 106 / 19 / 51 lines).

Targets are 0-based (file id - 1). EGTEA has three train / test splits and no validation set: the
``test_split{k}.txt`` of the chosen ``split`` serves validation and testing; results are reported per
split and averaged over the three (:func:`mmzoo.metrics.egtea.average_over_splits`). ``action_pairs``
(the (verb, noun) of each action, read from the split files) lets a verb / noun model score the
106 actions (:class:`~mmzoo.metrics.egtea.EgteaAccuracy`, mean class accuracy).

Batch fields: ``video`` (float ``B,3,T,H,W``), ``verb`` / ``noun`` / ``action`` (long ``B``),
``video_index`` (long ``B``), ``has_audio``, ``meta`` (``clip``, ``session``, ``file``, ``line``, and
the view indices), ``skipped``. Optical flow is not part of the release (the IPL thesis's
two-stream EGTEA rows use flow computed by the authors); this DataModule reads RGB only.

Strictness: every annotation line is checked (field count, integer ids within the class files,
an action always paired with the same verb and noun) naming file and line; a clip listed but
missing raises naming the path.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from mmzoo.data.clips import ClipDataModule
from mmzoo.data.registry import register_datamodule
from mmzoo.data.video_dataset import AnnotationError, LayoutError, VideoRecord

__all__ = ["EGTEA_CLASS_COUNTS", "EgteaDataModule", "read_class_index", "read_split_file"]

EGTEA_CLASS_COUNTS = {"action": 106, "verb": 19, "noun": 51}


def read_class_index(path: Path) -> list[str]:
    """Class names of an ``*_idx.txt`` file, in id order (ids 1..N, last token of each line)."""
    if not path.is_file():
        raise LayoutError(f"EGTEA class file not found: {path}")
    names: dict[int, str] = {}
    for i, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        parts = line.rsplit(" ", 1)
        if len(parts) != 2 or not parts[1].isdigit():
            raise AnnotationError(path, i, f"expected '<name> <id>', got {raw!r}")
        idx = int(parts[1])
        if idx in names:
            raise AnnotationError(path, i, f"class id {idx} appears twice")
        names[idx] = parts[0]
    if sorted(names) != list(range(1, len(names) + 1)):
        raise AnnotationError(path, None, f"class ids are not 1..{len(names)}")
    return [names[i] for i in range(1, len(names) + 1)]


def read_split_file(path: Path, counts: dict[str, int]) -> list[tuple[int, str, int, int, int]]:
    """Rows ``(line, clip, action, verb, noun)`` of a split file, ids converted to 0-based."""
    if not path.is_file():
        raise LayoutError(f"EGTEA split file not found: {path}")
    rows = []
    for i, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip():
            continue
        f = raw.split()
        if len(f) != 4:
            raise AnnotationError(path, i, f"expected '<clip> <action> <verb> <noun>', got {raw!r}")
        ids = []
        for name, value in zip(("action", "verb", "noun"), f[1:]):
            if not value.isdigit() or not 1 <= int(value) <= counts[name]:
                raise AnnotationError(path, i, f"{name} id {value!r} is not in 1..{counts[name]}")
            ids.append(int(value) - 1)
        if f[0].count("-") < 3:
            raise AnnotationError(path, i, f"clip name {f[0]!r} does not start with '<subject>-<recipe id>-<recipe>-'")
        rows.append((i, f[0], ids[0], ids[1], ids[2]))
    if not rows:
        raise AnnotationError(path, None, "no clips listed")
    return rows


@register_datamodule("egtea")
class EgteaDataModule(ClipDataModule):
    """EGTEA Gaze+ trimmed action clips with verb, noun and action targets.

    Args:
        root: dataset folder (layout in the module docstring).
        split: 1, 2 or 3: the train / test split pair.
        annotations_dir: folder of the split and class files; None: ``root/action_annotation``.
        clips_dir: folder of the session folders; None: ``root/cropped_clips`` when it exists, else
            ``root``.
        num_clips / num_crops: test views (IPL: 10 clips, no crop).
        **kwargs: clip settings of :class:`~mmzoo.data.clips.ClipDataModule` and loader settings.
    """

    def __init__(self, root: str, split: Literal[1, 2, 3] = 1, annotations_dir: str | None = None,
                 clips_dir: str | None = None, num_clips: int = 10, num_crops: int = 1, **kwargs: Any) -> None:
        super().__init__(num_clips=num_clips, num_crops=num_crops, **kwargs)
        if split not in (1, 2, 3):
            raise ValueError(f"EGTEA split must be 1, 2 or 3, got {split!r}")
        self.root = Path(root)
        self.split = int(split)
        self.annotations_dir = Path(annotations_dir) if annotations_dir else self.root / "action_annotation"
        self._clips_dir_arg = clips_dir
        self.train_split, self.val_split, self.test_split = "train", "test", "test"
        self._classes: dict[str, list[str]] | None = None
        self._pairs: list[tuple[int, int]] | None = None

    targets = ("verb", "noun", "action")

    @property
    def clips_dir(self) -> Path:
        if self._clips_dir_arg:
            return Path(self._clips_dir_arg)
        cropped = self.root / "cropped_clips"
        return cropped if cropped.is_dir() else self.root

    def _validate_layout(self) -> None:
        if not self.root.is_dir():
            raise LayoutError(f"EGTEA root not found: {self.root} (--data.root)")
        if not self.annotations_dir.is_dir():
            raise LayoutError(f"EGTEA annotation folder not found: {self.annotations_dir} (--data.annotations_dir; "
                              "extract action_annotation.zip under the root)")
        if self._classes is None:
            self._classes = {k: read_class_index(self.annotations_dir / f"{k}_idx.txt") for k in ("action", "verb", "noun")}

    @property
    def class_names(self) -> dict[str, list[str]]:
        """``{"action", "verb", "noun"}`` -> class names in id order."""
        self._validate_layout()
        return self._classes

    @property
    def num_verbs(self) -> int:
        return len(self.class_names["verb"])

    @property
    def num_nouns(self) -> int:
        return len(self.class_names["noun"])

    @property
    def action_pairs(self) -> list[tuple[int, int]]:
        """(verb, noun) of each action id (0-based), from every split file present; an action
        listed with two different (verb, noun) pairs, or in none, raises."""
        if self._pairs is not None:
            return self._pairs
        counts = {k: len(v) for k, v in self.class_names.items()}
        pairs: dict[int, tuple[int, int, str]] = {}
        for kind in ("train", "test"):
            for k in (1, 2, 3):
                path = self.annotations_dir / f"{kind}_split{k}.txt"
                if not path.is_file():
                    continue
                for line, _clip, a, v, n in read_split_file(path, counts):
                    if a in pairs and pairs[a][:2] != (v, n):
                        raise AnnotationError(path, line, f"action {a + 1} is (verb {v + 1}, noun {n + 1}) here but "
                                                          f"(verb {pairs[a][0] + 1}, noun {pairs[a][1] + 1}) in {pairs[a][2]}")
                    pairs.setdefault(a, (v, n, f"{path}:{line}"))
        missing = [a + 1 for a in range(counts["action"]) if a not in pairs]
        if missing:
            raise AnnotationError(self.annotations_dir, None, f"action id(s) {missing[:10]} occur in no split file, so "
                                                              "their verb and noun are unknown")
        self._pairs = [pairs[a][:2] for a in range(counts["action"])]
        return self._pairs

    def _records(self, split: str) -> list[VideoRecord]:
        path = self.annotations_dir / f"{split}_split{self.split}.txt"
        counts = {k: len(v) for k, v in self.class_names.items()}
        records = []
        for line, clip, a, v, n in read_split_file(path, counts):
            session = "-".join(clip.split("-")[:3])
            video = self.clips_dir / session / f"{clip}.mp4"
            if not video.is_file():
                raise LayoutError(f"{path}:{line}: clip {video} not found")
            records.append(VideoRecord(targets={"verb": v, "noun": n, "action": a}, video=str(video),
                                       meta={"clip": clip, "session": session, "file": str(path), "line": line}))
        return records
