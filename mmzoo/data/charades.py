"""Charades (v1, 157 action classes, multi-label) as a DataModule.

Layout read (``root``), as the dataset is distributed (allenai.org/plato/charades)::

    root/Charades_v1_train.csv     id,subject,scene,quality,relevance,verified,script,objects,
    root/Charades_v1_test.csv        descriptions,actions,length   (one video per row)
    root/Charades_v1_classes.txt   "c000 Holding some clothes" (one class per line)
    root/Charades_v1_480/<id>.mp4  videos (``layout="video"``), and/or
    root/Charades_v1_rgb/<id>/<id>-000001.jpg ...  frames at 24 fps (``layout="frames"``)

``actions`` is ``"c092 11.90 21.20;c147 0.00 5.10"`` (class, start and end in seconds), possibly
empty (a video with no action). Non-local networks (thesis ch. 5) and AVSlowFast (ch. 4, Table
4.4) train on ``Charades_v1_train.csv`` and report mAP on ``Charades_v1_test.csv`` (the
"validation" set of both theses); so ``val`` and ``test`` both read the test CSV by default.

Targets (``label``, float ``B x 157`` multi-hot), as PySlowFast's Charades loader builds them:

* training: the classes whose interval overlaps the time span of the sampled clip, from its first
  to its last frame (``train_labels="clip"``; ``"video"``: every class of the video). A video
  frame with stream index ``i`` is at ``i / fps``; frame file number ``n`` of ``Charades_v1_rgb``
  at ``(n - 1) / 24`` s. An action ``(s, e)`` overlaps the span ``[t0, t1]`` when ``s <= t1`` and
  ``e >= t0``.
* validation and test: the video-level labels (every action of the video), one target per video;
  the model combines the ``num_clips x num_crops`` views of a video by max-pooling their sigmoid
  scores (PySlowFast's Charades ``ENSEMBLE_METHOD: max``; the thesis' "temporally max-pooled") and
  the official mAP (``mmzoo.metrics.classification.MultiLabelMeanAP``, ``Charades_v1_classify.m``)
  ranks videos per class.

Test clips: clip ``k`` of ``K`` starts at ``round(k * (N - span) / (K - 1))`` (PySlowFast's Charades
loader spaces the clips from the first to the last possible start), ``clip_spacing="centres"``
uses the Kinetics bin centres of :func:`mmzoo.data.samplers.uniform_clips` instead.

Recipe defaults (non-local networks, ch. 5 section 3): training short side random in
``train_scale`` = [256, 320], a jittered ``crop_size`` = 224 window rescaled to ``train_resize`` =
288; test at a single scale of 320 (``test_scale``) with 10 clips x 3 crops of 320 (the three
crops cover the frame: the fully convolutional test of the thesis, as PySlowFast approximates it).
A model's ``InputConfig`` overrides them (``defaults_from_input``): SlowFast / AVSlowFast (Table
4.4) train on 224 crops and test on 10 x 3 crops of 256.

Batch fields (``B`` samples): ``video`` (float ``B,3,T,H,W`` normalised, or ``[slow, fast]`` with
``alpha``), ``audio`` / ``audio_shifted`` / ``has_audio`` (with ``with_audio``; frame layouts take
the audio from ``Charades_v1_480/<id>.mp4`` when present, else zeros with ``has_audio=False``),
``label`` (float ``B,num_classes`` multi-hot), ``video_index`` (long ``B``, the video of each
view), ``meta`` (``id``, ``csv`` / ``line``, ``source``, ``frame_indices``, ``time_span``, ...)
and ``skipped``.

Region proposals (STRG, thesis ch. 6): with ``proposals`` (a file written by ``mmzoo propose``,
format in :mod:`mmzoo.data.proposals`) every sample also carries ``boxes`` (float
``proposal_frames, K, 4`` in the pixels of the returned crop, all-zero rows padding; rescaled with
the crop by ``train_resize``); batches hold a list of ``B`` such tensors.

Strictness: ``setup()`` checks the class list (every line ``cNNN name``, ids ``c000..``
consecutive), every CSV row (id, ``actions`` syntax, known class, ``start <= end``, numeric
``length``) and every video file or frame folder; errors are :class:`~mmzoo.errors.DataError` s
naming the file and line. Missing videos raise unless ``missing_videos="skip"`` (dropped, counted
in ``self.missing_videos``, warned).
"""
from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F

