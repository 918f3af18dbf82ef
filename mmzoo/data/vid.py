"""ImageNet VID (ILSVRC2015) for video object detection, read as the release ships it.

Layout (devkit readme Sec. 4; ``root`` is the folder holding ``Data``, ``Annotations``,
``ImageSets``)::

    Data/VID/{train,val,test}/<snippet_id>/%06d.JPEG       frames, 0-based
    Annotations/VID/{train,val}/<snippet_id>/%06d.xml       PASCAL-style XML per frame
    ImageSets/VID/train_{1..30}.txt                         "<snippet_id> <1|-1>" per line
    ImageSets/VID/{val,test}.txt                            "<snippet_id>/%06d <frame_index>"

Train snippet ids include their batch folder (``ILSVRC2015_VID_train_0000/ILSVRC2015_train_
00000000``); val / test ids do not. XML objects carry ``trackid``, ``name`` (a WNID),
``bndbox`` (xmin/ymin/xmax/ymax, inclusive pixels), ``occluded`` and ``generated``.
The 30 WNIDs map to labels 1..30 in the devkit order (``meta_vid.mat``); 0 is background.

Optional ImageNet DET stills of the 30 classes (``det_list``: lines ``<image_id> ...`` under
``Data/DET/train`` / ``Annotations/DET/train``; objects of the other 170 DET classes are
ignored) are mixed into training as static sequences of T copies, as R-FCN / STMN training does.

Training items: a sequence of ``num_frames`` (T = 7) frames ``stride`` (10) apart around a random
key frame of a snippet listed positive in a ``train_*.txt`` (``samples_per_snippet`` per epoch),
the whole sequence flipped left-right with probability 0.5. Evaluation items: the test protocol
of thesis Sec. 3.4 ("we slide the testing window ... consistent with our training procedure"),
as the authors' test code runs it (:func:`eval_window_indices`): each snippet's listed frames are
split into ``eval_stride`` (10) interleaved sequences sampled 1 in 10 like training sequences;
windows of ``eval_window`` (11) frames slide over each sequence by ``eval_window_step`` (1)
frames, so a frame is in up to ``eval_window`` windows (its detections are merged by the model).
Together the windows cover **every** frame listed in ``val.txt`` / ``test.txt``, snippets in file
order (``meta["last"]`` marks the last window of a snippet, for snippet-level Seq-NMS;
``eval_stride=1, eval_window_step=eval_window`` gives consecutive, non-overlapping windows); with
several processes, :class:`SnippetShardSampler` keeps each snippet on one rank. Frames are scaled so that the short side is ``short_side`` (360) and the long side at
most ``max_side`` (600), the authors' setting.

Batch fields (``collate``):

* ``video``: float ``[B, 3, T, H, W]``, ImageNet-normalised RGB, zero-padded at the bottom /
  right to the largest frame of the batch;
* ``boxes``: list of ``B*T`` float ``[N_i, 4]`` xyxy in the pixels of the scaled frame
  (sample-major: frame ``t`` of sample ``b`` is ``b*T + t``);
* ``labels``: list of ``B*T`` long ``[N_i]`` in 1..30;
* ``meta``: list of ``B*T`` dicts: ``snippet``, ``frame`` (index in the snippet), ``eval_index``
  (the val.txt / test.txt index or -1), ``orig_size`` / ``size`` (h, w), ``scale`` (sx, sy),
  ``flipped``,
  ``track_ids``, ``occluded``, ``last`` (last window of the snippet), ``split``; evaluation frames
  of an annotated split also carry ``xml_boxes`` (float64 ``[N, 4]``, the XML's inclusive-pixel
  boxes exactly as written: ground truth for the devkit metric, never clipped nor rounded) and
  ``motion_iou`` (``[N]``, FGFA's motion IoU of each object from the ``trackid`` s of its snippet,
  :func:`mmzoo.metrics.vid_motion.motion_iou`, for the slow / medium / fast breakdown).

Errors name the file (and line): an unparsable XML or list line, an unknown WNID, a box outside
its image, a missing frame or annotation (:class:`VIDFormatError`, or the decoder's
``FrameNotFoundError``).
"""
from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from torch.utils.data import (
    Dataset,
    DistributedSampler,
    RandomSampler,
    Sampler,
    get_worker_info,
)

