"""`mmzoo extract`: per-video feature sequences from a zoo model, in HDF5, with a manifest.

``mmzoo extract --model <id>[.tag] --data <name> --data.root DIR --output OUT [--split test]
[--layer pooled] [--pooling mean] [--data.* / --model.* flags]`` runs the model's
``forward_features`` on every view of every video of one split of a DataModule and writes, per
video, the ``T x D`` sequence of its views:

* **window and stride**: those of the DataModule's evaluation sampling, unchanged: each view is
  one clip of ``num_frames`` frames taken ``sampling_rate`` (``stride``) frames apart, at the
  ``num_clips`` uniformly spaced positions of :func:`mmzoo.data.samplers.uniform_clips` (bin
  centres of the valid start range), times ``num_crops`` spatial crops; ``T = num_clips x
  num_crops`` in the dataset's view order (clip-major). Set ``--data.num_clips`` for a denser
  sequence. Datasets without views (AVE features, one item per video) give ``T = 1``.
* **AVE's 1-s segments** (``--data ave`` with a model that reads raw video and / or audio):
  the DataModule's ``"segments"`` mode gives ``T = 10`` views per video, view ``k`` = segment
  ``k`` = ``[k, k + 1)`` s: ``frames`` frames evenly inside the segment (stream indices
  ``floor((k + (i + 0.5) / frames) * fps)``; ``--data.segment_sampling stride``: the model's
  own stride around the segment's centre frame), short side / centre crop / mean / std of the
  model, and the model's audio window centred on ``k + 0.5`` s (exactly the segment for 1-s
  audio models). The rows are keyed by AVE video id; the ``ave`` DataModule reads them back
  (``--data.visual_features OUT`` / ``--data.audio_features OUT``). See
  :mod:`mmzoo.data.ave_segments`.
* **layer**: a key of the model's ``forward_features`` (default ``pooled``, the clip vector the
  classifier reads; ``mmzoo extract --list-layers`` prints them).
* **pooling**: ``mean`` / ``max`` over every axis after the channel axis (axis 1) of a feature
  map (``B, C, T, H, W`` -> ``B, C``); a ``B, D`` vector is kept as it is; ``none`` keeps the whole
  feature (``T x *shape``, e.g. the spatial map of each AVE segment for a region grid).
* **split**: ``train``, ``val``, ``test``, ``predict``, or ``all`` (every video of the train, val
  and test splits once: what a feature-based DataModule that trains on the file needs).

Output folder ``OUT``: ``features.h5`` (one float32 dataset per video under ``features/``, named
by the percent-encoded video key, with attributes ``video`` (the key: the file path relative to
the dataset root, or the dataset's video id) and ``video_index``) and ``manifest.json`` (model
id, tag, sha256 of the weights file, mmzoo version, data module and its arguments, split, the
input protocol, layer, pooling, the videos written and the videos skipped with the reason).

Resumable: an existing ``features.h5`` is opened for appending; videos already in it are not
recomputed (each video is written and flushed in one step, so an interrupted run loses at most
the video in progress). A video whose decoding fails is skipped and listed in the manifest with
the error, never silently replaced. Sharded: under ``torchrun`` (``WORLD_SIZE`` / ``RANK``, or
``--num_shards`` / ``--shard``) process ``r`` of ``W`` takes videos ``r, r + W, ...`` and writes
``features.rank<r>.h5`` / ``manifest.rank<r>.json``; ``mmzoo extract --merge OUT`` combines them
(:mod:`mmzoo.extract_merge`). Resuming with another model, window, layer or pooling is refused.

Dense windows (``--dense [--stride_frames N | --stride_sec S]``, clip DataModules): instead of
the evaluation views, one row per window of the model's clip (``num_frames`` frames ``stride``
apart, ``num_frames x stride`` frames long) over the whole video (or annotated segment), at the
starts of :func:`mmzoo.predict.classify.window_starts` (consecutive windows by default, as
``mmzoo predict --input``; else every ``N`` frames / ``round(S x fps)`` frames), each the
DataModule's centre test view of that clip (its ``test_scale``, ``test_crop_size``, mean / std,
pathways, and aligned audio where it gives audio); ``times/<video>`` holds each row's ``[start,
end)`` in seconds. A video shorter than one window is skipped and listed, as ``predict`` refuses
it.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import urllib.parse
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "FEATURES_NAME",
    "MANIFEST_NAME",
    "extract_features",
    "main",
    "pool_feature",
    "read_features",
    "to_expert_pickle",
    "video_key",
]

FEATURES_NAME = "features.h5"
MANIFEST_NAME = "manifest.json"


def pool_feature(x: torch.Tensor, pooling: str) -> torch.Tensor:
    """``B, C, ...`` -> ``B, C`` (``mean`` / ``max`` over the axes after 1); ``B, D`` and
    ``pooling="none"`` unchanged."""
    if pooling not in ("mean", "max", "none"):
        raise ValueError(f"pooling must be 'mean', 'max' or 'none', got {pooling!r}")
    if pooling == "none" or x.dim() <= 2:
        return x
    dims = tuple(range(2, x.dim()))
    return x.mean(dim=dims) if pooling == "mean" else x.amax(dim=dims)


def video_key(item: dict, fallback: int) -> str:
    """The name of an item's video: its meta ``video_id`` / ``source``, else ``str(fallback)``."""
    meta = item.get("meta")
    meta = meta if isinstance(meta, dict) else {}
    for k in ("video_id", "source", "video"):
        if meta.get(k) is not None:
            return str(meta[k])
        if isinstance(item.get(k), str):
            return item[k]
    return str(fallback)


