"""Readers of the AVE release files (Tian et al., "Audio-Visual Event Localization in
Unconstrained Videos", ECCV 2018; the AVE chapter of the thesis): ``Annotations.txt`` and the
``*Set.txt`` split lists of the dataset release, the ``*_order.h5`` split files and HDF5 feature
files of the authors' code release, their discovery under a root folder, and the dataset that
reads the feature files. :mod:`mmzoo.data.ave` builds the ``ave`` DataModule on top of them.

Every error names the file (and line, or HDF5 key); formats are described in
:mod:`mmzoo.data.ave` and ``docs/ave-data.md``.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import numpy as np
import torch

from mmzoo.data.constants import AVE_BACKGROUND, AVE_CLASSES, AVE_NUM_SEGMENTS
from mmzoo.errors import DataError

__all__ = [
    "AVE_CLASSES",
    "BACKGROUND",
    "NUM_SEGMENTS",
    "SPLITS",
    "AVEDataError",
    "AnnotationRow",
    "AVELayout",
    "AVEFeatureDataset",
    "parse_annotations",
    "find_layout",
]

BACKGROUND = AVE_BACKGROUND
NUM_SEGMENTS = AVE_NUM_SEGMENTS
HEADER_FIELDS = ("category", "videoid", "quality", "starttime", "endtime")
SPLITS = ("train", "val", "test")
SPLIT_TXT = {"train": "trainSet.txt", "val": "valSet.txt", "test": "testSet.txt"}
ORDER_H5 = {s: f"{s}_order.h5" for s in SPLITS}
FEATURE_FILES = ("visual_feature.h5", "audio_feature.h5", "labels.h5")
NOISY_FILES = ("visual_feature_noisy.h5", "audio_feature_noisy.h5", "labels_noisy.h5")
H5_KEY = "avadataset"
MAX_DEPTH = 3


class AVEDataError(DataError, ValueError):
    """Malformed AVE data; the message names the file (and line, or HDF5 key)."""


# --------------------------------------------------------------------------- annotations
@dataclass(frozen=True)
class AnnotationRow:
    """One line of Annotations.txt. ``row`` counts data lines from 0 (what ``*_order.h5`` index);
    ``line`` is the 1-based line number in the file (for messages)."""

    row: int
    line: int
    category: str
    video_id: str
    quality: str
    start: int
    end: int
    class_index: int

    def segment_labels(self, num_segments: int = NUM_SEGMENTS, background: int = BACKGROUND) -> np.ndarray:
        lab = np.full(num_segments, background, dtype=np.int64)
        lab[self.start : self.end] = self.class_index
        return lab

    def key(self) -> tuple[str, str, str, int, int]:
        return (self.category, self.video_id, self.quality, self.start, self.end)


def _is_header(line: str) -> bool:
    parts = [p.strip().lower().replace(" ", "") for p in line.split("&")]
    return tuple(parts) == HEADER_FIELDS


def _parse_lines(path: Path) -> list[tuple[int, str, str, str, int, int]]:
    """(line number, category, video id, quality, start, end) for each data line of an AVE list."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise AVEDataError(f"{path}: not UTF-8 text ({e})") from e
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    out = []
    for n, raw in enumerate(lines, start=1):
        line = raw.strip()
        if n == 1 and _is_header(line):
            continue
        if not line:
            raise AVEDataError(f"{path}:{n}: empty line inside the annotation list")
        parts = line.split("&")
        if len(parts) != 5:
            raise AVEDataError(
                f"{path}:{n}: expected 5 '&'-separated fields Category&VideoID&Quality&StartTime&EndTime, "
                f"got {len(parts)}: {raw!r}"
            )
        cat, vid, qual, s, e = (p.strip() for p in parts)
        if not cat or not vid:
            raise AVEDataError(f"{path}:{n}: empty category or video id: {raw!r}")
        try:
            start, end = int(s), int(e)
        except ValueError:
            raise AVEDataError(f"{path}:{n}: StartTime/EndTime must be integer seconds, got {s!r}/{e!r}") from None
        out.append((n, cat, vid, qual, start, end))
    if not out:
        raise AVEDataError(f"{path}: no annotation lines")
    return out


