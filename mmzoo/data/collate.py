"""Collation of dict samples into dict batches.

Rules (per field, over the samples of a batch):

* tensors of identical shape are stacked (``video``, ``audio``, ``label``, ...);
* a list of tensors of identical shapes per position (SlowFast ``[slow, fast]``) is stacked
  position-wise into a list of batched tensors;
* ints / floats / bools become a tensor (``label`` -> long ``B``, ``has_audio`` -> bool ``B``);
* fields named in ``keep_as_list`` (default: ``boxes``, ``box_labels``, ``text``, ``meta``,
  ``track_ids``) and tensors whose shapes differ (variable numbers of boxes) stay a Python list of
  length ``B``;
* strings and dicts stay lists.

A field present in some samples and missing in others is an error naming the field.
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

import torch

__all__ = ["collate_dicts", "collate_deferred", "DEFAULT_LIST_FIELDS"]

DEFAULT_LIST_FIELDS = frozenset({"boxes", "box_labels", "text", "meta", "track_ids", "captions"})


def _collate_field(name: str, values: list[Any], keep_as_list: Iterable[str]) -> Any:
    if name in keep_as_list:
        return values
    first = values[0]
    if isinstance(first, torch.Tensor):
        if all(isinstance(v, torch.Tensor) and v.shape == first.shape for v in values):
            return torch.stack(values)
        return values
    if isinstance(first, (list, tuple)) and first and all(isinstance(x, torch.Tensor) for x in first):
        n = len(first)
        if all(isinstance(v, (list, tuple)) and len(v) == n for v in values):
            cols = [[v[i] for v in values] for i in range(n)]
            if all(all(t.shape == c[0].shape for t in c) for c in cols):
                return [torch.stack(c) for c in cols]
        return values
    if isinstance(first, bool):
        return torch.tensor(values, dtype=torch.bool)
    if isinstance(first, int):
        return torch.tensor(values, dtype=torch.long)
    if isinstance(first, float):
        return torch.tensor(values, dtype=torch.float32)
    return values


def collate_dicts(samples: Sequence[dict[str, Any]], keep_as_list: Iterable[str] = DEFAULT_LIST_FIELDS) -> dict[str, Any]:
    """Collate a list of sample dicts (see the module docstring)."""
    if not samples:
        raise ValueError("cannot collate an empty batch")
    keys = list(samples[0].keys())
    for i, s in enumerate(samples):
        if set(s.keys()) != set(keys):
            diff = sorted(set(keys) ^ set(s.keys()))
            raise KeyError(f"sample {i} of the batch has different fields: {diff}")
    keep = set(keep_as_list)
    return {k: _collate_field(k, [s[k] for s in samples], keep) for k in keys}


def collate_deferred(views: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Batch the ``video_deferred`` fields of training samples (see
    :mod:`mmzoo.data.video_dataset`): uint8 source regions zero-padded to the largest height and
    width of the batch (``B, T, Hmax, Wmax, C``; each sample's taps point inside its own region, so
    the padding is never read), taps stacked (``rows`` / ``cols`` long ``B, 2, crop``, ``row_w`` /
    ``col_w`` float ``B, crop``), and the normalisation / packing settings once (they must agree)."""
    if not views:
        raise ValueError("cannot collate an empty batch")
    spec = {k: views[0][k] for k in ("mean", "std", "alpha", "pathway_mode")}
    for i, v in enumerate(views):
        if {k: v[k] for k in spec} != spec:
            raise ValueError(f"sample {i} of the batch has other normalisation / packing settings than sample 0")
    regions = [v["region"] for v in views]
    t, c = regions[0].shape[0], regions[0].shape[3]
    if any(r.shape[0] != t or r.shape[3] != c for r in regions):
        raise ValueError(f"regions differ in frames or channels: {[tuple(r.shape) for r in regions]}")
    hm, wm = max(r.shape[1] for r in regions), max(r.shape[2] for r in regions)
    if all(r.shape[1:3] == (hm, wm) for r in regions):
        region = torch.stack(regions)
    else:
        region = torch.zeros((len(regions), t, hm, wm, c), dtype=regions[0].dtype)
        for i, r in enumerate(regions):
            region[i, :, : r.shape[1], : r.shape[2]] = r
    out = {"region": region}
    for k in ("rows", "row_w", "cols", "col_w"):
        out[k] = torch.stack([v[k] for v in views])
    out.update(spec)
    return out
