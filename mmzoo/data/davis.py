"""DAVIS-2017 semi-supervised video object segmentation, as distributed (`--data davis2017`).

Layout (the ``DAVIS-2017-trainval-480p`` archive)::

    <root>/JPEGImages/480p/<sequence>/00000.jpg ...
    <root>/Annotations/480p/<sequence>/00000.png ...   palette PNGs: pixel = object id (0 background,
                                                        255 void), one PNG per frame
    <root>/ImageSets/2017/train.txt, val.txt           one sequence name per line

One sample is one whole sequence (so evaluation batches hold one sequence; `eval_batch_size`
is always 1): ``video`` ``(3, T, S, S)`` frames resized to ``frame_size`` squared (the authors'
320 x 320 DAVIS loader; ``frame_size`` None keeps the 480p frames) and normalised; ``label``
``(T, H, W)`` int64 object ids at the annotation's own resolution (what J / F are computed on);
``video_id`` the sequence name. Label propagation uses only the first frame's ids; the others
are the ground truth of the metric (:class:`mmzoo.metrics.davis.DavisJF`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from mmzoo.data.base import ZooDataModule
from mmzoo.data.constants import IMAGENET_MEAN, IMAGENET_STD
from mmzoo.data.decode import CorruptFrameError
from mmzoo.data.registry import register_datamodule
from mmzoo.data.video_dataset import AnnotationError, LayoutError
from mmzoo.registry import InputConfig

__all__ = ["DavisDataModule", "DavisSequences", "read_palette_mask", "read_rgb"]


def read_palette_mask(path: Path) -> np.ndarray:
    """Object ids ``(H, W)`` of a DAVIS palette PNG (mode "P"; "L" is accepted as the same ids)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.mode not in ("P", "L"):
                raise AnnotationError(path, None, "a DAVIS annotation must be a palette ('P') PNG of object ids, "
                                      f"got mode {im.mode!r} (an RGB rendering of the masks cannot be read back as ids)")
            return np.array(im)
    except OSError as e:
        raise CorruptFrameError(path, f"cannot decode PNG ({e})") from e


def read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB")).copy()
    except OSError as e:
        raise CorruptFrameError(path, f"cannot decode image ({e})") from e


def resize_normalize(frames: np.ndarray, size: int | None, mean, std) -> torch.Tensor:
    """uint8 ``(T, H, W, 3)`` -> float ``(3, T, S, S)``: bilinear resize to ``size`` squared (None:
    unchanged), then ``(x / 255 - mean) / std``."""
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float().div_(255.0)
    if size is not None and tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    return ((x - m) / s).transpose(0, 1).contiguous()


class DavisSequences(Dataset):
    """Whole sequences: (frame paths, mask paths) per sequence name."""

    def __init__(self, sequences: list[tuple[str, list[Path], list[Path]]], frame_size: int | None, mean, std):
        self.sequences, self.frame_size, self.mean, self.std = sequences, frame_size, mean, std

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, i: int) -> dict[str, Any]:
        name, frames, masks = self.sequences[i]
        imgs = np.stack([read_rgb(p) for p in frames])
        labels = [read_palette_mask(p) for p in masks]
        for p, m in zip(masks, labels):
            if m.shape != imgs.shape[1:3]:
                raise AnnotationError(p, None, f"mask {m.shape} does not match its frame {imgs.shape[1:3]}")
        return {"video": resize_normalize(imgs, self.frame_size, self.mean, self.std),
                "label": torch.from_numpy(np.stack(labels).astype(np.int64)), "video_id": name,
                "meta": {"sequence": name, "size": imgs.shape[1:3]}}


@register_datamodule("davis2017")
class DavisDataModule(ZooDataModule):
    """DAVIS-2017 sequences for label propagation (test = ``split``, the thesis's val set).

    Args:
        root: the DAVIS folder (holds JPEGImages/, Annotations/, ImageSets/).
        split: "val" (30 sequences, Table 2.1) or "train"; val and test loaders both use it.
        resolution: "480p" or "Full-Resolution".
        frame_size: frames resized to this square size for the network (320, the authors';
            None = as stored). Annotations keep their size.
        mean / std: normalisation (ImageNet).
    """

    targets = ("label",)
    persistent_workers = False

    def __init__(self, root: str, split: Literal["train", "val"] = "val", resolution: str = "480p",
                 frame_size: int | None = 320, mean: tuple[float, float, float] = IMAGENET_MEAN,
                 std: tuple[float, float, float] = IMAGENET_STD, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.root = Path(root)
        self.eval_batch_size = 1  # one whole sequence per evaluation batch

    @classmethod
    def defaults_from_input(cls, cfg: InputConfig) -> dict[str, Any]:
        return {k: getattr(cfg, k) for k in ("mean", "std") if getattr(cfg, k) is not None}

    def read_split(self, split: str) -> list[tuple[str, list[Path], list[Path]]]:
        hp = self.hparams
        listing = self.root / "ImageSets" / "2017" / f"{split}.txt"
        if not listing.is_file():
            raise LayoutError(f"DAVIS split list not found: {listing} (is --data.root {self.root} the DAVIS folder "
                              "holding JPEGImages/, Annotations/ and ImageSets/?)")
        out = []
        for line_no, line in enumerate(listing.read_text().splitlines(), 1):
            name = line.strip()
            if not name:
                continue
            img_dir = self.root / "JPEGImages" / hp.resolution / name
            ann_dir = self.root / "Annotations" / hp.resolution / name
            frames = sorted(img_dir.glob("*.jpg")) if img_dir.is_dir() else []
            if not frames:
                raise LayoutError(f"{listing}:{line_no}: sequence {name!r} has no frames in {img_dir}")
            masks = sorted(ann_dir.glob("*.png")) if ann_dir.is_dir() else []
            if [p.stem for p in masks] != [p.stem for p in frames]:
                missing = sorted({p.stem for p in frames} - {p.stem for p in masks})
                raise LayoutError(f"{listing}:{line_no}: sequence {name!r}: annotations in {ann_dir} do not match its "
                                  f"{len(frames)} frames (missing: {missing[:5]}{'...' if len(missing) > 5 else ''})")
            out.append((name, frames, masks))
        if not out:
            raise AnnotationError(listing, None, "lists no sequence")
        return out

    def setup(self, stage: str | None = None) -> None:
        hp = self.hparams
        evaluated = DavisSequences(self.read_split(hp.split), hp.frame_size, hp.mean, hp.std)
        self.datasets = {"val": evaluated, "test": evaluated}
        if stage in (None, "fit"):
            self.datasets["train"] = DavisSequences(self.read_split("train"), hp.frame_size, hp.mean, hp.std)
