"""Something-Something v1 and v2 (20BN, 174 action templates) as one DataModule, read as released.

Layouts read (``root``)::

    v1: root/20bn-something-something-v1/<id>/00001.jpg ...     JPEG frames at 12 fps
        root/something-something-v1-labels.csv                  one template per line (class = line - 1)
        root/something-something-v1-{train,validation}.csv      "<id>;<template>" per line
        root/something-something-v1-test.csv                    "<id>" per line
    v2: root/20bn-something-something-v2/<id>.webm              VP8/VP9 videos at 12 fps
        root/something-something-v2-labels.json                 {"<template>": "<class index>", ...}
        root/something-something-v2-{train,validation}.json     [{"id", "label", "template",
                                                                  "placeholders"}, ...]
        root/something-something-v2-test.json                   [{"id"}, ...]

``version="auto"`` takes v1 when its frame folder exists, else v2. A v2 ``template`` is written
with brackets (``"Putting [something] on [something]"``); without them it is the class name of
the labels file. The test lists have no labels: ``val`` and ``test`` read the validation list (the
split of the thesis' Table 6.4 "val" columns).

Horizontal flips and left / right templates (``"Pushing something from left to right"``): the
default is no flip (``flip=False``). With ``flip=True`` a flipped clip takes the label of the
template with "left" and "right" exchanged (``flip_label_map``); a clip whose template names a side
without such a partner is returned unflipped (``meta["flipped"]`` says what happened).

Region proposals (STRG, thesis ch. 6): ``proposals`` (a ``mmzoo propose`` file, see
:mod:`mmzoo.data.proposals`) adds ``boxes`` (float ``proposal_frames, K, 4`` in crop pixels,
flipped with the clip) to every sample.

Batch fields: ``video`` (float ``B,3,T,H,W``), ``label`` (int64 ``B``), ``video_index``, ``boxes``
(with ``proposals``: a list of ``B`` tensors), ``meta`` (``id``, ``file`` / ``line``, ``template``,
``frame_indices``, ``flipped``, ...), ``skipped``. Errors name the file and line (unknown template,
duplicate id, malformed line); missing videos raise unless ``missing_videos="skip"``.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Literal

import torch

from mmzoo.data.clips import ClipDataModule
from mmzoo.data.paths import flag, report_missing
from mmzoo.data.proposals import ProposalClipDataset, find_proposals
from mmzoo.data.registry import register_datamodule
from mmzoo.data.video_dataset import AnnotationError, LayoutError, VideoRecord

__all__ = ["SOMETHING_FPS", "SomethingClipDataset", "SomethingSomethingDataModule", "flip_label_map"]

#: Frame rate of the v1 frames and the v2 videos.
SOMETHING_FPS = 12.0
_SIDE = re.compile(r"\b(left|right)\b", re.IGNORECASE)
_SPLIT_FILES = {"train": "train", "val": "validation", "test": "validation"}


def _swap_sides(name: str) -> str:
    def repl(m: re.Match) -> str:
        w = m.group(0)
        other = "right" if w.lower() == "left" else "left"
        return other.capitalize() if w[0].isupper() else other

    return _SIDE.sub(repl, name)


def flip_label_map(classes: list[str]) -> list[int | None]:
    """For each class, the class a horizontally flipped clip of it shows: itself when the template
    names no side, the template with "left" / "right" exchanged when the list has it, else None
    (such a clip must not be flipped)."""
    index = {c.lower(): i for i, c in enumerate(classes)}
    out: list[int | None] = []
    for i, c in enumerate(classes):
        out.append(index.get(_swap_sides(c).lower()) if _SIDE.search(c) else i)
    return out


class SomethingClipDataset(ProposalClipDataset):
    """Clips with the left / right label exchange of flipped clips (module docstring)."""

    def __init__(self, records: list[VideoRecord], cfg, logmel=None, *, flip_map: list[int | None]):
        super().__init__(records, cfg, logmel)
        self.flip_map = flip_map

    def _sample(self, rec_index: int, clip_index: int, crop_index: int) -> dict[str, Any]:
        out = super()._sample(rec_index, clip_index, crop_index)
        if not out["meta"]["flipped"]:
            return out
        partner = self.flip_map[out["label"]]
        if partner is not None:
            out["label"] = partner
            return out
        out["video"] = out["video"].flip(-1)  # no mirrored template: undo the flip
        if "boxes" in out:
            b, w = out["boxes"], out["video"].shape[-1]
            keep = (b[..., 2] > b[..., 0]) & (b[..., 3] > b[..., 1])
            b = torch.stack([w - b[..., 2], b[..., 1], w - b[..., 0], b[..., 3]], -1)
            b[~keep] = 0.0
            out["boxes"] = b
        out["meta"]["flipped"] = False
        return out


@register_datamodule("something-something")
class SomethingSomethingDataModule(ClipDataModule):
    """Something-Something v1 / v2 clips, one template label each (module docstring).

    ``mmzoo fit`` links ``num_classes`` (the templates of the labels file: 174) to the model.

    Args:
        root: dataset folder.
        version: ``"v1"`` (JPEG frames, CSV lists), ``"v2"`` (webm videos, JSON lists) or ``"auto"``.
        frames_dir / video_dir: the frame (v1) / video (v2) folder names under ``root``.
        flip: random horizontal flips in training, with the left / right label exchange (False:
            STRG's thesis does not say; flipping changes the meaning of 12 templates).
        missing_videos: ``"error"`` or ``"skip"`` (dropped, warned, kept in ``self.missing_videos``).
        proposals / proposal_frames / proposals_per_frame: region proposals (see
            :class:`~mmzoo.data.charades.CharadesDataModule`; STRG keeps 10 per frame here).
        **kwargs: the clip settings of :class:`~mmzoo.data.clips.ClipDataModule` (32 frames at
            stride 2 = 6 fps, 224 crops from short sides in [256, 320]; test 2 clips x 1 crop of
            256) and the loader settings.
    """

    model_links = ("num_classes",)

    def __init__(
        self,
        root: str,
        version: Literal["auto", "v1", "v2"] = "auto",
        frames_dir: str = "20bn-something-something-v1",
        video_dir: str = "20bn-something-something-v2",
        flip: bool = False,
        missing_videos: Literal["error", "skip"] = "error",
        proposals: str | None = None,
        proposal_frames: int = 16,
        proposals_per_frame: int | None = None,
        num_clips: int = 2,
        num_crops: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(flip=flip, num_clips=num_clips, num_crops=num_crops, **kwargs)
        for name, value, allowed in (("version", version, ("auto", "v1", "v2")),
                                     ("missing_videos", missing_videos, ("error", "skip"))):  # fmt: skip
            if value not in allowed:
                raise ValueError(f"{flag(name)} must be one of {list(allowed)}, got {value!r}")
        self.root = Path(root)
        self.version_arg = version
        self.frames_dir, self.video_dir = frames_dir, video_dir
        self.missing_videos_policy = missing_videos
        self.missing_videos: list[str] = []
        self.proposals, self.proposal_frames, self.proposals_per_frame = proposals, proposal_frames, proposals_per_frame
        self.train_split, self.val_split, self.test_split = "train", "val", "test"
        self.version: str | None = None
        self.classes: list[str] | None = None
        self._rows: dict[str, list[tuple[str, int, str, int]]] = {}

    # ------------------------------------------------------------------ layout
    def _resolve_version(self) -> str:
        if self.version_arg != "auto":
            return self.version_arg
        if (self.root / self.frames_dir).is_dir():
            return "v1"
        if (self.root / self.video_dir).is_dir():
            return "v2"
        raise LayoutError(f"Something-Something data not found: neither {self.root / self.frames_dir} (v1) nor "
                          f"{self.root / self.video_dir} (v2) exists ({flag('root')}, {flag('version')})")

    def _file(self, what: str) -> Path:
        ext = "csv" if self.version == "v1" else "json"
        p = self.root / f"something-something-{self.version}-{what}.{ext}"
        if not p.is_file():
            raise LayoutError(f"Something-Something {self.version} file not found: {p}")
        return p

    def _read_classes(self) -> list[str]:
        path = self._file("labels")
        if self.version == "v1":
            names = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
        else:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as e:
                raise AnnotationError(path, e.lineno, f"not valid JSON ({e.msg})") from None
            if not isinstance(data, dict):
                raise AnnotationError(path, None, "expected an object {template: class index}")
            names = [""] * len(data)
            for name, idx in data.items():
                try:
                    i = int(idx)
                except (TypeError, ValueError):
                    raise AnnotationError(path, None, f"class index {idx!r} of {name!r} is not an integer") from None
                if not 0 <= i < len(data) or names[i]:
                    raise AnnotationError(path, None, f"class index {i} of {name!r} is out of range or repeated")
                names[i] = name
        if not names:
            raise AnnotationError(path, None, "no class in the labels file")
        if len(set(names)) != len(names):
            raise AnnotationError(path, None, "a template is listed twice")
        return names

    @property
    def num_classes(self) -> int:
        if self.classes is None:
            self.version = self.version or self._resolve_version()
            self.classes = self._read_classes()
        return len(self.classes)

    def _validate_layout(self) -> None:
        if not self.root.is_dir():
            raise LayoutError(f"Something-Something root not found: {self.root} ({flag('root')})")
        self.version = self.version or self._resolve_version()
        if self.classes is None:
            self.classes = self._read_classes()
        for split in ("train", "val"):
            self._read_list(split)

    def _read_list(self, split: str) -> list[tuple[str, int, str, int]]:
        """``[(file, line, id, class)]`` of a labelled list."""
        if split in self._rows:
            return self._rows[split]
        path = self._file(_SPLIT_FILES[split])
        index = {c: i for i, c in enumerate(self.classes)}
        rows: list[tuple[str, int, str, int]] = []
        if self.version == "v1":
            entries = []
            for line, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                if not text.strip():
                    continue
                vid, sep, label = text.strip().partition(";")
                if not sep or not vid.strip():
                    raise AnnotationError(path, line, f"expected '<id>;<template>', got {text!r}")
                entries.append((line, vid.strip(), label.strip()))
        else:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as e:
                raise AnnotationError(path, e.lineno, f"not valid JSON ({e.msg})") from None
            if not isinstance(data, list):
                raise AnnotationError(path, None, "expected a list of {id, label, template, placeholders} objects")
            entries = []
            for k, item in enumerate(data):
                if not isinstance(item, dict) or "id" not in item or "template" not in item:
                    raise AnnotationError(path, None, f"entry {k} lacks 'id' or 'template': {item!r}")
                entries.append((k, str(item["id"]), str(item["template"]).replace("[", "").replace("]", "")))
        seen: dict[str, int] = {}
        where = "line" if self.version == "v1" else "entry"
        for line, vid, label in entries:
            ref = line if self.version == "v1" else None
            if label not in index:
                raise AnnotationError(path, ref, f"{where} {line}: template {label!r} is not in {self._file('labels').name}")
            if vid in seen:
                raise AnnotationError(path, ref, f"{where} {line}: video {vid} already listed ({where} {seen[vid]})")
            seen[vid] = line
            rows.append((str(path), line, vid, index[label]))
        if not rows:
            raise AnnotationError(path, None, "no annotation")
        self._rows[split] = rows
        return rows

    def _records(self, split: str) -> list[VideoRecord]:
        records, missing = [], []
        for file, line, vid, label in self._read_list(split):
            meta = {"id": vid, "file": file, "line": line, "template": self.classes[label]}
            if self.version == "v2":
                video = self.root / self.video_dir / f"{vid}.webm"
                if not video.is_file():
                    missing.append(f"{file}:{line}: {video}")
                    continue
                records.append(VideoRecord(targets={"label": label}, meta=meta, video=str(video)))
                continue
            folder = self.root / self.frames_dir / vid
            if not folder.is_dir():
                missing.append(f"{file}:{line}: {folder}")
                continue
            numbers = sorted(int(n[:-4]) for n in os.listdir(folder) if re.fullmatch(r"\d{5}\.jpg", n))
            if not numbers or numbers[0] != 1 or numbers[-1] != len(numbers):
                raise LayoutError(f"{file}:{line}: frame folder {folder} must hold 00001.jpg .. NNNNN.jpg without gaps")
            records.append(VideoRecord(targets={"label": label}, meta=meta, frames_dir=str(folder),
                                       frame_pattern="%05d.jpg", first_frame=1, last_frame=len(numbers),
                                       frames_fps=SOMETHING_FPS, frame_number_offset=1))  # fmt: skip
        report_missing(self, missing, f"the {split} list", split)
        if not records:
            raise LayoutError(f"no video found for the {split} split of Something-Something {self.version}")
        return records

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        pf = find_proposals(self.proposals, self.root) if self.proposals else None
        flip_map = flip_label_map(self.classes)
        layout = "frames" if self.version == "v1" else "video"
        for name, ds in list(self.datasets.items()):
            if not isinstance(ds, SomethingClipDataset):
                self.datasets[name] = SomethingClipDataset(ds.records, ds.cfg, ds.logmel, flip_map=flip_map)
                if pf is not None:
                    self.datasets[name].attach_proposals(pf, self.proposal_frames, self.proposals_per_frame, layout)
