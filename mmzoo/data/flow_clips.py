"""Optical-flow clips from released flow frames (EPIC-Kitchens), alone or with the RGB frames.

EPIC-Kitchens ships TV-L1 flow as two greyscale JPEG folders per video, ``u`` (horizontal) and
``v`` (vertical), named ``frame_%010d.jpg`` like the RGB frames:

* EPIC-55: ``frames_rgb_flow/flow/{train,test}/P01/P01_01/{u,v}/frame_0000000001.jpg``;
* EPIC-100: ``P01/flow_frames/P01_01/{u,v}/frame_0000000001.jpg``.

Flow frame rate (the release's mapping; epic-kitchens ``C1-Action-Recognition-TSN-TRN-TSM``,
``src/convert_rgb_to_flow_frame_idxs.py``): the 2018 videos (``PXX_YY``, all of EPIC-55 and the
first part of EPIC-100) have flow computed at a temporal stride of 2, so RGB frame ``n`` (1-based)
corresponds to flow frame ``(n - 1) // 2 + 1``; the 2020 videos (``PXX_1YY``) have one flow frame
per RGB frame (``(n - 1) // 1 + 1 = n``) except the last (flow needs a pair of frames). Clips are
therefore sampled in RGB frame numbers (so ``num_frames`` / ``stride`` mean the same time span as
for RGB, whatever the video's year) and each sampled number is mapped with
:func:`rgb_to_flow_index`, clamped to the video's last flow frame.

A flow clip is ``2, T, H, W`` (x then y), normalised with ``flow_mean`` / ``flow_std`` (0.5 / 0.5:
[-1, 1], as I3D's flow stream); a horizontal flip mirrors the frames and negates the x component
(``u -> 255 - u``, so that leftward motion stays leftward). With ``modality="rgb+flow"`` a sample
carries ``video`` (RGB) and ``flow`` from the same frame numbers, resize, crop and flip (two-stream
late fusion at test time).
"""
from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from mmzoo.data import samplers as S
from mmzoo.data import transforms as TF
from mmzoo.data.decode import read_frames
from mmzoo.data.video_dataset import ClipConfig, ClipDataset, LayoutError, VideoRecord

__all__ = ["FlowClipDataset", "FlowRecord", "Modality", "count_flow_frames", "epic_flow_stride", "rgb_to_flow_index"]

Modality = Literal["rgb", "flow", "rgb+flow"]
_NEW_VIDEO = re.compile(r"^P\d{2}_1\d{2}$")


def epic_flow_stride(video_id: str) -> int:
    """2 for the 2018 recordings (``PXX_YY``), 1 for the 2020 ones (``PXX_1YY``)."""
    return 1 if _NEW_VIDEO.match(video_id) else 2


def rgb_to_flow_index(rgb_frames: torch.Tensor | Sequence[int], stride: int, last_flow_frame: int | None = None) -> torch.Tensor:
    """1-based RGB frame numbers -> 1-based flow frame numbers ``(n - 1) // stride + 1``, clamped to
    ``[1, last_flow_frame]`` when given."""
    n = torch.as_tensor(rgb_frames, dtype=torch.long)
    out = (n - 1).div(stride, rounding_mode="floor") + 1
    if last_flow_frame is not None:
        out = out.clamp(1, int(last_flow_frame))
    return out


def count_flow_frames(flow_dir: Path, pattern: str = "frame_%010d.jpg") -> int:
    """The last flow frame number present in both ``u`` and ``v`` (frames are numbered 1..N)."""
    rx = re.compile("^" + re.escape(pattern).replace(re.escape("%010d"), r"(\d{10})") + "$")
    counts = []
    for axis in ("u", "v"):
        d = flow_dir / axis
        if not d.is_dir():
            raise LayoutError(f"flow folder {d} not found (EPIC flow frames come as {flow_dir}/u and {flow_dir}/v)")
        nums = [int(m.group(1)) for name in os.listdir(d) if (m := rx.match(name))]
        if not nums:
            raise LayoutError(f"flow folder {d} holds no {pattern} frames")
        counts.append(max(nums))
    return min(counts)


@dataclass
class FlowRecord(VideoRecord):
    """A frame-folder record (RGB numbering ``first_frame..last_frame``) with its flow folder
    (holding ``u`` / ``v``), the RGB-to-flow stride and the last flow frame; ``frames_dir`` is the
    RGB folder (needed for ``modality="rgb+flow"`` only)."""

    flow_dir: str | None = None
    flow_stride: int = 2
    flow_last: int | None = None

    @property
    def source(self) -> str:
        return str(self.flow_dir)