from mmzoo.data.base import ZooDataModule
from mmzoo.data.collate import collate_dicts
from mmzoo.data.decode import read_frames
from mmzoo.data.registry import register_datamodule
from mmzoo.data.samplers import strided_sequence
from mmzoo.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    horizontal_flip,
    normalize,
    scaled_size,
    short_side_scale,
    to_cthw_float,
    to_devkit_boxes,
)
from mmzoo.data.constants import VID_CLASSES, VID_WNIDS
from mmzoo.errors import DataError
from mmzoo.registry import InputConfig

__all__ = ["VID_WNIDS", "VID_CLASSES", "VIDFormatError", "VIDDataModule", "SnippetShardSampler", "parse_vid_xml", "collate_vid",
           "scaled_size", "to_devkit_boxes", "eval_window_indices"]

WNID_TO_LABEL = {w: i + 1 for i, w in enumerate(VID_WNIDS)}


class VIDFormatError(DataError, ValueError):
    """Malformed ImageNet VID / DET input; the message names the file (and line)."""


@dataclass
class FrameAnnotation:
    width: int
    height: int
    boxes: torch.Tensor  # [N, 4] float, inclusive pixels
    labels: torch.Tensor  # [N] long
    track_ids: list = field(default_factory=list)
    occluded: list = field(default_factory=list)
    boxes_xml: Optional[torch.Tensor] = None  # [N, 4] float64, the XML's values exactly


def _line_of(text: str, needle: str) -> int:
    pos = text.find(needle)
    return text.count("\n", 0, pos) + 1 if pos >= 0 else 0


