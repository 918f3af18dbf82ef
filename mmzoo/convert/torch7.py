"""Convert the STMN authors' Torch7 checkpoints (``stmn.t7``, ``rfcn.t7``) to mmzoo state dicts.

The files are Lua Torch 7 serialisations of ``nn`` module trees (github.com/fanyix/STMN,
``models/model.lua``); they are read with the ``torchfile`` package (no Lua needed). The
conversion flattens the module tree depth-first and keeps the layers that carry parameters:

* convolutions (``nn`` / ``cudnn`` ``SpatialConvolution``, ``SpatialDilatedConvolution``):
  weight (``[out, in, kh, kw]`` or the flattened ``[out, in*kh*kw]``) and optional bias;
* batch norms (``SpatialBatchNormalization``): weight, bias, running mean / var (or the older
  ``running_std`` = 1/sqrt(var+eps));
* affine layers left by the authors' BN folding (any module with 1-D ``weight`` and ``bias``
  and no running statistics): become a frozen BN with zero mean and unit variance;
* ``nn.STMM``: its six named convolutions (``conv_z_w``, ``conv_r_w``, ``conv_w``,
  ``conv_z_u``, ``conv_r_u``, ``conv_u``).

These layers are matched, in order, to the corresponding mmzoo layers (timm ResNet trunk,
dilated reduce conv, embedding, replaced conv or the two STMMs, post conv, R-FCN head), with a
shape check on every tensor: a mismatch in count or shape raises, naming the layer. A
convolution that carries a bias where mmzoo has conv + BN (the authors folded the early BNs
into the convs) sets that BN to the identity plus the bias.

Limits (also in the model cards): the authors' detector reads precomputed proposals and has no
proposal network, so the RPN of the converted model keeps its initialisation and a warning says
so (pass the authors' proposals to ``STMN.forward(..., proposals=...)``); the STMN checkpoint
holds no single-frame R-FCN branch: :func:`convert_stmn_r101` (the ``mmzoo convert`` entry)
fills it from ``rfcn.t7`` found next to ``stmn.t7``; :func:`convert_stmn_r101_single` converts for
``ensemble="none"``. The
mapping has been checked on files written in the Torch7 format by the tests, not on the real
Google Drive files (not downloadable here).
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from mmzoo.errors import ConversionError
from mmzoo.hub.repo import load_state_dict_strict

__all__ = ["load_t7", "t7_layers", "convert_rfcn_r101", "convert_stmn_r101", "convert_stmn_r101_single",
           "convert_stmn_r101_with_rfcn",
           "Torch7FormatError"]

_STMM_FIELDS = ("conv_z_w", "conv_r_w", "conv_w", "conv_z_u", "conv_r_u", "conv_u")


class Torch7FormatError(ConversionError):
    """The file is not a Torch7 checkpoint of the expected architecture."""


def load_t7(path: str | Path) -> Any:
    """Read a Torch7 file with ``torchfile`` (clear errors for HTML pages and truncated files)."""
    import torchfile

    if not hasattr(torchfile, "xrange"):  # torchfile 0.1's 8-byte-long path still calls Python 2's xrange
        torchfile.xrange = range
    path = Path(path)
    head = path.read_bytes()[:512].lstrip().lower()
    if head.startswith(b"<!doctype html") or head.startswith(b"<html"):
        raise Torch7FormatError(f"{path}: this is an HTML page (Google Drive's download confirmation?), "
                                "not a Torch7 checkpoint; download the file itself")
    try:
        return torchfile.load(str(path), force_8bytes_long=True)
    except Exception as e:  # noqa: BLE001 - torchfile raises many types for bad input
        raise Torch7FormatError(f"{path}: cannot read as a Torch7 file ({type(e).__name__}: {e})") from e


def _typename(obj) -> str:
    t = getattr(obj, "torch_typename", None)
    name = t() if callable(t) else ""
    return name.decode() if isinstance(name, bytes) else str(name)


def _get(obj, key):
    try:
        v = obj[key]
    except (KeyError, TypeError, AttributeError, IndexError):
        v = None
    if v is None and isinstance(obj, dict):
        v = obj.get(key.encode()) if isinstance(key, str) else None
    return v


def _arr(x) -> torch.Tensor | None:
    if x is None or (isinstance(x, np.ndarray) and x.size == 0):
        return None
    return torch.from_numpy(np.ascontiguousarray(x)).float()


def _walk(obj) -> Iterator[Any]:
    yield obj
    if _typename(obj) == "nn.STMM":
        return  # its inner graph duplicates the named convs
    mods = _get(obj, "modules")
    if isinstance(mods, (list, tuple)):
        for m in mods:
            yield from _walk(m)


def t7_layers(root) -> list[dict]:
    """Parametric layers of a Torch7 module tree, depth-first: dicts with ``kind`` in
    {"conv", "bn", "affine", "linear"} and the tensors (STMM convs expanded in field order)."""
    out = []
    for m in _walk(root):
        name = _typename(m)
        if name == "nn.STMM":
            for f in _STMM_FIELDS:
                c = _get(m, f)
                if c is None:
                    raise Torch7FormatError(f"nn.STMM without its {f} convolution")
                out.append({"kind": "conv", "type": f"nn.STMM.{f}", "weight": _arr(_get(c, "weight")),
                            "bias": _arr(_get(c, "bias")), "kernel": (_get(c, "kH"), _get(c, "kW"))})
            continue
        if "Convolution" in name:
            out.append({"kind": "conv", "type": name, "weight": _arr(_get(m, "weight")), "bias": _arr(_get(m, "bias")),
                        "kernel": (_get(m, "kH"), _get(m, "kW"))})
        elif "BatchNormalization" in name:
            var = _arr(_get(m, "running_var"))
            if var is None and _get(m, "running_std") is not None:
                eps = float(_get(m, "eps") or 1e-5)
                var = 1.0 / _arr(_get(m, "running_std")) ** 2 - eps
            out.append({"kind": "bn", "type": name, "weight": _arr(_get(m, "weight")), "bias": _arr(_get(m, "bias")),
                        "mean": _arr(_get(m, "running_mean")), "var": var})
        elif name.endswith("Linear"):
            out.append({"kind": "linear", "type": name, "weight": _arr(_get(m, "weight")), "bias": _arr(_get(m, "bias"))})
        else:
            w, b = _arr(_get(m, "weight")), _arr(_get(m, "bias"))
            if w is not None and b is not None and w.dim() == 1 and _get(m, "running_mean") is None:
                out.append({"kind": "affine", "type": name, "weight": w, "bias": b})
    return out


def _target_slots(model: nn.Module, modules: list[nn.Module]) -> list[tuple[str, nn.Module]]:
    """(qualified name, module) of the conv / BN layers of ``modules`` in definition order."""
    names = {id(m): n for n, m in model.named_modules()}
    slots = []
    for top in modules:
        for m in top.modules():
            if isinstance(m, nn.Conv2d) or "BatchNorm" in type(m).__name__:
                slots.append((names[id(m)], m))
    return slots


def _assign(model: nn.Module, slots, layers: list[dict], what: str) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    i = 0
    n_slots = len(slots)
    k = 0
    while k < n_slots:
        name, mod = slots[k]
        if i >= len(layers):
            raise Torch7FormatError(f"{what}: the checkpoint ends before mmzoo layer {name}")
        src = layers[i]
        if isinstance(mod, nn.Conv2d):
            if src["kind"] != "conv":
                raise Torch7FormatError(f"{what}: layer {i} ({src['type']}) is not a convolution, mmzoo expects one for {name}")
            w = src["weight"]
            if w.numel() != mod.weight.numel():
                raise Torch7FormatError(f"{what}: {src['type']} #{i} has {tuple(w.shape)} weights, {name} needs {tuple(mod.weight.shape)}")
            state[f"{name}.weight"] = w.reshape(mod.weight.shape)
            nxt_is_bn = k + 1 < n_slots and "BatchNorm" in type(slots[k + 1][1]).__name__
            has_own_bn = i + 1 < len(layers) and layers[i + 1]["kind"] in ("bn", "affine")
            if mod.bias is not None:
                if src["bias"] is None:
                    state[f"{name}.bias"] = torch.zeros(mod.out_channels)
                else:
                    state[f"{name}.bias"] = src["bias"].reshape(-1)
            elif src["bias"] is not None and nxt_is_bn and not has_own_bn:
                # BN folded into this conv by the authors: identity BN carrying the bias
                bn_name, bn = slots[k + 1]
                c = mod.out_channels
                eps = getattr(bn, "eps", 1e-5)
                state.update({f"{bn_name}.weight": torch.ones(c), f"{bn_name}.bias": src["bias"].reshape(-1),
                              f"{bn_name}.running_mean": torch.zeros(c), f"{bn_name}.running_var": torch.full((c,), 1 - eps)})
                k += 1
            i += 1
        else:
            if src["kind"] not in ("bn", "affine"):
                raise Torch7FormatError(f"{what}: layer {i} ({src['type']}) is not a batch norm, mmzoo expects one for {name}")
            c = mod.weight.numel()
            if src["weight"].numel() != c:
                raise Torch7FormatError(f"{what}: {src['type']} #{i} has {src['weight'].numel()} channels, {name} needs {c}")
            eps = getattr(mod, "eps", 1e-5)
            state[f"{name}.weight"] = src["weight"].reshape(-1)
            state[f"{name}.bias"] = src["bias"].reshape(-1)
            state[f"{name}.running_mean"] = src["mean"].reshape(-1) if src.get("mean") is not None else torch.zeros(c)
            state[f"{name}.running_var"] = src["var"].reshape(-1) if src.get("var") is not None else torch.full((c,), 1 - eps)
            i += 1
        k += 1
    if i != len(layers):
        raise Torch7FormatError(f"{what}: {len(layers) - i} parametric layers of the checkpoint were not used "
                                f"(first: {layers[i]['type']}); the architecture differs")
    return state


def _complete(model: nn.Module, state: dict, what: str) -> dict[str, torch.Tensor]:
    full = {k: v.detach().clone() for k, v in model.state_dict().items()}
    missing = [k for k in full if k not in state and not k.startswith(("val_map", "test_map"))]
    if any(k.startswith("rpn.") for k in missing):
        warnings.warn(f"{what}: the authors' detector uses precomputed proposals and has no RPN; the converted "
                      "model's RPN keeps its initialisation (pass proposals to forward, or fine-tune the RPN).",
                      stacklevel=3)
    for k, v in state.items():
        if k not in full:
            raise Torch7FormatError(f"{what}: produced unknown key {k}")
        if full[k].shape != v.shape:
            raise Torch7FormatError(f"{what}: {k} has shape {tuple(v.shape)}, mmzoo needs {tuple(full[k].shape)}")
        full[k] = v.to(full[k].dtype)
    return full


def _build(model_id: str, **overrides):
    from mmzoo.registry import get_spec

    return get_spec(model_id).build(pretrained_backbone=False, **overrides)


def _rfcn_parts(model):
    return [model.backbone, model.reduce, model.embed, model.temporal, model.post, model.head]


def convert_rfcn_r101(path: str | Path, model: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """``rfcn.t7`` -> state dict of ``rfcn-r101`` (or of ``model``, an R-FCN-structured STMN)."""
    model = model or _build("rfcn-r101")
    layers = [layer for layer in t7_layers(load_t7(path)) if layer["kind"] != "linear"]
    state = _assign(model, _target_slots(model, _rfcn_parts(model)), layers, str(path))
    return _complete(model, state, str(path))


def convert_stmn_r101(path: str | Path) -> dict[str, torch.Tensor]:
    """``stmn.t7`` -> state dict of the registered ``stmn-r101`` (the `mmzoo convert` entry).

    The registered model ensembles with the single-frame R-FCN (as the thesis's inference does),
    whose layers are not in ``stmn.t7``: ``rfcn.t7`` must sit in the same folder (the layout of
    the authors' README, ``models/stmn.t7`` + ``models/rfcn.t7``). Without it this raises; use
    :func:`convert_stmn_r101_single` for ``mmzoo.create("stmn-r101", ensemble="none")``.
    """
    path = Path(path)
    rfcn = path.with_name("rfcn.t7")
    if not rfcn.is_file():
        raise Torch7FormatError(
            f"{rfcn} not found: stmn-r101 ensembles STMN with the authors' R-FCN, whose weights are in rfcn.t7; "
            "put rfcn.t7 next to stmn.t7, or convert for ensemble='none' with "
            "mmzoo.convert.torch7.convert_stmn_r101_single")
    return convert_stmn_r101_with_rfcn(path, rfcn)


def convert_stmn_r101_single(path: str | Path, model: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """``stmn.t7`` -> state dict of ``stmn-r101`` built with ``ensemble="none"`` (or of ``model``,
    an STMN without ensemble branch)."""
    model = model or _build("stmn-r101", ensemble="none")
    if model.ensemble_branch is not None:
        raise Torch7FormatError("convert_stmn_r101_single fills an STMN without ensemble branch; use "
                                "convert_stmn_r101_with_rfcn for ensemble != 'none'")
    layers = [layer for layer in t7_layers(load_t7(path)) if layer["kind"] != "linear"]
    state = _assign(model, _stmn_slots(model), layers, str(path))
    return _complete(model, state, str(path))


def _stmn_slots(model):
    slots = _target_slots(model, [model.backbone, model.reduce, model.embed])
    names = {id(m): n for n, m in model.named_modules()}
    for cell in (model.temporal.forward_cell, model.temporal.backward_cell):
        if cell is None:
            continue
        for f in ("w_z", "w_r", "w", "u_z", "u_r", "u"):
            conv = getattr(cell, f)
            slots.append((names[id(conv)], conv))
    slots += _target_slots(model, [model.post, model.head])
    return slots


def convert_stmn_r101_with_rfcn(stmn_path: str | Path, rfcn_path: str | Path, build=None) -> dict[str, torch.Tensor]:
    """``stmn.t7`` + ``rfcn.t7`` -> ``stmn-r101`` with its single-frame ensemble branch (replaced
    conv, post conv, head) filled from the R-FCN checkpoint. ``build(model_id, **overrides)``
    makes the models (default: the registry's full-size ids)."""
    build = build or _build
    model = build("stmn-r101")
    rfcn = build("rfcn-r101")
    load_state_dict_strict(rfcn, convert_rfcn_r101(rfcn_path, rfcn), str(rfcn_path))
    plain = build("stmn-r101", ensemble="none")
    load_state_dict_strict(plain, convert_stmn_r101_single(stmn_path, plain), str(stmn_path))
    state = dict(plain.state_dict())
    for prefix, src in (("ensemble_branch.conv.", rfcn.temporal), ("ensemble_branch.post.", rfcn.post),
                        ("ensemble_branch.head.", rfcn.head)):
        for k, v in src.state_dict().items():
            state[prefix + k] = v
    return _complete(model, state, f"{stmn_path} + {rfcn_path}")
