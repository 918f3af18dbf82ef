"""Untrimmed videos with video-level (multi-)labels, sampled TSN-style on a fixed-rate frame grid:
the base of the ActivityNet and FCVID DataModules (PSN thesis, ch. 5: both decoded at 1 fps).

:class:`UntrimmedDataModule` is a :class:`~mmzoo.data.clips.ClipDataModule` (every clip, crop,
normalisation and skip setting declared there) with segment sampling (``temporal="tsn"``) and
``num_frames=25`` by default, one centre crop per video at test time, and ``decode_fps``: the
candidate frames of a video are the frames at ``k / decode_fps`` seconds (``k = 0, 1, ...``;
frame index ``round(k * fps / decode_fps)``), i.e. the frames a 1-fps extraction keeps, and the
N segments split these. ``decode_fps=None`` uses every frame of the stream.

Sample fields added to the clip fields: ``video_label`` (float ``K`` multi-hot: every class of the
video) and ``video_id`` (the dataset's id of the video); ``label`` is the video's first class
(-1 without one).
"""
from __future__ import annotations

import math
from typing import Any, ClassVar, Literal, Optional

import torch

from mmzoo.data.clips import ClipDataModule
from mmzoo.data.constants import IMAGENET_MEAN, IMAGENET_STD
from mmzoo.data.decode import DecodeError, VideoReader
from mmzoo.data.video_dataset import (
    ClipConfig,
    ClipDataset,
    DataReportCallback,
    VideoRecord,
    make_report_callback,
)

__all__ = ["UntrimmedDataModule", "UntrimmedDataset", "grid_positions"]


def grid_positions(num_stream_frames: int, fps: float, decode_fps: Optional[float]) -> torch.Tensor:
    """Stream frame indices of the frames at ``k / decode_fps`` seconds inside the stream
    (``decode_fps=None``: every frame); at least the first frame."""
    if num_stream_frames < 1:
        raise ValueError(f"no frame in the stream ({num_stream_frames})")
    if decode_fps is None or decode_fps >= fps:
        return torch.arange(num_stream_frames)
    step = fps / decode_fps
    count = math.floor((num_stream_frames - 1) / step + 1e-9) + 1
    idx = torch.round(torch.arange(count, dtype=torch.float64) * step).long()
    return idx.clamp_(max=num_stream_frames - 1)


class UntrimmedDataset(ClipDataset):
    """:class:`ClipDataset` whose TSN segments split the ``decode_fps`` grid, with multi-hot targets."""

    def __init__(self, records: list[VideoRecord], cfg: ClipConfig, num_classes: int, decode_fps: Optional[float]):
        super().__init__(records, cfg, None)
        self.num_classes = num_classes
        self.decode_fps = decode_fps

    def _load_video(self, rec: VideoRecord, clip_index: int, short_side: int, with_audio: bool):
        with VideoReader(rec.video) as r:
            fps = r.fps
            n_stream = r.info.num_frames
            if n_stream < 1:
                raise DecodeError(rec.video, "the video stream has no frame")
            grid = grid_positions(n_stream, fps, self.decode_fps)
            rel, _ = self._temporal(grid.numel(), clip_index)
            clip = r.frames_by_index(grid[rel].tolist(), short_side=short_side)
        return clip.frames, clip.frame_indices, None, False

    def _sample(self, rec_index: int, clip_index: int, crop_index: int) -> dict[str, Any]:
        out = super()._sample(rec_index, clip_index, crop_index)
        rec = self.records[rec_index]
        target = torch.zeros(self.num_classes)
        target[list(rec.meta["classes"])] = 1.0
        out["video_label"] = target
        out["video_id"] = rec.meta["video_id"]
        out.pop("has_audio", None)
        return out


class UntrimmedDataModule(ClipDataModule):
    """Base of ActivityNet / FCVID (module docstring). Subclasses implement ``_validate_layout``,
    ``_records(split)`` (records with ``meta["classes"]`` and ``meta["video_id"]``) and
    ``num_classes``, and set ``train_split`` / ``val_split`` / ``test_split``.

    Args:
        decode_fps: rate of the candidate-frame grid (1.0 in the thesis; None = every frame).
        num_frames / temporal / num_clips / num_crops / test_scale / test_crop_size / mean / std:
            the :class:`~mmzoo.data.clips.ClipDataModule` settings with PSN's defaults: 25 TSN
            segments (a random frame of each in training, the centre one at test), one 224 centre
            crop after short side 256, ImageNet normalisation (the timm ResNets' inputs).
        **kwargs: the other :class:`~mmzoo.data.clips.ClipDataModule` settings (training scale
            [256, 320] and 224 crops, flips, ``skip_corrupt``) and the loader settings.
    """

    model_links: ClassVar[tuple[str, ...]] = ("num_classes",)
    targets: ClassVar[tuple[str, ...]] = ("label", "video_label")

    def __init__(
        self,
        decode_fps: Optional[float] = 1.0,
        num_frames: int = 25,
        temporal: Literal["clip", "tsn"] = "tsn",
        num_clips: int = 1,
        num_crops: int = 1,
        test_scale: int = 256,
        test_crop_size: int = 224,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        **kwargs: Any,
    ) -> None:
        if kwargs.get("with_audio"):
            raise ValueError("with_audio is not supported for untrimmed video classification (PSN uses RGB only)")
        if decode_fps is not None and decode_fps <= 0:
            raise ValueError(f"decode_fps must be > 0 or None, got {decode_fps}")
        kwargs.setdefault("stride", 1)
        super().__init__(num_frames=num_frames, temporal=temporal, num_clips=num_clips, num_crops=num_crops,
                         test_scale=test_scale, test_crop_size=test_crop_size, mean=mean, std=std, **kwargs)
        self.decode_fps = decode_fps

    def setup(self, stage: Optional[str] = None) -> None:
        self._validate_layout()
        wanted = {"fit": [("train", self.train_split), ("val", self.val_split)], "validate": [("val", self.val_split)],
                  "test": [("test", self.test_split)], "predict": [("test", self.test_split)]}  # fmt: skip
        cfgs = {"train": self.train_cfg, "val": self.val_cfg, "test": self.eval_cfg}
        for st in [stage] if stage else ["fit", "test"]:
            for name, split in wanted[st]:
                if split is not None and name not in self.datasets:
                    self.datasets[name] = UntrimmedDataset(self._records(split), cfgs[name], self.num_classes,
                                                           self.decode_fps)
        trainer = getattr(self, "trainer", None)
        if trainer is not None and not any(
            isinstance(cb, DataReportCallback) and cb.dm is self for cb in trainer.callbacks
        ):
            trainer.callbacks.append(make_report_callback(self))

    @property
    def num_classes(self) -> int:  # pragma: no cover - every subclass defines it
        raise NotImplementedError