class _Videos(torch.utils.data.Dataset):
    """One entry per video: its views' items, or the error that stopped decoding it."""

    def __init__(self, groups: list[tuple[str | None, list[int], Any]]):
        self.groups = groups

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, v: int) -> dict:
        key, idxs, dataset = self.groups[v]
        try:
            items = [dataset[i] for i in idxs]
        except Exception as err:  # noqa: BLE001 - reported per video in the manifest
            return {"key": key or str(v), "index": v, "error": f"{type(err).__name__}: {err}"}
        return {"key": key or video_key(items[0], v), "index": v, "items": items}


def _groups(dataset) -> tuple[list[tuple[str | None, list[int], Any]], bool]:
    """(video key or None, item indices, dataset) per video, and whether the keys are known without
    decoding (datasets with ``records`` and ``views``, e.g. the clip datasets of Kinetics, UCF101)."""
    records, views = getattr(dataset, "records", None), getattr(dataset, "views", None)
    if records is not None and isinstance(views, int) and len(dataset) == len(records) * views:
        return [(str(getattr(r, "source", i)), list(range(i * views, (i + 1) * views)), dataset)
                for i, r in enumerate(records)], True  # fmt: skip
    return [(None, [i], dataset) for i in range(len(dataset))], False


def _split_groups(dm, split: str) -> tuple[list[tuple[str | None, list[int], Any]], bool, Any]:
    """The groups of ``split`` (``all``: train, val and test, each known video once), whether
    their keys are known, and the first dataset (for its ``window``)."""
    names = ["train", "val", "test"] if split == "all" else [split]
    groups, known, first = [], True, None
    for name in names:
        ds = dm.dataset(name)
        first = first if first is not None else ds
        g, k = _groups(ds)
        groups += g
        known = known and k
    if split == "all" and known:
        seen: set = set()
        groups = [g for g in groups if not (g[0] in seen or seen.add(g[0]))]
    return groups, known, first


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _load_model(name: str, pretrained: bool, ckpt_path: str | None, model_args: dict):
    """(model in eval mode, weights record for the manifest)."""
    import mmzoo
    from mmzoo.registry import get_spec

    if ckpt_path:
        from mmzoo.hub.checkpoint import model_from_checkpoint

        model = model_from_checkpoint(Path(ckpt_path), model_id=None if "/" in name else name.split(".")[0])
        return model.eval(), {"source": str(ckpt_path), "sha256": _sha256(Path(ckpt_path))}
    if not pretrained:
        torch.manual_seed(0)
        model = mmzoo.create(name, **model_args).eval()
        model.zoo_id = get_spec(name).id
        return model, {"source": "random initialisation (--pretrained false, seed 0)", "sha256": None}
    from mmzoo.hub import pull

    folder = Path(name) if Path(name).is_dir() else Path(pull(name))
    model = mmzoo.load(str(folder) if Path(name).is_dir() else name, **model_args)
    weights = folder / "model.safetensors"
    return model, {"source": name, "sha256": _sha256(weights) if weights.is_file() else None}


