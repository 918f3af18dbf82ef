"""ActivityNet v1.3 untrimmed video classification as a DataModule (PSN thesis, ch. 5: 19,994
videos, 200 classes, results on the validation subset, decoded at 1 fps, RGB only).

Layout read (``root``), as the dataset is distributed (annotation file + the official crawler's
downloads)::

    root/activity_net.v1-3.min.json     {"version", "taxonomy", "database"}
    root/videos/v_<youtube_id>.mp4      (or .mkv / .webm; also directly in root, or in video_dir)

``database`` maps each YouTube id to ``{"subset": "training" | "validation" | "testing",
"annotations": [{"segment": [start, end], "label": <class>}, ...], "duration", "url", ...}``;
``taxonomy`` lists ``{"nodeId", "nodeName", "parentId", "parentName"}``. The classes are the
taxonomy's leaves (nodes that are no node's parent; 200 in v1.3) in sorted name order; every
annotation label must be one. A video's targets are the distinct labels of its annotations
(untrimmed, video-level): ``video_label`` multi-hot and ``label`` its first annotation's class;
``testing`` videos carry no annotation (``label`` -1, ``video_label`` zeros).

Batch fields: ``video`` (float ``B,3,25,H,W``: one frame from each of 25 equal segments of the
1-fps frame grid), ``label`` (long ``B``), ``video_label`` (float ``B,K``), ``video_index`` (long
``B``), ``video_id`` (list of YouTube ids), ``meta``, ``skipped``.

Missing videos (YouTube removals are common) raise a :class:`LayoutError` with the count and the
first ids unless ``missing_videos="skip"``, which drops them, warns with the count and keeps the
list in ``self.missing_videos``; undecodable files are replaced by the next video, counted and
reported with ``skip_corrupt=True`` (:class:`~mmzoo.data.clips.ClipDataModule`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, Optional

from mmzoo.data.paths import find_path, flag, report_missing
from mmzoo.data.registry import register_datamodule
from mmzoo.data.untrimmed import UntrimmedDataModule
from mmzoo.data.video_dataset import AnnotationError, LayoutError, VideoRecord

__all__ = ["ANET_SUBSETS", "VIDEO_EXTENSIONS", "ActivityNetDataModule", "read_activitynet_json", "taxonomy_leaves"]


ANET_SUBSETS = ("training", "validation", "testing")
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm")
DEFAULT_JSON = "activity_net.v1-3.min.json"


def read_activitynet_json(path: Path) -> dict[str, Any]:
    """The parsed annotation file, checked for ``database`` and ``taxonomy`` (errors name the file)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise AnnotationError(path, e.lineno, f"not valid JSON: {e.msg}") from None
    if not isinstance(data, dict):
        raise AnnotationError(path, None, "expected a JSON object with 'database' and 'taxonomy'")
    for key, kind in (("database", dict), ("taxonomy", list)):
        if not isinstance(data.get(key), kind):
            raise AnnotationError(path, None, f"missing or malformed '{key}' (expected a {kind.__name__})")
    return data


def taxonomy_leaves(taxonomy: list[dict[str, Any]], path: Path) -> list[str]:
    """Sorted names of the taxonomy nodes that are no node's parent."""
    parents, names = set(), set()
    for i, node in enumerate(taxonomy):
        if not isinstance(node, dict) or "nodeName" not in node or "nodeId" not in node:
            raise AnnotationError(path, None, f"taxonomy entry {i} lacks 'nodeId' / 'nodeName': {node!r}")
        names.add((node["nodeId"], node["nodeName"]))
        if node.get("parentId") is not None:
            parents.add(node["parentId"])
    leaves = sorted({name for nid, name in names if nid not in parents})
    if not leaves:
        raise AnnotationError(path, None, "the taxonomy has no leaf class")
    return leaves


