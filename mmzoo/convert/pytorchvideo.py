"""Converters from PyTorchVideo and PySlowFast SlowFast checkpoints to mmzoo state dicts.

Three source formats, one target (`mmzoo.models.slowfast.SlowFast`):

* PyTorchVideo model-zoo files (`.pyth`, e.g. `kinetics/SLOWFAST_8x8_R50.pyth`): a torch
  pickle `{"model_state": state_dict, ...}` of `pytorchvideo.models.slowfast.create_slowfast`
  (`blocks.0` stems + first fusion, `blocks.1-4` res2-res5 with `multipathway_fusion` after
  res2-res4, `blocks.6.proj` the classifier);
* PySlowFast PyTorch checkpoints (`.pyth`, `{"model_state": ...}` with `s1.pathway0_stem`,
  `s2.pathway1_res0.branch2.a_bn`, `s1_fuse.conv_f2s`, `s4.pathway0_nonlocal6.conv_theta`,
  `head.projection` names);
* PySlowFast / Caffe2 model-zoo pickles (`.pkl`, e.g. `kinetics400/SLOWFAST_4x16_R50.pkl`): a
  Python pickle `{"blobs": {name: ndarray}}` with Caffe2 names (`conv1_w`, `res_conv1_bn_s`,
  `res2_0_branch2a_bn_riv`, `t_res3_0_branch1_w` for the Fast pathway,
  `t_pool1_subsample_w` / `t_res2_2_branch2c_bn_subsample_bn_s` for the Fast->Slow fusions,
  `pred_w`); Caffe2 solver blobs (`*_momentum`, `lr`, `model_iter`) are ignored.

Each converter returns the state dict of the full Lightning module (`backbone.*`, `head.*`).
Reading these files unpickles them: convert only files from a source you trust.
"""
from __future__ import annotations

import pickle
import re
from collections import OrderedDict
from pathlib import Path
from typing import Mapping, Union

import numpy as np
import torch

from mmzoo.errors import ConversionError as _ConversionError
from mmzoo.safe_pickle import restricted_load

__all__ = [
    "convert_pytorchvideo_slowfast",
    "convert_pyslowfast",
    "convert_pyslowfast_caffe2",
    "pytorchvideo_to_mmzoo",
    "pyslowfast_to_mmzoo",
    "caffe2_to_pyslowfast_name",
]

_PATHWAYS = {"0": "slow", "1": "fast"}
_BN_FIELDS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


class ConversionError(_ConversionError):
    """A checkpoint key that no rule maps, or a file that is not in the expected format."""


def _load_torch_state(path: Union[str, Path], allow_pickle: bool = False) -> Mapping[str, torch.Tensor]:
    """The model state of a PyTorch checkpoint, read with torch's restricted (weights_only)
    unpickler; full unpickling, which can run code from the file, only with `allow_pickle`
    (`mmzoo convert`, after its trust notice)."""
    try:
        ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if not allow_pickle:
            raise ConversionError(
                f"{path} holds Python objects besides tensors, which only full unpickling can read, and "
                f"that can run code from the file ({str(err).splitlines()[0]}). If you trust its source, "
                f"convert it explicitly: `mmzoo convert <id.tag> {path}`."
            ) from err
        ckpt = torch.load(str(path), map_location="cpu", weights_only=False)
    if isinstance(ckpt, Mapping) and "model_state" in ckpt:
        return ckpt["model_state"]
    if isinstance(ckpt, Mapping) and "state_dict" in ckpt:
        return ckpt["state_dict"]
    if isinstance(ckpt, Mapping) and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        return ckpt
    raise ConversionError(f"{path}: expected a checkpoint dict with a 'model_state' entry")


# --------------------------------------------------------------------------- PyTorchVideo
_PTV_BLOCK = {"conv_a": "conv_a", "norm_a": "bn_a", "conv_b": "conv_b", "norm_b": "bn_b", "conv_c": "conv_c", "norm_c": "bn_c"}


