"""The batch contract between DataModules and models.

A batch is a dict; these are its documented fields. A DataModule fills the ones its dataset has
and lists them in its module docstring; a model reads only these names. The video a sample comes
from, for multi-view testing (several clips / crops of one video averaged), is always
``video_index``: an int64 tensor ``(B,)``, never a key to be guessed from ``meta``.
"""
from __future__ import annotations

from typing import Any, TypedDict

import torch

__all__ = ["Batch"]


class Batch(TypedDict, total=False):
    """One collated batch (every field optional; which ones a dataset fills is its docstring's).

    Fields:
        video: float ``(B, C, T, H, W)``, normalised; a list ``[slow, fast]`` when the DataModule
            packs SlowFast pathways.
        audio: waveform ``(B, S)``, or log-mel ``(B, 1, T, F)`` (time before frequency).
        label: int64 ``(B,)`` (one class), ``(B, T)`` (per segment / per frame) or float
            ``(B, K)`` (multi-label).
        verb_label / noun_label: int64 ``(B,)`` (EPIC-Kitchens).
        video_index: int64 ``(B,)``: which video each view belongs to, for multi-view averaging.
        boxes / box_labels: per-sample lists of ``(N, 4)`` xyxy float boxes and ``(N,)`` labels.
        text: per-sample lists of strings (captions, queries).
        features: name -> float tensor, for datasets distributed as pre-extracted features.
        meta: per-sample dicts for bookkeeping and error messages (source file, annotation row,
            clip index, original size ...). Models never read labels or indices from it.
    """

    video: torch.Tensor | list[torch.Tensor]
    audio: torch.Tensor
    label: torch.Tensor
    verb_label: torch.Tensor
    noun_label: torch.Tensor
    video_index: torch.Tensor
    boxes: list[torch.Tensor]
    box_labels: list[torch.Tensor]
    text: list[Any]
    features: dict[str, torch.Tensor]
    meta: list[dict[str, Any]]
