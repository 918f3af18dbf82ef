"""EPIC-Kitchens-55 and EPIC-Kitchens-100 action segments as a DataModule (verb, noun, action).

Annotation files (in ``annotations_dir``, default ``root/annotations``), as released:

* EPIC-55 (github.com/epic-kitchens/annotations): ``EPIC_train_action_labels.csv`` (``uid,
  participant_id, video_id, narration, start_timestamp, stop_timestamp, start_frame, stop_frame,
  verb, verb_class, noun, noun_class, all_nouns, all_noun_classes``), ``EPIC_test_s1_timestamps.csv``
  / ``EPIC_test_s2_timestamps.csv`` (``uid, participant_id, video_id, start_timestamp,
  stop_timestamp, start_frame, stop_frame``), optionally ``EPIC_verb_classes.csv`` /
  ``EPIC_noun_classes.csv`` (class counts; defaults 125 verbs / 352 nouns).
* EPIC-100 (github.com/epic-kitchens/epic-kitchens-100-annotations): ``EPIC_100_train.csv`` and
  ``EPIC_100_validation.csv`` (``narration_id, participant_id, video_id, narration_timestamp,
  start_timestamp, stop_timestamp, start_frame, stop_frame, narration, verb, verb_class, noun,
  noun_class, all_nouns, all_noun_classes``; a leading ``uid`` column is accepted),
  ``EPIC_100_test_timestamps.csv``, optionally ``EPIC_100_verb_classes.csv`` /
  ``EPIC_100_noun_classes.csv`` (defaults 97 verbs / 300 nouns).

Timestamps are ``HH:MM:SS.ff``; frame numbers are those of the released ``frame_%010d.jpg`` files
(1-based, at the video's frame rate).

Media layouts (``root``), each looked up per video in this order:

* EPIC-55 (2018 download scripts, tars extracted in place):
  ``frames_rgb_flow/rgb/{train,test}/P01/P01_01/frame_0000000001.jpg`` and
  ``videos/{train,test}/P01/P01_01.MP4``;
* EPIC-100 (download-scripts-100): ``P01/rgb_frames/P01_01/frame_0000000001.jpg`` and
  ``P01/videos/P01_01.MP4``;
* either version, flat: ``rgb_frames/P01/P01_01/frame_*.jpg`` and ``videos/P01/P01_01.MP4``.

``source="frames"`` reads JPEG frames (audio, with ``with_audio``, from the video of the same id);
``source="video"`` decodes the segment ``[start_timestamp, stop_timestamp)`` from the video.

Optical flow (``modality="flow"`` / ``"rgb+flow"``): the released TV-L1 flow frames, EPIC-55
``frames_rgb_flow/flow/{train,test}/P01/P01_01/{u,v}/`` (or ``flow/...`` under ``root``), EPIC-100
``P01/flow_frames/P01_01/{u,v}/`` (or flat ``flow_frames/P01/P01_01/``), sampled in RGB frame numbers
and mapped to the release's flow frame rate; layouts, index mapping and flip rule in
:mod:`mmzoo.data.flow_clips`. ``rgb+flow`` adds ``flow`` beside the RGB ``video`` (two-stream fusion).

Splits. EPIC-100: train / validation / test as released. EPIC-55: the theses train and validate on
the division of the released training set made by Baradel et al., "Object Level Visual Reasoning
in Videos" (ECCV 2018), and do not list it (the PSN thesis is [SILENT] on it; the AVSlowFast thesis, ch. 4, only cites
it). That list could not be verified: the authors' public code
(github.com/fabienbaradel/object_level_visual_reasoning, last commit f504715) contains only the
VLOG pipeline (no EPIC loader, split file or participant list), and the paper's text was not
available to check. The split is therefore an argument: ``val_participants`` (default
``P26..P31``, i.e. train on P01-P25: a participant split seen in third-party public preprocessing
code [EXT], NOT confirmed to be Baradel et al.'s) or, taking precedence, ``val_videos`` /
``val_videos_file`` (video ids, one per line; every id must occur in the training CSV). Pass the
exact list with ``val_videos_file`` when you have it.
``test_set``: ``"val"`` (labelled; default), ``"test"`` (EPIC-100 test timestamps), ``"s1"`` /
``"s2"`` (EPIC-55 seen / unseen kitchens). Test rows have no labels: their targets are -1.

Batch fields: ``video`` (float ``B,3,T,H,W`` normalised, or ``[slow, fast]``), ``audio`` (log-mel
``B,1,audio_num_frames,audio_n_mels``, with ``with_audio``; ``audio_shifted`` with
``audio_shift_sec``), ``has_audio`` (bool ``B``), ``verb`` / ``noun`` (long ``B``), ``action``
(long ``B``: ``verb * num_nouns + noun``, -1 when unlabelled), ``video_index`` (long ``B``: the
segment each view comes from), ``meta`` (list of dicts:
``narration_id`` / ``uid``, ``video_id``, ``participant_id``, ``start_frame``, ``stop_frame``,
``start_sec``, ``stop_sec``, ``csv``, ``line``, ``source``, ``video_index``, ``clip_index``,
``crop_index``, ``frame_indices`` (frame numbers in frames mode, stream indices in video mode),
``flipped``; EPIC-100 only, when the release's list files are in ``annotations_dir``:
``unseen_participant`` (``EPIC_100_unseen_participant_ids_{validation,test}.csv``, else
``EPIC_100_unseen_participant_ids.csv``), ``tail_verb`` / ``tail_noun``
(``EPIC_100_tail_{verbs,nouns}.csv``) for the subsets the benchmark reports), ``skipped``; and
``unseen`` (bool ``B``) whenever the split has unseen-participant flags (EPIC-100 with the list
file; EPIC-55 ``s1`` / ``s2``: seen / unseen kitchens).

Evaluation subsets for :class:`~mmzoo.metrics.classification.EpicActionAccuracy`, read from the
optional official files in ``annotations_dir`` when present: ``tail_verbs`` / ``tail_nouns``
(EPIC-100 ``EPIC_100_tail_{verbs,nouns}.csv``), ``many_shot_verbs`` / ``many_shot_nouns`` /
``many_shot_actions`` (EPIC-55 ``EPIC_many_shot_{verbs,nouns,actions}.csv``);
``metric_subsets()`` returns them as the metric's constructor arguments. The SlowFast family's
``verb_noun`` head builds its metrics with them (thesis ch. 4 reports EPIC-Kitchens verb / noun /
action accuracy on the seen s1 and unseen s2 test sets).

Strictness: ``setup()`` checks every annotation line (numbers, timestamps, ``start <= stop``, class
ids below the class counts) naming file and line, and the media of every video of the split,
naming the missing folder / file; a ``.tar`` that was not extracted is reported as such.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Literal, Optional

import torch

from mmzoo.data.clips import ClipDataModule
from mmzoo.data.flow_clips import (FlowRecord, Modality, add_flow_datasets, epic_flow_dirs, epic_flow_stride,
                                   find_flow_dir)
from mmzoo.data.paths import find_path, flag
from mmzoo.data.registry import register_datamodule
from mmzoo.data.video_dataset import (
    AnnotationError,
    LayoutError,
    VideoRecord,
    collate_clips,
    parse_number,
    read_csv_rows,
)

__all__ = ["DEFAULT_VAL_PARTICIPANTS_55", "EPIC_FILES", "EpicKitchensDataModule", "parse_timestamp"]

log = logging.getLogger(__name__)

EPIC_FILES = {
    "55": {
        "train": "EPIC_train_action_labels.csv",
        "s1": "EPIC_test_s1_timestamps.csv",
        "s2": "EPIC_test_s2_timestamps.csv",
        "verbs": "EPIC_verb_classes.csv",
        "nouns": "EPIC_noun_classes.csv",
    },
    "100": {
        "train": "EPIC_100_train.csv",
        "val": "EPIC_100_validation.csv",
        "test": "EPIC_100_test_timestamps.csv",
        "verbs": "EPIC_100_verb_classes.csv",
        "nouns": "EPIC_100_noun_classes.csv",
    },
}
DEFAULT_CLASS_COUNTS = {"55": (125, 352), "100": (97, 300)}
#: EPIC-55 validation participants by default. NOT verified to be the Baradel et al. (ECCV 2018)
#: split used by the theses (see the module docstring); a convention of third-party code [EXT].
DEFAULT_VAL_PARTICIPANTS_55 = ("P26", "P27", "P28", "P29", "P30", "P31")
_VIDEO_ID = re.compile(r"^P\d{2}_\d{2,3}$")
_PARTICIPANT = re.compile(r"^P\d{2}$")
SEGMENT_COLUMNS = ["participant_id", "video_id", "start_timestamp", "stop_timestamp", "start_frame", "stop_frame"]
LABEL_COLUMNS = ["verb_class", "noun_class"]
_TS = re.compile(r"^(\d+):([0-5]?\d):(\d+(?:\.\d*)?)$")


def parse_timestamp(value: str) -> float:
    """``HH:MM:SS.ff`` -> seconds (raises ``ValueError``)."""
    m = _TS.match(value.strip())
    if not m:
        raise ValueError(f"not a HH:MM:SS.ff timestamp: {value!r}")
    return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))


UNSEEN_FILES_100 = {"val": "EPIC_100_unseen_participant_ids_validation.csv",
                    "test": "EPIC_100_unseen_participant_ids_test.csv"}
UNSEEN_FILE_100 = "EPIC_100_unseen_participant_ids.csv"
TAIL_FILES_100 = {"verbs": "EPIC_100_tail_verbs.csv", "nouns": "EPIC_100_tail_nouns.csv"}
MANY_SHOT_FILES_55 = {"verbs": "EPIC_many_shot_verbs.csv", "nouns": "EPIC_many_shot_nouns.csv",
                      "actions": "EPIC_many_shot_actions.csv"}
_PAIR = re.compile(r"^\(?\s*(\d+)\s*,\s*(\d+)\s*\)?$")


def collate_epic(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """:func:`~mmzoo.data.video_dataset.collate_clips`, plus ``unseen`` (bool ``B``) when every
    sample's meta carries an ``unseen_participant`` flag."""
    batch = collate_clips(samples)
    rows = batch.get("meta")
    if isinstance(rows, list) and rows and all(isinstance(m, dict) and "unseen_participant" in m for m in rows):
        batch["unseen"] = torch.tensor([bool(m["unseen_participant"]) for m in rows], dtype=torch.bool)
    return batch


