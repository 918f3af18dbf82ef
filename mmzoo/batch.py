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

    Fields (``B`` samples; the DataModule that emits each is in brackets):
        video: float ``(B, C, T, H, W)``, normalised; a list ``[slow, fast]`` when the DataModule
            packs SlowFast pathways [kinetics, epic-kitchens, vid, msrvtt video mode].
        audio: log-mel ``(B, 1, T, F)`` (time before frequency) [kinetics, epic-kitchens], or
            per-segment features ``(B, S, 128)`` [ave].
        audio_shifted: the log-mel of a time-shifted window, same shape as ``audio`` (negatives
            for audio-visual synchronisation) [kinetics, epic-kitchens, with ``audio_shift_sec``].
        has_audio: bool ``(B,)``: ``False`` where the video has no audio stream (``audio`` zeros).
        visual: float ``(B, S, 7, 7, C)`` per-segment visual features [ave].
        label: int64 ``(B,)`` (one class) [kinetics] or ``(B, S)`` (per segment) [ave].
        video_label: float ``(B, K)`` video-level target (weak supervision) [ave].
        verb / noun / action: int64 ``(B,)``; -1 where unlabelled [epic-kitchens].
        video_index: int64 ``(B,)``: which video each view belongs to, for multi-view averaging
            [kinetics, epic-kitchens, msrvtt].
        boxes / labels: lists of ``B * T`` (one per frame) ``(N, 4)`` xyxy float boxes and
            ``(N,)`` int64 labels [vid].
        text: one caption per sample (training) or the list of query captions per sample
            (evaluation) [msrvtt].
        experts / expert_masks / expert_available: expert name -> float ``(B, N, D)`` features,
            bool ``(B, N)`` token masks and bool ``(B,)`` presence [msrvtt features mode].
        video_id: list of ``B`` dataset video ids [msrvtt].
        skipped: ``"path: reason"`` for every sample replaced under a skip policy
            [kinetics, epic-kitchens].
        meta: per-sample dicts for bookkeeping and error messages (source file, annotation row,
            clip index, original size ...). Models never read labels or indices from it.
    """

    video: torch.Tensor | list[torch.Tensor]
    audio: torch.Tensor
    audio_shifted: torch.Tensor
    has_audio: torch.Tensor
    visual: torch.Tensor
    label: torch.Tensor
    video_label: torch.Tensor
    verb: torch.Tensor
    noun: torch.Tensor
    action: torch.Tensor
    video_index: torch.Tensor
    boxes: list[torch.Tensor]
    labels: list[torch.Tensor]
    text: list[Any]
    experts: dict[str, torch.Tensor]
    expert_masks: dict[str, torch.Tensor]
    expert_available: dict[str, torch.Tensor]
    video_id: list[str]
    skipped: list[str]
    meta: list[dict[str, Any]]