from mmzoo.data import samplers as S
from mmzoo.data.clips import ClipDataModule
from mmzoo.data.decode import VideoReader
from mmzoo.data.paths import find_path, flag, report_missing
from mmzoo.data.proposals import ProposalClipDataset, find_proposals
from mmzoo.data.registry import register_datamodule
from mmzoo.data.video_dataset import (
    AnnotationError,
    ClipConfig,
    ClipDataset,
    LayoutError,
    VideoRecord,
    read_csv_rows,
)
from mmzoo.registry import InputConfig

__all__ = ["CHARADES_FPS", "CharadesClipDataset", "CharadesDataModule", "parse_actions", "read_charades_classes"]


#: Frame rate of the released ``Charades_v1_rgb`` frames.
CHARADES_FPS = 24.0
CSV_COLUMNS = ["id", "actions", "length"]
_CLASS_LINE = re.compile(r"^c(\d{3})\s+(\S.*)$")
_ACTION = re.compile(r"^c(\d{3})$")
_ID = re.compile(r"^[A-Za-z0-9]+$")


def read_charades_classes(path: str | os.PathLike) -> list[str]:
    """Class names of ``Charades_v1_classes.txt`` in id order (``c000`` first); an
    :class:`AnnotationError` names the line of a malformed, repeated or out-of-order id."""
    path = Path(path)
    if not path.is_file():
        raise LayoutError(f"Charades class list not found: {path}")
    names: list[str] = []
    for line, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not text.strip():
            continue
        m = _CLASS_LINE.match(text.strip())
        if m is None:
            raise AnnotationError(path, line, f"expected 'cNNN <class name>', got {text!r}")
        if int(m.group(1)) != len(names):
            raise AnnotationError(path, line, f"class id c{m.group(1)} out of order: expected c{len(names):03d}")
        names.append(m.group(2).strip())
    if not names:
        raise AnnotationError(path, None, "no class in the class list")
    return names


def parse_actions(text: str, num_classes: int, path: str | os.PathLike, line: int) -> list[tuple[int, float, float]]:
    """``[(class, start, end)]`` of an ``actions`` field (``"c092 11.90 21.20;c147 0.00 5.10"``, or
    empty); an :class:`AnnotationError` names the file, line and the bad entry."""
    out = []
    for entry in (e.strip() for e in text.split(";")):
        if not entry:
            continue
        parts = entry.split()
        m = _ACTION.match(parts[0]) if len(parts) == 3 else None
        if m is None:
            raise AnnotationError(path, line, f"action {entry!r} is not 'cNNN <start> <end>'")
        cls = int(m.group(1))
        if cls >= num_classes:
            raise AnnotationError(path, line, f"action class {parts[0]} is not in the class list (c000..c{num_classes - 1:03d})")
        try:
            start, end = float(parts[1]), float(parts[2])
        except ValueError:
            raise AnnotationError(path, line, f"action {entry!r}: start / end are not numbers") from None
        if not (math.isfinite(start) and math.isfinite(end)) or start < 0 or end < start:
            raise AnnotationError(path, line, f"action {entry!r}: needs 0 <= start <= end")
        out.append((cls, start, end))
    return out


def _multi_hot(actions: list[tuple[int, float, float]], num_classes: int,
               span: tuple[float, float] | None = None) -> torch.Tensor:
    """Multi-hot float vector of the actions (all of them, or those overlapping ``span``)."""
    y = torch.zeros(num_classes, dtype=torch.float32)
    for c, s, e in actions:
        if span is None or (s <= span[1] and e >= span[0]):
            y[c] = 1.0
    return y


