"""Temporal and spatial sampling as pure functions of sizes: they return frame indices, crop
offsets or time windows and never touch pixels, so every choice is exactly testable.

Frame indices are 0-based stream frame indices (see :mod:`mmzoo.data.decode`). Indices that would
fall past the end of a short video are clamped to the last frame (the clip repeats its last frame),
and before the start to frame 0.

* :func:`random_clip` - training clip: ``num_frames`` frames ``stride`` apart at a uniformly random
  start.
* :func:`uniform_clips` - the ``K`` test clips of "K x 3 views": clip ``k`` starts at
  ``floor((k + 0.5) * (N - span) / K)`` (centres of K equal bins of the valid start range; ``K=1``
  is the centre clip).
* :func:`spatial_crop_offsets` - the 3 test crops (left / centre / right along the longer side,
  or top / centre / bottom for portrait frames, as in SlowFast), or the centre crop.
* :func:`segment_indices` - TSN segments: ``N`` frames split into ``S`` equal segments, one (or
  ``frames_per_segment`` consecutive) frame(s) per segment, random position in training, middle at
  test.
* :func:`strided_sequence` - ``T`` frames at stride ``s`` around (or from) a key frame, for video
  object detection (STMN: T=7, s=10 in training).
* :func:`aligned_audio_window` - the audio window in seconds matching a visual clip (optionally
  shifted, for audio-visual synchronisation negatives).
"""
from __future__ import annotations

import math
from typing import Literal

import torch

__all__ = [
    "clip_span",
    "clip_indices",
    "random_clip",
    "uniform_clips",
    "spatial_crop_offsets",
    "segment_indices",
    "strided_sequence",
    "clip_time_span",
    "aligned_audio_window",
]


def _check_positive(**kw: int) -> None:
    for k, v in kw.items():
        if int(v) <= 0:
            raise ValueError(f"{k} must be positive, got {v}")


def clip_span(num_frames: int, stride: int) -> int:
    """Number of stream frames covered by ``num_frames`` frames taken ``stride`` apart."""
    _check_positive(num_frames=num_frames, stride=stride)
    return (num_frames - 1) * stride + 1


def clip_indices(start: int, num_frames: int, stride: int, total_frames: int) -> torch.Tensor:
    """``start + stride * k`` for ``k < num_frames``, clamped to ``[0, total_frames - 1]``."""
    _check_positive(num_frames=num_frames, stride=stride, total_frames=total_frames)
    idx = start + stride * torch.arange(num_frames, dtype=torch.long)
    return idx.clamp_(0, total_frames - 1)


