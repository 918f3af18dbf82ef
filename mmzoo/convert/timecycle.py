"""The authors' TimeCycle checkpoint (xiaolonw/TimeCycle, ``checkpoint_14.pth.tar``) -> mmzoo.

The file is ``torch.save({"epoch": ..., "state_dict": DataParallel(CycleTime).state_dict()})``:
keys ``module.encoderVideo.<resnet>`` (an inflated ResNet-50 whose convs are 5D with a time
kernel of 1, including an unused ``layer4``), ``module.afterconv1.weight`` (the 1x1x1 conv to
512 channels), ``module.afterconv3_trans.weight`` / ``afterconv4_trans.weight`` / ``linear2.*``
(the localizer). It is read with torch's restricted (weights_only) unpickler, so no code from the
file runs; full unpickling only with ``allow_pickle`` (``mmzoo convert``, after its notice).

Mapping: 5D convs lose their time axis; ``layer4`` is dropped (the thesis's encoder has no
res5); BN ``num_batches_tracked`` (absent from PyTorch 0.4 files) is filled with 0. The authors'
affinity enumerates image positions column-major (they transpose the frame features "for the
inlier counter"); mmzoo's is row-major, so the input channels of the localizer's first conv are
permuted accordingly.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import torch

from mmzoo.convert.pytorchvideo import _load_torch_state
from mmzoo.errors import ConversionError

__all__ = ["column_to_row_major", "convert_timecycle", "timecycle_to_mmzoo"]

_RENAME = {"afterconv1.weight": "encoder.afterconv1.weight", "afterconv3_trans.weight": "localizer.conv1.weight",
           "afterconv4_trans.weight": "localizer.conv2.weight", "linear2.weight": "localizer.linear.weight",
           "linear2.bias": "localizer.linear.bias"}


def column_to_row_major(positions: int) -> torch.Tensor:
    """Index ``perm`` with ``ours[:, y * S + x] = theirs[:, perm[y * S + x]] = theirs[:, x * S + y]``."""
    side = math.isqrt(positions)
    if side * side != positions:
        raise ConversionError(f"the localizer's first conv takes {positions} channels, not a square number of positions")
    return torch.arange(positions).view(side, side).t().reshape(-1)


def timecycle_to_mmzoo(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename and reshape an authors' ``state_dict`` (with or without ``module.``)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        name = key.removeprefix("module.")
        if name.startswith("encoderVideo.layer4."):
            continue
        if name.startswith("encoderVideo."):
            new = "encoder." + name[len("encoderVideo."):]
        elif name in _RENAME:
            new = _RENAME[name]
        else:
            raise ConversionError(f"unexpected tensor {key!r} in a TimeCycle checkpoint")
        if value.dim() == 5:
            if value.shape[2] != 1:
                raise ConversionError(f"{key}: expected a time kernel of 1, got shape {tuple(value.shape)}")
            value = value[:, :, 0]
        if new == "localizer.conv1.weight":
            value = value[:, column_to_row_major(value.shape[1])]
        out[new] = value.contiguous()
    if "localizer.conv1.weight" not in out or "encoder.conv1.weight" not in out:
        raise ConversionError("not a TimeCycle CycleTime state dict: no encoderVideo.conv1 / afterconv3_trans weights")
    for key in [k for k in out if k.endswith(".running_var")]:
        out.setdefault(key[: -len("running_var")] + "num_batches_tracked", torch.tensor(0, dtype=torch.long))
    return out


def convert_timecycle(path: str | Path, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """`Weights.converter` of ``timecycle-r50.vlog``: the authors' ``.pth.tar`` -> mmzoo state dict."""
    return timecycle_to_mmzoo(_load_torch_state(path, allow_pickle=allow_pickle))