def _ptv_key(key: str) -> str:
    m = re.fullmatch(r"blocks\.0\.multipathway_blocks\.([01])\.(conv|norm)\.(\w+)", key)
    if m:
        return f"backbone.{_PATHWAYS[m[1]]}.stem.{'conv' if m[2] == 'conv' else 'bn'}.{m[3]}"
    m = re.fullmatch(r"blocks\.([0-3])\.multipathway_fusion\.(conv_fast_to_slow|norm)\.(\w+)", key)
    if m:
        return f"backbone.f2s.{m[1]}.{'conv' if m[2] == 'conv_fast_to_slow' else 'bn'}.{m[3]}"
    m = re.fullmatch(r"blocks\.([1-4])\.multipathway_blocks\.([01])\.res_blocks\.(\d+)\.(.+)", key)
    if m:
        stage, path, blk, rest = int(m[1]) - 1, _PATHWAYS[m[2]], m[3], m[4]
        prefix = f"backbone.{path}.stages.{stage}.blocks.{blk}"
        b = re.fullmatch(r"branch1_(conv|norm)\.(\w+)", rest)
        if b:
            return f"{prefix}.shortcut.{'conv' if b[1] == 'conv' else 'bn'}.{b[2]}"
        b = re.fullmatch(r"branch2\.(conv_[abc]|norm_[abc])\.(\w+)", rest)
        if b:
            return f"{prefix}.{_PTV_BLOCK[b[1]]}.{b[2]}"
    m = re.fullmatch(r"blocks\.\d+\.proj\.(weight|bias)", key)
    if m:
        return f"head.fc.{m[1]}"
    raise ConversionError(f"no mmzoo parameter for PyTorchVideo key '{key}'")


def pytorchvideo_to_mmzoo(state: Mapping[str, torch.Tensor]) -> "OrderedDict[str, torch.Tensor]":
    """Rename a `create_slowfast` state dict to mmzoo's SlowFast names (tensors unchanged)."""
    return OrderedDict((_ptv_key(k), v.clone()) for k, v in state.items())


def convert_pytorchvideo_slowfast(path: Union[str, Path], allow_pickle: bool = False) -> "OrderedDict[str, torch.Tensor]":
    """PyTorchVideo model-zoo `.pyth` -> mmzoo SlowFast state dict."""
    return pytorchvideo_to_mmzoo(_load_torch_state(path, allow_pickle))


# --------------------------------------------------------------------------- PySlowFast
_PSF_BLOCK = {"a": "conv_a", "a_bn": "bn_a", "b": "conv_b", "b_bn": "bn_b", "c": "conv_c", "c_bn": "bn_c"}
_PSF_NL = {"conv_theta": "theta", "conv_phi": "phi", "conv_g": "g", "conv_out": "out", "bn": "bn"}


def _psf_key(key: str) -> str:
    m = re.fullmatch(r"s1\.pathway([01])_stem\.(conv|bn)\.(\w+)", key)
    if m:
        return f"backbone.{_PATHWAYS[m[1]]}.stem.{m[2]}.{m[3]}"
    m = re.fullmatch(r"s([1-4])_fuse\.(conv_f2s|bn)\.(\w+)", key)
    if m:
        return f"backbone.f2s.{int(m[1]) - 1}.{'conv' if m[2] == 'conv_f2s' else 'bn'}.{m[3]}"
    m = re.fullmatch(r"s([2-5])\.pathway([01])_res(\d+)\.(.+)", key)
    if m:
        prefix = f"backbone.{_PATHWAYS[m[2]]}.stages.{int(m[1]) - 2}.blocks.{m[3]}"
        rest = m[4]
        b = re.fullmatch(r"branch1(_bn)?\.(\w+)", rest)
        if b:
            return f"{prefix}.shortcut.{'bn' if b[1] else 'conv'}.{b[2]}"
        b = re.fullmatch(r"branch2\.(a|a_bn|b|b_bn|c|c_bn)\.(\w+)", rest)
        if b:
            return f"{prefix}.{_PSF_BLOCK[b[1]]}.{b[2]}"
    m = re.fullmatch(r"s([2-5])\.pathway0_nonlocal(\d+)\.(conv_theta|conv_phi|conv_g|conv_out|bn)\.(\w+)", key)
    if m:
        return f"backbone.slow.stages.{int(m[1]) - 2}.nonlocal_blocks.{m[2]}.{_PSF_NL[m[3]]}.{m[4]}"
    m = re.fullmatch(r"head\.projection\.(weight|bias)", key)
    if m:
        return f"head.fc.{m[1]}"
    raise ConversionError(f"no mmzoo parameter for PySlowFast key '{key}'")


def pyslowfast_to_mmzoo(state: Mapping[str, torch.Tensor]) -> "OrderedDict[str, torch.Tensor]":
    """Rename a PySlowFast SlowFast state dict (PyTorch names) to mmzoo's names."""
    out: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    for k, v in state.items():
        k = k[len("module."):] if k.startswith("module.") else k
        out[_psf_key(k)] = v.clone()
    return out