class FlowClipDataset(ClipDataset):
    """:class:`~mmzoo.data.video_dataset.ClipDataset` of :class:`FlowRecord` s returning flow (``flow``
    modality: as ``video``, 2 channels; ``rgb+flow``: RGB ``video`` and ``flow``)."""

    def __init__(self, records: list[FlowRecord], cfg: ClipConfig, modality: Modality,
                 flow_mean: Sequence[float] = (0.5, 0.5), flow_std: Sequence[float] = (0.5, 0.5)) -> None:
        if modality not in ("flow", "rgb+flow"):
            raise ValueError(f"FlowClipDataset modality must be 'flow' or 'rgb+flow', got {modality!r}")
        if cfg.with_audio:
            raise ValueError("audio is not read with optical flow (modality must be 'rgb' for with_audio)")
        if cfg.alpha:
            raise ValueError("SlowFast pathway packing (alpha) is not supported for optical flow")
        super().__init__(records, cfg, None)
        self.modality = modality
        self.flow_mean, self.flow_std = tuple(flow_mean), tuple(flow_std)
        if len(self.flow_mean) != 2 or len(self.flow_std) != 2:
            raise ValueError(f"flow_mean / flow_std need 2 values (x, y), got {self.flow_mean} / {self.flow_std}")

    def _read_flow(self, rec: FlowRecord, numbers: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        idx = rgb_to_flow_index(numbers, rec.flow_stride, rec.flow_last)
        chans = [read_frames(Path(rec.flow_dir) / axis, idx.tolist(), rec.frame_pattern)[..., :1] for axis in ("u", "v")]
        if chans[0].shape != chans[1].shape:
            raise LayoutError(f"{rec.flow_dir}: u and v frames differ in size {tuple(chans[0].shape)} / {tuple(chans[1].shape)}")
        return torch.cat(chans, dim=-1), idx

    def _sample(self, rec_index: int, clip_index: int, crop_index: int) -> dict[str, Any]:
        c = self.cfg
        rec: FlowRecord = self.records[rec_index]  # type: ignore[assignment]
        short = int(torch.randint(c.train_scale[0], c.train_scale[1] + 1, (1,))) if c.train else c.test_scale
        first, last = int(rec.first_frame), int(rec.last_frame)
        rel, _ = self._temporal(last - first + 1, clip_index)
        numbers = rel + first
        flow, flow_idx = self._read_flow(rec, numbers)
        clips = {"flow": TF.resize_short_side_uint8(flow, short)}
        if self.modality == "rgb+flow":
            rgb = TF.resize_short_side_uint8(read_frames(rec.frames_dir, numbers.tolist(), rec.frame_pattern), short)
            if rgb.shape[1:3] != clips["flow"].shape[1:3]:
                raise LayoutError(f"{rec.frames_dir} and {rec.flow_dir}: RGB {tuple(rgb.shape[1:3])} and flow "
                                  f"{tuple(clips['flow'].shape[1:3])} frames differ in size after resizing")
            clips["video"] = rgb
        h, w = int(clips["flow"].shape[1]), int(clips["flow"].shape[2])
        flipped = False
        if c.train:
            if c.crop_size > h or c.crop_size > w:
                raise ValueError(f"{rec.source}: crop {c.crop_size} larger than frame {h}x{w}")
            y0, x0 = int(torch.randint(0, h - c.crop_size + 1, (1,))), int(torch.randint(0, w - c.crop_size + 1, (1,)))
            size = c.crop_size
            flipped = c.flip and bool(torch.rand(()) < 0.5)
        else:
            (y0, x0), size = S.spatial_crop_offsets(h, w, c.test_crop_size, c.num_crops)[crop_index], c.test_crop_size
        out: dict[str, Any] = {}
        for name, frames in clips.items():
            frames = frames[:, y0 : y0 + size, x0 : x0 + size]
            if flipped:
                frames = frames.flip(2)
                if name == "flow":
                    frames = torch.cat([255 - frames[..., :1], frames[..., 1:]], dim=-1)
            mean, std = (self.flow_mean, self.flow_std) if name == "flow" else (c.mean, c.std)
            out[name] = TF.to_normalized_cthw(frames, mean, std)
        if self.modality == "flow":
            out["video"] = out.pop("flow")
        out["has_audio"] = False
        out["video_index"] = rec_index
        out.update({k: int(v) for k, v in rec.targets.items()})
        meta = dict(rec.meta)
        meta.update(source=rec.source, video_index=rec_index, clip_index=clip_index, crop_index=crop_index,
                    frame_indices=numbers.tolist(), flow_frame_indices=flow_idx.tolist(), flipped=flipped)
        out["meta"] = meta
        return out


def epic_flow_dirs(root: Path, version: str, participant: str, video_id: str) -> list[Path]:
    """Where a video's flow folder may be, in lookup order: EPIC-55 ``frames_rgb_flow/flow/{train,test}``
    (or ``flow/{train,test}`` under ``root``), EPIC-100 ``P01/flow_frames/P01_01``, flat
    ``flow_frames/P01/P01_01``."""
    c = []
    if version == "55":
        c += [base / "flow" / s / participant / video_id for base in (root / "frames_rgb_flow", root) for s in ("train", "test")]
    return c + [root / participant / "flow_frames" / video_id, root / "flow_frames" / participant / video_id]


def find_flow_dir(candidates: list[Path], video_id: str, where: str) -> tuple[Path, int]:
    """The first existing candidate and its last flow frame; a :class:`LayoutError` naming every
    candidate (and an unextracted ``.tar``) otherwise."""
    for p in candidates:
        if p.is_dir():
            return p, count_flow_frames(p)
    tars = [p.with_suffix(".tar") for p in candidates if p.with_suffix(".tar").is_file()]
    hint = f" ({tars[0]} exists: extract it in place)" if tars else ""
    raise LayoutError(f"{where}: flow folder of {video_id} not found; looked for "
                      + ", ".join(str(p) for p in candidates) + hint)


def add_flow_datasets(dm: Any, stage: str | None) -> None:
    """Fill ``dm.datasets`` with :class:`FlowClipDataset` s for ``stage`` (as
    :meth:`~mmzoo.data.clips.ClipDataModule.setup` does with clip datasets, which then keeps them)."""
    wanted = {"fit": [("train", dm.train_split), ("val", dm.val_split)], "validate": [("val", dm.val_split)],
              "test": [("test", dm.test_split)], "predict": [("test", dm.test_split)]}  # fmt: skip
    cfgs = {"train": dm.train_cfg, "val": dm.val_cfg, "test": dm.eval_cfg}
    for st in [stage] if stage else ["fit", "test"]:
        for name, split in wanted[st]:
            if split is not None and name not in dm.datasets:
                dm.datasets[name] = FlowClipDataset(dm._records(split), cfgs[name], dm.modality, dm.flow_mean, dm.flow_std)