def parse_annotations(
    path: str | Path,
    class_order: Literal["ave", "first_appearance"] = "ave",
    num_events: int = 28,
    num_segments: int = NUM_SEGMENTS,
) -> tuple[list[AnnotationRow], list[str]]:
    """Parse Annotations.txt into rows and the class list.

    ``class_order="ave"``: class index = position in :data:`AVE_CLASSES` (the order of first
    appearance in the real file); an unknown category is an error. ``"first_appearance"``: classes
    are numbered in the order they first appear in this file (for AVE-format datasets of your
    own), at most ``num_events`` of them. Background is always ``num_events``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"AVE annotation file not found: {path}")
    if class_order == "ave":
        if num_events != len(AVE_CLASSES):
            raise ValueError(f"class_order='ave' has {len(AVE_CLASSES)} classes; got num_events={num_events}")
        classes = list(AVE_CLASSES)
    elif class_order == "first_appearance":
        classes = []
    else:
        raise ValueError(f"class_order must be 'ave' or 'first_appearance'; got {class_order!r}")
    index = {c: i for i, c in enumerate(classes)}
    rows = []
    for r, (n, cat, vid, qual, start, end) in enumerate(_parse_lines(path)):
        if cat not in index:
            if class_order == "ave":
                raise AVEDataError(
                    f"{path}:{n}: category {cat!r} is not one of the 28 AVE classes (label out of range); "
                    "use class_order='first_appearance' for a dataset with its own classes"
                )
            if len(classes) >= num_events:
                raise AVEDataError(
                    f"{path}:{n}: category {cat!r} would be class {len(classes)}, out of range for "
                    f"num_events={num_events} (background is {num_events})"
                )
            index[cat] = len(classes)
            classes.append(cat)
        if not (0 <= start <= num_segments and 0 <= end <= num_segments):
            raise AVEDataError(f"{path}:{n}: StartTime/EndTime {start}/{end} out of range [0, {num_segments}]")
        if start > end:
            raise AVEDataError(f"{path}:{n}: StartTime {start} > EndTime {end}")
        rows.append(AnnotationRow(r, n, cat, vid, qual, start, end, index[cat]))
    return rows, classes


# --------------------------------------------------------------------------- layout discovery
@dataclass
class AVELayout:
    """What was found under ``root`` (``None`` = not found)."""

    root: Path
    annotations: Optional[Path] = None
    split_txt: dict[str, Optional[Path]] = field(default_factory=dict)
    order_h5: dict[str, Optional[Path]] = field(default_factory=dict)
    features: dict[str, Optional[Path]] = field(default_factory=dict)
    noisy: dict[str, Optional[Path]] = field(default_factory=dict)
    video_dir: Optional[Path] = None
    notes: list[str] = field(default_factory=list)

    @property
    def has_features(self) -> bool:
        return self.features.get("visual_feature.h5") is not None and self.features.get("audio_feature.h5") is not None

    def describe(self) -> str:
        def rel(p):
            if p is None:
                return "-"
            try:
                return str(Path(p).relative_to(self.root))
            except ValueError:
                return str(p)

        lines = [f"AVE layout under {self.root}:", f"  annotations: {rel(self.annotations)}"]
        lines.append("  split lists: " + ", ".join(f"{s}={rel(self.split_txt.get(s))}" for s in SPLITS))
        lines.append("  split orders: " + ", ".join(f"{s}={rel(self.order_h5.get(s))}" for s in SPLITS))
        lines.append("  features: " + ", ".join(f"{k}={rel(v)}" for k, v in self.features.items()))
        lines.append("  weak extras: " + ", ".join(f"{k}={rel(v)}" for k, v in self.noisy.items()))
        lines.append(f"  videos: {rel(self.video_dir)}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _walk(root: Path, max_depth: int = MAX_DEPTH):
    """(folder, file names, dir names) for folders up to ``max_depth`` below root, shallow first;
    hidden folders and mmzoo feature caches are skipped."""
    from mmzoo.data.ave_features import MANIFEST

    queue = [(root, 0)]
    while queue:
        folder, depth = queue.pop(0)
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        files = sorted(e.name for e in entries if e.is_file())
        if MANIFEST in files and folder != root:
            continue
        dirs = sorted(e.name for e in entries if e.is_dir() and not e.name.startswith(".") and not e.name.endswith(".partial"))
        yield folder, files, dirs
        if depth < max_depth:
            queue += [(folder / d, depth + 1) for d in dirs]


def _file_digest(p: Path) -> str:
    h = hashlib.sha1()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _pick(name: str, found: list[Path], notes: list[str], compare_content: bool) -> Optional[Path]:
    if not found:
        return None
    if len(found) == 1:
        return found[0]
    if compare_content and len({_file_digest(p) for p in found}) == 1:
        notes.append(f"{len(found)} identical copies of {name}; using {found[0]}")
        return found[0]
    raise AVEDataError(
        f"found {len(found)} different files named {name} under the AVE root: "
        + ", ".join(str(p) for p in found)
        + ". Keep one, or point to the right folder (annotations_file / features_dir / video_dir)."
    )


def find_layout(
    root: str | Path,
    annotations_file: Optional[str | Path] = None,
    features_dir: Optional[str | Path] = None,
    video_dir: Optional[str | Path] = None,
) -> AVELayout:
    """Locate the AVE files under ``root`` (see the module docstring); explicit paths win."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"AVE root folder not found: {root}")
    lay = AVELayout(root=root.resolve())
    wanted_txt = ["Annotations.txt", *SPLIT_TXT.values()]
    wanted_h5 = [*ORDER_H5.values(), *FEATURE_FILES, *NOISY_FILES]
    hits: dict[str, list[Path]] = {n: [] for n in wanted_txt + wanted_h5}
    video_dirs: list[Path] = []
    for folder, files, dirs in _walk(lay.root):
        for n in files:
            if n in hits:
                hits[n].append(folder / n)
        if folder.name == "AVE" and any(f.endswith(".mp4") for f in files):
            video_dirs.append(folder)
    if features_dir is not None:
        fd = Path(features_dir).expanduser()
        if not fd.is_dir():
            raise FileNotFoundError(f"features_dir not found: {fd}")
        for n in [*FEATURE_FILES, *NOISY_FILES]:
            hits[n] = [fd / n] if (fd / n).is_file() else []
    for n in wanted_txt:
        p = _pick(n, hits[n], lay.notes, compare_content=True)
        if n == "Annotations.txt":
            lay.annotations = p
        else:
            lay.split_txt[next(s for s, f in SPLIT_TXT.items() if f == n)] = p
    for s, n in ORDER_H5.items():
        lay.order_h5[s] = _pick(n, hits[n], lay.notes, compare_content=True)
    for n in FEATURE_FILES:
        lay.features[n] = _pick(n, hits[n], lay.notes, compare_content=False)
    for n in NOISY_FILES:
        lay.noisy[n] = _pick(n, hits[n], lay.notes, compare_content=False)
    if annotations_file is not None:
        a = Path(annotations_file).expanduser()
        if not a.is_file():
            raise FileNotFoundError(f"annotations_file not found: {a}")
        lay.annotations = a
    if video_dir is not None:
        v = Path(video_dir).expanduser()
        if not v.is_dir():
            raise FileNotFoundError(f"video_dir not found: {v}")
        lay.video_dir = v
    else:
        lay.video_dir = _pick("AVE/ (video folder)", video_dirs, lay.notes, compare_content=False)
    if lay.annotations is None:
        raise FileNotFoundError(
            f"Annotations.txt not found under {lay.root} (searched {MAX_DEPTH} folder levels deep). "
            "Unpack AVE_Dataset.zip there, or pass annotations_file=..."
        )
    return lay


