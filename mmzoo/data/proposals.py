"""Precomputed region proposals for STRG (thesis ch. 6): the file format, ``propose`` (run the RPN
once over a dataset) and the clip dataset that serves each clip's proposals with its pixels.

File format (``mmzoo propose`` writes it; a ``.safetensors`` file, so loading runs no code):

* metadata (safetensors' string map): ``format = "mmzoo-proposals"``, ``version = "1"``,
  ``dataset`` (the DataModule name), ``layout`` (``"video"``: frame numbers are 0-based stream
  indices; ``"frames"``: the frame files' numbers), ``proposals_per_frame`` (K),
  ``frame_step`` (the RPN ran on every ``frame_step``-th frame), ``detector`` (free text);
* for each video id ``V``: tensor ``V/frames`` (int64 ``M``: the frame numbers the RPN ran on,
  increasing) and ``V/boxes`` (float32 ``M, K, 4``: ``x1, y1, x2, y2`` as fractions of the frame's
  width and height, best first; all-zero rows pad frames with fewer than K proposals).

Boxes are stored as fractions so that one file serves every decoding size. A clip frame takes the
proposals of the nearest frame the RPN ran on.

:class:`ProposalClipDataset` returns ``boxes`` (float ``P, K, 4`` in the pixels of the returned
crop) for ``P = proposal_frames`` frames of each clip (frames ``0, s, 2s, ...`` of the clip with
``s = num_frames // P``: 16 of STRG's 32). It draws the short side, crop and flip itself, applies
them to the frames as they are decoded and to the boxes, and lets
:class:`~mmzoo.data.video_dataset.ClipDataset` do the rest (temporal sampling, normalisation,
labels) with no spatial choice left to it. Boxes cut off by the crop become all-zero (padding).
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch

from mmzoo.data import samplers as S
from mmzoo.data import transforms as TF
from mmzoo.data.decode import VideoReader, read_frames
from mmzoo.data.video_dataset import ClipDataset, LayoutError, VideoRecord
from mmzoo.errors import DataError

__all__ = [
    "FORMAT",
    "ProposalClipDataset",
    "ProposalFile",
    "find_proposals",
    "propose",
    "read_proposals",
    "write_proposals",
]

FORMAT = "mmzoo-proposals"
VERSION = "1"


@dataclasses.dataclass
class ProposalFile:
    """A proposals file in memory: ``videos[id] = (frames int64 M, boxes float32 M,K,4)``."""

    videos: dict[str, tuple[torch.Tensor, torch.Tensor]]
    dataset: str
    layout: str
    proposals_per_frame: int
    frame_step: int = 1
    detector: str = ""
    path: str = ""

    def boxes_at(self, video_id: str, frame_numbers: list[int]) -> torch.Tensor:
        """Fractional boxes ``len(frame_numbers), K, 4`` of the nearest RPN frames."""
        if video_id not in self.videos:
            raise DataError(f"{self.path}: no proposals for video {video_id!r} (run `mmzoo propose` for this split)")
        frames, boxes = self.videos[video_id]
        q = torch.as_tensor(frame_numbers, dtype=torch.int64)
        pos = torch.searchsorted(frames, q).clamp(max=len(frames) - 1)
        prev = (pos - 1).clamp(min=0)
        nearer_prev = (q - frames[prev]).abs() < (frames[pos] - q).abs()
        return boxes[torch.where(nearer_prev, prev, pos)]


def write_proposals(path: str | os.PathLike, pf: ProposalFile) -> Path:
    """Write ``pf`` in the format of the module docstring; checks shapes and ordering."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    for vid, (frames, boxes) in pf.videos.items():
        if "/" in vid:
            raise ValueError(f"video id {vid!r} contains '/'")
        frames = torch.as_tensor(frames, dtype=torch.int64).contiguous()
        boxes = torch.as_tensor(boxes, dtype=torch.float32).contiguous()
        if boxes.dim() != 3 or boxes.shape[0] != frames.shape[0] or boxes.shape[2] != 4:
            raise ValueError(f"video {vid}: boxes must be M, K, 4 with M = len(frames); got {tuple(boxes.shape)}")
        if frames.numel() == 0 or bool((frames[1:] <= frames[:-1]).any()):
            raise ValueError(f"video {vid}: frame numbers must be non-empty and increasing")
        tensors[f"{vid}/frames"], tensors[f"{vid}/boxes"] = frames, boxes
    meta = {"format": FORMAT, "version": VERSION, "dataset": pf.dataset, "layout": pf.layout,
            "proposals_per_frame": str(pf.proposals_per_frame), "frame_step": str(pf.frame_step),
            "detector": pf.detector}  # fmt: skip
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=meta)
    return path