def parse_vid_xml(path: str | os.PathLike, ignore_unknown: bool = False) -> FrameAnnotation:
    """Parse one VID / DET XML annotation strictly.

    ``ignore_unknown`` drops objects whose WNID is not a VID class (ImageNet DET has 200
    classes); otherwise an unknown WNID is an error naming file and line.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError as e:
        raise VIDFormatError(f"{path}: annotation file not found") from e
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        line = e.position[0] if getattr(e, "position", None) else 0
        raise VIDFormatError(f"{path}:{line}: XML does not parse ({e})") from e
    try:
        width = int(root.findtext("size/width"))
        height = int(root.findtext("size/height"))
    except (TypeError, ValueError) as e:
        raise VIDFormatError(f"{path}: missing or non-integer <size><width>/<height>") from e
    boxes, labels, tracks, occl = [], [], [], []
    for obj in root.findall("object"):
        wnid = (obj.findtext("name") or "").strip()
        if wnid not in WNID_TO_LABEL:
            if ignore_unknown:
                continue
            raise VIDFormatError(f"{path}:{_line_of(text, wnid) if wnid else 0}: unknown WNID {wnid!r} (not one of the 30 VID classes)")
        try:
            b = [float(obj.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")]
        except (TypeError, ValueError) as e:
            raise VIDFormatError(f"{path}: object {wnid} has a missing or non-numeric <bndbox>") from e
        x1, y1, x2, y2 = b
        if not (0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= height):
            line = _line_of(text, f"<xmin>{obj.findtext('bndbox/xmin')}</xmin>")
            raise VIDFormatError(f"{path}:{line}: box {b} of {wnid} lies outside the {width}x{height} image")
        boxes.append(b)
        labels.append(WNID_TO_LABEL[wnid])
        tid = obj.findtext("trackid")
        tracks.append(int(tid) if tid is not None else -1)
        occl.append(int(obj.findtext("occluded") or 0))
    return FrameAnnotation(
        width, height, torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        torch.tensor(labels, dtype=torch.long), tracks, occl, torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4))


def _read_list(path: Path, pattern: re.Pattern, what: str) -> list[tuple[str, str]]:
    if not path.is_file():
        raise VIDFormatError(f"{path}: {what} list not found")
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        m = pattern.fullmatch(line.strip())
        if not m:
            raise VIDFormatError(f"{path}:{n}: cannot parse {what} line {line!r}")
        out.append(m.groups())
    return out


def eval_window_indices(num_frames: int, window: int = 11, stride: int = 10, step: int = 1) -> list[list[int]]:
    """Test windows over a snippet of ``num_frames`` frames: lists of positions ``0..num_frames-1``.

    Thesis Sec. 3.4 samples training sequences 1 frame in 10 and slides the test window
    "consistent with our training procedure"; as the authors' test code does, the snippet is split
    into the ``stride`` sequences ``p, p + stride, p + 2 stride, ...`` (``p < stride``), and windows
    of ``window`` consecutive frames of a sequence start every ``step`` frames of it (``step <
    window``: the last one ends at the sequence's end; ``step == window``: tiles, the last one
    shorter); a sequence of at most ``window`` frames is one window. Every position is in at least
    one window. ``window`` = 3 / 7 / 11 / 15 gives the test-window ablation.
    """
    if min(window, stride, step) < 1 or step > window:
        raise ValueError(f"need window, stride, step >= 1 and step <= window, got {window}, {stride}, {step}")
    out: list[list[int]] = []
    for p in range(min(stride, num_frames)):
        seq = list(range(p, num_frames, stride))
        if step == window:
            starts = list(range(0, len(seq), step))
        else:
            starts = list(range(0, max(len(seq) - window, 0) + 1, step))
            if starts[-1] + window < len(seq):
                starts.append(len(seq) - window)
        out.extend(seq[s:s + window] for s in starts)
    return out


_TRAIN_LINE = re.compile(r"(\S+)\s+(-?1)")
_EVAL_LINE = re.compile(r"(\S+)/(\d+)\s+(\d+)")
_DET_LINE = re.compile(r"(\S+)(?:\s+.*)?")


def _transform(frames_u8: torch.Tensor, boxes: list, short_side: int, max_side: int, flip: bool,
               mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD):
    """uint8 T,H,W,C -> normalised C,T,H,W, scaled; boxes (list per frame) scaled and flipped."""
    video = to_cthw_float(frames_u8)
    h, w = video.shape[-2:]
    scale, short = scaled_size(h, w, short_side, max_side)
    video, _ = short_side_scale(video, short)
    nh, nw = video.shape[-2:]
    sx, sy = nw / w, nh / h
    counts = [len(b) for b in boxes]
    flat = torch.cat([b.reshape(-1, 4) for b in boxes]) if boxes else torch.zeros(0, 4)
    flat = flat.clone().float()
    flat[:, 2:] += 1  # inclusive pixel corners -> continuous extents
    flat = flat * torch.tensor([sx, sy, sx, sy])
    if flip:
        video, flat = horizontal_flip(video, flat)
    out_boxes = list(torch.split(flat, counts))
    video = normalize(video, mean, std)
    return video, out_boxes, (nh, nw), (sx, sy)


class _VIDBase(Dataset):
    def __init__(self, root: Path, short_side: int, max_side: int, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD):
        self.root = root
        self.short_side, self.max_side = short_side, max_side
        self.mean, self.std = tuple(mean), tuple(std)

    def _ann(self, split: str, sid: str, frame: int) -> FrameAnnotation:
        return parse_vid_xml(self.root / "Annotations/VID" / split / sid / f"{frame:06d}.xml")

    def _sample(self, split, sid, frames_idx, anns, flip, eval_index, last, img_folder=None, pattern="%06d.JPEG"):
        folder = img_folder or (self.root / "Data/VID" / split / sid)
        frames = read_frames(folder, frames_idx, pattern=pattern)
        h, w = frames.shape[1:3]
        for a, f in zip(anns, frames_idx):
            if a is not None and (a.width, a.height) != (w, h):
                raise VIDFormatError(f"{folder}/{pattern % f}: image is {w}x{h} but its XML says {a.width}x{a.height}")
        boxes = [a.boxes if a is not None else torch.zeros(0, 4) for a in anns]
        video, boxes, size, scale = _transform(frames, boxes, self.short_side, self.max_side, flip, self.mean, self.std)
        meta = [{
            "split": split, "snippet": sid, "frame": int(f), "eval_index": int(e), "orig_size": (int(h), int(w)),
            "size": size, "scale": scale, "flipped": flip, "last": bool(last),
            "track_ids": a.track_ids if a is not None else [], "occluded": a.occluded if a is not None else [],
        } for f, e, a in zip(frames_idx, eval_index, anns)]
        labels = [a.labels if a is not None else torch.zeros(0, dtype=torch.long) for a in anns]
        return {"video": video, "boxes": boxes, "labels": labels, "meta": meta}


class VIDTrainSequences(_VIDBase):
    """Training sequences (and optional DET stills); see the module docstring."""

    def __init__(self, root: Path, snippets: Sequence[str], num_frames: int, stride: int, short_side: int,
                 max_side: int, flip: bool = True, samples_per_snippet: int = 1, det_images: Sequence[str] = (),
                 seed: int = 0, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD):
        super().__init__(root, short_side, max_side, mean, std)
        self.snippets, self.det_images = list(snippets), list(det_images)
        self.num_frames, self.stride, self.flip = num_frames, stride, flip
        self.samples_per_snippet = samples_per_snippet
        self.seed, self.epoch = seed, 0
        self._lengths: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.snippets) * self.samples_per_snippet + len(self.det_images)

    def snippet_length(self, sid: str) -> int:
        if sid not in self._lengths:
            d = self.root / "Data/VID/train" / sid
            try:
                n = sum(1 for f in os.listdir(d) if f.endswith(".JPEG"))
            except FileNotFoundError as e:
                raise VIDFormatError(f"{d}: snippet folder listed in ImageSets/VID/train_*.txt not found") from e
            if n == 0:
                raise VIDFormatError(f"{d}: snippet folder has no JPEG frames")
            self._lengths[sid] = n
        return self._lengths[sid]

    def __getitem__(self, i: int) -> dict:
        # key frame and flip: a function of (seed, epoch, item, worker seed) -> reproducible under
        # seed_everything, different every epoch (the epoch comes from _EpochSampler.set_epoch, the
        # worker seed changes every epoch when workers are used)
        info = get_worker_info()
        g = torch.Generator().manual_seed(hash((self.seed, self.epoch, i, info.seed if info else 0)) % (2**31))
        flip = self.flip and bool(torch.rand(1, generator=g) < 0.5)
        n_vid = len(self.snippets) * self.samples_per_snippet
        if i >= n_vid:
            iid = self.det_images[i - n_vid]
            ann = parse_vid_xml(self.root / "Annotations/DET/train" / f"{iid}.xml", ignore_unknown=True)
            folder, name = (self.root / "Data/DET/train" / iid).parent, Path(iid).name
            s = self._sample("det", iid, [0] * self.num_frames, [ann] * self.num_frames, flip,
                             [-1] * self.num_frames, True, img_folder=folder, pattern=name + ".JPEG")
            return s
        sid = self.snippets[i // self.samples_per_snippet]
        n = self.snippet_length(sid)
        key = int(torch.randint(0, n, (1,), generator=g))
        idx = strided_sequence(n, key, self.num_frames, self.stride, anchor="center").tolist()
        anns = [self._ann("train", sid, f) for f in idx]
        return self._sample("train", sid, idx, anns, flip, [-1] * len(idx), False)


class VIDEvalWindows(_VIDBase):
    """Every frame of ``val.txt`` / ``test.txt`` in test windows of one snippet
    (:func:`eval_window_indices` over the snippet's listed frames, in file order)."""

    def __init__(self, root: Path, split: str, entries: Sequence[tuple[str, int, int]], window: int,
                 short_side: int, max_side: int, annotated: bool = True,
                 mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                 stride: int = 10, step: int = 1):
        super().__init__(root, short_side, max_side, mean, std)
        self.split, self.annotated = split, annotated
        self.windows: list[tuple[str, list[int], list[int], bool]] = []
        self.snippet_frames: dict[str, list[int]] = {}
        self._motion: tuple[str, dict] = ("", {})  # motion IoU of the last snippet read
        by_snippet: dict[str, list[tuple[int, int]]] = {}
        for sid, frame, idx in entries:
            by_snippet.setdefault(sid, []).append((frame, idx))
        for sid, fr in by_snippet.items():
            self.snippet_frames[sid] = [f for f, _ in fr]
            wins = eval_window_indices(len(fr), window, stride, step)
            for k, pos in enumerate(wins):
                self.windows.append((sid, [fr[i][0] for i in pos], [fr[i][1] for i in pos], k == len(wins) - 1))

    def motion_of(self, sid: str) -> dict[int, torch.Tensor]:
        """{frame: motion IoU of its objects} over the snippet's listed frames (XML ``trackid`` s)."""
        if self._motion[0] != sid:
            from mmzoo.metrics.vid_motion import motion_iou

            anns = {f: self._ann(self.split, sid, f) for f in self.snippet_frames[sid]}
            fn = [f for f, a in anns.items() for _ in a.track_ids]
            tid = [t for a in anns.values() for t in a.track_ids]
            mi = motion_iou(fn, tid, torch.cat([a.boxes.double() for a in anns.values()]))
            self._motion = (sid, dict(zip(anns, torch.split(mi, [len(a.track_ids) for a in anns.values()]))))
        return self._motion[1]

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> dict:
        sid, frames, eval_idx, last = self.windows[i]
        anns = [self._ann(self.split, sid, f) for f in frames] if self.annotated else [None] * len(frames)
        out = self._sample(self.split, sid, frames, anns, False, eval_idx, last)
        if self.annotated:
            motion = self.motion_of(sid)
            for m, a, f in zip(out["meta"], anns, frames):
                m["xml_boxes"], m["motion_iou"] = a.boxes_xml, motion[f]
        return out


class SnippetShardSampler(DistributedSampler):
    """Evaluation windows of whole snippets per process, in order (multi-GPU evaluation).

    Seq-NMS links detections over a whole snippet, so every window of a snippet must reach the
    same process, in order. Snippets are dealt to ranks greedily by frame count (largest first,
    to the least loaded rank); each rank iterates its snippets' windows in file order. Being a
    ``DistributedSampler``, Lightning uses it as is instead of re-sharding.
    """

    def __init__(self, dataset: "VIDEvalWindows", num_replicas: int, rank: int):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=False)
        sizes: dict[str, int] = {}
        for sid, frames, _, _ in dataset.windows:
            sizes[sid] = sizes.get(sid, 0) + len(frames)
        load = [0] * num_replicas
        owner: dict[str, int] = {}
        for sid in sorted(sizes, key=lambda s: -sizes[s]):
            r = min(range(num_replicas), key=lambda i: load[i])
            owner[sid] = r
            load[r] += sizes[sid]
        self.indices = [i for i, w in enumerate(dataset.windows) if owner[w[0]] == rank]

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class _EpochSampler(RandomSampler):
    """RandomSampler whose ``set_epoch`` (called by Lightning every epoch) reaches the dataset."""

    def set_epoch(self, epoch: int) -> None:
        self.data_source.epoch = epoch


