"""VIP, video instance-level human parsing (Zhou et al. 2018), as distributed (`--data vip`).

Layout of the ``VIP_Fine`` release (its annotated frames, one every 25 frames of each video)::

    <root>/Images/<video>/<frame>.jpg
    <root>/Annotations/Category_ids/<video>/<frame>.png    part ids 0..19 (0 background)
    <root>/Annotations/Human_ids/<video>/<frame>.png       person instance ids (not read yet)
    <root>/lists/{train,val,test}_videos.txt               one video name per line

One sample is one video: ``video`` ``(3, T, S, S)`` (frames resized to ``frame_size`` squared,
560 in the thesis) and ``parts`` ``(T, H, W)`` int64 part ids at the annotation's resolution;
``video_id``. Evaluation propagates the first frame's parts with two reference frames, the
first and the previous one (thesis Sec. 2.4): this DataModule links ``context = 1`` to the
model. Metric: :class:`mmzoo.metrics.vip.PartMeanIoU` (the instance AP^r_vol is not implemented).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from mmzoo.data.base import ZooDataModule
from mmzoo.data.constants import IMAGENET_MEAN, IMAGENET_STD
from mmzoo.data.davis import read_palette_mask, read_rgb, resize_normalize
from mmzoo.data.registry import register_datamodule
from mmzoo.data.video_dataset import AnnotationError, LayoutError
from mmzoo.registry import InputConfig

__all__ = ["VipDataModule", "VipVideos"]


class VipVideos(Dataset):
    def __init__(self, videos: list[tuple[str, list[Path], list[Path]]], frame_size: int | None, mean, std) -> None:
        self.videos, self.frame_size, self.mean, self.std = videos, frame_size, mean, std

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, i: int) -> dict[str, Any]:
        name, frames, anns = self.videos[i]
        imgs = np.stack([read_rgb(p) for p in frames])
        parts = [read_palette_mask(p) for p in anns]
        for p, m in zip(anns, parts):
            if m.shape != imgs.shape[1:3]:
                raise AnnotationError(p, None, f"part map {m.shape} does not match its frame {imgs.shape[1:3]}")
        return {"video": resize_normalize(imgs, self.frame_size, self.mean, self.std),
                "parts": torch.from_numpy(np.stack(parts).astype(np.int64)), "video_id": name,
                "meta": {"video": name}}


@register_datamodule("vip")
class VipDataModule(ZooDataModule):
    """VIP_Fine videos for part propagation (val and test loaders: ``split``).

    Args:
        root: the ``VIP_Fine`` folder (Images/, Annotations/, lists/).
        split: "val" (the thesis's evaluation set), "train" or "test".
        frame_size: frames resized to this square size (560, thesis Sec. 2.4); None = as stored.
        context: previous frames propagated from besides the first (1: two reference frames,
            the thesis's VIP setting); linked to the model's ``context``.
        mean / std: normalisation (ImageNet).
    """

    targets = ("parts",)
    model_links = ("context",)
    persistent_workers = False

    def __init__(self, root: str, split: Literal["train", "val", "test"] = "val", frame_size: int | None = 560,
                 context: int = 1, mean: tuple[float, float, float] = IMAGENET_MEAN,
                 std: tuple[float, float, float] = IMAGENET_STD, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.root = Path(root)
        self.context = context
        self.eval_batch_size = 1  # one whole video per evaluation batch

    @classmethod
    def defaults_from_input(cls, cfg: InputConfig) -> dict[str, Any]:
        return {k: getattr(cfg, k) for k in ("mean", "std") if getattr(cfg, k) is not None}

    def _videos(self, split: str) -> list[tuple[str, list[Path], list[Path]]]:
        listing = self.root / "lists" / f"{split}_videos.txt"
        if not listing.is_file():
            raise LayoutError(f"VIP video list not found: {listing} (is --data.root {self.root} the VIP_Fine folder "
                              "holding Images/, Annotations/ and lists/?)")
        out = []
        for line_no, line in enumerate(listing.read_text().splitlines(), 1):
            name = line.strip()
            if not name:
                continue
            img_dir = self.root / "Images" / name
            ann_dir = self.root / "Annotations" / "Category_ids" / name
            frames = sorted(img_dir.glob("*.jpg")) if img_dir.is_dir() else []
            if not frames:
                raise LayoutError(f"{listing}:{line_no}: video {name!r} has no frames in {img_dir}")
            anns = [ann_dir / f"{p.stem}.png" for p in frames]
            missing = [p.name for p in anns if not p.is_file()]
            if missing:
                raise LayoutError(f"{listing}:{line_no}: video {name!r} lacks part annotations in {ann_dir}: "
                                  f"{missing[:5]}{'...' if len(missing) > 5 else ''}")
            out.append((name, frames, anns))
        if not out:
            raise AnnotationError(listing, None, "lists no video")
        return out

    def setup(self, stage: str | None = None) -> None:
        hp = self.hparams
        evaluated = VipVideos(self._videos(hp.split), hp.frame_size, hp.mean, hp.std)
        self.datasets = {"val": evaluated, "test": evaluated}
        if stage in (None, "fit"):
            self.datasets["train"] = VipVideos(self._videos("train"), hp.frame_size, hp.mean, hp.std)