class CharadesClipDataset(ClipDataset):
    """:class:`~mmzoo.data.video_dataset.ClipDataset` with Charades' multi-hot targets, the
    optional rescaling of the training crop and PySlowFast's Charades test-clip spacing."""

    def __init__(self, records: list[VideoRecord], cfg: ClipConfig, logmel=None, *, num_classes: int,
                 train_labels: Literal["clip", "video"] = "clip", train_resize: int | None = None,
                 clip_spacing: Literal["pyslowfast", "centres"] = "pyslowfast"):
        super().__init__(records, cfg, logmel)
        self.num_classes = num_classes
        self.train_labels = train_labels
        self.train_resize = train_resize
        self.clip_spacing = clip_spacing
        self._fps: dict[str, float] = {}

    def _temporal(self, n: int, clip_index: int) -> tuple[torch.Tensor, int]:
        c = self.cfg
        if c.train or c.temporal != "clip" or self.clip_spacing == "centres" or c.num_clips < 2:
            return super()._temporal(n, clip_index)
        delta = max(n - S.clip_span(c.num_frames, c.stride), 0)
        start = round(delta * clip_index / (c.num_clips - 1))
        return S.clip_indices(start, c.num_frames, c.stride, n), c.stride

    def _seconds(self, rec: VideoRecord, indices: list[int]) -> tuple[float, float]:
        """Time span (s) from the first to the last sampled frame."""
        if rec.video is not None:
            if rec.video not in self._fps:
                with VideoReader(rec.video) as r:
                    self._fps[rec.video] = r.fps
            fps, offset = self._fps[rec.video], 0
        else:
            fps, offset = float(rec.frames_fps or CHARADES_FPS), rec.frame_number_offset
        return (min(indices) - offset) / fps, (max(indices) - offset) / fps

    def _resize(self, video: torch.Tensor) -> torch.Tensor:
        s = self.train_resize
        if video.shape[-2:] == (s, s):
            return video
        return F.interpolate(video, size=(s, s), mode="bilinear", align_corners=False)

    def _sample(self, rec_index: int, clip_index: int, crop_index: int) -> dict[str, Any]:
        out = super()._sample(rec_index, clip_index, crop_index)
        rec = self.records[rec_index]
        actions = rec.meta["actions"]
        if self.cfg.train and self.train_resize:
            v = out["video"]
            size = v.shape[-1] if not isinstance(v, list) else v[0].shape[-1]
            out["video"] = [self._resize(x) for x in v] if isinstance(v, list) else self._resize(v)
            if "boxes" in out:
                out["boxes"] = out["boxes"] * (self.train_resize / size)
        if self.cfg.train and self.train_labels == "clip":
            span = self._seconds(rec, out["meta"]["frame_indices"])
            out["label"] = _multi_hot(actions, self.num_classes, span)
            out["meta"]["time_span"] = span
        else:
            out["label"] = _multi_hot(actions, self.num_classes)
        return out


class CharadesProposalDataset(CharadesClipDataset, ProposalClipDataset):
    """Charades clips with the region proposals of a proposals file (``boxes``)."""