def _protocol(dm) -> dict[str, Any]:
    """The input protocol of the DataModule: its sampling / crop arguments as constructed."""
    keys = ("version", "num_frames", "sampling_rate", "stride", "alpha", "num_clips", "num_crops", "test_scale",
            "test_crop_size", "short_side", "crop_size", "fps", "input_mode", "with_audio", "audio_n_mels",
            "audio_num_frames", "eval_window", "eval_stride", "frame_size", "segment_video", "segment_frames",
            "segment_sampling", "segment_stride", "segment_short_side", "segment_crop", "segment_mean",
            "segment_std", "segment_audio", "segment_audio_args")
    hp = dict(getattr(dm, "hparams", {}) or {})
    return {k: hp[k] for k in keys if k in hp}


def _model_inputs(model, batch: dict) -> dict:
    names = [k for k in model.example_input(1) if k in batch]
    if not names:
        raise ValueError(f"the batch fields {sorted(batch)} hold none of {type(model).__name__}'s inputs "
                         f"{sorted(model.example_input(1))}")
    return {k: batch[k] for k in names}


def _to(x: Any, device: torch.device) -> Any:
    if isinstance(x, torch.Tensor):
        return x.to(device)
    if isinstance(x, (list, tuple)):
        return type(x)(_to(v, device) for v in x)
    if isinstance(x, dict):
        return {k: _to(v, device) for k, v in x.items()}
    return x


# --------------------------------------------------------------------------- dense windows
def _dense_window_dataset(dataset):
    """A copy of a clip ``dataset`` that gives one centre test view per record (the records are
    then the windows), or a one-line error where the dataset has no clip records."""
    import copy
    import dataclasses

    cfg = getattr(dataset, "cfg", None)
    if not (getattr(dataset, "records", None) and dataclasses.is_dataclass(cfg) and hasattr(cfg, "num_clips")):
        raise ValueError(f"--dense needs a clip DataModule (kinetics, epic-kitchens, ucf101, ...); "
                         f"{type(dataset).__name__} has no clip records")
    if getattr(cfg, "temporal", "clip") != "clip":
        raise ValueError(f"--dense windows are clips; this DataModule samples {cfg.temporal!r} segments")
    win = copy.copy(dataset)
    win.cfg = dataclasses.replace(cfg, train=False, num_clips=1, num_crops=1, skip_corrupt=False,
                                  deferred_geometry=False,
                                  missing_audio="error" if cfg.missing_audio == "skip" else cfg.missing_audio)
    win.views, win._last = 1, None
    return win


