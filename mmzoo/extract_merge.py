"""`mmzoo extract --merge DIR`: one ``features.h5`` + ``manifest.json`` from the per-shard files.

A sharded ``mmzoo extract`` (``--shard r --num_shards W`` or ``torchrun``) leaves
``features.rank<r>.h5`` / ``manifest.rank<r>.json`` for ``r < W`` in its output folder.
:func:`merge_shards` checks that they belong together and writes the folder a one-process run
would have written:

* every shard ``0 .. W-1`` is there, each manifest lists exactly the videos its HDF5 holds (a
  shard still running or interrupted does not);
* the shards agree on the model id and tag, the weights (source and sha256), the DataModule and
  split, the input protocol, the window definition, the layer, the pooling and the feature shape;
* no video is in two shards;
* the rows (``features/<video>``, and ``times/<video>`` of dense windows) are copied with their
  attributes (``video_index`` is the video's position in the whole split, as in a one-process
  run); the skipped videos are the union of the shards' (less any written by another shard).

Anything else is refused with one line naming the file.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from mmzoo.extract import FEATURES_NAME, MANIFEST_NAME

__all__ = ["merge_shards"]

_AGREE = ("model", "tag", "weights", "data", "split", "input_protocol", "window", "layer", "pooling",
          "feature_shape", "dtype")


def _same(a, b) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def merge_shards(folder: str | os.PathLike, output: str | os.PathLike | None = None) -> Path:
    """Merge the shard files of ``folder`` into ``output`` (default ``folder``)/``features.h5`` +
    ``manifest.json`` (module docstring); returns the merged manifest's path."""
    import h5py

    folder = Path(folder)
    out = Path(output) if output is not None else folder
    found = sorted(folder.glob("manifest.rank*.json"), key=lambda p: int(re.findall(r"\d+", p.name)[-1]))
    if not found:
        raise FileNotFoundError(f"{folder}: no manifest.rank<r>.json (the per-shard output of mmzoo extract)")
    manifests = {}
    for path in found:
        try:
            manifests[path] = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not a JSON manifest ({err})") from None
    first, m0 = next(iter(manifests.items()))
    num = m0.get("shard", [0, 1])[1]
    for path, m in manifests.items():
        if m.get("shard", [None, None])[1] != num:
            raise ValueError(f"{path}: shard {m.get('shard')} of another run than {first.name} (of {num} shards)")
        for k in _AGREE:
            if k == "feature_shape" and None in (m.get(k), m0.get(k)):
                continue  # a shard that wrote no video
            if not _same(m.get(k), m0.get(k)):
                raise ValueError(f"{path}: {k} {m.get(k)!r} differs from {first.name}'s {m0.get(k)!r}")
    ranks = {m["shard"][0]: path for path, m in manifests.items()}
    missing = [r for r in range(num) if r not in ranks]
    if missing:
        raise FileNotFoundError(f"{folder}: manifest.rank{missing[0]}.json missing ({len(ranks)} of {num} shards)")
    dst_h5, dst_manifest = out / FEATURES_NAME, out / MANIFEST_NAME
    if dst_h5.exists() or dst_manifest.exists():
        raise FileExistsError(f"{dst_h5 if dst_h5.exists() else dst_manifest} already exists; merge into another "
                              "--output or remove it")
    owner: dict[str, Path] = {}
    shards = []
    for r in range(num):
        h5 = folder / FEATURES_NAME.replace(".h5", f".rank{r}.h5")
        if not h5.is_file():
            raise FileNotFoundError(f"{h5}: missing (its manifest is {ranks[r].name})")
        with h5py.File(h5, "r") as f:
            videos = {f["features"][k].attrs["video"] for k in f.get("features", {})}
        listed = set(manifests[ranks[r]]["written"])
        if videos != listed:
            extra = sorted(videos ^ listed)
            raise ValueError(f"{h5}: holds {len(videos)} videos, {ranks[r].name} lists {len(listed)} (first "
                             f"difference {extra[0]!r}); the shard did not finish: rerun it, it resumes")
        for v in videos:
            if v in owner:
                raise ValueError(f"{h5}: video {v!r} is also in {owner[v]}; the shards overlap")
            owner[v] = h5
        shards.append(h5)
    out.mkdir(parents=True, exist_ok=True)
    tmp = dst_h5.with_suffix(".h5.part")
    with h5py.File(tmp, "w") as dst:
        for h5 in shards:
            with h5py.File(h5, "r") as src:
                for group in ("features", "times"):
                    if group in src:
                        target = dst.require_group(group)
                        for name in src[group]:
                            src.copy(src[group][name], target, name=name)
    os.replace(tmp, dst_h5)
    written = sorted(owner)
    skipped: dict[str, str] = {}
    for m in manifests.values():
        skipped.update({s["video"]: s["reason"] for s in m.get("skipped", []) if s["video"] not in owner})
    shape = next((m["feature_shape"] for m in manifests.values() if m.get("feature_shape")), None)
    merged = {**m0, "feature_shape": shape, "shard": [0, 1], "merged_from": [ranks[r].name for r in range(num)], "videos": len(written),
              "written": written, "skipped": [{"video": k, "reason": v} for k, v in sorted(skipped.items())]}
    dst_manifest.write_text(json.dumps(merged, indent=2, default=str))
    return dst_manifest
