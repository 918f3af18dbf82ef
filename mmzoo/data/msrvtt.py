"""MSR-VTT for text-video retrieval, read as its authors and the retrieval literature distribute it.

Layout under ``root`` (every name is an argument; these are the defaults)::

    root/
      MSRVTT_data.json                 annotations (the official train_val_videodatainfo.json /
                                       test_videodatainfo.json layout, or both files side by side)
      videos/all/video<N>.mp4          raw videos (``input="video"``)
      structured-symlinks/             the collaborative-experts / MMT / T2VLAD data folder
        train_list_jsfusion.txt        1k-A (JSFusion): 9,000 training videos
        val_list_jsfusion.txt          1k-A: the 1,000 test videos
        jsfusion_val_caption_idx.pkl   1k-A: {video_id: index of the one test caption}
        train_list_miech.txt           1k-B (Miech et al.): 6,656 training videos
        test_list_miech.txt            1k-B: 1,000 test videos (first caption is the query)
        train_list_full.txt            full split: 6,513 train
        val_list_full.txt              full split: 497 val
        test_list_full.txt             full split: 2,990 test (all 20 captions are queries)
        raw-captions.pkl               {video_id: [[word, ...] x 20]} (used when no json)
        mmt_feats/features.<file>.pkl  MMT expert features (``input="features"``)

Annotation json (``{"info", "videos", "sentences"}``): each video record has ``video_id``
("video123"), ``category`` (int), ``url``, ``start time``, ``end time``, ``split``
("train" / "validate" / "test") and ``id``; each sentence has ``sen_id``, ``video_id`` and
``caption``. Captions are kept in ``sen_id`` order (20 per video; a few videos have fewer -- the
port's sanity check expects 6 missing queries over the 2,990 full-test videos -- and any number
>= 1 is accepted).

Splits (``split``): ``"1k-A"`` (alias ``"jsfusion"``): train = train_list_jsfusion, val = test =
val_list_jsfusion; ``"1k-B"`` (``"miech"``): train_list_miech / test_list_miech; ``"full"``:
train / val / test _list_full. Split files are one video id per line.

Evaluation queries (``test_captions``): ``"protocol"`` follows each split's standard protocol --
1k-A: the one caption per video named by ``jsfusion_val_caption_idx.pkl`` (required); 1k-B:
the first caption; full: all captions. ``"all"`` / ``"first"`` force all captions or the first.
Training samples one random caption per video and step (MMT / T2VLAD practice).

Expert features (``input="features"``): the MMT features as the T2VLAD / PaddleVideo loader
reads them: one pickle per expert, ``{video_id: float array [n_tokens, dim]}``, with a float NaN
(or an array starting with NaN) for a video that lacks the expert. Experts, files, dims and the
token budgets (``max_tokens``; the PaddleVideo T2VLAD config values) are:

    ========  ========================  =====  ==========
    expert    file                      dim    max_tokens
    ========  ========================  =====  ==========
    audio     features.audio.pkl        128    31
    rgb       features.rgb_agg.pkl      2048   51
    ocr       features.ocr.pkl          300    30
    speech    features.speech.pkl       300    112
    scene     features.scene.pkl        2208   31
    flow      features.flow_agg.pkl     1024   49
    s3d       features.s3d.pkl          1024   30
    face      features.face_agg.pkl     512    30
    ========  ========================  =====  ==========

The first ``max_tokens`` tokens are kept (as the port does); shorter sequences are zero padded.

``feature_format="mmt_h5"`` reads MMT's own per-video cache instead:
``root/vid_feat_files/mult_h5/<v>/<i>/<d>/<video_id>.h5`` (first three characters of the id),
datasets ``features.<expert>`` (MMT calls the audio expert ``vggish``); an absent dataset or a
NaN-led one means the video lacks the expert. Only the features are read from these files.

Batch fields (dicts, see ``collate``):

- ``experts``: ``{name: float [B, max_tokens, dim]}`` (features mode), zeros where missing;
- ``expert_masks``: ``{name: bool [B, max_tokens]}`` -- True for real tokens;
- ``expert_available``: ``{name: bool [B]}`` -- the video has this expert;
- ``video``: float ``[B, 3, T, H, W]`` in [0, 1] (video mode: ``num_frames`` uniformly spaced
  frames, short side resized to ``frame_size`` and centre-cropped to a square);
- ``text``: ``list[str]`` (training: one caption per video) or ``list[list[str]]`` (evaluation:
  the queries of each video under the protocol); tokenisation is left to the model;
- ``video_index``: long ``[B]``, index of the video in the split's list; ``video_id``: list[str];
- ``meta``: list of dicts (video_id, category, url, start/end time, split, caption indices, path).

Strictness: ``setup`` checks every file up front; a missing file, a video id of a split list
missing from the annotations or from a feature pickle, a malformed json record (index named), a
blank or duplicate line of a split list (line named), or a feature of the wrong dimension raises
:class:`MSRVTTFormatError` naming the file and the key/line.
"""
from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from mmzoo.data.base import ZooDataModule
from mmzoo.data.registry import register_datamodule
from mmzoo.errors import DataError
from mmzoo.registry import InputConfig