def _window_records(dataset, rec, step_frames: int | None, step_sec: float | None):
    """(window records, ``(W, 2)`` start / end seconds, fps) of one record: windows of the model's
    clip at :func:`mmzoo.predict.classify.window_starts`; a record shorter than one window is an
    error, as for ``mmzoo predict --input``."""
    import dataclasses
    import math

    from mmzoo.data.decode import VideoReader
    from mmzoo.data.samplers import clip_span
    from mmzoo.errors import DataError
    from mmzoo.predict.classify import window_starts

    cfg = dataset.cfg
    span, taps = cfg.num_frames * cfg.stride, clip_span(cfg.num_frames, cfg.stride)
    if rec.video is not None:
        with VideoReader(rec.video) as r:
            fps, n_stream = float(r.fps), int(r.info.num_frames)
        lo = 0 if rec.start_sec is None else int(math.ceil(rec.start_sec * fps - 1e-6))
        hi = n_stream if rec.end_sec is None else min(int(math.ceil(rec.end_sec * fps - 1e-6)), n_stream)
        origin = 0
    else:
        fps = rec.frames_fps
        if not fps and rec.audio_video:
            with VideoReader(rec.audio_video) as r:
                fps = r.fps
        if not fps:
            raise DataError(f"{rec.source}: frame folder without a frame rate; --dense needs one for the window times")
        lo, hi, origin = int(rec.first_frame), int(rec.last_frame) + 1, rec.frame_number_offset
    step = step_frames if step_frames else (max(1, int(round(step_sec * fps))) if step_sec else None)
    starts = [lo + s for s in window_starts(hi - lo, span, step)]
    if not starts:
        raise DataError(f"{rec.source}: {hi - lo} frames; one window needs {span} "
                        f"({cfg.num_frames} frames at stride {cfg.stride})")
    if rec.video is not None:  # frame s..s + taps - 1 as a segment: the one clip of that range starts at s
        recs = [dataclasses.replace(rec, start_sec=s / fps, end_sec=(s + taps) / fps) for s in starts]
    else:
        recs = [dataclasses.replace(rec, first_frame=s, last_frame=s + taps - 1) for s in starts]
    times = torch.tensor([[(s - origin) / fps, (s - origin + span) / fps] for s in starts], dtype=torch.float64)
    return recs, times, float(fps)


class _DenseVideos(torch.utils.data.IterableDataset):
    """The windows of each video in chunks of ``chunk`` (each worker takes every ``n``-th video):
    ``{"key", "index", "items", "times", "fps", "last"}``, or ``{"key", "index", "error"}``."""

    def __init__(self, videos: list[tuple[str, Any, int]], step_frames, step_sec, chunk: int):
        self.videos, self.step_frames, self.step_sec, self.chunk = videos, step_frames, step_sec, chunk

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        for v in range(wid, len(self.videos), nw):
            key, dataset, r = self.videos[v]
            try:
                recs, times, fps = _window_records(dataset, dataset.records[r], self.step_frames, self.step_sec)
                win = _with_records(dataset, recs)
                for c in range(0, len(recs), self.chunk):
                    items = [win[j] for j in range(c, min(c + self.chunk, len(recs)))]
                    yield {"key": key, "index": v, "items": items, "times": times[c:c + self.chunk], "fps": fps,
                           "last": c + self.chunk >= len(recs)}
            except Exception as err:  # noqa: BLE001 - reported per video in the manifest
                yield {"key": key, "index": v, "error": f"{type(err).__name__}: {err}"}


def _with_records(dataset, records):
    import copy

    win = copy.copy(dataset)
    win.records, win._last = records, None
    return win


def _dense_videos(dm, split: str) -> list[tuple[str, Any, int]]:
    """(video key, window dataset, record index) of every video of ``split`` (``all``: each once)."""
    out, seen = [], set()
    for name in ["train", "val", "test"] if split == "all" else [split]:
        ds = dm.dataset(name)
        win = _dense_window_dataset(ds)
        for r, rec in enumerate(ds.records):
            if str(rec.source) not in seen:
                seen.add(str(rec.source))
                out.append((str(rec.source), win, r))
    return out


def _dense_window_spec(dataset, stride_frames: int | None, stride_sec: float | None) -> dict[str, Any]:
    c = dataset.cfg
    return {"mode": "dense", "frames_per_window": c.num_frames, "frame_stride": c.stride,
            "window_frames": c.num_frames * c.stride, "step_frames": stride_frames, "step_sec": stride_sec,
            "step": "consecutive windows (step = window_frames)" if not (stride_frames or stride_sec) else
            "every step_frames frames" if stride_frames else "every round(step_sec * fps) frames",
            "crop": "centre", "test_scale": c.test_scale, "test_crop_size": c.test_crop_size,
            "short_videos": "skipped and listed (shorter than one window), as mmzoo predict --input refuses them",
            "times": "times/<video>: [start, end) seconds of each row's window (end = start + window_frames / fps)"}


