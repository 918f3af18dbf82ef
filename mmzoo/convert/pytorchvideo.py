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

Single-pathway ResNets (`mmzoo.models.nonlocal_net.NonLocalNet`): PyTorchVideo's `c2d_r50` /
`i3d_r50` model-zoo files (`kinetics/C2D_8x8_R50.pyth`, `kinetics/I3D_8x8_R50.pyth`), made by
`pytorchvideo.models.resnet.create_resnet`: `blocks.0` the stem (`conv`, `norm`), the stages
`blocks.k.res_blocks.i.{branch1_conv, branch1_norm, branch2.conv_a, branch2.norm_a, ...}` (the
parameter-free stage-1 pool takes one `blocks` index), `blocks.<last>.proj` the classifier.
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

from mmzoo.errors import ConversionError
from mmzoo.safe_pickle import restricted_load

__all__ = [
    "convert_pytorchvideo_slowfast",
    "convert_pyslowfast",
    "convert_pyslowfast_caffe2",
    "pytorchvideo_to_mmzoo",
    "pyslowfast_to_mmzoo",
    "caffe2_to_pyslowfast_name",
    "convert_pytorchvideo_resnet",
    "pytorchvideo_resnet_to_mmzoo",
]

_PATHWAYS = {"0": "slow", "1": "fast"}


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


# --------------------------------------------------------------------------- renaming tables
# A rule is (pattern, template, stage offset). Named groups feed the template after mapping:
# `pw` (pathway index) -> "slow" / "fast", `kind` (the source's layer word) -> "conv" / "bn",
# `nl` (non-local sub-layer) -> mmzoo's name, `stage` -> the source's stage number minus the offset.
_Rule = tuple[str, str, int]
_LAYER = {"conv": "conv", "conv_fast_to_slow": "conv", "conv_f2s": "conv", "": "conv",
          "norm": "bn", "bn": "bn", "_bn": "bn"}
_PSF_NL = {"conv_theta": "theta", "conv_phi": "phi", "conv_g": "g", "conv_out": "out", "bn": "bn"}
_BLOCK = "backbone.{pw}.stages.{stage}.blocks.{blk}"

_PTV_RULES: list[_Rule] = [
    (r"blocks\.0\.multipathway_blocks\.(?P<pw>[01])\.(?P<kind>conv|norm)\.(?P<p>\w+)", "backbone.{pw}.stem.{kind}.{p}", 0),
    (r"blocks\.(?P<stage>[0-3])\.multipathway_fusion\.(?P<kind>conv_fast_to_slow|norm)\.(?P<p>\w+)",
     "backbone.f2s.{stage}.{kind}.{p}", 0),
    (r"blocks\.(?P<stage>[1-4])\.multipathway_blocks\.(?P<pw>[01])\.res_blocks\.(?P<blk>\d+)"
     r"\.branch1_(?P<kind>conv|norm)\.(?P<p>\w+)", _BLOCK + ".shortcut.{kind}.{p}", 1),
    (r"blocks\.(?P<stage>[1-4])\.multipathway_blocks\.(?P<pw>[01])\.res_blocks\.(?P<blk>\d+)"
     r"\.branch2\.(?P<kind>conv|norm)_(?P<x>[abc])\.(?P<p>\w+)", _BLOCK + ".{kind}_{x}.{p}", 1),
    (r"blocks\.\d+\.proj\.(?P<p>weight|bias)", "head.fc.{p}", 0),
]
_PSF_RULES: list[_Rule] = [
    (r"s1\.pathway(?P<pw>[01])_stem\.(?P<kind>conv|bn)\.(?P<p>\w+)", "backbone.{pw}.stem.{kind}.{p}", 0),
    (r"s(?P<stage>[1-4])_fuse\.(?P<kind>conv_f2s|bn)\.(?P<p>\w+)", "backbone.f2s.{stage}.{kind}.{p}", 1),
    (r"s(?P<stage>[2-5])\.pathway(?P<pw>[01])_res(?P<blk>\d+)\.branch1(?P<kind>|_bn)\.(?P<p>\w+)",
     _BLOCK + ".shortcut.{kind}.{p}", 2),
    (r"s(?P<stage>[2-5])\.pathway(?P<pw>[01])_res(?P<blk>\d+)\.branch2\.(?P<x>[abc])(?P<kind>|_bn)\.(?P<p>\w+)",
     _BLOCK + ".{kind}_{x}.{p}", 2),
    (r"s(?P<stage>[2-5])\.pathway0_nonlocal(?P<blk>\d+)\.(?P<nl>conv_theta|conv_phi|conv_g|conv_out|bn)\.(?P<p>\w+)",
     "backbone.slow.stages.{stage}.nonlocal_blocks.{blk}.{nl}.{p}", 2),
    (r"head\.projection\.(?P<p>weight|bias)", "head.fc.{p}", 0),
]