def convert_pyslowfast(path: Union[str, Path], allow_pickle: bool = False) -> "OrderedDict[str, torch.Tensor]":
    """PySlowFast PyTorch checkpoint (`{"model_state": ...}`) -> mmzoo SlowFast state dict."""
    return pyslowfast_to_mmzoo(_load_torch_state(path, allow_pickle))


_C2_RULES: list[tuple[str, str]] = [
    (r"^nonlocal_conv(\d+)_(\d+)_(theta|phi|g|out)_([wb])$", r"s\1.pathway0_nonlocal\2.conv_\3.\4"),
    (r"^nonlocal_conv(\d+)_(\d+)_bn_(s|b|rm|riv)$", r"s\1.pathway0_nonlocal\2.bn.\3"),
    (r"^t_pool1_subsample_bn_(s|b|rm|riv)$", r"s1_fuse.bn.\1"),
    (r"^t_pool1_subsample_([wb])$", r"s1_fuse.conv_f2s.\1"),
    (r"^t_res(\d+)_\d+_branch2c_bn_subsample_bn_(s|b|rm|riv)$", r"s\1_fuse.bn.\2"),
    (r"^t_res(\d+)_\d+_branch2c_bn_subsample_([wb])$", r"s\1_fuse.conv_f2s.\2"),
    (r"^(t_)?res(\d+)_(\d+)_branch2([abc])_bn_(s|b|rm|riv)$", r"s\2.pathway{p}_res\3.branch2.\4_bn.\5"),
    (r"^(t_)?res(\d+)_(\d+)_branch2([abc])_([wb])$", r"s\2.pathway{p}_res\3.branch2.\4.\5"),
    (r"^(t_)?res(\d+)_(\d+)_branch1_bn_(s|b|rm|riv)$", r"s\2.pathway{p}_res\3.branch1_bn.\4"),
    (r"^(t_)?res(\d+)_(\d+)_branch1_([wb])$", r"s\2.pathway{p}_res\3.branch1.\4"),
    (r"^(t_)?res_conv1_bn_(s|b|rm|riv)$", r"s1.pathway{p}_stem.bn.\2"),
    (r"^(t_)?conv1_([wb])$", r"s1.pathway{p}_stem.conv.\2"),
    (r"^pred_([wb])$", r"head.projection.\1"),
]
_C2_SUFFIX = {"w": "weight", "b": "bias", "s": "weight", "rm": "running_mean", "riv": "running_var"}
_C2_IGNORED = re.compile(r"(_momentum$|^lr$|^model_iter$|^lr_.*|_grad$)")


def caffe2_to_pyslowfast_name(name: str) -> str | None:
    """PySlowFast (PyTorch) name of a Caffe2 blob; None for solver blobs (momentum, lr, ...)."""
    if _C2_IGNORED.search(name):
        return None
    for pattern, repl in _C2_RULES:
        m = re.match(pattern, name)
        if m:
            pathway = "1" if (m.groups() and m.group(1) == "t_") else "0"
            out = re.sub(pattern, repl, name).replace("{p}", pathway)
            head, _, last = out.rpartition(".")
            return f"{head}.{_C2_SUFFIX[last]}"
    raise ConversionError(f"no rule for Caffe2 blob '{name}'")


def convert_pyslowfast_caffe2(path: Union[str, Path]) -> "OrderedDict[str, torch.Tensor]":
    """PySlowFast / Caffe2 model-zoo `.pkl` (`{"blobs": {...}}`) -> mmzoo SlowFast state dict.

    BN layers get `num_batches_tracked = 0` (Caffe2 has no such counter). The file is a pickle of
    numpy arrays, read with the restricted unpickler (no code from it can run)."""
    ckpt = restricted_load(path)
    if not isinstance(ckpt, Mapping) or "blobs" not in ckpt:
        raise ConversionError(f"{path}: expected a Caffe2 pickle with a 'blobs' dict")
    psf: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    for name, value in ckpt["blobs"].items():
        target = caffe2_to_pyslowfast_name(name)
        if target is not None:
            psf[target] = torch.as_tensor(np.ascontiguousarray(value)).clone()
    out = pyslowfast_to_mmzoo(psf)
    for k in list(out):
        if k.endswith(".running_mean"):
            out[k[: -len("running_mean")] + "num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    return out