@register_datamodule("charades")
class CharadesDataModule(ClipDataModule):
    """Charades v1 clips with multi-hot labels (layout, targets and recipe in the module docstring).

    ``mmzoo fit`` links ``num_classes`` (the lines of the class list: 157) to the model's
    ``num_classes`` (``model_links``). Models train a per-class sigmoid on ``label``; a model that
    trains with softmax on single labels must refuse it (``multilabel = True``).

    Args:
        root: dataset folder.
        layout: ``"video"`` (``Charades_v1_480/<id>.mp4``), ``"frames"`` (``Charades_v1_rgb/<id>/``)
            or ``"auto"`` (frames when the frame folder exists, else videos).
        train_csv / val_csv / test_csv: annotation files, as given or under ``root``
            (``Charades_v1_train.csv``; validation and test: ``Charades_v1_test.csv``).
        classes_file: the class list (``Charades_v1_classes.txt``).
        video_dir / frames_dir: folder names under ``root`` (``Charades_v1_480``; the original-size
            release is ``Charades_v1``) and ``Charades_v1_rgb``.
        frames_fps: frame rate of the frame folders (24, the release's).
        train_labels: ``"clip"`` (classes overlapping the sampled clip, PySlowFast) or
            ``"video"`` (every class of the video) for training.
        train_resize: side the training crop is rescaled to (288: non-local networks, ch. 5
            section 3, "the 224 crop window is jittered, then rescaled to 288"); ``None``: none.
        clip_spacing: test clips ``"pyslowfast"`` (first to last start, PySlowFast's Charades
            loader) or ``"centres"`` (bin centres, the Kinetics loader).
        missing_videos: ``"error"`` or ``"skip"`` (drop rows whose video is absent, warned and
            kept in ``self.missing_videos``).
        proposals: a proposals file (``mmzoo propose``) whose boxes come with every clip as
            ``boxes`` (STRG); None: none.
        proposal_frames: frames of a clip that get proposals, evenly spaced from the first (16:
            every other frame of STRG's 32; it must divide ``num_frames``).
        proposals_per_frame: keep the first K proposals of each frame (Table 6.2: 25 / 50 / 100);
            None: all the file has.
        **kwargs: the clip settings of :class:`~mmzoo.data.clips.ClipDataModule`, with the
            Charades defaults ``crop_size=224``, ``train_scale=(256, 320)``, ``test_scale=320``,
            ``test_crop_size=320``, ``num_clips=10``, ``num_crops=3``, and the loader settings of
            :class:`~mmzoo.data.base.ZooDataModule`.
    """

    model_links = ("num_classes",)
    multilabel: ClassVar[bool] = True

    def __init__(
        self,
        root: str,
        layout: Literal["auto", "video", "frames"] = "auto",
        train_csv: str | None = None,
        val_csv: str | None = None,
        test_csv: str | None = None,
        classes_file: str | None = None,
        video_dir: str = "Charades_v1_480",
        frames_dir: str = "Charades_v1_rgb",
        frames_fps: float = CHARADES_FPS,
        train_labels: Literal["clip", "video"] = "clip",
        train_resize: int | None = 288,
        clip_spacing: Literal["pyslowfast", "centres"] = "pyslowfast",
        missing_videos: Literal["error", "skip"] = "error",
        proposals: str | None = None,
        proposal_frames: int = 16,
        proposals_per_frame: int | None = None,
        train_scale: tuple[int, int] = (256, 320),
        crop_size: int = 224,
        test_scale: int = 320,
        test_crop_size: int = 320,
        **kwargs: Any,
    ) -> None:
        super().__init__(train_scale=train_scale, crop_size=crop_size, test_scale=test_scale,
                         test_crop_size=test_crop_size, **kwargs)  # fmt: skip
        for name, value, allowed in (("layout", layout, ("auto", "video", "frames")),
                                     ("train_labels", train_labels, ("clip", "video")),
                                     ("clip_spacing", clip_spacing, ("pyslowfast", "centres")),
                                     ("missing_videos", missing_videos, ("error", "skip"))):  # fmt: skip
            if value not in allowed:
                raise ValueError(f"{flag(name)} must be one of {list(allowed)}, got {value!r}")
        if train_resize is not None and train_resize < 1:
            raise ValueError(f"{flag('train_resize')} must be >= 1 or None, got {train_resize}")
        self.root = Path(root)
        self.layout = layout
        self.csvs = {"train": (train_csv, "Charades_v1_train.csv"), "val": (val_csv, "Charades_v1_test.csv"),
                     "test": (test_csv, "Charades_v1_test.csv")}  # fmt: skip
        self.classes_file = classes_file
        self.video_dir, self.frames_dir = video_dir, frames_dir
        self.frames_fps = frames_fps
        self.train_labels, self.train_resize, self.clip_spacing = train_labels, train_resize, clip_spacing
        self.missing_videos_policy = missing_videos
        self.proposals, self.proposal_frames, self.proposals_per_frame = proposals, proposal_frames, proposals_per_frame
        self.missing_videos: list[str] = []
        self.train_split, self.val_split, self.test_split = "train", "val", "test"
        self.classes: list[str] | None = None
        self._layout: str | None = None
        self._rows: dict[str, list[tuple[str, int, dict]]] = {}

    @classmethod
    def defaults_from_input(cls, cfg: InputConfig) -> dict[str, Any]:
        """The clip arguments of :meth:`ClipDataModule.defaults_from_input`, except that the
        model's ``train_crop`` is the side it trains on (``train_resize``): the jittered window
        ``crop_size`` stays 224 (or ``train_crop`` when smaller), so a model declaring 288 gets the
        non-local recipe's 224 window rescaled to 288 and one declaring 224 gets plain 224 crops."""
        out = super().defaults_from_input(cfg)
        if cfg.train_crop is not None:
            out["train_resize"] = int(cfg.train_crop)
            out["crop_size"] = min(224, int(cfg.train_crop))
        return out

    # ------------------------------------------------------------------ layout
    def _csv_path(self, split: str) -> Path:
        value, default = self.csvs[split]
        return find_path(f"{split}_csv", value, self.root, defaults=(default,),
                         what=f"Charades {split} annotation file")  # fmt: skip

    def _classes_path(self) -> Path:
        return find_path("classes_file", self.classes_file, self.root, defaults=("Charades_v1_classes.txt",),
                         what="Charades class list")  # fmt: skip

    def _resolve_layout(self) -> str:
        frames, videos = self.root / self.frames_dir, self.root / self.video_dir
        if self.layout == "frames" or (self.layout == "auto" and frames.is_dir()):
            if not frames.is_dir():
                raise LayoutError(f"Charades frame folder not found: {frames} ({flag('frames_dir')})")
            return "frames"
        if not videos.is_dir():
            tried = f"{videos}" if self.layout == "video" else f"{frames} or {videos}"
            raise LayoutError(f"Charades videos not found: {tried} ({flag('layout')}, {flag('video_dir')}, {flag('frames_dir')})")
        return "video"

    def _validate_layout(self) -> None:
        if not self.root.is_dir():
            raise LayoutError(f"Charades root not found: {self.root} ({flag('root')})")
        if self.classes is None:
            self.classes = read_charades_classes(self._classes_path())
        if self._layout is None:
            self._layout = self._resolve_layout()
        for split in ("train", "val", "test"):
            self._read_csv(split)

    @property
    def num_classes(self) -> int:
        if self.classes is None:
            self.classes = read_charades_classes(self._classes_path())
        return len(self.classes)

    def _read_csv(self, split: str) -> list[tuple[str, int, dict]]:
        if split in self._rows:
            return self._rows[split]
        path = self._csv_path(split)
        rows, seen = [], {}
        for line, row in read_csv_rows(path, CSV_COLUMNS):
            vid = row["id"]
            if not _ID.match(vid):
                raise AnnotationError(path, line, f"bad video id {vid!r}")
            if vid in seen:
                raise AnnotationError(path, line, f"video {vid} already listed at line {seen[vid]}")
            seen[vid] = line
            try:
                length = float(row["length"])
            except ValueError:
                raise AnnotationError(path, line, f"column 'length': cannot parse {row['length']!r} as seconds") from None
            actions = parse_actions(row["actions"], len(self.classes), path, line)
            rows.append((str(path), line, {"id": vid, "actions": actions, "length": length}))
        if not rows:
            raise AnnotationError(path, None, "no annotation rows")
        self._rows[split] = rows
        return rows

    def _frame_count(self, folder: Path, vid: str, csv: str, line: int) -> int:
        """Frames ``<id>-000001.jpg ..`` in ``folder`` (numbered 1..N without gaps)."""
        pat = re.compile(rf"^{re.escape(vid)}-(\d{{6}})\.jpg$")
        numbers = sorted(int(m.group(1)) for m in (pat.match(n) for n in os.listdir(folder)) if m)
        if not numbers:
            raise LayoutError(f"{csv}:{line}: frame folder {folder} holds no '{vid}-NNNNNN.jpg' frame")
        if numbers[0] != 1 or numbers[-1] != len(numbers):
            gap = next((i for i, n in enumerate(numbers, start=1) if n != i), len(numbers) + 1)
            raise LayoutError(f"{csv}:{line}: frame folder {folder} lacks frame {folder / f'{vid}-{gap:06d}.jpg'} "
                              f"(frames must be numbered 1..N)")
        return len(numbers)

    def _records(self, split: str) -> list[VideoRecord]:
        records, missing = [], []
        for csv, line, row in self._read_csv(split):
            vid = row["id"]
            mp4 = self.root / self.video_dir / f"{vid}.mp4"
            meta = {"id": vid, "csv": csv, "line": line, "actions": row["actions"], "length": row["length"]}
            if self._layout == "video":
                if not mp4.is_file():
                    missing.append(f"{csv}:{line}: {mp4}")
                    continue
                records.append(VideoRecord(targets={}, meta=meta, video=str(mp4)))
                continue
            folder = self.root / self.frames_dir / vid
            if not folder.is_dir():
                missing.append(f"{csv}:{line}: {folder}")
                continue
            n = self._frame_count(folder, vid, csv, line)
            records.append(VideoRecord(
                targets={}, meta=meta, frames_dir=str(folder), frame_pattern=f"{vid}-%06d.jpg", first_frame=1,
                last_frame=n, frames_fps=self.frames_fps, frame_number_offset=1,
                audio_video=str(mp4) if mp4.is_file() else None,
            ))  # fmt: skip
        report_missing(self, missing, f"the {split} split", split)
        if not records:
            raise LayoutError(f"no video found for the {split} split ({self._csv_path(split)})")
        return records

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        pf = find_proposals(self.proposals, self.root) if self.proposals else None
        for name, ds in list(self.datasets.items()):
            if not isinstance(ds, CharadesClipDataset):
                cls = CharadesProposalDataset if pf is not None else CharadesClipDataset
                self.datasets[name] = cls(
                    ds.records, ds.cfg, ds.logmel, num_classes=self.num_classes, train_labels=self.train_labels,
                    train_resize=self.train_resize, clip_spacing=self.clip_spacing,
                )  # fmt: skip
                if pf is not None:
                    self.datasets[name].attach_proposals(pf, self.proposal_frames, self.proposals_per_frame,
                                                         self._layout)  # fmt: skip