def _write_video(f, key: str, seq, index: int, times=None, fps: float | None = None) -> None:
    name = urllib.parse.quote(key, safe="")
    ds = f["features"].create_dataset(name, data=seq)
    ds.attrs["video"] = key
    ds.attrs["video_index"] = index
    if times is not None:
        t = f.require_group("times").create_dataset(name, data=times)
        t.attrs["video"] = key
        t.attrs["fps"] = fps
    f.flush()


_AGREE = ("model", "tag", "weights", "data", "split", "input_protocol", "window", "layer", "pooling")


def extract_features(
    model_name: str,
    data_name: str,
    output: str | os.PathLike,
    split: str = "test",
    layer: str = "pooled",
    pooling: str = "mean",
    data_args: dict | None = None,
    model_args: dict | None = None,
    pretrained: bool = True,
    ckpt_path: str | None = None,
    device: str = "cpu",
    shard: int = 0,
    num_shards: int = 1,
    progress: bool = True,
    dense: bool = False,
    stride_frames: int | None = None,
    stride_sec: float | None = None,
    batch_size: int = 16,
) -> Path:
    """Write ``features.h5`` and ``manifest.json`` under ``output`` (module docstring); returns
    the manifest's path. ``dense``: one row per window of the model's clip over the whole video,
    every ``stride_frames`` frames / ``stride_sec`` seconds (default: consecutive windows), in
    forward passes of ``batch_size`` windows."""
    import h5py
    import numpy as np
    from tqdm.auto import tqdm

    from mmzoo import __version__
    from mmzoo.data import get_datamodule
    from mmzoo.registry import get_spec

    pool_feature(torch.zeros(1, 1), pooling)  # validate early
    if not 0 <= shard < num_shards:
        raise ValueError(f"shard {shard} outside [0, {num_shards})")
    if (stride_frames is not None or stride_sec is not None) and not dense:
        raise ValueError("--stride_frames / --stride_sec set the step of --dense windows; add --dense")
    if stride_frames is not None and stride_sec is not None:
        raise ValueError("give one of --stride_frames and --stride_sec, not both")
    if (stride_frames is not None and stride_frames < 1) or (stride_sec is not None and not stride_sec > 0):
        raise ValueError(f"the window step must be positive, got --stride_frames {stride_frames} "
                         f"--stride_sec {stride_sec}")
    if split not in ("train", "val", "test", "predict", "all"):
        raise ValueError(f"split must be train, val, test, predict or all, got {split!r}")
    model, weights = _load_model(model_name, pretrained, ckpt_path, dict(model_args or {}))
    dev = torch.device(device)
    model.to(dev)
    spec = get_spec(model.zoo_id)
    dm_class = get_datamodule(data_name)
    kwargs = {**getattr(dm_class, "defaults_from_input", lambda cfg: {})(spec.input), **(data_args or {})}
    dm = dm_class(**kwargs)
    if dense:
        groups = _dense_videos(dm, split)
        keys_known, window = True, _dense_window_spec(groups[0][1], stride_frames, stride_sec)
    else:
        groups, keys_known, dataset = _split_groups(dm, split)
        window = (getattr(dataset, "window", None)
                  or "one row per evaluation view (num_clips uniform clips x num_crops crops, clip-major)")
    mine = list(range(shard, len(groups), num_shards))
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    suffix = f".rank{shard}" if num_shards > 1 else ""
    h5_path = out / FEATURES_NAME.replace(".h5", f"{suffix}.h5")
    manifest_path = out / MANIFEST_NAME.replace(".json", f"{suffix}.json")
    manifest = {
        "mmzoo_version": __version__,
        "model": model.zoo_id,
        "tag": getattr(model, "zoo_tag", None),
        "weights": weights,
        "data": data_name,
        "data_args": {k: v for k, v in kwargs.items() if isinstance(v, (str, int, float, bool, list, type(None)))},
        "split": split,
        "input_protocol": _protocol(dm),
        "window": window,
        "layer": layer,
        "pooling": pooling,
    }
    previous = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    for k in _AGREE if previous else ():
        if json.dumps(previous.get(k), sort_keys=True, default=str) != json.dumps(manifest[k], sort_keys=True,
                                                                                     default=str):
            raise ValueError(f"{manifest_path}: written with another {k} ({previous.get(k)!r}, this run: "
                             f"{manifest[k]!r}); resume with the same arguments or use another --output")
    skipped = {s["video"]: s["reason"] for s in previous.get("skipped", [])}
    with h5py.File(h5_path, "a") as f:
        grp = f.require_group("features")
        done = {grp[k].attrs["video"] for k in grp}
        todo = [v for v in mine if not (keys_known and groups[v][0] in done)]
        if dense:
            source = _DenseVideos([groups[v] for v in todo], stride_frames, stride_sec, batch_size)
        else:
            source = _Videos([groups[v] for v in todo])
        loader = torch.utils.data.DataLoader(source, batch_size=None, num_workers=dm.num_workers,
                                             collate_fn=lambda x: x)
        collate = type(dm).collate_fn
        pending: dict[str, list] = {}
        bar = tqdm(total=len(todo), desc=f"extract {model.zoo_id}", disable=not progress)
        for entry in loader:
            key = entry["key"]
            if key in done:
                bar.update()
                continue
            if "error" in entry:
                pending.pop(key, None)
                skipped[key] = entry["error"]
                bar.update()
                continue
            batch = _to(collate(entry["items"]), dev)
            with torch.no_grad():
                feats = model.forward_features(**_model_inputs(model, batch))
            if layer not in feats:
                raise ValueError(f"--layer {layer!r}: {type(model).__name__}.forward_features gives {sorted(feats)}")
            seq = pool_feature(feats[layer], pooling).float().cpu().numpy()
            if dense:
                pending.setdefault(key, []).append((seq, entry["times"].numpy()))
                if not entry["last"]:
                    continue
                parts = pending.pop(key)
                _write_video(f, key, np.concatenate([p[0] for p in parts]), todo[entry["index"]],
                             np.concatenate([p[1] for p in parts]), entry["fps"])
            else:
                _write_video(f, key, seq, todo[entry["index"]])
            skipped.pop(key, None)
            done.add(key)
            bar.update()
        bar.close()
        written = sorted(done)
        shape = list(grp[urllib.parse.quote(written[0], safe="")].shape[1:]) if written else None
    manifest.update({
        "feature_shape": shape,
        "dtype": "float32",
        "shard": [shard, num_shards],
        "videos": len(written),
        "written": written,
        "skipped": [{"video": k, "reason": v} for k, v in sorted(skipped.items())],
    })
    manifest_path.write_text(json.dumps(manifest, indent=2, default=str))
    return manifest_path


