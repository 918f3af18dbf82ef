"""VIP, video instance-level human parsing (Zhou et al. 2018), as distributed (`--data vip`).

Layout of the ``VIP_Fine`` release (its annotated frames, one every 25 frames of each video)::

    <root>/Images/<video>/<frame>.jpg
    <root>/Annotations/Category_ids/<video>/<frame>.png    part ids 0..19 (0 background)
    <root>/Annotations/Human_ids/<video>/<frame>.png       person ids (0 background)
    <root>/Annotations/Instance_ids/<video>/<frame>.png    instance-part ids (0 background)
    <root>/Annotations/Instance_ids/<video>/<frame>.txt    "<instance id> <part id> [<person id>]" lines
    <root>/lists/{train,val,test}_videos.txt               one video name per line

The id maps are single-channel PNGs (grayscale or palette: the stored index is the id, as the
official ``test_inst_part_ap.py`` reads them with PIL); the ``.txt`` gives each instance-part id
its part class (the evaluation reads the first two columns; an id of the map missing from the
table is not an instance, as there).

One sample is one video: ``video`` ``(3, T, S, S)`` (frames resized to ``frame_size`` squared,
560 in the thesis) and ``parts`` ``(T, H, W)`` int64 part ids at the annotation's resolution;
``video_id``. With ``instances=True`` (default) also ``humans`` ``(T, H, W)`` int64 person ids,
``instances`` ``(T, H, W)`` int64 instance-part ids and ``instance_table`` ``(T, N, 2)`` int64
rows ``(instance id, part id)`` of each frame's ``.txt``, padded with ``-1`` rows to the video's
longest table. Evaluation propagates the first frame's parts with two reference frames, the
first and the previous one (thesis Sec. 2.4): this DataModule links ``context = 1`` to the
model. Metrics: :class:`mmzoo.metrics.vip.PartMeanIoU` and, for instance-part predictions,
:class:`mmzoo.metrics.vip.InstancePartAP` (AP^r_vol, logged by `mmzoo test` of the label-propagation models).
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
from mmzoo.data.decode import CorruptFrameError
from mmzoo.data.registry import register_datamodule
from mmzoo.data.video_dataset import AnnotationError, LayoutError
from mmzoo.registry import InputConfig

__all__ = ["VipDataModule", "VipVideos", "read_id_map", "read_instance_table"]


_MAP_MODES = ("L", "P", "I", "I;16", "I;16B", "I;16L")


def read_id_map(path: Path) -> np.ndarray:
    """Integer ids ``(H, W)`` of a single-channel PNG (grayscale, 16-bit or palette indices)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.mode not in _MAP_MODES:
                raise AnnotationError(path, None, f"a VIP id map must be a single-channel PNG of ids, got mode "
                                      f"{im.mode!r} (an RGB rendering cannot be read back as ids)")
            return np.array(im).astype(np.int64)
    except OSError as e:
        raise CorruptFrameError(path, f"cannot decode PNG ({e})") from e


def read_instance_table(path: Path, num_parts: int = 20) -> np.ndarray:
    """``(N, 2)`` int64 ``(instance id, part id)`` rows of an ``Instance_ids`` ``.txt``."""
    rows, seen = [], set()
    for line_no, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        try:
            iid, part = int(fields[0]), int(fields[1])
        except (IndexError, ValueError):
            raise AnnotationError(path, line_no, f"expected '<instance id> <part id> [<person id>]', got {line!r}") from None
        if iid <= 0 or not 0 < part < num_parts:
            raise AnnotationError(path, line_no, f"instance id {iid} must be > 0 and part id {part} in 1..{num_parts - 1}")
        if iid in seen:
            raise AnnotationError(path, line_no, f"instance id {iid} is listed twice")
        seen.add(iid)
        rows.append((iid, part))
    return np.array(rows, dtype=np.int64).reshape(-1, 2)