def _rename(key: str, rules: list[_Rule], source: str) -> str:
    """mmzoo's name for `key` by the first matching rule; a key no rule maps is an error."""
    for pattern, template, offset in rules:
        m = re.fullmatch(pattern, key)
        if m is None:
            continue
        fields = m.groupdict()
        if "pw" in fields:
            fields["pw"] = _PATHWAYS[fields["pw"]]
        if "kind" in fields:
            fields["kind"] = _LAYER[fields["kind"]]
        if "nl" in fields:
            fields["nl"] = _PSF_NL[fields["nl"]]
        if "stage" in fields:
            fields["stage"] = int(fields["stage"]) - offset
        return template.format(**fields)
    raise ConversionError(f"no mmzoo parameter for {source} key '{key}'")


# --------------------------------------------------------------------------- PyTorchVideo
def pytorchvideo_to_mmzoo(state: Mapping[str, torch.Tensor]) -> "OrderedDict[str, torch.Tensor]":
    """Rename a `create_slowfast` state dict to mmzoo's SlowFast names (tensors unchanged)."""
    return OrderedDict((_rename(k, _PTV_RULES, "PyTorchVideo"), v.clone()) for k, v in state.items())


def convert_pytorchvideo_slowfast(path: Union[str, Path], allow_pickle: bool = False) -> "OrderedDict[str, torch.Tensor]":
    """PyTorchVideo model-zoo `.pyth` -> mmzoo SlowFast state dict."""
    return pytorchvideo_to_mmzoo(_load_torch_state(path, allow_pickle))


# --------------------------------------------------------------------------- PySlowFast
def pyslowfast_to_mmzoo(state: Mapping[str, torch.Tensor]) -> "OrderedDict[str, torch.Tensor]":
    """Rename a PySlowFast SlowFast state dict (PyTorch names) to mmzoo's names."""
    out: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    for k, v in state.items():
        k = k[len("module."):] if k.startswith("module.") else k
        out[_rename(k, _PSF_RULES, "PySlowFast")] = v.clone()
    return out


def convert_pyslowfast(path: Union[str, Path], allow_pickle: bool = False) -> "OrderedDict[str, torch.Tensor]":
    """PySlowFast PyTorch checkpoint (`{"model_state": ...}`) -> mmzoo SlowFast state dict."""
    return pyslowfast_to_mmzoo(_load_torch_state(path, allow_pickle))


# One row per Caffe2 layer: (conv blob prefix, its BN's blob prefix or None, PySlowFast conv
# module, PySlowFast BN module). A leading `(t_)?` marks the Fast pathway ({p} in the targets).
_C2_LAYERS: list[tuple[str, str | None, str, str | None]] = [
    (r"nonlocal_conv(\d+)_(\d+)_(theta|phi|g|out)", r"nonlocal_conv(\d+)_(\d+)_bn",
     r"s\1.pathway0_nonlocal\2.conv_\3", r"s\1.pathway0_nonlocal\2.bn"),
    (r"t_pool1_subsample", r"t_pool1_subsample_bn", "s1_fuse.conv_f2s", "s1_fuse.bn"),
    (r"t_res(\d+)_\d+_branch2c_bn_subsample", r"t_res(\d+)_\d+_branch2c_bn_subsample_bn",
     r"s\1_fuse.conv_f2s", r"s\1_fuse.bn"),
    (r"(t_)?res(\d+)_(\d+)_branch2([abc])", r"(t_)?res(\d+)_(\d+)_branch2([abc])_bn",
     r"s\2.pathway{p}_res\3.branch2.\4", r"s\2.pathway{p}_res\3.branch2.\4_bn"),
    (r"(t_)?res(\d+)_(\d+)_branch1", r"(t_)?res(\d+)_(\d+)_branch1_bn",
     r"s\2.pathway{p}_res\3.branch1", r"s\2.pathway{p}_res\3.branch1_bn"),
    (r"(t_)?conv1", r"(t_)?res_conv1_bn", "s1.pathway{p}_stem.conv", "s1.pathway{p}_stem.bn"),
    (r"pred", None, "head.projection", None),
]