def read_features(path: str | os.PathLike) -> dict[str, Any]:
    """``{video key: (T, ...) numpy array}`` of a ``features.h5`` written by :func:`extract_features`."""
    import h5py

    with h5py.File(path, "r") as f:
        return {f["features"][k].attrs["video"]: f["features"][k][()] for k in f["features"]}


def to_expert_pickle(features: str | os.PathLike, output: str | os.PathLike, id_from: str = "stem") -> Path:
    """Write a ``features.h5`` as an expert pickle of the T2VLAD / MMT loaders (MSR-VTT's
    ``mmt_feats/features.<expert>.pkl``): ``{video_id: float32 [T, D]}``, the T views as the
    expert's tokens. ``id_from="stem"``: the video id is the file name without its extension
    (``video12.mp4`` -> ``video12``, MSR-VTT's ids); ``"key"``: the key as written."""
    import pickle

    if id_from not in ("stem", "key"):
        raise ValueError(f"id_from must be 'stem' or 'key', got {id_from!r}")
    feats = read_features(features)
    out: dict[str, Any] = {}
    for key, seq in feats.items():
        vid = Path(key).stem if id_from == "stem" else key
        if vid in out:
            raise ValueError(f"{features}: two videos give the id {vid!r}; pass id_from='key'")
        out[vid] = seq.reshape(seq.shape[0], -1).astype("float32")
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(out, f, protocol=4)
    return path


