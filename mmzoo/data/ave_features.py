"""Per-segment AVE features from raw videos, cached in the released AVE feature format.

The thesis of seed 001 extracts, for each 1-s segment of a video, one frame through an ImageNet
ResNet-152 (last stage, ``7 x 7 x 2048``) and one 128-d VGGish embedding of the segment's audio.
This module does the same for any folder of ``<VideoID>.mp4`` files and writes the result in the
exact format of the features released with AVE (HDF5 key ``avadataset``):

- ``visual_feature.h5``: ``[N, 10, 7, 7, C]`` (``C`` = channels of the backbone's last stage:
  2048 for ResNet-152, 512 for ResNet-18/34);
- ``audio_feature.h5``: ``[N, 10, 128]``;
- ``labels.h5``: ``[N, 10, 29]`` one-hot segment labels (when labels are given);
- ``extraction.json``: the configuration, what was skipped and why, and whether pretrained
  weights were actually used.

``N`` is the number of annotation rows: rows that share a video id (45 in AVE) are decoded once
and get identical features. Choices the thesis does not state are options, with these defaults:

- frame of a segment [SILENT]: the frame shown at ``t + frame_position`` seconds
  (``frame_position=0.5``: the centre frame), i.e. index ``floor((t + 0.5) * fps)``, clamped to
  the last frame for videos shorter than 10 s;
- frame preprocessing [SILENT]: the whole frame resized to 224 x 224 (``frame_resize="squash"``,
  so the 7 x 7 regions cover the whole picture) or ``"center_crop"`` (short side 224, centre
  crop); ImageNet mean/std normalisation from the backbone's timm config;
- backbone weights: timm's pretrained weights of ``visual_backbone`` when they can be fetched;
  otherwise a clearly warned random initialisation (seeded, so the cache is reproducible), and
  ``extraction.json`` records ``visual_pretrained_loaded: false``;
- audio [SILENT]: 16 kHz mono; each 1-s segment gives 98 log-mel frames of which the first 96
  (0.96 s) form its VGGish example, so examples stay aligned with the segments. VGGish weights
  come from ``vggish_weights`` (a safetensors file, see :mod:`mmzoo.nn.vggish`); without it the
  network is randomly initialised (seeded) with a warning.
"""
from __future__ import annotations

import hashlib
import json
import math
import shutil
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, Optional, Sequence

import numpy as np
import torch
from torch import nn

from mmzoo.errors import DataError
from mmzoo.nn.timm_backbone import create_timm_model

__all__ = [
    "ExtractionConfig",
    "VisualExtractor",
    "AudioExtractor",
    "visual_dim_of",
    "decode_segments",
    "extract_ave_features",
    "FeatureExtractionError",
    "MANIFEST",
]

MANIFEST = "extraction.json"
FORMAT_VERSION = 1
IMAGE_SIZE = 224
AUDIO_RATE = 16000


class FeatureExtractionError(DataError, RuntimeError):
    """A video could not be turned into features (the message names the file)."""


@dataclass(frozen=True)
class ExtractionConfig:
    """Everything that changes the extracted numbers (part of the cache key)."""

    visual_backbone: str = "resnet152.tv_in1k"
    pretrained_backbone: bool = True
    frame_position: float = 0.5
    frame_resize: Literal["squash", "center_crop"] = "squash"
    vggish_weights: Optional[str] = None
    num_segments: int = 10
    feature_dtype: Literal["float32", "float16"] = "float32"
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.frame_position < 1.0:
            raise ValueError(f"frame_position must be in [0, 1); got {self.frame_position}")
        if self.frame_resize not in ("squash", "center_crop"):
            raise ValueError(f"frame_resize must be 'squash' or 'center_crop'; got {self.frame_resize!r}")
        if self.feature_dtype not in ("float32", "float16"):
            raise ValueError(f"feature_dtype must be 'float32' or 'float16'; got {self.feature_dtype!r}")
        if self.num_segments <= 0:
            raise ValueError("num_segments must be > 0")

    def key(self, extra: str = "") -> str:
        d = asdict(self)
        if self.vggish_weights:
            p = Path(self.vggish_weights)
            d["vggish_weights"] = f"{p.resolve()}:{p.stat().st_size if p.exists() else 'missing'}"
        blob = json.dumps({"v": FORMAT_VERSION, **d, "extra": extra}, sort_keys=True).encode()
        return hashlib.sha1(blob).hexdigest()[:16]