def collate_vid(samples: Sequence[dict]) -> dict:
    """Pad videos to the largest frame, stack to ``[B, 3, T, H, W]``, flatten per-frame lists."""
    t = max(s["video"].shape[1] for s in samples)
    if any(s["video"].shape[1] != t for s in samples):
        raise ValueError("collate_vid: samples of a batch must have the same number of frames")
    h = max(s["video"].shape[2] for s in samples)
    w = max(s["video"].shape[3] for s in samples)
    padded = []
    for s in samples:
        v = s["video"]
        padded.append({**s, "video": torch.nn.functional.pad(v, (0, w - v.shape[3], 0, h - v.shape[2]))})
    batch = collate_dicts(padded, keep_as_list={"boxes", "labels", "meta"})
    for k in ("boxes", "labels", "meta"):
        batch[k] = [x for per_sample in batch[k] for x in per_sample]
    return batch


@register_datamodule("vid")
class VIDDataModule(ZooDataModule):
    """ImageNet VID (ILSVRC2015) for STMN / R-FCN training and evaluation.

    Args:
        root: folder holding ``Data``, ``Annotations`` and ``ImageSets`` of ILSVRC2015 VID.
        num_frames: training sequence length T (thesis: 7).
        stride: frame stride of training sequences (thesis: 10).
        eval_window: frames per evaluation window (thesis test window: 11; its ablation: 3, 7, 11, 15).
        eval_stride: evaluation windows sample 1 frame in ``eval_stride`` (10, as training does).
        eval_window_step: evaluation windows start every ``eval_window_step`` sampled frames (1:
            the authors' fully overlapping sliding window; ``eval_window`` with ``eval_stride=1``:
            consecutive frames in non-overlapping windows). See :func:`eval_window_indices`.
        short_side / max_side: frame scaling (authors' code: 360 / 600).
        mean / std: normalisation of [0, 1] RGB (ImageNet, as the R-FCN backbone was trained).
        batch_size: training sequences per batch (authors: 2).
        eval_batch_size: evaluation windows per batch.
        num_workers: DataLoader workers (``None``: ``min(4, CPUs - 1)``).
        flip: random left-right flips of whole training sequences.
        samples_per_snippet: training sequences drawn from each snippet per epoch.
        det_list: optional list of ImageNet DET images (relative to ``Data/DET/train``, first
            token of each line; a relative path is resolved under ``root``) to mix in.
        test_split: "val" (annotated, gives mAP) or "test" (no annotations; predictions only).
        check_files: "snippets" checks every listed snippet folder in ``setup``; "all" also
            checks every listed evaluation frame and its XML.
        seed: base seed of the per-item random draws.
        pin_memory: pin host memory (``None``: when CUDA is available).
    """

    collate_fn = staticmethod(collate_vid)
    persistent_workers = False  # the training set reads its epoch, set in the main process

    def __init__(
        self, root: str = "data/ILSVRC2015", num_frames: int = 7, stride: int = 10, eval_window: int = 11,
        short_side: int = 360, max_side: int = 600, mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD, batch_size: int = 2, eval_batch_size: int = 1,
        num_workers: Optional[int] = None, flip: bool = True, samples_per_snippet: int = 1, det_list: Optional[str] = None,
        test_split: str = "val", check_files: str = "snippets", seed: int = 0, pin_memory: Optional[bool] = None,
        eval_stride: int = 10, eval_window_step: int = 1,
    ):
        super().__init__(batch_size=batch_size, num_workers=num_workers, pin_memory=pin_memory,
                         eval_batch_size=eval_batch_size)
        self.root = Path(root)
        self.class_names = VID_CLASSES

    @classmethod
    def defaults_from_input(cls, cfg: InputConfig) -> dict[str, Any]:
        """``short_side``, ``mean`` and ``std`` of the model's input contract, when set."""
        out: dict[str, Any] = {}
        if cfg.short_side is not None:
            out["short_side"] = cfg.short_side
        for k in ("mean", "std"):
            if getattr(cfg, k) is not None:
                out[k] = tuple(getattr(cfg, k))
        return out

    @property
    def train_set(self) -> Optional[VIDTrainSequences]:
        return self.datasets.get("train")

    @property
    def val_set(self) -> Optional[VIDEvalWindows]:
        return self.datasets.get("val")

    @property
    def test_set(self) -> Optional[VIDEvalWindows]:
        return self.datasets.get("test")

    # ------------------------------------------------------------------ layout
    def _train_snippets(self) -> list[str]:
        sets = self.root / "ImageSets/VID"
        snippets: dict[str, None] = {}
        for c in range(1, 31):
            for sid, lab in _read_list(sets / f"train_{c}.txt", _TRAIN_LINE, "VID training snippet"):
                if lab == "1":
                    snippets.setdefault(sid.removeprefix("train/"), None)
        return list(snippets)

    def _eval_entries(self, split: str) -> list[tuple[str, int, int]]:
        f = self.root / "ImageSets/VID" / f"{split}.txt"
        out, prev = [], 0
        for n, (sid, frame, idx) in enumerate(_read_list(f, _EVAL_LINE, f"VID {split} frame"), 1):
            out.append((sid, int(frame), int(idx)))
            if int(idx) <= prev:
                raise VIDFormatError(f"{f}:{n}: frame indices must increase (got {idx} after {prev})")
            prev = int(idx)
        if not out:
            raise VIDFormatError(f"{f}: lists no frame, so the evaluation would cover zero frames")
        return out

    def _check_dirs(self, split: str, snippets: Sequence[str], annotated: bool) -> None:
        for sub in ("Data/VID", "Annotations/VID") if annotated else ("Data/VID",):
            base = self.root / sub / split
            if not base.is_dir():
                raise VIDFormatError(f"{base}: folder not found (is root={self.root} the ILSVRC2015 folder?)")
            for sid in snippets:
                if not (base / sid).is_dir():
                    raise VIDFormatError(f"{base / sid}: snippet folder not found")

    def _eval_set(self, split: str) -> VIDEvalWindows:
        entries = self._eval_entries(split)
        annotated = split != "test"
        self._check_dirs(split, list(dict.fromkeys(e[0] for e in entries)), annotated)
        if self.hparams.check_files == "all":
            for sid, frame, _ in entries:
                p = self.root / "Data/VID" / split / sid / f"{frame:06d}.JPEG"
                if not p.is_file():
                    raise VIDFormatError(f"{p}: frame listed in ImageSets/VID/{split}.txt not found")
                a = self.root / "Annotations/VID" / split / sid / f"{frame:06d}.xml"
                if annotated and not a.is_file():
                    raise VIDFormatError(f"{a}: annotation of a listed frame not found")
        hp = self.hparams
        return VIDEvalWindows(self.root, split, entries, hp.eval_window, hp.short_side, hp.max_side, annotated,
                              mean=hp.mean, std=hp.std, stride=hp.eval_stride, step=hp.eval_window_step)

    def setup(self, stage: Optional[str] = None) -> None:
        hp = self.hparams
        if not self.root.is_dir():
            raise VIDFormatError(f"{self.root}: ImageNet VID root folder not found")
        if stage in (None, "fit") and self.train_set is None:
            snippets = self._train_snippets()
            if not snippets:
                raise VIDFormatError(f"{self.root / 'ImageSets/VID'}: no positive training snippet in train_*.txt")
            self._check_dirs("train", snippets, True)
            det: list[str] = []
            if hp.det_list:
                p = Path(hp.det_list)
                p = p if p.is_absolute() else self.root / p
                det = [g[0] for g in _read_list(p, _DET_LINE, "ImageNet DET image")]
                for iid in det[:1]:
                    if not (self.root / "Data/DET/train" / f"{iid}.JPEG").is_file():
                        raise VIDFormatError(f"{self.root / 'Data/DET/train' / (iid + '.JPEG')}: DET image listed in {p} not found")
            self.datasets["train"] = VIDTrainSequences(
                self.root, snippets, hp.num_frames, hp.stride, hp.short_side, hp.max_side, hp.flip,
                hp.samples_per_snippet, det, hp.seed, mean=hp.mean, std=hp.std)
        if stage in (None, "fit", "validate") and self.val_set is None:
            self.datasets["val"] = self._eval_set("val")
        if stage in (None, "test", "predict") and self.test_set is None:
            self.datasets["test"] = self._eval_set(hp.test_split)

    # ------------------------------------------------------------------ loaders
    def sampler(self, split: str, dataset: Dataset, train: bool) -> Optional[Sampler]:
        """Training: a random order whose epoch reaches the dataset; evaluation on several
        processes: whole snippets per rank (:class:`SnippetShardSampler`)."""
        if train:
            return _EpochSampler(dataset)
        trainer = self.trainer
        if trainer is not None and trainer.world_size > 1:
            return SnippetShardSampler(dataset, trainer.world_size, trainer.global_rank)
        return None