def _c2_rules() -> list[tuple[str, str]]:
    """(blob pattern, target) pairs: a conv's `_w` / `_b` and a BN's `_s` / `_b` / `_rm` / `_riv`."""
    rules = []
    for conv, bn, conv_target, bn_target in _C2_LAYERS:
        for prefix, params, target in ((bn, "s|b|rm|riv", bn_target), (conv, "w|b", conv_target)):
            if prefix is not None:
                suffix = re.compile(prefix).groups + 1
                rules.append((rf"^{prefix}_({params})$", rf"{target}.\g<{suffix}>"))
    return rules


_C2_RULES = _c2_rules()
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


# --------------------------------------------------------------------------- PyTorchVideo ResNet
_PTV_RESNET_BLOCK = re.compile(
    r"blocks\.(?P<k>\d+)\.res_blocks\.(?P<blk>\d+)\.(?:branch1_(?P<sc>conv|norm)|branch2\.(?P<kind>conv|norm)_(?P<x>[abc]))"
    r"\.(?P<p>\w+)"
)


def pytorchvideo_resnet_to_mmzoo(state: Mapping[str, torch.Tensor]) -> "OrderedDict[str, torch.Tensor]":
    """Rename a `create_resnet` (c2d_r50 / i3d_r50) state dict to `NonLocalNet`'s names; the
    stages are the `blocks` entries holding `res_blocks`, in order (tensors unchanged)."""
    stage_blocks = sorted({int(m.group("k")) for k in state if (m := _PTV_RESNET_BLOCK.fullmatch(k))})
    if len(stage_blocks) != 4:
        raise ConversionError(f"expected the 4 residual stages of a PyTorchVideo ResNet, found blocks {stage_blocks}")
    stage_of = {k: i for i, k in enumerate(stage_blocks)}
    out: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    for key, v in state.items():
        if (m := re.fullmatch(r"blocks\.0\.(?P<kind>conv|norm)\.(?P<p>\w+)", key)):
            name = f"backbone.stem.{_LAYER[m.group('kind')]}.{m.group('p')}"
        elif (m := _PTV_RESNET_BLOCK.fullmatch(key)):
            prefix = f"backbone.stages.{stage_of[int(m.group('k'))]}.blocks.{m.group('blk')}"
            if m.group("sc"):
                name = f"{prefix}.shortcut.{_LAYER[m.group('sc')]}.{m.group('p')}"
            else:
                name = f"{prefix}.{_LAYER[m.group('kind')]}_{m.group('x')}.{m.group('p')}"
        elif (m := re.fullmatch(r"blocks\.\d+\.proj\.(?P<p>weight|bias)", key)):
            name = f"head.fc.{m.group('p')}"
        else:
            raise ConversionError(f"no mmzoo parameter for PyTorchVideo ResNet key '{key}'")
        out[name] = v.clone()
    return out


def convert_pytorchvideo_resnet(path: Union[str, Path], allow_pickle: bool = False) -> "OrderedDict[str, torch.Tensor]":
    """PyTorchVideo model-zoo `.pyth` of `c2d_r50` / `i3d_r50` -> mmzoo `NonLocalNet` state dict."""
    return pytorchvideo_resnet_to_mmzoo(_load_torch_state(path, allow_pickle))
