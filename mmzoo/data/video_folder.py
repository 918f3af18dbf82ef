"""Any folder of videos (VLOG, or your own) as self-supervised training clips (`--data video-folder`).

TimeCycle trains on VLOG without labels (thesis 003 Sec. 2.3.3); VLOG is distributed as video
files, which the authors decode into JPEG frame folders. Both layouts are read as they are:

    <root>/**/<name>.{mp4,avi,webm,mkv,mov}      one video per file (decoded with PyAV)
    <root>/**/<folder>/*.jpg|*.jpeg|*.png        one video per folder of frames (sorted by name)

Every video gives one clip per epoch: ``frames`` frames ``frame_gap`` apart from a random start
(train) or from the start (val / test), the short side scaled to ``short_side``, a random (train)
or central (val / test) ``crop_size`` square crop, normalised. A video shorter than the span
is sampled with a smaller, fractional gap over two thirds of its length, as the authors' loader
does. Batch fields: ``video`` ``(B, 3, frames, crop, crop)``, ``video_id`` (path relative to
the root), ``meta``.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from mmzoo.data.base import ZooDataModule
from mmzoo.data.constants import IMAGENET_MEAN, IMAGENET_STD
from mmzoo.data.decode import CorruptFrameError, read_video_clip
from mmzoo.data.decode import probe as probe_video
from mmzoo.data.registry import register_datamodule
from mmzoo.data.transforms import (
    center_crop,
    random_crop,
    resize_short_side_uint8,
    to_normalized_cthw,
)
from mmzoo.data.video_dataset import LayoutError
from mmzoo.registry import InputConfig

__all__ = ["VideoFolderDataModule", "VideoFolderDataset", "clip_indices", "find_videos"]

VIDEO_EXTENSIONS = (".mp4", ".avi", ".webm", ".mkv", ".mov")
FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png")


def find_videos(root: Path) -> list[tuple[Path, str]]:
    """(path, kind) of every video under ``root``: kind "file" or "frames" (a frame folder)."""
    found: list[tuple[Path, str]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        here = Path(dirpath)
        if any(f.lower().endswith(FRAME_EXTENSIONS) for f in filenames):
            found.append((here, "frames"))
        found += [(here / f, "file") for f in sorted(filenames) if f.lower().endswith(VIDEO_EXTENSIONS)]
    return found


def clip_indices(num_frames: int, frames: int, gap: int, start: int | None) -> list[int]:
    """Frame indices of one clip; ``start`` None = random. Short videos: a fractional gap over
    two thirds of the video (the authors' VLOG loader)."""
    span = (frames - 1) * gap + 1
    if num_frames >= span:
        s = random.randint(0, num_frames - span) if start is None else min(start, num_frames - span)
        return [s + i * gap for i in range(frames)]
    length = max(1, int(num_frames * 2 / 3))
    s = random.randint(0, num_frames - length) if start is None else 0
    step = (length - 1) / max(frames - 1, 1)
    return [min(num_frames - 1, int(s + i * step)) for i in range(frames)]


class VideoFolderDataset(Dataset):
    def __init__(self, root: Path, videos: list[tuple[Path, str]], frames: int, gap: int, short_side: int,
                 crop_size: int, train: bool, mean, std) -> None:
        self.root, self.videos, self.frames, self.gap = root, videos, frames, gap
        self.short_side, self.crop_size, self.train = short_side, crop_size, train
        self.mean, self.std = tuple(mean), tuple(std)

    def __len__(self) -> int:
        return len(self.videos)

    def _read(self, path: Path, kind: str) -> torch.Tensor:
        if kind == "file":
            n = probe_video(path).num_frames
            idx = clip_indices(n, self.frames, self.gap, None if self.train else 0)
            return read_video_clip(path, frame_indices=idx).frames
        from PIL import Image

        files = sorted(p for p in path.iterdir() if p.suffix.lower() in FRAME_EXTENSIONS)
        idx = clip_indices(len(files), self.frames, self.gap, None if self.train else 0)
        out = []
        for i in idx:
            try:
                with Image.open(files[i]) as im:
                    out.append(torch.from_numpy(np.asarray(im.convert("RGB")).copy()))
            except OSError as e:
                raise CorruptFrameError(files[i], f"cannot decode image ({e})") from e
        if len({tuple(t.shape) for t in out}) > 1:
            raise CorruptFrameError(path, "frames have different sizes")
        return torch.stack(out)

    def __getitem__(self, i: int) -> dict[str, Any]:
        path, kind = self.videos[i]
        frames = resize_short_side_uint8(self._read(path, kind), self.short_side)  # T,H,W,C
        chw = frames.permute(3, 0, 1, 2)
        if min(chw.shape[-2:]) < self.crop_size:
            raise LayoutError(f"{path}: frames {tuple(chw.shape[-2:])} after scaling the short side to "
                              f"{self.short_side} are smaller than --data.crop_size {self.crop_size}")
        chw, _ = random_crop(chw, self.crop_size) if self.train else center_crop(chw, self.crop_size)
        video = to_normalized_cthw(chw.permute(1, 2, 3, 0), self.mean, self.std)
        rel = path.relative_to(self.root).as_posix()
        return {"video": video, "video_id": rel, "meta": {"path": str(path), "kind": kind}}


@register_datamodule("video-folder")
class VideoFolderDataModule(ZooDataModule):
    """Unlabelled clips from every video file or frame folder under ``root``.

    Args:
        root: the folder (VLOG's videos, their extracted frames, or any videos).
        frames: frames per clip (TimeCycle: k + 1 = 5).
        frame_gap: stride between sampled frames (2, the authors' gap on 12 fps VLOG frames).
        short_side: short side after scaling (256).
        crop_size: square crop (240).
        val_videos: videos held out for validation / test (the last ones in path order); 0 =
            validate and test on the training videos (central crops, deterministic).
        mean / std: normalisation (ImageNet, the authors' loader).
    """

    targets = ()

    def __init__(self, root: str, frames: int = 5, frame_gap: int = 2, short_side: int = 256, crop_size: int = 240,
                 val_videos: int = 0, mean: tuple[float, float, float] = IMAGENET_MEAN,
                 std: tuple[float, float, float] = IMAGENET_STD, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if frames < 1 or frame_gap < 1:
            raise ValueError(f"--data.frames ({frames}) and --data.frame_gap ({frame_gap}) must be >= 1")
        self.root = Path(root)

    @classmethod
    def defaults_from_input(cls, cfg: InputConfig) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for src, dst in (("frames", "frames"), ("sampling_rate", "frame_gap"), ("short_side", "short_side"),
                         ("train_crop", "crop_size"), ("mean", "mean"), ("std", "std")):
            if getattr(cfg, src) is not None:
                out[dst] = getattr(cfg, src)
        return out

    def setup(self, stage: str | None = None) -> None:
        hp = self.hparams
        if not self.root.is_dir():
            raise LayoutError(f"--data.root {self.root}: no such folder")
        videos = find_videos(self.root)
        if not videos:
            raise LayoutError(f"--data.root {self.root}: no video files ({', '.join(VIDEO_EXTENSIONS)}) and no frame "
                              f"folders ({', '.join(FRAME_EXTENSIONS)}) found under it")
        n_val = int(hp.val_videos)
        if n_val >= len(videos):
            raise ValueError(f"--data.val_videos {n_val} leaves no training video (found {len(videos)})")
        train, held = (videos[:-n_val], videos[-n_val:]) if n_val else (videos, videos)
        args = (self.root,)
        kw = {"frames": hp.frames, "gap": hp.frame_gap, "short_side": hp.short_side, "crop_size": hp.crop_size,
                  "mean": hp.mean, "std": hp.std}
        self.datasets = {"train": VideoFolderDataset(*args, train, train=True, **kw),
                         "val": VideoFolderDataset(*args, held, train=False, **kw),
                         "test": VideoFolderDataset(*args, held, train=False, **kw)}