class VipVideos(Dataset):
    def __init__(self, videos: list[tuple], frame_size: int | None, mean, std) -> None:
        self.videos, self.frame_size, self.mean, self.std = videos, frame_size, mean, std

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, i: int) -> dict[str, Any]:
        name, frames, anns, humans, insts = self.videos[i]
        imgs = np.stack([read_rgb(p) for p in frames])
        parts = [read_palette_mask(p) for p in anns]
        for p, m in zip(anns, parts):
            if m.shape != imgs.shape[1:3]:
                raise AnnotationError(p, None, f"part map {m.shape} does not match its frame {imgs.shape[1:3]}")
        out = {"video": resize_normalize(imgs, self.frame_size, self.mean, self.std),
               "parts": torch.from_numpy(np.stack(parts).astype(np.int64)), "video_id": name,
               "meta": {"video": name}}
        if humans is None:
            return out
        maps = {"humans": [read_id_map(p) for p in humans], "instances": [read_id_map(p) for p in insts]}
        for key, paths in (("humans", humans), ("instances", insts)):
            for p, m in zip(paths, maps[key]):
                if m.shape != imgs.shape[1:3]:
                    raise AnnotationError(p, None, f"id map {m.shape} does not match its frame {imgs.shape[1:3]}")
            out[key] = torch.from_numpy(np.stack(maps[key]))
        tables = [read_instance_table(p.with_suffix(".txt")) for p in insts]
        table = np.full((len(tables), max(len(t) for t in tables), 2), -1, dtype=np.int64)
        for t, rows in enumerate(tables):
            table[t, : len(rows)] = rows
        out["instance_table"] = torch.from_numpy(table)
        return out


@register_datamodule("vip")
class VipDataModule(ZooDataModule):
    """VIP_Fine videos for part propagation (val and test loaders: ``split``).

    Args:
        root: the ``VIP_Fine`` folder (Images/, Annotations/, lists/).
        split: "val" (the thesis's evaluation set), "train" or "test".
        frame_size: frames resized to this square size (560, thesis Sec. 2.4); None = as stored.
        instances: also read ``Human_ids`` and ``Instance_ids`` (maps and ``.txt``); a missing or
            malformed file is then an error naming it. False: part maps only.
        context: previous frames propagated from besides the first (1: two reference frames,
            the thesis's VIP setting); linked to the model's ``context``.
        mean / std: normalisation (ImageNet).
    """

    targets = ("parts",)
    model_links = ("context",)
    persistent_workers = False

    def __init__(self, root: str, split: Literal["train", "val", "test"] = "val", frame_size: int | None = 560,
                 context: int = 1, instances: bool = True, mean: tuple[float, float, float] = IMAGENET_MEAN,
                 std: tuple[float, float, float] = IMAGENET_STD, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.root = Path(root)
        self.context = context
        self.eval_batch_size = 1  # one whole video per evaluation batch

    @classmethod
    def defaults_from_input(cls, cfg: InputConfig) -> dict[str, Any]:
        return {k: getattr(cfg, k) for k in ("mean", "std") if getattr(cfg, k) is not None}

    def _videos(self, split: str) -> list[tuple]:
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
            humans = insts = None
            if self.hparams.instances:
                humans = self._annotation_files(listing, line_no, name, "Human_ids", frames, ".png")
                insts = self._annotation_files(listing, line_no, name, "Instance_ids", frames, ".png")
                self._annotation_files(listing, line_no, name, "Instance_ids", frames, ".txt")
            out.append((name, frames, anns, humans, insts))
        if not out:
            raise AnnotationError(listing, None, "lists no video")
        return out

    def _annotation_files(self, listing: Path, line_no: int, name: str, kind: str, frames: list[Path],
                          suffix: str) -> list[Path]:
        folder = self.root / "Annotations" / kind / name
        paths = [folder / f"{p.stem}{suffix}" for p in frames]
        missing = [p.name for p in paths if not p.is_file()]
        if missing:
            raise LayoutError(f"{listing}:{line_no}: video {name!r} lacks {kind} files in {folder}: "
                              f"{missing[:5]}{'...' if len(missing) > 5 else ''} (--data.instances false reads "
                              "the part maps only)")
        return paths

    def setup(self, stage: str | None = None) -> None:
        hp = self.hparams
        evaluated = VipVideos(self._videos(hp.split), hp.frame_size, hp.mean, hp.std)
        self.datasets = {"val": evaluated, "test": evaluated}
        if stage in (None, "fit"):
            self.datasets["train"] = VipVideos(self._videos("train"), hp.frame_size, hp.mean, hp.std)
