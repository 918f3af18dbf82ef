"""AVE (Audio-Visual Event) localisation data, read as its authors distribute it: ``--data ave``.

Files looked for under ``root`` (at any depth up to 3 folders; see ``docs/ave-data.md``):

- dataset release (``AVE_Dataset.zip``): ``Annotations.txt`` (``Category&VideoID&Quality&
  StartTime&EndTime``, with or without that header line), ``trainSet.txt`` / ``valSet.txt`` /
  ``testSet.txt`` (same format) and the videos ``AVE/<VideoID>.mp4``;
- authors' code release (AVE-ECCV18 ``data/``): ``train_order.h5`` / ``val_order.h5`` /
  ``test_order.h5`` (key ``order``: row indices into Annotations.txt) and the features, HDF5
  key ``avadataset``: ``visual_feature.h5`` ``[N,10,7,7,512]``, ``audio_feature.h5``
  ``[N,10,128]``, ``labels.h5`` ``[N,10,29]``; for the weak setting ``visual_feature_noisy.h5``,
  ``audio_feature_noisy.h5``, ``labels_noisy.h5`` (background-only videos).

Labels: 28 event classes (index = order of first appearance in the real Annotations.txt, which is
the fixed list :data:`AVE_CLASSES`) and background = 28, so 29 outputs. Each video has 10
one-second segments; segments ``Start .. End-1`` are the event (end exclusive) and the others
background (the line ``...&0&0`` is all background). Samples are keyed by annotation ROW, not by
video id: 45 AVE ids appear on two or three rows under different categories.

Input modes (``input_mode``): ``"features"`` reads the released feature files; ``"video"``
decodes ``AVE/<VideoID>.mp4`` and extracts per-segment features once (one frame per second
through a timm backbone, ``7x7xC``; VGGish audio, 128-d; see :mod:`mmzoo.data.ave_features`),
caches them in the released format and then reads them the same way; ``"auto"`` picks
``features`` when both feature files are present, else ``video``.

Batch fields (dict):

- ``visual``: float ``[B, 10, 7, 7, Cv]`` (``Cv`` = :attr:`AVEDataModule.visual_dim`: 512 for the
  released features, 2048 for ResNet-152);
- ``audio``: float ``[B, 10, 128]``;
- ``label``: long ``[B, 10]`` segment classes (28 = background);
- ``video_label``: float ``[B, 29]`` video-level target by ``weak_label`` (``"average"``: mean of
  the segment one-hots, background included, thesis Eq.; ``"one_hot"``: the row's category, as in
  the authors' ``mil_labels.h5``; background for the background-only videos);
- ``meta``: list of ``B`` dicts: ``row`` (annotation row; -1 for background-only extras),
  ``video_id``, ``category``, ``start``, ``end``, ``split``, ``source`` (``"annotations"`` or
  ``"noisy"``).

In the weak setting the train batches still carry ``label`` (for monitoring only); a weakly
supervised model must train on ``video_label``.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import numpy as np
import torch
from pytorch_lightning import LightningDataModule

from mmzoo.data.constants import AVE_BACKGROUND, AVE_CLASSES, AVE_NUM_SEGMENTS
from mmzoo.data.collate import collate_dicts
from mmzoo.data.registry import register_datamodule
from mmzoo.errors import DataError

__all__ = [
    "AVE_CLASSES",
    "BACKGROUND",
    "NUM_SEGMENTS",
    "AVEDataError",
    "AnnotationRow",
    "AVELayout",
    "AVEDataModule",
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
    num_classes: int = 28,
    num_segments: int = NUM_SEGMENTS,
) -> tuple[list[AnnotationRow], list[str]]:
    """Parse Annotations.txt into rows and the class list.

    ``class_order="ave"``: class index = position in :data:`AVE_CLASSES` (the order of first
    appearance in the real file); an unknown category is an error. ``"first_appearance"``: classes
    are numbered in the order they first appear in this file (for AVE-format datasets of your
    own), at most ``num_classes`` of them. Background is always ``num_classes``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"AVE annotation file not found: {path}")
    if class_order == "ave":
        if num_classes != len(AVE_CLASSES):
            raise ValueError(f"class_order='ave' has {len(AVE_CLASSES)} classes; got num_classes={num_classes}")
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
            if len(classes) >= num_classes:
                raise AVEDataError(
                    f"{path}:{n}: category {cat!r} would be class {len(classes)}, out of range for "
                    f"num_classes={num_classes} (background is {num_classes})"
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

    def __init__(self, entries: list[dict[str, Any]], sources: dict[str, tuple[Path, Path]]) -> None:
        self.entries = entries
        self.sources = {k: (Path(v), Path(a)) for k, (v, a) in sources.items()}
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

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_files"], state["_pid"] = {}, None
        return state

    def __getitem__(self, i: int) -> dict[str, Any]:
        e = self.entries[i]
        vpath, apath = self.sources[e["source"]]
        visual = torch.from_numpy(np.asarray(self._open(vpath)[e["index"]], dtype=np.float32))
        audio = torch.from_numpy(np.asarray(self._open(apath)[e["index"]], dtype=np.float32))
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


def _cache_root() -> Path:
    return Path(os.environ.get("MMZOO_CACHE", Path.home() / ".cache" / "mmzoo")).expanduser()


# --------------------------------------------------------------------------- DataModule
@register_datamodule("ave")
class AVEDataModule(LightningDataModule):
    """AVE audio-visual event localisation (28 events + background, 10 one-second segments).

    Args:
        root: folder holding the AVE release(s) (see the module docstring / docs/ave-data.md).
        input_mode: ``"auto"`` (released features when present, else videos), ``"features"`` or
            ``"video"`` (extract from ``AVE/<VideoID>.mp4`` once, cached).
        supervision: ``"full"`` (segment labels) or ``"weak"`` (video-level labels; adds the
            background-only videos to training when ``weak_background_videos`` allows).
        weak_label: video-level target rule [AMBIG]: ``"average"`` (thesis, Y = mean of the
            segment one-hots incl. background) or ``"one_hot"`` (the authors' ``mil_labels.h5``).
        weak_background_videos: add the ``*_noisy.h5`` background-only videos to the weak training
            set: ``None`` = when the files are present (as the authors' weak training does),
            ``True`` = required, ``False`` = never. Ignored for ``supervision="full"``.
        split_source: ``"auto"`` (``*_order.h5`` when all three exist, else the ``*Set.txt``
            lists), ``"order_h5"`` or ``"txt"``.
        class_order: ``"ave"`` (the 28 AVE classes in their official order) or
            ``"first_appearance"`` (number this file's categories in order of first appearance).
        num_classes: event classes (background = ``num_classes``); 28 for AVE.
        annotations_file, features_dir, video_dir: explicit locations overriding discovery.
        visual_backbone: timm model for video mode (last stage at 224x224 must be 7x7). Default
            ``resnet152.tv_in1k``: ResNet-152 with the original ImageNet weights (thesis "ResNet-151").
        pretrained_backbone: load timm's pretrained weights (random init with a warning when
            they cannot be fetched).
        vggish_weights: safetensors VGGish weights (see mmzoo.nn.vggish); ``None`` = random init
            with a warning.
        frame_position: where in each 1-s segment the frame is taken [SILENT]; 0.5 = centre.
        frame_resize: ``"squash"`` (whole frame to 224x224) or ``"center_crop"`` [SILENT].
        feature_dtype: storage dtype of extracted features (``float16`` halves the cache).
        cache_dir: where extracted features go (default ``$MMZOO_CACHE`` or ``~/.cache/mmzoo``,
            under ``ave-features/<key>``).
        extract_device: device for extraction (default CUDA when available).
        extract_batch_videos: videos per extraction forward pass.
        skip_corrupt: in video mode, count, report and drop rows whose video is missing or
            unreadable instead of raising.
        batch_size: training batch size (64 in the authors' code); ``eval_batch_size`` for
            val/test/predict (default: ``batch_size``).
        num_workers: DataLoader workers (also used to decode videos during extraction).
        pin_memory: pin host memory (default: when CUDA is available).
        progress: show a progress bar during extraction.

    ``visual_dim`` and ``supervision`` are linked to the model's arguments of the same names by
    ``mmzoo fit`` (``model_links``).
    """

    model_links = ("visual_dim", "supervision")

    def __init__(
        self,
        root: str = "data/ave",
        input_mode: Literal["auto", "features", "video"] = "auto",
        supervision: Literal["full", "weak"] = "full",
        weak_label: Literal["average", "one_hot"] = "average",
        weak_background_videos: Optional[bool] = None,
        split_source: Literal["auto", "order_h5", "txt"] = "auto",
        class_order: Literal["ave", "first_appearance"] = "ave",
        num_classes: int = 28,
        annotations_file: Optional[str] = None,
        features_dir: Optional[str] = None,
        video_dir: Optional[str] = None,
        visual_backbone: str = "resnet152.tv_in1k",
        pretrained_backbone: bool = True,
        vggish_weights: Optional[str] = None,
        frame_position: float = 0.5,
        frame_resize: Literal["squash", "center_crop"] = "squash",
        feature_dtype: Literal["float32", "float16"] = "float32",
        cache_dir: Optional[str] = None,
        extract_device: Optional[str] = None,
        extract_batch_videos: int = 4,
        skip_corrupt: bool = False,
        batch_size: int = 64,
        eval_batch_size: Optional[int] = None,
        num_workers: int = 2,
        pin_memory: Optional[bool] = None,
        progress: bool = True,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        for name, val, allowed in (
            ("input_mode", input_mode, ("auto", "features", "video")),
            ("supervision", supervision, ("full", "weak")),
            ("weak_label", weak_label, ("average", "one_hot")),
            ("split_source", split_source, ("auto", "order_h5", "txt")),
            ("class_order", class_order, ("ave", "first_appearance")),
        ):
            if val not in allowed:
                raise ValueError(f"{name} must be one of {allowed}; got {val!r}")
        self.root = Path(root)
        self.input_mode = input_mode
        self.supervision = supervision
        self.weak_label = weak_label
        self.weak_background_videos = weak_background_videos
        self.split_source = split_source
        self.class_order = class_order
        self.num_classes = num_classes
        self.background_index = num_classes
        self.num_outputs = num_classes + 1
        self.num_segments = NUM_SEGMENTS
        self.annotations_file = annotations_file
        self.features_dir = features_dir
        self.video_dir = video_dir
        from mmzoo.data.ave_features import ExtractionConfig

        self.extraction = ExtractionConfig(
            visual_backbone=visual_backbone,
            pretrained_backbone=pretrained_backbone,
            frame_position=frame_position,
            frame_resize=frame_resize,
            vggish_weights=vggish_weights,
            num_segments=NUM_SEGMENTS,
            feature_dtype=feature_dtype,
        )
        self.cache_dir = cache_dir
        self.extract_device = extract_device
        self.extract_batch_videos = extract_batch_videos
        self.skip_corrupt = skip_corrupt
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.progress = progress

        self.layout: Optional[AVELayout] = None
        self.rows: list[AnnotationRow] = []
        self.classes: list[str] = []
        self.splits: dict[str, list[int]] = {}
        self.resolved_mode: Optional[str] = None
        self.feature_files: dict[str, Path] = {}
        self.skipped: dict[str, str] = {}
        self.skipped_rows: list[int] = []
        self.uses_background_videos = False
        self.datasets: dict[str, AVEFeatureDataset] = {}
        self._visual_dim: Optional[int] = None
        self._prepared = False

    # ------------------------------------------------------------------ discovery
    def _discover(self) -> AVELayout:
        if self.layout is None:
            self.layout = find_layout(self.root, self.annotations_file, self.features_dir, self.video_dir)
        return self.layout

    def _resolve_mode(self, lay: AVELayout) -> str:
        if self.input_mode == "features":
            missing = [n for n in ("visual_feature.h5", "audio_feature.h5") if lay.features.get(n) is None]
            if missing:
                raise FileNotFoundError(
                    f"input_mode='features' but {', '.join(missing)} not found under {lay.root} "
                    f"(or features_dir).\n{lay.describe()}"
                )
            return "features"
        if self.input_mode == "video":
            if lay.video_dir is None:
                raise FileNotFoundError(
                    f"input_mode='video' but no AVE/ folder with .mp4 files under {lay.root} (pass video_dir=...).\n{lay.describe()}"
                )
            return "video"
        if lay.has_features:
            return "features"
        if lay.video_dir is not None:
            return "video"
        raise FileNotFoundError(
            f"No AVE inputs under {lay.root}: need visual_feature.h5 + audio_feature.h5 (authors' code release) "
            f"or an AVE/ folder of <VideoID>.mp4 files (dataset release).\n{lay.describe()}"
        )

    def _cache_path(self, lay: AVELayout, rows: list[AnnotationRow]) -> Path:
        h = hashlib.sha1()
        h.update(str(lay.video_dir.resolve()).encode())
        for r in rows:
            p = lay.video_dir / f"{r.video_id}.mp4"
            st = p.stat() if p.is_file() else None
            h.update(f"{r.row}|{r.video_id}|{st.st_size if st else -1}|{int(st.st_mtime) if st else -1}\n".encode())
        key = self.extraction.key(extra=h.hexdigest())
        base = Path(self.cache_dir).expanduser() if self.cache_dir else _cache_root() / "ave-features"
        return base / f"{self.extraction.visual_backbone.replace('/', '_')}-{key}"

    @property
    def visual_dim(self) -> int:
        """Channels ``Cv`` of the ``visual`` field (for linking to a model's ``visual_dim``)."""
        if self._visual_dim is None:
            lay = self._discover()
            mode = self.resolved_mode or self._resolve_mode(lay)
            if mode == "features":
                path = lay.features["visual_feature.h5"]
                self._visual_dim = int(_h5_shape(path, H5_KEY)[-1])
            else:
                from mmzoo.data.ave_features import visual_dim_of

                self._visual_dim = visual_dim_of(self.extraction.visual_backbone)
        return self._visual_dim

    # ------------------------------------------------------------------ Lightning hooks
    def prepare_data(self) -> None:
        """Video mode: extract and cache the features once (rank 0)."""
        lay = self._discover()
        rows, _ = parse_annotations(lay.annotations, self.class_order, self.num_classes)
        if self._resolve_mode(lay) == "video":
            self._ensure_extracted(lay, rows)

    def _ensure_extracted(self, lay: AVELayout, rows: list[AnnotationRow]) -> Path:
        from mmzoo.data.ave_features import MANIFEST, extract_ave_features

        out = self._cache_path(lay, rows)
        if (out / MANIFEST).is_file():
            return out
        paths = [lay.video_dir / f"{r.video_id}.mp4" for r in rows]
        missing = [p for p in dict.fromkeys(paths) if not p.is_file()]
        if missing and not self.skip_corrupt:
            raise FileNotFoundError(
                f"{len(missing)} video(s) listed in {lay.annotations} are missing, e.g. {missing[0]} "
                "(set skip_corrupt=True to count and skip them)"
            )
        labels = np.stack([r.segment_labels(NUM_SEGMENTS, self.background_index) for r in rows])
        extract_ave_features(
            paths,
            out,
            self.extraction,
            labels=labels,
            num_outputs=self.num_outputs,
            device=self.extract_device,
            num_workers=self.num_workers,
            batch_videos=self.extract_batch_videos,
            skip_corrupt=self.skip_corrupt,
            progress=self.progress,
            extra_manifest={"annotations": str(lay.annotations), "video_dir": str(lay.video_dir)},
        )
        return out

    def _read_splits(self, lay: AVELayout, rows: list[AnnotationRow]) -> dict[str, list[int]]:
        have_h5 = all(lay.order_h5.get(s) for s in SPLITS)
        have_txt = all(lay.split_txt.get(s) for s in SPLITS)
        source = self.split_source
        if source == "auto":
            source = "order_h5" if have_h5 else "txt" if have_txt else None
        if source is None:
            raise FileNotFoundError(
                f"No complete AVE split under {lay.root}: need train_order.h5/val_order.h5/test_order.h5 "
                f"or trainSet.txt/valSet.txt/testSet.txt.\n{lay.describe()}"
            )
        need = lay.order_h5 if source == "order_h5" else lay.split_txt
        names = ORDER_H5 if source == "order_h5" else SPLIT_TXT
        for s in SPLITS:
            if need.get(s) is None:
                raise FileNotFoundError(f"split_source='{source}' but {names[s]} not found under {lay.root}.\n{lay.describe()}")
        if source == "order_h5":
            splits = {s: _read_order(lay.order_h5[s], len(rows)) for s in SPLITS}
        else:
            splits = {s: _rows_from_split_txt(lay.split_txt[s], rows) for s in SPLITS}
        lay.notes.append(f"splits from {'*_order.h5' if source == 'order_h5' else '*Set.txt'}")
        if source == "order_h5" and have_txt:
            other = {s: _rows_from_split_txt(lay.split_txt[s], rows) for s in SPLITS}
            diff = [s for s in SPLITS if sorted(other[s]) != sorted(splits[s])]
            if diff:
                warnings.warn(
                    f"AVE split lists disagree for {diff}: using *_order.h5, ignoring {[SPLIT_TXT[s] for s in diff]}",
                    stacklevel=3,
                )
        for a in SPLITS:
            for b in SPLITS:
                if a < b:
                    both = set(splits[a]) & set(splits[b])
                    if both:
                        warnings.warn(
                            f"AVE splits '{a}' and '{b}' share {len(both)} annotation row(s), e.g. row {min(both)}",
                            stacklevel=3,
                        )
        return splits

    def _check_feature_files(self, visual: Path, audio: Path, labels: Optional[Path], n: int, what: str) -> int:
        vshape = _h5_shape(visual, H5_KEY)
        _check_shape(visual, H5_KEY, vshape, (n, NUM_SEGMENTS, 7, 7, None), f"{what}: one row per annotation line")
        ashape = _h5_shape(audio, H5_KEY)
        _check_shape(audio, H5_KEY, ashape, (n, NUM_SEGMENTS, 128), what)
        if labels is not None:
            lshape = _h5_shape(labels, H5_KEY)
            _check_shape(labels, H5_KEY, lshape, (n, NUM_SEGMENTS, self.num_outputs), what)
        return int(vshape[-1])

    def setup(self, stage: Optional[str] = None) -> None:
        if self.datasets:
            return
        lay = self._discover()
        rows, classes = parse_annotations(lay.annotations, self.class_order, self.num_classes)
        splits = self._read_splits(lay, rows)
        mode = self._resolve_mode(lay)
        n = len(rows)
        skipped_rows: set[int] = set()
        if mode == "features":
            visual, audio, labels = (lay.features[f] for f in FEATURE_FILES)
            self._visual_dim = self._check_feature_files(visual, audio, labels, n, "AVE features")
            if labels is not None:
                lab = _h5_read(labels, H5_KEY)
                got = lab.argmax(-1)
                want = np.stack([r.segment_labels(NUM_SEGMENTS, self.background_index) for r in rows])
                bad = np.nonzero((got != want).any(1))[0]
                if bad.size:
                    r = rows[int(bad[0])]
                    raise AVEDataError(
                        f"{labels}: row {r.row} ({r.category}&{r.video_id}&{r.start}&{r.end}, line {r.line} of "
                        f"{lay.annotations}) has segment labels {got[bad[0]].tolist()}, but the annotation gives "
                        f"{want[bad[0]].tolist()} ({bad.size} row(s) disagree): the feature files do not belong to "
                        "this Annotations.txt"
                    )
        else:
            out = self._ensure_extracted(lay, rows)
            from mmzoo.data.ave_features import MANIFEST

            manifest = json.loads((out / MANIFEST).read_text())
            visual, audio = out / "visual_feature.h5", out / "audio_feature.h5"
            self._visual_dim = self._check_feature_files(visual, audio, None, n, f"feature cache {out}")
            self.skipped = dict(manifest.get("skipped", {}))
            skipped_rows = set(manifest.get("skipped_rows", []))
            if skipped_rows:
                warnings.warn(
                    f"AVE video mode: {len(self.skipped)} unreadable/missing video(s) skipped, dropping "
                    f"{len(skipped_rows)} annotation row(s) (skip_corrupt=True); details in {out / MANIFEST}",
                    stacklevel=2,
                )
            if self.extraction.pretrained_backbone and not manifest.get("visual_pretrained_loaded", False):
                warnings.warn(
                    f"The cached features in {out} were extracted with a RANDOMLY initialised "
                    f"{self.extraction.visual_backbone} (pretrained weights were unreachable); delete that folder "
                    "to re-extract with pretrained weights.",
                    stacklevel=2,
                )
            lay.notes.append(f"features extracted from videos, cached in {out}")
        self.feature_files = {"visual": visual, "audio": audio}
        self.rows, self.classes, self.resolved_mode = rows, classes, mode
        self.skipped_rows = sorted(skipped_rows)
        self.splits = {s: [i for i in splits[s] if i not in skipped_rows] for s in SPLITS}

        sources = {"annotations": (visual, audio)}
        self.datasets = {s: AVEFeatureDataset(self._entries(s, rows), sources) for s in SPLITS}

        use_bg = False
        if self.supervision == "weak" and self.weak_background_videos is not False:
            nv, na, nl = (lay.noisy[f] for f in NOISY_FILES)
            present = nv is not None and na is not None
            if self.weak_background_videos and not present:
                raise FileNotFoundError(
                    "weak_background_videos=True but "
                    + ", ".join(f for f, p in zip(NOISY_FILES[:2], (nv, na)) if p is None)
                    + f" not found under {lay.root}"
                )
            if present:
                m = _h5_shape(nv, H5_KEY)[0]
                cv = self._check_feature_files(nv, na, nl, m, "background-only videos")
                if cv != self._visual_dim:
                    raise AVEDataError(f"{nv}: key '{H5_KEY}' has {cv} channels but the main visual features have {self._visual_dim}")
                if nl is not None:
                    lab = _h5_read(nl, H5_KEY).argmax(-1)
                    if (lab != self.background_index).any():
                        i = int(np.nonzero((lab != self.background_index).any(1))[0][0])
                        raise AVEDataError(f"{nl}: row {i} has non-background segment labels; expected background only")
                seg = np.full(NUM_SEGMENTS, self.background_index, np.int64)
                vl = _video_label(seg, self.background_index, self.weak_label, self.num_outputs)
                extra = [
                    {
                        "source": "noisy",
                        "index": i,
                        "label": seg,
                        "video_label": vl,
                        "meta": dict(row=-1, video_id=f"noisy-{i}", category="background", start=0, end=0,
                                     split="train", source="noisy"),
                    }
                    for i in range(m)
                ]
                sources = {"annotations": (visual, audio), "noisy": (nv, na)}
                self.datasets["train"] = AVEFeatureDataset(self.datasets["train"].entries + extra, sources)
                use_bg = True
                lay.notes.append(f"weak training adds {m} background-only videos from {nv.name}")
        self.uses_background_videos = use_bg

    def _entries(self, split: str, rows: list[AnnotationRow]) -> list[dict[str, Any]]:
        out = []
        for i in self.splits[split]:
            r = rows[i]
            seg = r.segment_labels(NUM_SEGMENTS, self.background_index)
            out.append(
                {
                    "source": "annotations",
                    "index": r.row,
                    "label": seg,
                    "video_label": _video_label(seg, r.class_index, self.weak_label, self.num_outputs),
                    "meta": dict(row=r.row, video_id=r.video_id, category=r.category, start=r.start, end=r.end,
                                 split=split, source="annotations"),
                }
            )
        return out

    def describe(self) -> str:
        """Human-readable summary of what was found and how it is used (after ``setup``)."""
        lay = self._discover()
        lines = [lay.describe()]
        if self.datasets:
            lines.append(
                f"  mode: {self.resolved_mode}; visual_dim={self._visual_dim}; supervision={self.supervision} "
                f"(weak_label={self.weak_label}); rows={len(self.rows)}; "
                + ", ".join(f"{s}={len(self.datasets[s])}" for s in SPLITS)
            )
            if self.skipped_rows:
                lines.append(f"  skipped rows (unreadable videos): {len(self.skipped_rows)}")
        return "\n".join(lines)

    # ------------------------------------------------------------------ loaders
    def _loader(self, split: str, train: bool) -> torch.utils.data.DataLoader:
        if not self.datasets:
            self.setup()
        ds = self.datasets[split]
        if len(ds) == 0:
            raise AVEDataError(f"AVE split '{split}' is empty")
        return torch.utils.data.DataLoader(
            ds,
            batch_size=self.batch_size if train else self.eval_batch_size,
            shuffle=train,
            num_workers=self.num_workers,
            collate_fn=collate_dicts,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            drop_last=False,
        )

    def train_dataloader(self):
        return self._loader("train", train=True)

    def val_dataloader(self):
        return self._loader("val", train=False)

    def test_dataloader(self):
        return self._loader("test", train=False)

    def predict_dataloader(self):
        return self._loader("test", train=False)
