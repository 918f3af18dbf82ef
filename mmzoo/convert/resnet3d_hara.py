"""Converter of the Kinetics 3D ResNets of github.com/kenshohara/3D-ResNets-PyTorch (Hara et al.).

``resnet-50-kinetics.pth`` (2017 release) and ``r3d50_K_200ep.pth`` (2020 release) are training
checkpoints ``{"epoch", "arch", "state_dict", "optimizer"}`` whose state dict carries the
DataParallel ``module.`` prefix; :func:`mmzoo.nn.resnet3d_hara.hara_state_from_original` renames it
to :class:`~mmzoo.nn.resnet3d_hara.HaraResNet3d` (the optimizer state is ignored).

Read with torch's weights-only unpickler (no code from the file can run).
"""
from __future__ import annotations

from pathlib import Path

import torch

from mmzoo.convert.pytorchvideo import _load_torch_state
from mmzoo.errors import ConversionError
from mmzoo.nn.resnet3d_hara import hara_state_from_original

__all__ = ["convert_hara_resnet3d"]


def convert_hara_resnet3d(path: str | Path, keep_fc: bool = True, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """3D-ResNets-PyTorch checkpoint -> :class:`~mmzoo.nn.resnet3d_hara.HaraResNet3d` state dict."""
    state = _load_torch_state(path, allow_pickle)
    try:
        return hara_state_from_original(dict(state), keep_fc=keep_fc)
    except KeyError as e:
        raise ConversionError(f"{path}: {e.args[0]}") from None
