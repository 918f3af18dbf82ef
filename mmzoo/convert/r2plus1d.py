"""Converter of the released IG-65M R(2+1)D-34 checkpoints (Ghadiyaram et al., CVPR 2019).

The weights the VMZ PyTorch code (github.com/facebookresearch/VMZ, ``pt/vmz/models/utils.py``)
and github.com/moabitcoin/ig65m-pytorch load: ``r2plus1d_34_clip32_ig65m_from_scratch-449a7af9.pth``
(IG-65M pre-training, 359 classes), ``r2plus1d_34_clip32_ft_kinetics_from_ig65m-ade133f1.pth``
(fine-tuned on Kinetics-400), and the 8-frame variants: plain state dicts in torchvision's
VideoResNet layout (``stem.0.weight``, ``layer1.0.conv1.0.0.weight``, ``layer4.0.downsample.1.bias``,
``fc.weight``), which :class:`mmzoo.nn.r2plus1d.R2Plus1dResNet` shares.

Read with torch's weights-only unpickler (no code from the file can run).
"""
from __future__ import annotations

from pathlib import Path

import torch

from mmzoo.convert.pytorchvideo import _load_torch_state
from mmzoo.errors import ConversionError
from mmzoo.nn.r2plus1d import r2plus1d_state_from_vmz

__all__ = ["convert_ig65m_r2plus1d"]


def convert_ig65m_r2plus1d(path: str | Path, keep_fc: bool = True, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """IG-65M / Kinetics R(2+1)D-34 ``.pth`` -> :class:`~mmzoo.nn.r2plus1d.R2Plus1dResNet` state dict."""
    state = _load_torch_state(path, allow_pickle)
    try:
        return r2plus1d_state_from_vmz(dict(state), keep_fc=keep_fc)
    except KeyError as e:
        raise ConversionError(f"{path}: {e.args[0]}") from None