def read_proposals(path: str | os.PathLike) -> ProposalFile:
    """Read a proposals file; a :class:`~mmzoo.errors.DataError` names what is wrong with it."""
    from safetensors import safe_open

    path = str(path)
    if not os.path.isfile(path):
        raise LayoutError(f"proposals file not found: {path} (--data.proposals; write it with `mmzoo propose`)")
    try:
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no iterator
    except Exception as e:
        raise DataError(f"{path}: not a readable safetensors proposals file ({e})") from e
    if meta.get("format") != FORMAT:
        raise DataError(f"{path}: metadata format is {meta.get('format')!r}, expected {FORMAT!r}")
    if meta.get("version") != VERSION:
        raise DataError(f"{path}: proposals format version {meta.get('version')!r}; this mmzoo reads {VERSION!r}")
    videos: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for key, value in tensors.items():
        vid, _, kind = key.rpartition("/")
        if kind not in ("frames", "boxes") or not vid:
            raise DataError(f"{path}: unexpected tensor {key!r} (expected '<video id>/frames' and '<video id>/boxes')")
        if kind == "frames":
            if f"{vid}/boxes" not in tensors:
                raise DataError(f"{path}: video {vid!r} has frames but no boxes")
            videos[vid] = (value.long(), tensors[f"{vid}/boxes"].float())
    k = int(meta.get("proposals_per_frame", "0"))
    for vid, (frames, boxes) in videos.items():
        if boxes.dim() != 3 or boxes.shape[:2] != (frames.shape[0], k) or boxes.shape[2] != 4:
            raise DataError(f"{path}: video {vid!r}: boxes {tuple(boxes.shape)} do not match {frames.shape[0]} frames "
                            f"x {k} proposals x 4")
    return ProposalFile(videos, meta.get("dataset", ""), meta.get("layout", ""), k, int(meta.get("frame_step", "1")),
                        meta.get("detector", ""), path)


def find_proposals(value: str, root: Path) -> ProposalFile:
    """The proposals file a DataModule's ``proposals`` argument names: as given, else under
    ``root`` (``--data.proposals strg_proposals.safetensors`` beside the dataset)."""
    from mmzoo.data.paths import find_path

    return read_proposals(find_path("proposals", value, root, what="proposals file (write it with `mmzoo propose`)"))


def record_frame_numbers(rec: VideoRecord, frame_step: int) -> list[int]:
    """The frame numbers of ``rec`` the RPN runs on: every ``frame_step``-th of its frames, in the
    numbering of the clip dataset's ``meta["frame_indices"]``."""
    if rec.video is not None:
        with VideoReader(rec.video) as r:
            n = r.info.num_frames
        return list(range(0, n, frame_step))
    return list(range(int(rec.first_frame), int(rec.last_frame) + 1, frame_step))


def propose(datamodule: Any, output: str | os.PathLike, splits: tuple[str, ...] = ("train", "val", "test"),
            proposals_per_frame: int = 50, frame_step: int = 1, pretrained: bool = True, min_size: int = 800,
            max_size: int = 1333, batch_frames: int = 16, device: str = "cpu", progress: bool = True) -> Path:
    """Run torchvision's COCO Faster R-CNN R50-FPN RPN (``mmzoo.nn.region_proposals.RegionProposer``)
    over every video of ``splits`` of a clip DataModule (``charades``, ``something-something``)
    and write a proposals file at ``output``. ``frame_step`` > 1 runs it on every n-th frame only
    (clip frames take the nearest); ``batch_frames`` frames go through the RPN at a time."""
    from tqdm.auto import tqdm

    from mmzoo.nn.region_proposals import RegionProposer

    proposer = RegionProposer(proposals_per_frame, pretrained, min_size, max_size).to(device)
    records: dict[str, VideoRecord] = {}
    for split in splits:
        name = {"train": datamodule.train_split, "val": datamodule.val_split, "test": datamodule.test_split}[split]
        if name is None:
            continue
        datamodule._validate_layout()
        for rec in datamodule._records(name):
            records.setdefault(str(rec.meta["id"]), rec)
    videos: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    layout = "video"
    for vid, rec in tqdm(records.items(), desc="mmzoo propose", unit="video", disable=not progress):
        numbers = record_frame_numbers(rec, frame_step)
        layout = "video" if rec.video is not None else "frames"
        out = []
        for i in range(0, len(numbers), batch_frames):
            part = numbers[i:i + batch_frames]
            if rec.video is not None:
                with VideoReader(rec.video) as r:
                    frames = r.frames_by_index(part).frames
            else:
                frames = read_frames(rec.frames_dir, part, rec.frame_pattern)
            h, w = frames.shape[1], frames.shape[2]
            x = frames.permute(0, 3, 1, 2).float().div(255).to(device)
            boxes = proposer(x).cpu()
            out.append(boxes / torch.tensor([w, h, w, h], dtype=torch.float32))
        videos[vid] = (torch.tensor(numbers, dtype=torch.int64), torch.cat(out))
    pf = ProposalFile(videos, getattr(datamodule, "datamodule_name", ""), layout, proposals_per_frame, frame_step,
                      f"torchvision fasterrcnn_resnet50_fpn RPN ({'COCO_V1' if pretrained else 'random'}), "
                      f"min_size {min_size}, max_size {max_size}")  # fmt: skip
    return write_proposals(output, pf)