__all__ = [
    "MSRVTTDataModule",
    "MSRVTTDataset",
    "MSRVTTVideo",
    "MSRVTTFormatError",
    "MSRVTT_EXPERT_FILES",
    "MSRVTT_EXPERT_DIMS",
    "MSRVTT_MAX_TOKENS",
    "SPLIT_FILES",
    "load_annotations",
    "load_expert_features",
    "MMTH5Features",
    "collate",
]

MSRVTT_EXPERT_FILES = {
    "audio": "features.audio.pkl",
    "rgb": "features.rgb_agg.pkl",
    "ocr": "features.ocr.pkl",
    "speech": "features.speech.pkl",
    "scene": "features.scene.pkl",
    "flow": "features.flow_agg.pkl",
    "s3d": "features.s3d.pkl",
    "face": "features.face_agg.pkl",
}
MSRVTT_EXPERT_DIMS = {"audio": 128, "rgb": 2048, "ocr": 300, "speech": 300, "scene": 2208, "flow": 1024, "s3d": 1024, "face": 512}
MSRVTT_MAX_TOKENS = {"audio": 31, "rgb": 51, "ocr": 30, "speech": 112, "scene": 31, "flow": 49, "s3d": 30, "face": 30}

# split -> stage -> list file (val of 1k-A / 1k-B is their test list, as in MMT / T2VLAD)
SPLIT_FILES = {
    "1k-A": {"train": "train_list_jsfusion.txt", "val": "val_list_jsfusion.txt", "test": "val_list_jsfusion.txt"},
    "1k-B": {"train": "train_list_miech.txt", "val": "test_list_miech.txt", "test": "test_list_miech.txt"},
    "full": {"train": "train_list_full.txt", "val": "val_list_full.txt", "test": "test_list_full.txt"},
}
_SPLIT_ALIASES = {"jsfusion": "1k-A", "1ka": "1k-A", "1k-a": "1k-A", "miech": "1k-B", "1kb": "1k-B", "1k-b": "1k-B", "full": "full"}
JSFUSION_CAPTION_INDEX = "jsfusion_val_caption_idx.pkl"


class MSRVTTFormatError(DataError, ValueError):
    """A file of the MSR-VTT layout is missing or malformed (the message names file and key/line)."""


@dataclass
class MSRVTTVideo:
    """The annotation of one MSR-VTT video: its captions (``sen_id`` order) and json metadata."""

    video_id: str
    captions: list[str] = field(default_factory=list)
    category: Optional[int] = None
    url: Optional[str] = None
    start_time: Optional[float] = None
    end_time: Optional[float] = None
    split: Optional[str] = None


def canonical_split(split: str) -> str:
    key = split if split in SPLIT_FILES else _SPLIT_ALIASES.get(split.lower())
    if key is None:
        raise ValueError(f"unknown MSR-VTT split {split!r}; use one of 1k-A (jsfusion), 1k-B (miech), full")
    return key