def _create_backbone(name: str, pretrained: bool, seed: int):
    return create_timm_model(
        name, pretrained, seed=seed, features_only=True, out_indices=(-1,),
        fallback_hint="The visual features will not carry ImageNet semantics. Connect to the Hugging Face "
        "Hub (or fill its cache) and delete the feature cache to re-extract.",
    )


def visual_dim_of(backbone: str) -> int:
    """Channels of the last stage of timm model ``backbone`` (built on the meta device, no weights)."""
    import timm

    with torch.device("meta"):
        m = timm.create_model(backbone, pretrained=False, features_only=True, out_indices=(-1,))
    return int(m.feature_info.channels()[-1])


class VisualExtractor(nn.Module):
    """Frames -> last-stage feature maps: ``[N, 3, 224, 224]`` normalised -> ``[N, 7, 7, C]``."""

    def __init__(self, backbone: str = "resnet152.tv_in1k", pretrained: bool = True, seed: int = 0) -> None:
        super().__init__()
        self.backbone, self.pretrained_loaded = _create_backbone(backbone, pretrained, seed)
        self.dim = int(self.backbone.feature_info.channels()[-1])
        cfg = getattr(self.backbone, "pretrained_cfg", None) or {}
        self.mean = tuple(cfg.get("mean", (0.485, 0.456, 0.406)))
        self.std = tuple(cfg.get("std", (0.229, 0.224, 0.225)))
        self.eval()

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        fmap = self.backbone(images)[-1]  # [N, C, h, w]
        return fmap.permute(0, 2, 3, 1).contiguous()


class AudioExtractor(nn.Module):
    """VGGish examples ``[N, 1, 96, 64]`` -> ``[N, 128]`` embeddings."""

    def __init__(self, weights: Optional[str] = None, seed: int = 0) -> None:
        super().__init__()
        from mmzoo.nn.vggish import VGGish, load_vggish_weights

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.vggish = VGGish()
        self.pretrained_loaded = False
        if weights:
            load_vggish_weights(self.vggish, weights)
            self.pretrained_loaded = True
        else:
            warnings.warn(
                "No VGGish weights given (vggish_weights=None): the AudioSet VGGish checkpoint is a TensorFlow file "
                "that mmzoo does not download. Using a RANDOMLY INITIALISED VGGish; pass a safetensors file "
                "converted from the torchvggish port to get AudioSet embeddings.",
                stacklevel=3,
            )
        self.eval()

    @torch.no_grad()
    def forward(self, examples: torch.Tensor) -> torch.Tensor:
        return self.vggish(examples)