# --------------------------------------------------------------------------- HDF5 helpers
def _h5_shape(path: Path, key: str) -> tuple[int, ...]:
    import h5py

    if not path.is_file():
        raise FileNotFoundError(f"AVE file not found: {path}")
    try:
        with h5py.File(path, "r") as f:
            if key not in f:
                raise AVEDataError(f"{path}: HDF5 key '{key}' missing (keys: {sorted(f.keys())})")
            return tuple(f[key].shape)
    except OSError as e:
        raise AVEDataError(f"{path}: not a readable HDF5 file ({e})") from e


def _h5_read(path: Path, key: str) -> np.ndarray:
    import h5py

    _h5_shape(path, key)
    with h5py.File(path, "r") as f:
        return f[key][()]


def _check_shape(path: Path, key: str, shape: tuple[int, ...], expected: tuple[Optional[int], ...], what: str) -> None:
    ok = len(shape) == len(expected) and all(e is None or s == e for s, e in zip(shape, expected))
    if not ok:
        exp = "[" + ",".join("C" if e is None else str(e) for e in expected) + "]"
        raise AVEDataError(f"{path}: key '{key}' has shape {list(shape)}, expected {exp} ({what})")


def _read_order(path: Path, n_rows: int) -> list[int]:
    arr = np.asarray(_h5_read(path, "order"))
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        if not (arr.ndim == 1 and np.issubdtype(arr.dtype, np.floating) and np.all(arr == np.round(arr))):
            raise AVEDataError(f"{path}: key 'order' must be a 1-D array of row indices; got {arr.dtype} {list(arr.shape)}")
    idx = arr.astype(np.int64)
    bad = idx[(idx < 0) | (idx >= n_rows)]
    if bad.size:
        raise AVEDataError(f"{path}: key 'order' has row index {int(bad[0])} out of range [0, {n_rows}) of Annotations.txt")
    if len(set(idx.tolist())) != len(idx):
        raise AVEDataError(f"{path}: key 'order' lists a row more than once")
    return idx.tolist()