class ProposalClipDataset(ClipDataset):
    """A :class:`ClipDataset` whose samples also carry ``boxes`` (module docstring). Call
    :meth:`attach_proposals` after construction (subclasses keep their own constructors)."""

    proposals: ProposalFile | None = None

    def attach_proposals(self, pf: ProposalFile, proposal_frames: int = 16,
                         proposals_per_frame: int | None = None, layout: str | None = None) -> None:
        c = self.cfg
        if c.alpha is not None:
            raise ValueError("proposals are served for single-pathway clips only (alpha must be None)")
        if proposal_frames < 1 or c.num_frames % proposal_frames:
            raise ValueError(f"--data.proposal_frames {proposal_frames} must divide num_frames {c.num_frames}")
        if layout is not None and pf.layout and pf.layout != layout:
            raise DataError(f"{pf.path}: proposals were computed on the {pf.layout!r} layout (its frame numbers), "
                            f"but the data is read from the {layout!r} layout")
        self.proposals, self.proposal_frames = pf, proposal_frames
        self.proposals_per_frame = proposals_per_frame or pf.proposals_per_frame
        self.geometry = c  # our spatial settings; the parent gets a config that leaves it no choice
        crop = c.crop_size if c.train else c.test_crop_size
        self.cfg = dataclasses.replace(c, train_scale=(crop, crop), flip=False, test_scale=crop)
        self._state: dict[str, Any] = {}

    # the parent calls these loaders; the frames they return are already scaled, cropped, flipped
    def _load_video(self, rec, clip_index, short_side, with_audio):
        if self.proposals is None:
            return super()._load_video(rec, clip_index, short_side, with_audio)
        frames, idx, audio, has = super()._load_video(rec, clip_index, self._state["short"], with_audio)
        return self._spatial(rec, frames, idx), idx, audio, has

    def _load_frames(self, rec, clip_index, short_side, with_audio):
        if self.proposals is None:
            return super()._load_frames(rec, clip_index, short_side, with_audio)
        frames, idx, audio, has = super()._load_frames(rec, clip_index, short_side, with_audio)
        return self._spatial(rec, frames, idx), idx, audio, has

    def _spatial(self, rec: VideoRecord, frames: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        g, st = self.geometry, self._state
        short = st["short"]
        if min(frames.shape[1:3]) != short:
            frames = TF.resize_short_side_uint8(frames, short)
        h, w = int(frames.shape[1]), int(frames.shape[2])
        crop = g.crop_size if g.train else g.test_crop_size
        if crop > h or crop > w:
            raise ValueError(f"{rec.source}: crop {crop} larger than frame {h}x{w}")
        if g.train:
            y0 = int(torch.randint(0, h - crop + 1, (1,)))
            x0 = int(torch.randint(0, w - crop + 1, (1,)))
            flip = g.flip and bool(torch.rand(()) < 0.5)
        else:
            y0, x0 = S.spatial_crop_offsets(h, w, crop, g.num_crops)[st["crop_index"]]
            flip = False
        frames = frames[:, y0:y0 + crop, x0:x0 + crop]
        step = len(indices) // self.proposal_frames
        numbers = [int(i) for i in indices[::step][: self.proposal_frames]]
        frac = self.proposals.boxes_at(str(rec.meta["id"]), numbers)[:, : self.proposals_per_frame]
        boxes = frac * torch.tensor([w, h, w, h], dtype=frac.dtype) - torch.tensor([x0, y0, x0, y0], dtype=frac.dtype)
        boxes = boxes.clamp(min=0, max=crop)
        empty = (boxes[..., 2] <= boxes[..., 0]) | (boxes[..., 3] <= boxes[..., 1])
        if flip:
            frames = frames.flip(2)
            boxes = torch.stack([crop - boxes[..., 2], boxes[..., 1], crop - boxes[..., 0], boxes[..., 3]], -1)
        boxes[empty] = 0.0
        if boxes.shape[1] < self.proposals_per_frame:
            boxes = torch.cat([boxes, boxes.new_zeros(boxes.shape[0], self.proposals_per_frame - boxes.shape[1], 4)], 1)
        st.update(boxes=boxes, flipped=flip)
        return frames

    def _sample(self, rec_index: int, clip_index: int, crop_index: int) -> dict[str, Any]:
        if self.proposals is None:
            return super()._sample(rec_index, clip_index, crop_index)
        g = self.geometry
        short = int(torch.randint(g.train_scale[0], g.train_scale[1] + 1, (1,))) if g.train else g.test_scale
        self._state = {"short": short, "crop_index": crop_index}
        self._last = None  # the parent's decoded-clip cache would reuse another crop's pixels
        out = super()._sample(rec_index, clip_index, crop_index)
        out["boxes"] = self._state["boxes"]
        out["meta"]["flipped"] = self._state["flipped"]
        return out