def _parse_value(text: str) -> Any:
    import yaml

    return yaml.safe_load(text)


def main(argv: list[str]) -> Path:
    """The `mmzoo extract` command line (``--data.<arg> v`` / ``--model.<arg> v`` pass constructor
    arguments, YAML-parsed: ``32``, ``[32, 40]``, ``true``)."""
    if "--merge" in argv:
        merge = argparse.ArgumentParser(prog="mmzoo extract --merge", description="one features.h5 + "
                                        "manifest.json from the features.rank<r>.h5 / manifest.rank<r>.json of DIR")
        merge.add_argument("--merge", required=True, metavar="DIR", help="output folder of a sharded extract")
        merge.add_argument("--output", default=None, help="where to write the merged files (default: DIR)")
        args = merge.parse_args(argv)
        from mmzoo.extract_merge import merge_shards

        path = merge_shards(args.merge, args.output)
        manifest = json.loads(path.read_text())
        print(f"mmzoo extract --merge: {manifest['videos']} video(s) from {len(manifest['merged_from'])} shard(s) "
              f"-> {path.parent}; skipped {len(manifest['skipped'])}")
        return path
    parser = argparse.ArgumentParser(prog="mmzoo extract", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="'id', 'id.tag', a hub repo or a local folder")
    parser.add_argument("--data", required=True, help="DataModule name, e.g. kinetics")
    parser.add_argument("--output", required=True, help="output folder (features.h5 + manifest.json)")
    parser.add_argument("--split", default="test", choices=["train", "val", "test", "predict", "all"])
    parser.add_argument("--layer", default="pooled", help="key of the model's forward_features")
    parser.add_argument("--pooling", default="mean", choices=["mean", "max", "none"])
    parser.add_argument("--pretrained", default="true", choices=["true", "false"])
    parser.add_argument("--ckpt_path", default=None)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--shard", type=int, default=int(os.environ.get("RANK", "0")))
    parser.add_argument("--num_shards", type=int, default=int(os.environ.get("WORLD_SIZE", "1")))
    parser.add_argument("--no_progress", action="store_true")
    parser.add_argument("--dense", action="store_true",
                        help="one row per window of the model's clip over the whole video (centre crop)")
    step = parser.add_mutually_exclusive_group()
    step.add_argument("--stride_frames", type=int, default=None, help="--dense: a window every N frames")
    step.add_argument("--stride_sec", type=float, default=None, help="--dense: a window every S seconds")
    parser.add_argument("--batch_size", type=int, default=16, help="--dense: windows per forward pass")
    known, rest = parser.parse_known_args(argv)
    data_args, model_args = {}, {}
    it = iter(rest)
    for arg in it:
        name, _, value = arg.partition("=")
        prefix = next((p for p in ("--data.", "--model.") if name.startswith(p)), None)
        if prefix is None:
            parser.error(f"unknown argument {arg}")
        if not value:
            value = next(it, None)
            if value is None:
                parser.error(f"{name} needs a value")
        (data_args if prefix == "--data." else model_args)[name[len(prefix):]] = _parse_value(value)
    path = extract_features(known.model, known.data, known.output, known.split, known.layer, known.pooling,
                            data_args, model_args, known.pretrained == "true", known.ckpt_path, known.device,
                            known.shard, known.num_shards, not known.no_progress, known.dense,
                            known.stride_frames, known.stride_sec, known.batch_size)
    manifest = json.loads(path.read_text())
    print(f"mmzoo extract: {manifest['videos']} video(s) -> {path.parent}; skipped {len(manifest['skipped'])}")
    return path