@register_datamodule("epic-kitchens")
class EpicKitchensDataModule(ClipDataModule):
    """EPIC-Kitchens-55 / -100 action segments with verb, noun and action targets.

    ``num_verbs`` / ``num_nouns`` (class files, else the release counts) are *not* linked to the
    model: pass ``--model.num_verbs`` / ``--model.num_nouns`` (the EPIC-55 noun count is itself
    ambiguous, 321 / 331 / 352 in the PSN thesis, so it stays the user's explicit choice).

    Args:
        root: dataset folder (media layouts in the module docstring).
        version: ``"55"`` or ``"100"``.
        source: ``"frames"`` (released JPEG frames) or ``"video"`` (released MP4 videos).
        annotations_dir: folder with the annotation CSVs: as given (absolute, or relative to the
            working directory), else relative to ``root``; ``None``: ``root/annotations``.
        test_set: split used by ``test`` / ``predict``: ``"val"``, ``"test"`` (EPIC-100), ``"s1"`` /
            ``"s2"`` (EPIC-55).
        val_participants: EPIC-55 participants held out for validation (default P26-P31: NOT
            verified to be the Baradel et al. split the theses use, see the module docstring).
        val_videos / val_videos_file: EPIC-55 validation video ids (take precedence; the file has
            one ``Pxx_yy`` id per line). An id that is malformed, repeated or absent from the
            training CSV raises, naming it (and the file line).
        num_clips / num_crops: test views (AVSlowFast on EPIC: 1 clip, one centre crop).
        modality: ``"rgb"``, ``"flow"`` (2-channel optical flow as ``video``) or ``"rgb+flow"``
            (``video`` and ``flow``); flow is read from the released flow frames (module docstring).
        flow_mean / flow_std: normalisation of the flow x / y channels scaled to [0, 1] (0.5 / 0.5:
            [-1, 1] as I3D's flow stream).
        objects: an objects file (:mod:`mmzoo.data.epic_objects`: boxes + RoI features written once
            by ``mmzoo objects``); each item then also carries ``object_features`` (N, C1),
            ``object_boxes`` (N, 4, pixels of the view), ``object_mask`` and ``object_times`` (N,) of
            the ``objects_frames`` detection frames around the clip centre (SAOA, thesis ch. 3).
        objects_frames: M (12: 6 s at 2 fps, the global alignment's window).
        objects_missing: a video of the split absent from the objects file: ``"error"`` (raise,
            naming the videos) or ``"empty"`` (its clips get no objects; counted in a warning).
        objects_train_view: with ``objects``, the training view: ``"full"`` (default: the test view,
            one centre clip without random scale, crop or flip, as SAOA's stage 2 trains on the
            un-cropped clip; boxes exact) or ``"random"`` (the usual augmentation; boxes assume a
            centred crop at the middle scale, :func:`mmzoo.data.epic_objects.view_window`).
        **kwargs: the clip settings of :class:`~mmzoo.data.clips.ClipDataModule` (as for
            Kinetics; ``temporal="tsn"`` samples ``num_frames`` segments; audio comes from the
            video file) and the loader settings of :class:`~mmzoo.data.base.ZooDataModule`.
    """

    def __init__(
        self,
        root: str,
        version: Literal["55", "100"] = "100",
        source: Literal["frames", "video"] = "frames",
        annotations_dir: Optional[str] = None,
        test_set: Literal["val", "test", "s1", "s2"] = "val",
        val_participants: Optional[list[str]] = None,
        val_videos: Optional[list[str]] = None,
        val_videos_file: Optional[str] = None,
        num_clips: int = 1,
        num_crops: int = 1,
        modality: Modality = "rgb",
        flow_mean: tuple[float, float] = (0.5, 0.5),
        flow_std: tuple[float, float] = (0.5, 0.5),
        objects: Optional[str] = None,
        objects_frames: int = 12,
        objects_missing: Literal["error", "empty"] = "error",
        objects_train_view: Literal["full", "random"] = "full",
        **kwargs: Any,
    ):
        super().__init__(num_clips=num_clips, num_crops=num_crops, **kwargs)
        if objects_missing not in ("error", "empty"):
            raise ValueError(f"objects_missing must be 'error' or 'empty', got {objects_missing!r}")
        if objects_train_view not in ("full", "random"):
            raise ValueError(f"objects_train_view must be 'full' or 'random', got {objects_train_view!r}")
        self.objects, self.objects_frames, self.objects_missing = objects, objects_frames, objects_missing
        self.objects_train_view = objects_train_view
        self.objects_missing_videos: list[str] = []
        if modality not in ("rgb", "flow", "rgb+flow"):
            raise ValueError(f"modality must be 'rgb', 'flow' or 'rgb+flow', got {modality!r}")
        if modality == "rgb+flow" and source != "frames":
            raise ValueError("modality='rgb+flow' reads RGB and flow frames: use source='frames'")
        self.modality = modality
        self.flow_mean, self.flow_std = tuple(flow_mean), tuple(flow_std)
        if version not in ("55", "100"):
            raise ValueError(f"version must be '55' or '100', got {version!r}")
        if source not in ("frames", "video"):
            raise ValueError(f"source must be 'frames' or 'video', got {source!r}")
        valid_tests = {"55": ("val", "s1", "s2"), "100": ("val", "test")}[version]
        if test_set not in valid_tests:
            raise ValueError(f"test_set {test_set!r} does not exist for EPIC-{version}; use one of {valid_tests}")
        self.root = Path(root)
        self.version = version
        self.source = source
        self._annotations_dir_arg = annotations_dir
        if annotations_dir is None:
            self.annotations_dir = self.root / "annotations"
        else:
            ad = Path(annotations_dir).expanduser()
            self.annotations_dir = ad if ad.is_absolute() or ad.is_dir() else self.root / ad
        self.val_participants = list(val_participants) if val_participants is not None else list(DEFAULT_VAL_PARTICIPANTS_55)
        bad = [p for p in self.val_participants if not _PARTICIPANT.match(str(p))]
        if bad:
            raise ValueError(f"val_participants must be EPIC participant ids like 'P26', got {bad}")
        self.val_videos = list(val_videos) if val_videos is not None else None
        self.val_videos_file = val_videos_file
        self.train_split, self.val_split, self.test_split = "train", "val", test_set
        self._num_verbs: int | None = None
        self._num_nouns: int | None = None
        self._rows: dict[str, list[tuple[str, int, dict]]] = {}

    collate_fn = staticmethod(collate_epic)
    targets = ("verb", "noun", "action")

    @classmethod
    def defaults_from_input(cls, cfg) -> dict[str, Any]:
        """The clip arguments of :class:`~mmzoo.data.clips.ClipDataModule`, plus the modality: a
        model whose input normalisation has 2 channels reads flow (``flow_mean`` / ``flow_std``
        from it), one with a ``flow`` input reads RGB and flow."""
        out = super().defaults_from_input(cfg)
        if cfg.mean is not None and len(cfg.mean) == 2:
            out["modality"] = "flow"
            out["flow_mean"], out["flow_std"] = out.pop("mean"), out.pop("std")
        elif "flow" in cfg.shapes:
            out["modality"] = "rgb+flow"
        return out

    def setup(self, stage: Optional[str] = None) -> None:
        """As :meth:`ClipDataModule.setup`, with flow datasets for the flow modalities."""
        if self.modality != "rgb":
            self._validate_layout()
            add_flow_datasets(self, stage)
        super().setup(stage)
        if self.objects:
            from mmzoo.data.epic_objects import attach_objects

            attach_objects(self)

    # ------------------------------------------------------------------ annotations
    def _file(self, key: str) -> Path:
        return self.annotations_dir / EPIC_FILES[self.version][key]

    def _class_count(self, key: str, default: int) -> int:
        path = self._file(key)
        if not path.is_file():
            return default
        ids = []
        for line, row in read_csv_rows(path, []):
            col = "id" if "id" in row else ("verb_id" if "verb_id" in row else "noun_id")
            if col not in row:
                raise AnnotationError(path, 1, "class file needs an 'id', 'verb_id' or 'noun_id' column")
            ids.append(parse_number(str(path), line, col, row[col]))
        if sorted(ids) != list(range(len(ids))):
            raise AnnotationError(path, None, f"class ids are not 0..{len(ids) - 1}")
        return len(ids)

    def _read(self, key: str, labelled: bool) -> list[tuple[str, int, dict]]:
        if key in self._rows:
            return self._rows[key]
        path = self._file(key)
        required = SEGMENT_COLUMNS + (LABEL_COLUMNS if labelled else [])
        rows = []
        for line, row in read_csv_rows(path, required):
            sp = str(path)
            for col in ("participant_id", "video_id"):
                if not row[col]:
                    raise AnnotationError(path, line, f"empty '{col}'")
            try:
                row["start_sec"] = parse_timestamp(row["start_timestamp"])
                row["stop_sec"] = parse_timestamp(row["stop_timestamp"])
            except ValueError as e:
                raise AnnotationError(path, line, str(e)) from None
            row["start_frame"] = parse_number(sp, line, "start_frame", row["start_frame"])
            row["stop_frame"] = parse_number(sp, line, "stop_frame", row["stop_frame"])
            if row["start_frame"] < 1 or row["stop_frame"] < row["start_frame"]:
                raise AnnotationError(path, line, f"bad frame range {row['start_frame']}..{row['stop_frame']}")
            if row["stop_sec"] < row["start_sec"]:
                raise AnnotationError(path, line, f"stop_timestamp {row['stop_timestamp']} before start_timestamp")
            if labelled:
                v = parse_number(sp, line, "verb_class", row["verb_class"])
                n = parse_number(sp, line, "noun_class", row["noun_class"])
                if not 0 <= v < self.num_verbs:
                    raise AnnotationError(path, line, f"verb_class {v} outside [0, {self.num_verbs})")
                if not 0 <= n < self.num_nouns:
                    raise AnnotationError(path, line, f"noun_class {n} outside [0, {self.num_nouns})")
                row["verb_class"], row["noun_class"] = v, n
            rows.append((sp, line, row))
        if not rows:
            raise AnnotationError(path, None, "no annotation rows")
        self._rows[key] = rows
        return rows

    def _val_video_set(self) -> tuple[set[str] | None, set[str]]:
        """Validation video ids (``None``: split by participant) and participants; explicit ids are
        checked against the training CSV so that a typo cannot silently move a video."""
        if self.val_videos_file:
            f = find_path("val_videos_file", self.val_videos_file, self.root, what="EPIC-55 validation video list")
            listed = [(i, x.strip()) for i, x in enumerate(f.read_text().splitlines(), start=1) if x.strip()]
            source = str(f)
        elif self.val_videos is not None:
            listed = [(None, str(x).strip()) for x in self.val_videos]
            source = "val_videos"
        else:
            return None, set(self.val_participants)
        seen: dict[str, int | None] = {}
        for line, vid in listed:
            if not _VIDEO_ID.match(vid):
                raise AnnotationError(source, line, f"not an EPIC video id (Pxx_yy): {vid!r}")
            if vid in seen:
                raise AnnotationError(source, line, f"video {vid} listed twice")
            seen[vid] = line
        known = {r[2]["video_id"] for r in self._read("train", labelled=True)}
        absent = [(line, vid) for line, vid in listed if vid not in known]
        if absent:
            raise AnnotationError(
                source, absent[0][0],
                f"{len(absent)} validation video(s) not in {self._file('train')}: {[v for _, v in absent[:10]]}",
            )
        return set(seen), set()

    def _split_rows(self, split: str) -> list[tuple[str, int, dict]]:
        if self.version == "100":
            key = {"train": "train", "val": "val", "test": "test"}[split]
            return self._read(key, labelled=key != "test")
        if split in ("s1", "s2"):
            return self._read(split, labelled=False)
        rows = self._read("train", labelled=True)
        videos, participants = self._val_video_set()
        is_val = (lambda r: r["video_id"] in videos) if videos is not None else (lambda r: r["participant_id"] in participants)
        out = [x for x in rows if is_val(x[2]) == (split == "val")]
        if not out:
            raise LayoutError(
                f"EPIC-55 {split} split is empty with the given validation videos/participants "
                f"({self.val_videos_file or self.val_videos or self.val_participants}) in {self._file('train')}"
            )
        return out

    # ------------------------------------------------------------------ media
    def _frame_dirs(self, participant: str, video_id: str) -> list[Path]:
        r = self.root
        c = []
        if self.version == "55":
            c += [r / "frames_rgb_flow" / "rgb" / s / participant / video_id for s in ("train", "test")]
        c += [r / participant / "rgb_frames" / video_id, r / "rgb_frames" / participant / video_id]
        return c

    def _video_files(self, participant: str, video_id: str) -> list[Path]:
        r = self.root
        c = []
        if self.version == "55":
            c += [r / "videos" / s / participant / f"{video_id}.MP4" for s in ("train", "test")]
        c += [r / participant / "videos" / f"{video_id}.MP4", r / "videos" / participant / f"{video_id}.MP4"]
        return c

    @staticmethod
    def _first(paths: list[Path], is_dir: bool) -> Path | None:
        for p in paths:
            if (p.is_dir() if is_dir else p.is_file()):
                return p
        return None

    def _flow_media(self, participant: str, video_id: str, where: str) -> tuple[Path, int]:
        """The flow folder of a video (holding u / v) and its last flow frame number."""
        return find_flow_dir(epic_flow_dirs(self.root, self.version, participant, video_id), video_id, where)

    def _media(self, participant: str, video_id: str, where: str) -> tuple[Path | None, Path | None]:
        frames = video = None
        need_video = (self.source == "video" and self.modality == "rgb") or self.train_cfg.with_audio
        if self.source == "frames" and self.modality != "flow":
            cands = self._frame_dirs(participant, video_id)
            frames = self._first(cands, is_dir=True)
            if frames is None:
                tars = [p.with_suffix(".tar") for p in cands if p.with_suffix(".tar").is_file()]
                hint = f" ({tars[0]} exists: extract it in place)" if tars else ""
                raise LayoutError(
                    f"{where}: frame folder of {video_id} not found; looked for "
                    + ", ".join(str(p) for p in cands) + hint
                )
        if need_video:
            cands = self._video_files(participant, video_id)
            video = self._first(cands, is_dir=False)
            if video is None:
                raise LayoutError(f"{where}: video of {video_id} not found; looked for " + ", ".join(str(p) for p in cands))
        return frames, video

    def _validate_layout(self) -> None:
        if not self.root.is_dir():
            raise LayoutError(f"EPIC-Kitchens root not found: {self.root} ({flag('root')})")
        if not self.annotations_dir.is_dir():
            find_path("annotations_dir", self._annotations_dir_arg, self.root, defaults=("annotations",),
                      kind="dir", what="EPIC-Kitchens annotations folder")  # raises, naming the flag
        if self._num_verbs is None:
            dv, dn = DEFAULT_CLASS_COUNTS[self.version]
            self._num_verbs = self._class_count("verbs", dv)
            self._num_nouns = self._class_count("nouns", dn)
        needed = ["train"] + (["val"] if self.version == "100" else [])
        if self.test_split in ("test", "s1", "s2"):
            needed.append(self.test_split)
        for key in needed:
            if not self._file(key).is_file():
                raise LayoutError(f"EPIC-{self.version} annotation file not found: {self._file(key)}")

    @property
    def num_verbs(self) -> int:
        """Verb classes (rows of the verb class file, else 125 / 97)."""
        if self._num_verbs is None:
            self._validate_layout()
        return self._num_verbs

    @property
    def num_nouns(self) -> int:
        """Noun classes (rows of the noun class file, else 352 / 300)."""
        if self._num_nouns is None:
            self._validate_layout()
        return self._num_nouns

    @property
    def num_actions(self) -> int:
        """Size of the action index space ``num_verbs * num_nouns`` (action = verb * num_nouns + noun)."""
        return self.num_verbs * self.num_nouns

    def _id_set(self, name: str) -> set[str] | None:
        """Values of the first column of an optional one-column EPIC-100 list file."""
        path = self.annotations_dir / name
        if not path.is_file():
            return None
        out = set()
        for _line, row in read_csv_rows(path, []):
            out.add(next(iter(row.values())))
        return out

    def _subset_flags(self, split: str):
        """EPIC-100 evaluation subsets: unseen participants (the split's list, else the release's
        one-file list) and tail classes."""
        if self.version != "100":
            return None, None, None
        unseen = self._id_set(UNSEEN_FILES_100[split]) if split in UNSEEN_FILES_100 else None
        if unseen is None and split in UNSEEN_FILES_100:
            unseen = self._id_set(UNSEEN_FILE_100)
        tail_v = self._id_set(TAIL_FILES_100["verbs"])
        tail_n = self._id_set(TAIL_FILES_100["nouns"])
        return unseen, tail_v, tail_n

    def _class_list(self, name: str, column: str) -> Optional[list[int]]:
        """Class ids of an optional list file: its ``column`` (e.g. ``verb_class``), else its first
        column; None when the file is absent."""
        path = self.annotations_dir / name
        if not path.is_file():
            return None
        out = []
        for line, row in read_csv_rows(path, []):
            col = column if column in row else next(iter(row))
            out.append(parse_number(str(path), line, col, row[col]))
        return sorted(set(out))

    def _action_list(self, name: str) -> Optional[list[tuple[int, int]]]:
        """(verb, noun) pairs of an optional many-shot action file: ``verb_class`` and
        ``noun_class`` columns, else a ``(verb, noun)`` tuple in the first column."""
        path = self.annotations_dir / name
        if not path.is_file():
            return None
        out = []
        for line, row in read_csv_rows(path, []):
            if "verb_class" in row and "noun_class" in row:
                pair = (row["verb_class"], row["noun_class"])
            else:
                m = _PAIR.match(next(iter(row.values())))
                if m is None:
                    raise AnnotationError(path, line, "expected verb_class / noun_class columns or a '(verb, noun)' tuple")
                pair = m.groups()
            out.append((int(pair[0]), int(pair[1])))
        return sorted(set(out))

    @property
    def tail_verbs(self) -> Optional[list[int]]:
        """EPIC-100 tail verb classes (``EPIC_100_tail_verbs.csv``), None without the file."""
        return self._class_list(TAIL_FILES_100["verbs"], "verb_class") if self.version == "100" else None

    @property
    def tail_nouns(self) -> Optional[list[int]]:
        """EPIC-100 tail noun classes (``EPIC_100_tail_nouns.csv``), None without the file."""
        return self._class_list(TAIL_FILES_100["nouns"], "noun_class") if self.version == "100" else None

    @property
    def many_shot_verbs(self) -> Optional[list[int]]:
        """EPIC-55 many-shot verb classes (``EPIC_many_shot_verbs.csv``), None without the file."""
        return self._class_list(MANY_SHOT_FILES_55["verbs"], "verb_class") if self.version == "55" else None

    @property
    def many_shot_nouns(self) -> Optional[list[int]]:
        """EPIC-55 many-shot noun classes (``EPIC_many_shot_nouns.csv``), None without the file."""
        return self._class_list(MANY_SHOT_FILES_55["nouns"], "noun_class") if self.version == "55" else None

    @property
    def many_shot_actions(self) -> Optional[list[tuple[int, int]]]:
        """EPIC-55 many-shot actions as (verb, noun) (``EPIC_many_shot_actions.csv``)."""
        return self._action_list(MANY_SHOT_FILES_55["actions"]) if self.version == "55" else None

    def metric_subsets(self) -> dict[str, Any]:
        """The evaluation subsets present in ``annotations_dir``, as
        :class:`~mmzoo.metrics.classification.EpicActionAccuracy` constructor arguments."""
        names = ("tail_verbs", "tail_nouns", "many_shot_verbs", "many_shot_nouns", "many_shot_actions")
        return {k: v for k in names if (v := getattr(self, k)) is not None}

    def action_counts(self) -> torch.Tensor:
        """``(num_verbs, num_nouns)`` long tensor: how often each (verb, noun) pair occurs in the
        training split. ``counts / counts.sum()`` is the action prior (mu) that some EPIC methods
        combine with verb and noun scores (PSN thesis); the combination rule stays with the model."""
        self._validate_layout()
        counts = torch.zeros(self.num_verbs, self.num_nouns, dtype=torch.long)
        for _path, _line, row in self._split_rows("train"):
            counts[row["verb_class"], row["noun_class"]] += 1
        return counts

    def _records(self, split: str) -> list[VideoRecord]:
        media: dict[str, tuple[Path | None, Path | None]] = {}
        flows: dict[str, tuple[Path, int]] = {}
        records = []
        unseen, tail_v, tail_n = self._subset_flags(split)
        for path, line, row in self._split_rows(split):
            vid = row["video_id"]
            if vid not in media:
                media[vid] = self._media(row["participant_id"], vid, f"{path}:{line}")
            frames, video = media[vid]
            if "verb_class" in row and isinstance(row["verb_class"], int):
                v, n = row["verb_class"], row["noun_class"]
                targets = {"verb": v, "noun": n, "action": v * self.num_nouns + n}
            else:
                targets = {"verb": -1, "noun": -1, "action": -1}
            meta = {
                "narration_id": row.get("narration_id", ""),
                "uid": row.get("uid", ""),
                "video_id": vid,
                "participant_id": row["participant_id"],
                "start_frame": row["start_frame"],
                "stop_frame": row["stop_frame"],
                "start_sec": row["start_sec"],
                "stop_sec": row["stop_sec"],
                "csv": path,
                "line": line,
            }
            if unseen is not None:
                meta["unseen_participant"] = row["participant_id"] in unseen
            elif self.version == "55" and split in ("s1", "s2"):  # the unseen-kitchens test set
                meta["unseen_participant"] = split == "s2"
            if tail_v is not None and targets["verb"] >= 0:
                meta["tail_verb"] = str(targets["verb"]) in tail_v
            if tail_n is not None and targets["noun"] >= 0:
                meta["tail_noun"] = str(targets["noun"]) in tail_n
            if self.modality != "rgb":
                if vid not in flows:
                    flows[vid] = self._flow_media(row["participant_id"], vid, f"{path}:{line}")
                rec = FlowRecord(
                    targets=targets, meta=meta, frames_dir=str(frames) if frames is not None else None,
                    frame_pattern="frame_%010d.jpg", first_frame=row["start_frame"], last_frame=row["stop_frame"],
                    flow_dir=str(flows[vid][0]), flow_stride=epic_flow_stride(vid), flow_last=flows[vid][1],
                )  # fmt: skip
            elif self.source == "frames":
                rec = VideoRecord(
                    targets=targets, meta=meta, frames_dir=str(frames), frame_pattern="frame_%010d.jpg",
                    first_frame=row["start_frame"], last_frame=row["stop_frame"], frames_fps=None,
                    frame_number_offset=1, audio_video=str(video) if video is not None else None,
                )  # fmt: skip
            else:
                stop = row["stop_sec"] if row["stop_sec"] > row["start_sec"] else None
                if stop is None:
                    raise AnnotationError(path, line, "zero-length segment (start_timestamp == stop_timestamp)")
                rec = VideoRecord(targets=targets, meta=meta, video=str(video), start_sec=row["start_sec"], end_sec=stop)
            records.append(rec)
        return records