def _read_json_file(path: Path, videos: dict[str, MSRVTTVideo], sentences: dict[str, list[tuple[int, str]]]) -> None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise MSRVTTFormatError(f"{path}: not valid JSON (line {e.lineno}: {e.msg})") from None
    if not isinstance(data, dict) or "videos" not in data or "sentences" not in data:
        raise MSRVTTFormatError(f"{path}: expected an object with 'videos' and 'sentences' lists")
    for i, v in enumerate(data["videos"]):
        if not isinstance(v, dict) or "video_id" not in v:
            raise MSRVTTFormatError(f"{path}: videos[{i}] has no 'video_id'")
        vid = str(v["video_id"])
        try:
            rec = MSRVTTVideo(
                video_id=vid,
                category=None if v.get("category") is None else int(v["category"]),
                url=v.get("url"),
                start_time=None if v.get("start time") is None else float(v["start time"]),
                end_time=None if v.get("end time") is None else float(v["end time"]),
                split=v.get("split"),
            )
        except (TypeError, ValueError) as e:
            raise MSRVTTFormatError(f"{path}: videos[{i}] ({vid}): malformed field ({e})") from None
        videos[vid] = rec
    for i, s in enumerate(data["sentences"]):
        if not isinstance(s, dict) or "video_id" not in s or "caption" not in s:
            raise MSRVTTFormatError(f"{path}: sentences[{i}] needs 'video_id' and 'caption'")
        cap = s["caption"]
        if not isinstance(cap, str) or not cap.strip():
            raise MSRVTTFormatError(f"{path}: sentences[{i}] (sen_id {s.get('sen_id')}): empty caption")
        sen_id = s.get("sen_id", i)
        try:
            sen_id = int(sen_id)
        except (TypeError, ValueError):
            raise MSRVTTFormatError(f"{path}: sentences[{i}]: sen_id {sen_id!r} is not an integer") from None
        sentences.setdefault(str(s["video_id"]), []).append((sen_id, cap.strip()))


def load_annotations(root: str | Path, annotation_files: list[str], raw_captions: Optional[str] = None) -> dict[str, MSRVTTVideo]:
    """``{video_id: MSRVTTVideo}`` from the json file(s); falls back to ``raw_captions`` (the
    collaborative-experts ``raw-captions.pkl``) when none of the json files exist."""
    root = Path(root)
    paths = [root / f for f in annotation_files]
    present = [p for p in paths if p.is_file()]
    videos: dict[str, MSRVTTVideo] = {}
    if present:
        sentences: dict[str, list[tuple[int, str]]] = {}
        for p in present:
            _read_json_file(p, videos, sentences)
        for vid, caps in sentences.items():
            if vid not in videos:
                raise MSRVTTFormatError(f"{present[0]}: sentences refer to video '{vid}' that is not in 'videos'")
            videos[vid].captions = [c for _, c in sorted(caps, key=lambda t: t[0])]
        return videos
    if raw_captions is not None and (root / raw_captions).is_file():
        from mmzoo.safe_pickle import restricted_load

        path = root / raw_captions
        data = restricted_load(path)
        if not isinstance(data, dict):
            raise MSRVTTFormatError(f"{path}: expected a dict video_id -> list of tokenised captions")
        for vid, caps in data.items():
            if not isinstance(caps, (list, tuple)) or not caps:
                raise MSRVTTFormatError(f"{path}: key '{vid}': expected a non-empty list of captions")
            texts = []
            for j, c in enumerate(caps):
                words = [w.decode() if isinstance(w, bytes) else str(w) for w in (c.tolist() if hasattr(c, "tolist") else c)]
                if not words:
                    raise MSRVTTFormatError(f"{path}: key '{vid}': caption {j} is empty")
                texts.append(" ".join(words))
            videos[str(vid)] = MSRVTTVideo(video_id=str(vid), captions=texts)
        return videos
    names = ", ".join(str(p) for p in paths) + (f", {root / raw_captions}" if raw_captions else "")
    raise MSRVTTFormatError(f"no MSR-VTT annotations found: none of {names} exists")


def read_split_list(path: Path) -> list[str]:
    if not path.is_file():
        raise MSRVTTFormatError(f"{path}: split list not found")
    ids, seen = [], {}
    lines = path.read_text(encoding="utf-8").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    for n, line in enumerate(lines, start=1):
        vid = line.strip()
        if not vid:
            raise MSRVTTFormatError(f"{path}:{n}: blank line in split list")
        if vid in seen:
            raise MSRVTTFormatError(f"{path}:{n}: duplicate video id '{vid}' (first on line {seen[vid]})")
        seen[vid] = n
        ids.append(vid)
    if not ids:
        raise MSRVTTFormatError(f"{path}: empty split list")
    return ids


def _is_missing(x: Any) -> bool:
    if isinstance(x, float):
        return math.isnan(x)
    if x is None:
        return True
    arr = np.asarray(x)
    return arr.size == 0 or (arr.dtype.kind == "f" and bool(np.isnan(arr.flat[0])))