def random_clip(
    total_frames: int, num_frames: int, stride: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A training clip with a start drawn uniformly from ``[0, max(N - span, 0)]``."""
    span = clip_span(num_frames, stride)
    _check_positive(total_frames=total_frames)
    hi = max(total_frames - span, 0)
    start = int(torch.randint(0, hi + 1, (1,), generator=generator))
    return clip_indices(start, num_frames, stride, total_frames)


def uniform_clips(total_frames: int, num_frames: int, stride: int, num_clips: int) -> torch.Tensor:
    """``(num_clips, num_frames)`` indices of the test clips (bin centres of the start range)."""
    span = clip_span(num_frames, stride)
    _check_positive(total_frames=total_frames, num_clips=num_clips)
    delta = max(total_frames - span, 0)
    starts = [int(math.floor((k + 0.5) * delta / num_clips)) for k in range(num_clips)]
    return torch.stack([clip_indices(s, num_frames, stride, total_frames) for s in starts])


def spatial_crop_offsets(
    height: int, width: int, crop_size: int, num_crops: int = 3, centre: Literal["floor", "ceil"] = "floor"
) -> list[tuple[int, int]]:
    """``(y0, x0)`` of the test crops of a ``height x width`` frame.

    ``num_crops=3``: along the longer side, first / centre / last position (left, centre, right
    for landscape frames; top, centre, bottom for portrait ones); the other axis is centred.
    ``num_crops=1``: the centre crop. ``centre``: an odd margin puts the centre offset at
    ``floor(margin / 2)`` (default) or ``ceil(margin / 2)`` (PySlowFast's ``uniform_crop``, used by
    :class:`~mmzoo.data.video_dataset.ClipDataset`'s evaluation views)."""
    if crop_size > height or crop_size > width:
        raise ValueError(f"crop {crop_size} larger than frame {height}x{width}")
    if centre not in ("floor", "ceil"):
        raise ValueError(f"centre must be 'floor' or 'ceil', got {centre!r}")
    up = int(centre == "ceil")
    cy, cx = (height - crop_size + up) // 2, (width - crop_size + up) // 2
    if num_crops == 1:
        return [(cy, cx)]
    if num_crops != 3:
        raise ValueError(f"num_crops must be 1 or 3, got {num_crops}")
    if width >= height:
        return [(cy, 0), (cy, cx), (cy, width - crop_size)]
    return [(0, cx), (cy, cx), (height - crop_size, cx)]


def segment_indices(
    total_frames: int,
    num_segments: int,
    train: bool,
    frames_per_segment: int = 1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """TSN sampling: ``(num_segments * frames_per_segment,)`` indices.

    The ``N`` frames are cut into ``S`` segments ``[floor(i*N/S), floor((i+1)*N/S))``. In each,
    ``frames_per_segment`` consecutive frames start at a random position (``train``) or are
    centred in the segment (test). Segments shorter than ``frames_per_segment`` are clamped."""
    _check_positive(total_frames=total_frames, num_segments=num_segments, frames_per_segment=frames_per_segment)
    out = []
    for i in range(num_segments):
        lo = (i * total_frames) // num_segments
        hi = ((i + 1) * total_frames) // num_segments  # exclusive; may equal lo when S > N
        room = max(hi - lo - frames_per_segment, 0)
        if train:
            off = int(torch.randint(0, room + 1, (1,), generator=generator))
        else:
            off = room // 2
        for j in range(frames_per_segment):
            out.append(min(lo + off + j, total_frames - 1))
    return torch.tensor(out, dtype=torch.long)


def strided_sequence(
    total_frames: int,
    key_index: int,
    num_frames: int,
    stride: int,
    anchor: Literal["center", "start", "end"] = "center",
) -> torch.Tensor:
    """``num_frames`` indices ``stride`` apart containing ``key_index``: centred on it (the
    earlier half is ``num_frames // 2`` frames before), starting at it, or ending at it; indices
    outside the video are clamped to the first / last frame."""
    _check_positive(total_frames=total_frames, num_frames=num_frames, stride=stride)
    if not 0 <= key_index < total_frames:
        raise ValueError(f"key_index {key_index} outside [0, {total_frames})")
    if anchor == "center":
        first = key_index - (num_frames // 2) * stride
    elif anchor == "start":
        first = key_index
    elif anchor == "end":
        first = key_index - (num_frames - 1) * stride
    else:
        raise ValueError(f"anchor must be center/start/end, got {anchor!r}")
    return clip_indices(first, num_frames, stride, total_frames)


def clip_time_span(frame_indices: torch.Tensor, fps: float, stride: int) -> tuple[float, float]:
    """``[start, end)`` seconds covered by a clip: from its first frame to one sampling step after
    its last frame (``(last + stride) / fps``)."""
    first, last = int(frame_indices.min()), int(frame_indices.max())
    return first / fps, (last + stride) / fps


def aligned_audio_window(
    clip_start: float,
    clip_end: float,
    window_sec: float | None = None,
    align: Literal["center", "start"] = "center",
    shift_sec: float = 0.0,
) -> tuple[float, float]:
    """Audio window ``[start, end)`` (seconds) for a visual clip spanning ``[clip_start,
    clip_end)``.

    ``window_sec=None``: exactly the clip span. Otherwise a window of ``window_sec`` seconds
    centred on the clip centre (``align="center"``) or starting with it (``"start"``).
    ``shift_sec`` moves the window (hard negatives for audio-visual synchronisation). The window
    may extend before 0 or past the end of the track: the decoder fills that part with zeros."""
    if clip_end <= clip_start:
        raise ValueError(f"empty clip span [{clip_start}, {clip_end})")
    if window_sec is None:
        start, end = clip_start, clip_end
    elif align == "center":
        c = 0.5 * (clip_start + clip_end)
        start, end = c - 0.5 * window_sec, c + 0.5 * window_sec
    elif align == "start":
        start, end = clip_start, clip_start + window_sec
    else:
        raise ValueError(f"align must be 'center' or 'start', got {align!r}")
    return start + shift_sec, end + shift_sec
