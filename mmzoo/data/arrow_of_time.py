"""Arrow of Time data (Wei, Lim, Zisserman, Freeman, CVPR 2018; seed 004 B.4): stacked optical
flow of a clip played forwards or backwards, from any video DataModule or a folder of videos.

Sources (``source``): ``"folder"`` reads ``root/<split>/**/*.{avi,mp4,mkv,webm,mov}`` (``split`` =
``train``, ``val``, ``test``; ``val`` falls back to ``test``); ``"ucf101"``, ``"hmdb51"``,
``"kinetics"`` (or any registered clip DataModule) read the videos of that dataset's official
split lists: the DataModule is built with ``root`` and ``source_kwargs`` (e.g. ``{"split": 1}``)
and its training / test records are used. Labels of the source are ignored for
``task="arrow"`` and used for ``task="action"`` (forward flow only: the flow input of T-CAM
fine-tuning on UCF101, the AoT table's rows).

A sample is ``num_segments`` segments of ``flow_frames`` consecutive flow fields each, taken from
one window of ``num_segments x flow_frames + 1`` frames (every ``frame_step``-th frame of the
video), stacked segment-major as ``flow``: ``float (num_segments * 2 * flow_frames, H, W)``,
channels ``[seg0: x0, y0, x1, y1, ...; seg1: ...]``, divided by ``flow_bound`` (values in
[-1, 1] after the 8-bit cache quantisation). The authors' code takes 2 segments of 10 flow
frames (``vnF=20``, ``vggbn_tcam_pair2``). Playing backwards = the flow of the time-reversed
frames (``FlowCache`` direction ``backward``), not a negated forward flow. Labels: 1 forward,
0 backward; training draws the direction at random (p = 0.5); evaluation scores both directions
of ``num_clips`` windows per video (``video_index`` = 2 x video + direction, so the two plays of
a video are separate test items).

"Avoid cheating" options (the paper's artificial cues, Table "Black frame / +Camera motion"):

* ``remove_black_frames``: crop black borders (letterboxing: rows / columns whose maximum
  over the whole video is at most ``black_threshold``) and drop black frames (mean at most
  ``black_threshold``, e.g. fades);
* ``stabilise``: ``"translation"`` or ``"homography"``: register every frame to the first
  (OpenCV ECC, chained frame to frame) and crop to the region every warped frame covers, which
  removes consistent camera motion (tilt, zoom) as a cue; ``"none"`` by default.

Flow: OpenCV TV-L1 (``flow_method="tvl1"``; Farneback as a fast option), computed on frames
resized to ``short_side``, cached under ``flow_cache`` in the layout of :mod:`mmzoo.data.flow`
(``png``: 8-bit with ``flow_bound``; ``npy``: lossless), per video and direction, with the
preprocessing in the key.

Batch fields: ``flow`` (float ``B, C, H, W``), ``label`` (int64 ``B``), ``video_index`` (int64
``B``), ``meta`` (``source`` file, ``start`` frame, ``direction``).
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from mmzoo.data.base import ZooDataModule
from mmzoo.data.flow import FlowCache
from mmzoo.data.paths import flag
from mmzoo.data.registry import get_datamodule, register_datamodule
from mmzoo.data.video_dataset import LayoutError, VideoRecord
from mmzoo.errors import DataError

__all__ = ["ArrowOfTimeDataModule", "ArrowOfTimeDataset", "remove_black", "stabilise_frames"]

_VIDEO_EXT = (".avi", ".mp4", ".mkv", ".webm", ".mov")


def remove_black(frames: np.ndarray, threshold: int = 16) -> np.ndarray:
    """Drop black frames (mean <= threshold) and crop black borders (rows / columns whose maximum
    over the remaining frames is <= threshold). ``frames``: uint8 ``T, H, W, 3``."""
    keep = frames.reshape(len(frames), -1).mean(1) > threshold
    if keep.sum() >= 2:
        frames = frames[keep]
    peak = frames.max(axis=(0, 3))
    rows, cols = np.where(peak.max(1) > threshold)[0], np.where(peak.max(0) > threshold)[0]
    if len(rows) < 2 or len(cols) < 2:
        return frames
    return frames[:, rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def _valid_box(valid: np.ndarray) -> tuple[int, int, int, int]:
    """A large axis-aligned box of all-True pixels: peel the border row / column with the most
    False pixels until none is left."""
    y0, y1, x0, x1 = 0, valid.shape[0], 0, valid.shape[1]
    while y1 - y0 > 1 and x1 - x0 > 1:
        box = valid[y0:y1, x0:x1]
        bad = {"top": (~box[0]).sum(), "bottom": (~box[-1]).sum(), "left": (~box[:, 0]).sum(), "right": (~box[:, -1]).sum()}
        side = max(bad, key=bad.get)
        if bad[side] == 0:
            break
        if side == "top":
            y0 += 1
        elif side == "bottom":
            y1 -= 1
        elif side == "left":
            x0 += 1
        else:
            x1 -= 1
    return y0, y1, x0, x1


def stabilise_frames(frames: np.ndarray, motion: Literal["translation", "homography"] = "homography",
                     iterations: int = 50) -> np.ndarray:
    """Register every frame to the first (ECC between consecutive frames, composed), warp, and
    crop to the region all warped frames cover. A pair where ECC does not converge keeps the
    previous pair's motion."""
    import cv2

    mode = cv2.MOTION_TRANSLATION if motion == "translation" else cv2.MOTION_HOMOGRAPHY
    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0 for f in frames]
    h, w = grey[0].shape
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, iterations, 1e-5)
    total = np.eye(3, dtype=np.float32)
    step = np.eye(3, dtype=np.float32)
    out = [frames[0]]
    valid = np.ones((h, w), bool)
    for t in range(1, len(frames)):
        warp = np.eye(3, dtype=np.float32) if mode == cv2.MOTION_HOMOGRAPHY else np.eye(2, 3, dtype=np.float32)
        try:
            _, warp = cv2.findTransformECC(grey[t - 1], grey[t], warp, mode, criteria, None, 1)
            step = warp if warp.shape == (3, 3) else np.vstack([warp, [0, 0, 1]]).astype(np.float32)
        except cv2.error:
            pass
        total = total @ step  # maps frame-0 coordinates to frame-t coordinates
        warped = cv2.warpPerspective(frames[t], total, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
        mask = cv2.warpPerspective(np.ones((h, w), np.uint8), total, (w, h),
                                   flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP)
        valid &= mask > 0
        out.append(warped)
    y0, y1, x0, x1 = _valid_box(valid)
    return np.stack(out)[:, y0:y1, x0:x1]


class ArrowOfTimeDataset(Dataset):
    """Flow windows of videos, forward and backward (module docstring)."""

    def __init__(self, records: list[VideoRecord], train: bool, task: str, num_segments: int, flow_frames: int,
                 frame_step: int, short_side: int, crop_size: int, flip: bool, num_clips: int, flow_bound: float,
                 cache: FlowCache, black: bool, black_threshold: int, stabilise: str) -> None:
        if not records:
            raise LayoutError("the Arrow of Time dataset has no video")
        self.records, self.train, self.task = records, train, task
        self.num_segments, self.flow_frames, self.frame_step = num_segments, flow_frames, frame_step
        self.short_side, self.crop_size, self.flip = short_side, crop_size, flip
        self.num_clips, self.flow_bound, self.cache = num_clips, flow_bound, cache
        self.black, self.black_threshold, self.stabilise = black, black_threshold, stabilise
        self.directions = 2 if task == "arrow" else 1
        self._memory: dict[tuple[str, str], np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.records) * (1 if self.train else self.num_clips * self.directions)

    @property
    def window(self) -> int:
        return self.num_segments * self.flow_frames

    def _frames(self, rec: VideoRecord) -> np.ndarray:
        from mmzoo.data.decode import read_video_clip

        clip = read_video_clip(rec.video, short_side=self.short_side)
        frames = clip.frames.numpy()[:: self.frame_step]
        if self.black:
            frames = remove_black(frames, self.black_threshold)
        if self.stabilise != "none":
            frames = stabilise_frames(frames, self.stabilise)
        if len(frames) < self.window + 1:
            raise DataError(f"{rec.video}: {len(frames)} usable frames, a sample needs {self.window + 1} "
                            f"({self.num_segments} segments x {self.flow_frames} flows + 1)")
        return frames

    def _flow(self, rec: VideoRecord, direction: str) -> np.ndarray:
        name = Path(rec.meta.get("video_id") or f"{Path(rec.video).parent.name}/{Path(rec.video).name}").with_suffix("")
        key = f"{name.as_posix()}/s{self.short_side}-k{self.frame_step}-b{int(self.black)}-{self.stabilise}"
        if (key, direction) not in self._memory:
            if len(self._memory) > 64:
                self._memory.clear()
            self._memory[(key, direction)] = self.cache.get(key, direction, lambda: self._frames(rec))
        return self._memory[(key, direction)]

    def __getitem__(self, i: int) -> dict[str, Any]:
        if self.train:
            vid, clip, d = i, None, (random.randrange(2) if self.directions == 2 else 0)
        else:
            per = self.num_clips * self.directions
            vid, rest = divmod(i, per)
            clip, d = divmod(rest, self.directions)
        rec = self.records[vid]
        forward = self._flow(rec, "forward")
        n = forward.shape[0]
        if n < self.window:
            raise DataError(f"{rec.video}: {n} flow fields, a sample needs {self.window}")
        if clip is None:
            s = random.randrange(n - self.window + 1)
        else:
            s = round((n - self.window) * (clip + 0.5) / self.num_clips - 0.5) if self.num_clips > 1 else (n - self.window) // 2
            s = min(max(s, 0), n - self.window)
        direction = "backward" if d == 1 and self.task == "arrow" else "forward"
        if direction == "forward":
            window = forward[s:s + self.window]
        else:  # the same frames played backwards: flows of frames s+L -> s
            back = self._flow(rec, "backward")
            j = n - (s + self.window)
            window = back[j:j + self.window]
        flow = torch.from_numpy(np.ascontiguousarray(window)) / self.flow_bound
        flow = self._crop(flow)
        label = (1 if direction == "forward" else 0) if self.task == "arrow" else int(rec.targets["label"])
        flow = flow.reshape(self.num_segments * self.flow_frames * 2, *flow.shape[-2:])
        return {"flow": flow, "label": label,
                "video_index": vid * self.directions + (d if self.task == "arrow" else 0),
                "meta": {"source": rec.video, "start": s, "direction": direction, **rec.meta}}

    def _crop(self, flow: torch.Tensor) -> torch.Tensor:
        h, w = flow.shape[-2:]
        c = min(self.crop_size, h, w)
        if self.train:
            y, x = random.randint(0, h - c), random.randint(0, w - c)
        else:
            y, x = (h - c) // 2, (w - c) // 2
        flow = flow[..., y:y + c, x:x + c]
        if self.train and self.flip and random.random() < 0.5:
            flow = flow.flip(-1)
            flow[:, 0] = -flow[:, 0]  # mirrored horizontal motion
        return flow


def _folder_records(root: Path, split: str) -> list[VideoRecord]:
    base = root / split
    if split == "val" and not base.is_dir():
        base = root / "test"
    if not base.is_dir():
        raise LayoutError(f"Arrow of Time folder source: {base} not found (expected {root}/<train|val|test>/...)")
    files = sorted(p for p in base.rglob("*") if p.suffix.lower() in _VIDEO_EXT and p.is_file())
    if not files:
        raise LayoutError(f"no video ({', '.join(_VIDEO_EXT)}) under {base}")
    return [VideoRecord(targets={"label": -1}, meta={"video_id": str(p.relative_to(root))}, video=str(p)) for p in files]


@register_datamodule("arrow-of-time")
class ArrowOfTimeDataModule(ZooDataModule):
    """Forward / backward flow clips (module docstring).

    Args:
        root: the folder of videos (``source="folder"``) or the source dataset's root.
        source: ``"folder"`` or a registered video DataModule name (``ucf101``, ``hmdb51``, ``kinetics``).
        source_kwargs: further constructor arguments of the source DataModule (``{"split": 1}``).
        task: ``"arrow"`` (forward / backward labels) or ``"action"`` (the source's labels, forward flow).
        num_segments / flow_frames: T segments of L flow fields (2 x 10, the authors' code).
        frame_step: use every k-th frame of the video (1).
        short_side / crop_size: frames resized to this short side before the flow; random (train)
            or centre (eval) crops (256 / 224, the authors' loadSize / sampleSize).
        flip: random horizontal flips in training (x flow negated).
        num_clips: evaluation windows per video (and per direction).
        flow_method / flow_format / flow_bound / flow_cache: flow computation and cache
            (:mod:`mmzoo.data.flow`; ``flow_cache=None``: nothing written, in-memory only).
        remove_black_frames / black_threshold / stabilise: the "avoid cheating" preprocessing.
        **kwargs: loader settings of :class:`~mmzoo.data.base.ZooDataModule`.
    """

    def __init__(
        self,
        root: str,
        source: str = "folder",
        source_kwargs: dict[str, Any] | None = None,
        task: Literal["arrow", "action"] = "arrow",
        num_segments: int = 2,
        flow_frames: int = 10,
        frame_step: int = 1,
        short_side: int = 256,
        crop_size: int = 224,
        flip: bool = True,
        num_clips: int = 1,
        flow_method: Literal["tvl1", "farneback"] = "tvl1",
        flow_format: Literal["png", "jpg", "npy"] = "png",
        flow_bound: float = 20.0,
        flow_cache: str | None = None,
        remove_black_frames: bool = False,
        black_threshold: int = 16,
        stabilise: Literal["none", "translation", "homography"] = "none",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if task not in ("arrow", "action"):
            raise ValueError(f"{flag('task')} must be 'arrow' or 'action', got {task!r}")
        if stabilise not in ("none", "translation", "homography"):
            raise ValueError(f"{flag('stabilise')} must be none / translation / homography, got {stabilise!r}")
        if source == "folder" and task == "action":
            raise ValueError(f"{flag('task')} action needs a labelled source ({flag('source')} ucf101, hmdb51, ...)")
        self.root = Path(root)
        self.source, self.source_kwargs, self.task = source, dict(source_kwargs or {}), task
        self.cache = FlowCache(flow_cache, flow_method, flow_format, flow_bound)
        self.opts = {"task": task, "num_segments": num_segments, "flow_frames": flow_frames, "frame_step": frame_step,
                         "short_side": short_side, "crop_size": crop_size, "flip": flip, "num_clips": num_clips,
                         "flow_bound": flow_bound, "cache": self.cache, "black": remove_black_frames,
                         "black_threshold": black_threshold, "stabilise": stabilise}
        self._source_dm = None
        self.num_classes = 2

    def _records(self, split: str) -> list[VideoRecord]:
        if self.source == "folder":
            if not self.root.is_dir():
                raise LayoutError(f"Arrow of Time root not found: {self.root} ({flag('root')})")
            return _folder_records(self.root, split)
        if self._source_dm is None:
            self._source_dm = get_datamodule(self.source)(root=str(self.root), **self.source_kwargs)
            self._source_dm._validate_layout()
            if self.task == "action":
                self.num_classes = self._source_dm.num_classes
        dm = self._source_dm
        name = {"train": dm.train_split, "val": dm.val_split, "test": dm.test_split}[split]
        return dm._records(name)

    def setup(self, stage: str | None = None) -> None:
        wanted = {"fit": ["train", "val"], "validate": ["val"], "test": ["test"], "predict": ["test"], None: ["train", "val", "test"]}
        for split in wanted[stage]:
            if split not in self.datasets:
                self.datasets[split] = ArrowOfTimeDataset(self._records(split), train=split == "train", **self.opts)