def _preprocess_frames(frames: torch.Tensor, resize: str, mean, std) -> torch.Tensor:
    x = frames.permute(0, 3, 1, 2).float() / 255.0  # [T, 3, H, W]
    h, w = x.shape[-2:]
    if resize == "squash":
        x = torch.nn.functional.interpolate(x, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", antialias=True, align_corners=False)
    else:
        s = IMAGE_SIZE / min(h, w)
        nh, nw = max(IMAGE_SIZE, int(round(h * s))), max(IMAGE_SIZE, int(round(w * s)))
        x = torch.nn.functional.interpolate(x, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
        top, left = (nh - IMAGE_SIZE) // 2, (nw - IMAGE_SIZE) // 2
        x = x[..., top : top + IMAGE_SIZE, left : left + IMAGE_SIZE]
    m = torch.tensor(mean, dtype=x.dtype).view(1, 3, 1, 1)
    sd = torch.tensor(std, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - m) / sd


def decode_segments(path: str | Path, num_segments: int = 10, frame_position: float = 0.5) -> dict[str, Any]:
    """Decode one frame per 1-s segment and the 16 kHz mono audio of ``num_segments`` seconds.

    Returns ``frames`` uint8 ``[T, H, W, 3]``, ``frame_indices`` (decoded stream indices),
    ``audio`` float ``[T * 16000]`` (zeros past the end of the track) and ``duration`` (s).
    Raises the typed errors of :mod:`mmzoo.data.decode` (each names the file).
    """
    from mmzoo.data.decode import VideoReader

    with VideoReader(path) as r:
        info = r.info
        fps = info.fps
        last = max(info.num_frames - 1, 0)
        idx = [min(int(math.floor((t + frame_position) * fps + 1e-6)), last) for t in range(num_segments)]
        clip = r.frames_by_index(idx, clamp=True)
        wav = r.audio(0.0, float(num_segments), sample_rate=AUDIO_RATE, mono=True)
    return {"frames": clip.frames, "frame_indices": clip.frame_indices, "audio": wav, "duration": info.duration}


class _DecodeDataset(torch.utils.data.Dataset):
    """One item per unique video: preprocessed frames and VGGish examples, or the error text."""

    def __init__(self, paths: Sequence[Path], config: ExtractionConfig, mean, std) -> None:
        self.paths = list(paths)
        self.config = config
        self.mean, self.std = mean, std
        self._front_end = None

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict[str, Any]:
        from mmzoo.nn.vggish import NUM_FRAMES, VGGishFrontEnd

        if self._front_end is None:
            self._front_end = VGGishFrontEnd()
        path = self.paths[i]
        try:
            seg = decode_segments(path, self.config.num_segments, self.config.frame_position)
            images = _preprocess_frames(seg["frames"], self.config.frame_resize, self.mean, self.std)
            wav = seg["audio"].view(self.config.num_segments, AUDIO_RATE)
            examples = torch.stack([self._front_end.log_mel(w)[:NUM_FRAMES] for w in wav]).unsqueeze(1)
            return {"i": i, "images": images, "examples": examples, "duration": float(seg["duration"]), "error": None}
        except Exception as e:  # reported (or raised) by the caller, never dropped
            return {"i": i, "images": None, "examples": None, "duration": None, "error": f"{type(e).__name__}: {e}"}


def _collate_one(items):
    return items


def extract_ave_features(
    video_paths: Sequence[str | Path],
    out_dir: str | Path,
    config: ExtractionConfig = ExtractionConfig(),
    labels: Optional[np.ndarray] = None,
    num_outputs: int = 29,
    device: Optional[str] = None,
    num_workers: int = 0,
    batch_videos: int = 4,
    skip_corrupt: bool = False,
    progress: bool = True,
    extra_manifest: Optional[dict[str, Any]] = None,
) -> dict[str, Any]:
    """Extract features for each row (``video_paths[row]``) and write them to ``out_dir``.

    Rows with the same path are decoded once. The files are written to ``<out_dir>.partial`` and
    renamed when complete, so an interrupted run never leaves a cache that looks valid.

    Args:
        video_paths: one video path per output row (annotation row order).
        out_dir: cache folder to create (must not exist yet).
        config: extraction settings (see :class:`ExtractionConfig`).
        labels: optional ``[N, T]`` int segment labels, written as one-hot ``labels.h5``.
        num_outputs: classes of the one-hot labels (28 events + background).
        device: torch device; default CUDA when available, else CPU.
        num_workers: DataLoader workers that decode videos.
        batch_videos: videos per backbone forward pass.
        skip_corrupt: count and report undecodable videos (their rows are zeros and listed in
            ``extraction.json`` under ``skipped``) instead of raising.
        progress: show a progress bar.

    Returns:
        The manifest written to ``extraction.json``.
    """
    import h5py

    out_dir = Path(out_dir)
    if out_dir.exists():
        raise FileExistsError(f"feature cache folder already exists: {out_dir}")
    tmp = out_dir.with_name(out_dir.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    n_rows = len(video_paths)
    if n_rows == 0:
        raise ValueError("no videos to extract")
    t = config.num_segments
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    vis_net = VisualExtractor(config.visual_backbone, config.pretrained_backbone, config.seed).to(dev)
    aud_net = AudioExtractor(config.vggish_weights, config.seed).to(dev)
    dtype = np.float16 if config.feature_dtype == "float16" else np.float32

    unique: dict[str, list[int]] = {}
    for row, p in enumerate(video_paths):
        unique.setdefault(str(Path(p)), []).append(row)
    paths = list(unique)

    ds = _DecodeDataset([Path(p) for p in paths], config, vis_net.mean, vis_net.std)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=max(1, batch_videos), shuffle=False, num_workers=num_workers, collate_fn=_collate_one
    )
    skipped: dict[str, str] = {}
    short: dict[str, float] = {}
    try:
        vf = h5py.File(tmp / "visual_feature.h5", "w")
        af = h5py.File(tmp / "audio_feature.h5", "w")
        vds = vf.create_dataset("avadataset", shape=(n_rows, t, 7, 7, vis_net.dim), dtype=dtype, chunks=(1, t, 7, 7, vis_net.dim))
        ads = af.create_dataset("avadataset", shape=(n_rows, t, 128), dtype=dtype, chunks=(1, t, 128))
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(paths), desc=f"AVE features ({config.visual_backbone} + VGGish)", unit="video")
        for items in loader:
            good = []
            for it in items:
                path = paths[it["i"]]
                if it["error"] is not None:
                    msg = f"{path}: unreadable video ({it['error']})"
                    if not skip_corrupt:
                        raise FeatureExtractionError(msg + " (set skip_corrupt=True to count and skip such videos)")
                    skipped[path] = it["error"]
                    continue
                if it["duration"] is not None and it["duration"] < t - 0.5:
                    short[path] = it["duration"]
                good.append(it)
            if good:
                images = torch.cat([g["images"] for g in good]).to(dev)
                examples = torch.cat([g["examples"] for g in good]).to(dev)
                fmap = vis_net(images)
                if fmap.shape[1:3] != (7, 7):
                    raise FeatureExtractionError(
                        f"backbone '{config.visual_backbone}' gives a {tuple(fmap.shape[1:3])} map at 224x224; "
                        "the AVE feature format needs 7x7 (an output stride of 32)"
                    )
                emb = aud_net(examples)
                fmap = fmap.view(len(good), t, 7, 7, -1).float().cpu().numpy().astype(dtype)
                emb = emb.view(len(good), t, -1).float().cpu().numpy().astype(dtype)
                for j, g in enumerate(good):
                    for row in unique[paths[g["i"]]]:
                        vds[row] = fmap[j]
                        ads[row] = emb[j]
            if bar is not None:
                bar.update(len(items))
        if bar is not None:
            bar.close()
        vf.close()
        af.close()
        if labels is not None:
            lab = np.asarray(labels, dtype=np.int64)
            if lab.shape != (n_rows, t):
                raise ValueError(f"labels must have shape {(n_rows, t)}; got {lab.shape}")
            if lab.min() < 0 or lab.max() >= num_outputs:
                raise ValueError(f"labels must be in [0, {num_outputs}); got [{lab.min()}, {lab.max()}]")
            onehot = np.zeros((n_rows, t, num_outputs), np.float32)
            onehot[np.arange(n_rows)[:, None], np.arange(t)[None], lab] = 1.0
            with h5py.File(tmp / "labels.h5", "w") as f:
                f.create_dataset("avadataset", data=onehot)
        skipped_rows = sorted(r for p in skipped for r in unique[p])
        manifest = {
            "format_version": FORMAT_VERSION,
            "config": asdict(config),
            "visual_dim": vis_net.dim,
            "visual_pretrained_loaded": vis_net.pretrained_loaded,
            "vggish_pretrained_loaded": aud_net.pretrained_loaded,
            "num_rows": n_rows,
            "num_videos": len(paths),
            "skipped": {p: skipped[p] for p in sorted(skipped)},
            "skipped_rows": skipped_rows,
            "short_videos": short,
            **(extra_manifest or {}),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
    except BaseException:
        for h in ("vf", "af"):
            try:
                locals()[h].close()
            except Exception:
                pass
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    tmp.rename(out_dir)
    if skipped:
        warnings.warn(
            f"AVE feature extraction skipped {len(skipped)} unreadable video(s) ({len(skipped_rows)} rows); "
            f"listed in {out_dir / MANIFEST}. First: {next(iter(skipped))}",
            stacklevel=2,
        )
    if short:
        warnings.warn(
            f"{len(short)} video(s) are shorter than {t - 0.5:.1f} s; their last segments repeat the last frame "
            f"and have silent audio (listed in {out_dir / MANIFEST})",
            stacklevel=2,
        )
    return manifest
