"""Converters from the Caffe2 checkpoints of the Non-local network family to `NonLocalNet`.

Two sources, one format: a Python pickle `{"blobs": {name: ndarray, ...}}` written by Caffe2
(latin-1 strings; solver blobs `model_iter`, `lr` and `*_momentum` beside the weights):

* the authors' `facebookresearch/video-nonlocal-net` release (s3 `video-nonlocal/*.pkl`, e.g.
  `i3d_nonlocal_32x2_IN_pretrain_400k.pkl`): `conv1_w`, `res_conv1_bn_{s,b,rm,riv}`,
  `res{2-5}_{i}_branch2{a,b,c}_w` + `_bn_*`, `res{n}_{i}_branch1_w` + `_bn_*` (projection
  shortcut), `nonlocal_conv{3,4}_{i}_{theta,phi,g,out}_{w,b}` + `nonlocal_conv{n}_{i}_bn_*` (the
  block after residual block i of res{n}), `pred_w` / `pred_b` (2D from the training net, 5D
  1x1x1 from the test net). Their frozen-BN ("affine") models keep only `_s` / `_b`;
* PySlowFast's Caffe2 model zoo (`C2D_NOPOOL_8x8_R50.pkl`, `I3D_8x8_R50.pkl`,
  `I3D_NLN_8x8_R50.pkl`), which uses the same names.

The file is read with `mmzoo.safe_pickle.restricted_load` (numpy arrays and plain containers
only: nothing from the file can run). Blob names go through PySlowFast's Caffe2 naming
(`caffe2_to_pyslowfast_name`) and then to `NonLocalNet`'s.
"""
from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path
from typing import Mapping, Union

import numpy as np
import torch

from mmzoo.convert.pytorchvideo import caffe2_to_pyslowfast_name
from mmzoo.errors import ConversionError
from mmzoo.safe_pickle import restricted_load

__all__ = ["convert_nonlocal_caffe2", "caffe2_blobs_to_mmzoo", "CAFFE2_BN_EPS"]

#: The Caffe2 BN epsilon of the authors' configs (`BN_EPSILON = 1.0000001e-5`).
CAFFE2_BN_EPS = 1e-5
_NL = {"conv_theta": "theta", "conv_phi": "phi", "conv_g": "g", "conv_out": "out", "bn": "bn"}
_RULES: list[tuple[str, str]] = [
    (r"s1\.pathway0_stem\.(?P<kind>conv|bn)\.(?P<p>\w+)", "backbone.stem.{kind}.{p}"),
    (r"s(?P<stage>[2-5])\.pathway0_res(?P<blk>\d+)\.branch1(?P<bn>_bn)?\.(?P<p>\w+)",
     "backbone.stages.{stage}.blocks.{blk}.shortcut.{layer}.{p}"),
    (r"s(?P<stage>[2-5])\.pathway0_res(?P<blk>\d+)\.branch2\.(?P<x>[abc])(?P<bn>_bn)?\.(?P<p>\w+)",
     "backbone.stages.{stage}.blocks.{blk}.{layer}_{x}.{p}"),
    (r"s(?P<stage>[2-5])\.pathway0_nonlocal(?P<blk>\d+)\.(?P<nl>conv_theta|conv_phi|conv_g|conv_out|bn)\.(?P<p>\w+)",
     "backbone.stages.{stage}.nonlocal_blocks.{blk}.{nl}.{p}"),
    (r"head\.projection\.(?P<p>weight|bias)", "head.fc.{p}"),
]


def _mmzoo_name(psf: str, blob: str) -> str:
    for pattern, template in _RULES:
        m = re.fullmatch(pattern, psf)
        if m is None:
            continue
        f = m.groupdict()
        if "stage" in f:
            f["stage"] = int(f["stage"]) - 2
        if "bn" in f:
            f["layer"] = "bn" if f.pop("bn") else "conv"
        if "nl" in f:
            f["nl"] = _NL[f["nl"]]
        return template.format(**f)
    raise ConversionError(f"Caffe2 blob '{blob}' ({psf}) has no counterpart in a single-pathway NonLocalNet")


def caffe2_blobs_to_mmzoo(blobs: Mapping[str, np.ndarray], bn_eps: float = CAFFE2_BN_EPS) -> "OrderedDict[str, torch.Tensor]":
    """Rename and reshape Caffe2 blobs to a `NonLocalNet` state dict.

    BN layers get `num_batches_tracked = 0`; a frozen-BN ("affine") layer, which has only a scale
    and a shift, gets running mean 0 and running variance `1 - eps`, so that the BN computes
    exactly `x * s + b`. A Fast-pathway (`t_*`) blob is an error: such files are SlowFast's."""
    out: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    for blob, value in blobs.items():
        if not isinstance(value, np.ndarray):
            if blob in ("model_iter", "lr") or blob.endswith("_momentum"):
                continue
            raise ConversionError(f"Caffe2 blob '{blob}' is a {type(value).__name__}, not an array")
        psf = caffe2_to_pyslowfast_name(blob)
        if psf is None:
            continue
        if re.match(r"s\d\.pathway1|s\d_fuse", psf):
            raise ConversionError(f"Caffe2 blob '{blob}' belongs to a SlowFast network (two pathways), not a C2D / I3D")
        name = _mmzoo_name(psf, blob)
        t = torch.as_tensor(np.ascontiguousarray(value)).float().clone()
        if name == "head.fc.weight" and t.dim() == 5:
            t = t.flatten(1)
        out[name] = t
    for key in [k for k in out if k.endswith(".bn.weight") or re.search(r"\.bn(_[abc])?\.weight$", k)]:
        base = key[: -len("weight")]
        if base + "running_mean" not in out:
            n = out[key].numel()
            out[base + "running_mean"] = torch.zeros(n)
            out[base + "running_var"] = torch.full((n,), 1.0 - bn_eps)
        out[base + "num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    return out


def convert_nonlocal_caffe2(path: Union[str, Path]) -> "OrderedDict[str, torch.Tensor]":
    """video-nonlocal-net / PySlowFast Caffe2 `.pkl` -> mmzoo `NonLocalNet` state dict."""
    ckpt = restricted_load(path)
    if not isinstance(ckpt, Mapping) or "blobs" not in ckpt or not isinstance(ckpt["blobs"], Mapping):
        raise ConversionError(f"{path}: expected a Caffe2 pickle with a 'blobs' dict")
    try:
        return caffe2_blobs_to_mmzoo(ckpt["blobs"])
    except ConversionError as err:
        raise ConversionError(f"{path}: {err}") from err