@register_datamodule("activitynet")
class ActivityNetDataModule(UntrimmedDataModule):
    """ActivityNet v1.3 (module docstring). ``num_classes`` is linked to the model's.

    Args:
        root: dataset folder.
        annotation_file: the release's JSON (``activity_net.v1-3.min.json``, under ``root`` or as given).
        video_dir: folder of the ``v_<id>.<ext>`` videos; None: ``root/videos``, else ``root``.
        train_subset / val_subset / test_subset: ``database`` subsets of each split (the thesis
            reports on ``validation``, which is also the test split by default).
        missing_videos: ``"error"`` or ``"skip"`` (dropped, counted, warned).
        **kwargs: :class:`~mmzoo.data.untrimmed.UntrimmedDataModule` settings (``decode_fps`` = 1,
            25 segments, crops, normalisation, ``skip_corrupt``) and the loader settings.
    """

    def __init__(
        self,
        root: str,
        annotation_file: str = DEFAULT_JSON,
        video_dir: Optional[str] = None,
        train_subset: Literal["training", "validation", "testing"] = "training",
        val_subset: Literal["training", "validation", "testing"] = "validation",
        test_subset: Literal["training", "validation", "testing"] = "validation",
        missing_videos: Literal["error", "skip"] = "error",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        for name, value in (("train_subset", train_subset), ("val_subset", val_subset), ("test_subset", test_subset)):
            if value not in ANET_SUBSETS:
                raise ValueError(f"{flag(name)} must be one of {ANET_SUBSETS}, got {value!r}")
        if missing_videos not in ("error", "skip"):
            raise ValueError(f"{flag('missing_videos')} must be 'error' or 'skip', got {missing_videos!r}")
        self.root = Path(root)
        self.annotation_file = annotation_file
        self.video_dir_arg = video_dir
        self.train_split, self.val_split, self.test_split = train_subset, val_subset, test_subset
        self.missing_videos_policy = missing_videos
        self.missing_videos: list[str] = []
        self.classes: Optional[list[str]] = None
        self._data: Optional[dict[str, Any]] = None
        self._json_path: Optional[Path] = None
        self._video_dir: Optional[Path] = None
        self._index: Optional[dict[str, Path]] = None

    # ------------------------------------------------------------------ layout
    def _validate_layout(self) -> None:
        if self._data is not None:
            return
        if not self.root.is_dir():
            raise LayoutError(f"ActivityNet root not found: {self.root} ({flag('root')})")
        self._json_path = find_path("annotation_file", self.annotation_file, self.root, what="ActivityNet annotation file")
        data = read_activitynet_json(self._json_path)
        self.classes = taxonomy_leaves(data["taxonomy"], self._json_path)
        known = set(self.classes)
        for vid, entry in data["database"].items():
            if not isinstance(entry, dict) or entry.get("subset") not in ANET_SUBSETS:
                raise AnnotationError(self._json_path, None, f"video {vid!r}: 'subset' must be one of {ANET_SUBSETS}")
            anns = entry.get("annotations", [])
            if not isinstance(anns, list):
                raise AnnotationError(self._json_path, None, f"video {vid!r}: 'annotations' must be a list")
            for a in anns:
                if not isinstance(a, dict) or a.get("label") not in known:
                    raise AnnotationError(self._json_path, None,
                                          f"video {vid!r}: annotation {a!r} has no label among the taxonomy's leaf classes")
        if self.video_dir_arg is not None:
            self._video_dir = find_path("video_dir", self.video_dir_arg, self.root, kind="dir", what="ActivityNet video folder")
        else:
            self._video_dir = self.root / "videos" if (self.root / "videos").is_dir() else self.root
        self._data = data

    @property
    def num_classes(self) -> int:
        if self.classes is None:
            self._validate_layout()
        return len(self.classes)

    def _video_index(self) -> dict[str, Path]:
        """``<id>`` -> file for every ``v_<id>.<ext>`` (or ``<id>.<ext>``) in the video folder."""
        if self._index is None:
            idx: dict[str, Path] = {}
            for p in sorted(self._video_dir.iterdir()):
                if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS:
                    stem = p.stem.removeprefix("v_")
                    idx.setdefault(stem, p)
            self._index = idx
        return self._index

    def _records(self, split: str) -> list[VideoRecord]:
        self._validate_layout()
        index = {c: i for i, c in enumerate(self.classes)}
        files = self._video_index()
        records, missing = [], []
        for vid, entry in self._data["database"].items():
            if entry["subset"] != split:
                continue
            classes: list[int] = []
            for a in entry.get("annotations", []):
                c = index[a["label"]]
                if c not in classes:
                    classes.append(c)
            path = files.get(vid)
            if path is None:
                missing.append(f"{self._video_dir}/v_{vid}{{{','.join(VIDEO_EXTENSIONS)}}}")
                continue
            meta = {"video_id": vid, "classes": classes, "subset": split, "annotation_file": str(self._json_path),
                    "duration": entry.get("duration")}
            records.append(VideoRecord(targets={"label": classes[0] if classes else -1}, meta=meta, video=str(path)))
        report_missing(self, missing, f"the {split} subset of {self._json_path}", split)
        if not records:
            raise LayoutError(f"no video of the {split!r} subset found in {self._video_dir} ({self._json_path})")
        return records