def load_expert_features(path: Path, expert: str, dim: Optional[int], video_ids: list[str]) -> dict[str, Optional[np.ndarray]]:
    """``{video_id: float32 [n, dim] or None (missing)}`` for ``video_ids`` from one expert pickle."""
    from mmzoo.safe_pickle import restricted_load

    if not path.is_file():
        raise MSRVTTFormatError(f"{path}: feature file of expert '{expert}' not found")
    data = restricted_load(path)
    if not isinstance(data, dict):
        raise MSRVTTFormatError(f"{path}: expected a dict video_id -> feature array, got {type(data).__name__}")
    out: dict[str, Optional[np.ndarray]] = {}
    for vid in video_ids:
        if vid not in data:
            raise MSRVTTFormatError(f"{path}: no entry for video '{vid}' (use NaN for a missing expert)")
        x = data[vid]
        if _is_missing(x):
            out[vid] = None
            continue
        arr = np.asarray(x, dtype=np.float32)
        if arr.ndim == 1:
            arr = arr[None]
        if arr.ndim != 2 or (dim is not None and arr.shape[1] != dim):
            raise MSRVTTFormatError(f"{path}: video '{vid}': expected [n_tokens, {dim}] features, got shape {arr.shape}")
        if not np.isfinite(arr).all():
            raise MSRVTTFormatError(f"{path}: video '{vid}': non-finite values inside the features")
        out[vid] = arr
    return out


MMT_H5_NAMES = {"audio": "vggish"}  # mmzoo expert -> name inside MMT's per-video HDF5 files


def mmt_h5_path(h5_root: Path, vid: str) -> Path:
    """MMT's cache layout: ``<h5_root>/<vid[0]>/<vid[1]>/<vid[2]>/<vid>.h5``."""
    return h5_root / vid[0] / vid[1] / vid[2] / f"{vid}.h5"


class MMTH5Features:
    """Per-video reader of MMT's ECCV'20 feature cache (``vid_feat_files/mult_h5``): one HDF5 file
    per video with a dataset ``features.<expert>`` ``[n_tokens, dim]`` per available expert
    (absent, empty or NaN-led = the video lacks it). Files are opened when a sample is read."""

    def __init__(self, h5_root: Path, experts: list[str], dims: dict[str, int]):
        self.h5_root, self.experts, self.dims = h5_root, experts, dims

    def check(self, video_ids: list[str]) -> None:
        for vid in video_ids:
            path = mmt_h5_path(self.h5_root, vid)
            if not path.is_file():
                raise MSRVTTFormatError(f"{path}: MMT feature file of video '{vid}' not found")

    def __call__(self, vid: str) -> dict[str, Optional[np.ndarray]]:
        import h5py

        path = mmt_h5_path(self.h5_root, vid)
        out: dict[str, Optional[np.ndarray]] = {}
        try:
            f = h5py.File(path, "r")
        except OSError as e:
            raise MSRVTTFormatError(f"{path}: not a readable HDF5 file ({e})") from None
        with f:
            for e in self.experts:
                key = f"features.{MMT_H5_NAMES.get(e, e)}"
                if key not in f:
                    out[e] = None
                    continue
                arr = np.asarray(f[key][()], dtype=np.float32)
                if _is_missing(arr):
                    out[e] = None
                    continue
                if arr.ndim != 2 or arr.shape[1] != self.dims[e]:
                    raise MSRVTTFormatError(f"{path}: dataset '{key}': expected [n_tokens, {self.dims[e]}], got shape {arr.shape}")
                if not np.isfinite(arr).all():
                    raise MSRVTTFormatError(f"{path}: dataset '{key}': non-finite values inside the features")
                out[e] = arr
        return out