def _rows_from_split_txt(path: Path, rows: list[AnnotationRow]) -> list[int]:
    by_key: dict[tuple, list[int]] = {}
    for r in rows:
        by_key.setdefault(r.key(), []).append(r.row)
    used: dict[tuple, int] = {}
    out = []
    for n, cat, vid, qual, s, e in _parse_lines(path):
        k = (cat, vid, qual, s, e)
        cands = by_key.get(k, [])
        i = used.get(k, 0)
        if i >= len(cands):
            raise AVEDataError(f"{path}:{n}: line {cat}&{vid}&{qual}&{s}&{e} matches no (remaining) row of Annotations.txt")
        used[k] = i + 1
        out.append(cands[i])
    return out


# --------------------------------------------------------------------------- dataset
class AVEFeatureDataset(torch.utils.data.Dataset):
    """Per-row samples read from released-format feature files (see module docstring for fields).

    ``entries`` are dicts with ``source`` (a key of ``sources``), ``index`` (row in that source's
    HDF5 arrays), ``label`` (int ``[10]``), ``video_label`` (float ``[29]``) and ``meta``.
    HDF5 files are opened lazily in each worker process.
    """

    def __init__(self, entries: list[dict[str, Any]], sources: dict[str, tuple[Any, Any]]) -> None:
        self.entries = entries
        # a stream is an authors' HDF5 file (rows = annotation rows) or a reader with
        # ``read(video_id)`` (mmzoo.data.ave_segments.ZooFeatureStream: `mmzoo extract` output)
        self.sources = {k: tuple(x if hasattr(x, "read") else Path(x) for x in pair) for k, pair in sources.items()}
        self._files: dict[str, Any] = {}
        self._pid: Optional[int] = None

    def __len__(self) -> int:
        return len(self.entries)

    def _open(self, path: Path):
        import h5py

        if self._pid != os.getpid():
            self._files, self._pid = {}, os.getpid()
        key = str(path)
        if key not in self._files:
            self._files[key] = h5py.File(path, "r")[H5_KEY]
        return self._files[key]

    def _read(self, src: Any, e: dict[str, Any]) -> np.ndarray:
        if isinstance(src, Path):
            return np.asarray(self._open(src)[e["index"]], dtype=np.float32)
        return src.read(e["meta"]["video_id"])

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_files"], state["_pid"] = {}, None
        return state

    def __getitem__(self, i: int) -> dict[str, Any]:
        e = self.entries[i]
        visual, audio = (torch.from_numpy(self._read(src, e)) for src in self.sources[e["source"]])
        return {
            "visual": visual,
            "audio": audio,
            "label": torch.as_tensor(e["label"], dtype=torch.long),
            "video_label": torch.as_tensor(e["video_label"], dtype=torch.float32),
            "meta": dict(e["meta"]),
        }


def _video_label(seg: np.ndarray, class_index: int, rule: str, num_outputs: int) -> np.ndarray:
    if rule == "average":
        return np.bincount(seg, minlength=num_outputs).astype(np.float32) / len(seg)
    out = np.zeros(num_outputs, np.float32)
    out[class_index] = 1.0
    return out