class MSRVTTDataset(Dataset):
    """One split/stage of MSR-VTT; items are dicts (see the module docstring)."""

    def __init__(self, video_ids: list[str], records: dict[str, MSRVTTVideo], *, training: bool,
                 query_indices: Optional[dict[str, list[int]]] = None,
                 features: Any = None,
                 max_tokens: Optional[dict[str, int]] = None, expert_dims: Optional[dict[str, int]] = None,
                 video_dir: Optional[Path] = None, num_frames: int = 8, frame_size: int = 224,
                 with_text: bool = True, seed: int = 0):
        self.video_ids = video_ids
        self.records = records
        self.training = training
        self.query_indices = query_indices or {}
        self.features = features
        self.max_tokens = max_tokens or {}
        self.expert_dims = expert_dims or {}
        self.video_dir = video_dir
        self.num_frames = num_frames
        self.frame_size = frame_size
        self.with_text = with_text
        self.rng = random.Random(seed)

    def __len__(self) -> int:
        return len(self.video_ids)

    def _video(self, vid: str) -> torch.Tensor:
        from mmzoo.data.decode import probe, read_video_clip

        path = self.video_dir / f"{vid}.mp4"
        info = probe(path)
        n = max(info.num_frames, 1)
        idx = [min(int((k + 0.5) * n / self.num_frames), n - 1) for k in range(self.num_frames)]
        clip = read_video_clip(path, frame_indices=idx, short_side=self.frame_size)
        x = clip.frames.permute(3, 0, 1, 2).float() / 255.0  # C,T,H,W
        h, w = x.shape[-2:]
        top, left = (h - self.frame_size) // 2, (w - self.frame_size) // 2
        return x[..., top: top + self.frame_size, left: left + self.frame_size]

    def __getitem__(self, i: int) -> dict[str, Any]:
        vid = self.video_ids[i]
        rec = self.records[vid]
        item: dict[str, Any] = {"video_id": vid, "video_index": i}
        meta = {"video_id": vid, "category": rec.category, "url": rec.url, "start_time": rec.start_time,
                "end_time": rec.end_time, "split": rec.split}
        if self.with_text:
            if self.training:
                j = self.rng.randrange(len(rec.captions))
                item["text"] = rec.captions[j]
                meta["caption_index"] = j
            else:
                idx = self.query_indices.get(vid, list(range(len(rec.captions))))
                item["text"] = [rec.captions[j] for j in idx]
                meta["caption_index"] = list(idx)
        if self.features is not None:
            experts, masks, avail = {}, {}, {}
            feats = self.features(vid) if callable(self.features) else {n: t[vid] for n, t in self.features.items()}
            for name, arr in feats.items():
                n_max, dim = self.max_tokens[name], self.expert_dims[name]
                x = torch.zeros(n_max, dim)
                m = torch.zeros(n_max, dtype=torch.bool)
                if arr is not None:
                    keep = min(len(arr), n_max)
                    x[:keep] = torch.from_numpy(arr[:keep])
                    m[:keep] = True
                experts[name], masks[name], avail[name] = x, m, arr is not None
            item["experts"], item["expert_masks"], item["expert_available"] = experts, masks, avail
        if self.video_dir is not None:
            item["video"] = self._video(vid)
            meta["path"] = str(self.video_dir / f"{vid}.mp4")
        item["meta"] = meta
        return item


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack an MSR-VTT batch with the shared :func:`mmzoo.data.collate.collate_dicts` (texts and
    meta stay lists, ``video_index`` becomes a long tensor, ``video`` is stacked); the per-expert
    dicts become dicts of batched tensors."""
    from mmzoo.data.collate import DEFAULT_LIST_FIELDS, collate_dicts

    nested = ("experts", "expert_masks", "expert_available")
    out = collate_dicts([{k: v for k, v in it.items() if k not in nested} for it in items],
                        keep_as_list=DEFAULT_LIST_FIELDS | {"video_id"})
    if "experts" in items[0]:
        names = list(items[0]["experts"])
        out["experts"] = {n: torch.stack([it["experts"][n] for it in items]) for n in names}
        out["expert_masks"] = {n: torch.stack([it["expert_masks"][n] for it in items]) for n in names}
        out["expert_available"] = {n: torch.tensor([it["expert_available"][n] for it in items], dtype=torch.bool) for n in names}
    return out


@register_datamodule("msrvtt")
class MSRVTTDataModule(ZooDataModule):
    """MSR-VTT retrieval data (1k-A / 1k-B / full) from expert features or raw videos.

    Args:
        root: dataset folder (see the module docstring for the layout).
        split: ``"1k-A"`` (``"jsfusion"``), ``"1k-B"`` (``"miech"``) or ``"full"``.
        input: ``"features"`` (MMT expert pickles), ``"video"`` (mp4 files) or ``"both"``.
        feature_format: ``"pickle"`` (per-expert pickles of the T2VLAD port, ``features_dir``) or
            ``"mmt_h5"`` (MMT's per-video HDF5 cache under ``root/h5_dir``).
        experts: expert names to load in features mode (default: all 8 MSR-VTT experts).
        max_tokens: per-expert token budget overriding the defaults (PaddleVideo T2VLAD values).
        test_captions: ``"protocol"`` (1k-A: jsfusion_val_caption_idx.pkl, 1k-B: first caption,
            full: all), ``"all"`` or ``"first"``.
        annotation_files: json files read (and merged) when present.
        data_dir: the collaborative-experts folder holding split lists and features.
        features_dir: folder of the expert pickles, relative to ``data_dir``.
        raw_captions: captions pickle (relative to ``data_dir``) used when no json exists.
        h5_dir: MMT's HDF5 cache, relative to ``root`` (``feature_format="mmt_h5"``).
        split_files: override list-file names, keys ``train`` / ``val`` / ``test`` (MMT's own
            release names the full split ``train_list.txt`` / ``val_list.txt`` / ``test_list.txt``).
        video_dir: folder of the mp4 files, relative to ``root``.
        num_frames / frame_size: frames per video and crop size in video mode.
        batch_size: 64 pairs (T2VLAD); eval_batch_size: videos per evaluation batch.
        num_workers: DataLoader workers (``None``: ``min(4, CPUs - 1)``). seed: caption sampling seed.
        pin_memory: pin host memory (``None``: when CUDA is available).
    """

    collate_fn = staticmethod(collate)

    def __init__(
        self,
        root: str,
        split: str = "1k-A",
        input: Literal["features", "video", "both"] = "features",
        feature_format: Literal["pickle", "mmt_h5"] = "pickle",
        experts: Optional[list[str]] = None,
        max_tokens: Optional[dict[str, int]] = None,
        test_captions: Literal["protocol", "all", "first"] = "protocol",
        annotation_files: tuple[str, ...] = ("MSRVTT_data.json", "train_val_videodatainfo.json", "test_videodatainfo.json"),
        data_dir: str = "structured-symlinks",
        features_dir: str = "mmt_feats",
        raw_captions: str = "raw-captions.pkl",
        h5_dir: str = "vid_feat_files/mult_h5",
        split_files: Optional[dict[str, str]] = None,
        video_dir: str = "videos/all",
        num_frames: int = 8,
        frame_size: int = 224,
        batch_size: int = 64,
        eval_batch_size: int = 64,
        num_workers: Optional[int] = None,
        seed: int = 0,
        pin_memory: Optional[bool] = None,
    ):
        super().__init__(batch_size=batch_size, num_workers=num_workers, pin_memory=pin_memory,
                         eval_batch_size=eval_batch_size)
        self.root = Path(root)
        self.split = canonical_split(split)
        if input not in ("features", "video", "both"):
            raise ValueError(f"input must be 'features', 'video' or 'both', got {input!r}")
        self.input = input
        if feature_format not in ("pickle", "mmt_h5"):
            raise ValueError(f"feature_format must be 'pickle' or 'mmt_h5', got {feature_format!r}")
        self.feature_format = feature_format
        self.h5_root = self.root / h5_dir
        self.split_files = {**SPLIT_FILES[canonical_split(split)], **(split_files or {})}
        self.experts = list(experts) if experts is not None else list(MSRVTT_EXPERT_FILES)
        unknown = [e for e in self.experts if e not in MSRVTT_EXPERT_FILES]
        if unknown:
            raise ValueError(f"unknown MSR-VTT experts {unknown}; known: {list(MSRVTT_EXPERT_FILES)}")
        self.max_tokens = {**MSRVTT_MAX_TOKENS, **(max_tokens or {})}
        self.test_captions = test_captions
        self.annotation_files = list(annotation_files)
        self.data_dir = self.root / data_dir
        self._data_dir_rel = data_dir
        self.features_dir = self.data_dir / features_dir
        self.raw_captions = raw_captions
        self.video_dir = self.root / video_dir
        self.num_frames, self.frame_size = num_frames, frame_size
        self.seed = seed
        self.records: dict[str, MSRVTTVideo] = {}
        self.split_ids: dict[str, list[str]] = {}

    @classmethod
    def defaults_from_input(cls, cfg: InputConfig) -> dict[str, Any]:
        """A model built on expert features (``cfg.features``: expert names) gets
        ``input="features"`` and those ``experts``; a model on frames (``cfg.frames``, no
        features) gets ``input="video"``, ``num_frames`` and ``frame_size`` (``test_crop``).
        Captions are returned as text, so ``text_max_length`` is the model's tokeniser's."""
        if cfg.features is not None:
            return {"input": "features", "experts": list(cfg.features)}
        out: dict[str, Any] = {}
        if cfg.frames is not None:
            out.update(input="video", num_frames=cfg.frames)
            if cfg.test_crop is not None:
                out["frame_size"] = cfg.test_crop
        return out

    # ------------------------------------------------------------------ setup
    def _query_indices(self, ids: list[str]) -> dict[str, list[int]]:
        mode = self.test_captions
        if mode == "protocol":
            mode = {"1k-A": "jsfusion", "1k-B": "first", "full": "all"}[self.split]
        if mode == "all":
            return {v: list(range(len(self.records[v].captions))) for v in ids}
        if mode == "first":
            return {v: [0] for v in ids}
        from mmzoo.safe_pickle import restricted_load

        path = self.data_dir / JSFUSION_CAPTION_INDEX
        if not path.is_file():
            raise MSRVTTFormatError(
                f"{path}: the 1k-A protocol needs the caption index file (one caption per test video); "
                "pass test_captions='first' or 'all' to evaluate otherwise"
            )
        table = restricted_load(path)
        if not isinstance(table, dict):
            raise MSRVTTFormatError(f"{path}: expected a dict video_id -> caption index")
        out = {}
        for v in ids:
            if v not in table:
                raise MSRVTTFormatError(f"{path}: no caption index for video '{v}'")
            j = int(table[v])
            if not 0 <= j < len(self.records[v].captions):
                raise MSRVTTFormatError(f"{path}: video '{v}': caption index {j} out of range ({len(self.records[v].captions)} captions)")
            out[v] = [j]
        return out

    def setup(self, stage: Optional[str] = None) -> None:
        if self.datasets:
            return
        self.records = load_annotations(self.root, self.annotation_files, f"{self._data_dir_rel}/{self.raw_captions}")
        files = self.split_files
        for st in ("train", "val", "test"):
            path = self.data_dir / files[st]
            ids = read_split_list(path)
            for n, v in enumerate(ids, start=1):
                if v not in self.records:
                    raise MSRVTTFormatError(f"{path}:{n}: video '{v}' is not in the annotations")
                if not self.records[v].captions:
                    raise MSRVTTFormatError(f"{path}:{n}: video '{v}' has no caption")
            self.split_ids[st] = ids
        all_ids = list(dict.fromkeys(self.split_ids["train"] + self.split_ids["val"] + self.split_ids["test"]))
        features = None
        if self.input in ("features", "both"):
            if self.feature_format == "mmt_h5":
                features = MMTH5Features(self.h5_root, self.experts, MSRVTT_EXPERT_DIMS)
                features.check(all_ids)
            else:
                features = {e: load_expert_features(self.features_dir / MSRVTT_EXPERT_FILES[e], e, MSRVTT_EXPERT_DIMS[e], all_ids)
                            for e in self.experts}
        if self.input in ("video", "both"):
            for v in all_ids:
                if not (self.video_dir / f"{v}.mp4").is_file():
                    raise MSRVTTFormatError(f"{self.video_dir / (v + '.mp4')}: video file not found")
        common = dict(features=features, max_tokens=self.max_tokens, expert_dims=MSRVTT_EXPERT_DIMS,
                      video_dir=self.video_dir if self.input in ("video", "both") else None,
                      num_frames=self.num_frames, frame_size=self.frame_size)
        self.datasets["train"] = MSRVTTDataset(self.split_ids["train"], self.records, training=True, seed=self.seed, **common)
        for st in ("val", "test"):
            ids = self.split_ids[st]
            self.datasets[st] = MSRVTTDataset(ids, self.records, training=False, query_indices=self._query_indices(ids), **common)
        self.datasets["predict"] = MSRVTTDataset(self.split_ids["test"], self.records, training=False, with_text=False, **common)

    # ------------------------------------------------------------ dataloaders
    def drop_last(self, split: str, dataset: Dataset, train: bool) -> bool:
        """In-batch negatives: drop an incomplete last training batch (it could hold a single
        pair) unless the whole split fits in one batch."""
        return train and len(dataset) > self.batch_size
