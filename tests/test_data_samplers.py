"""Clip samplers: exact indices, offsets and windows."""
from __future__ import annotations

import pytest
import torch

from mmzoo.data import samplers as S


def test_clip_span_and_indices_clamped():
    assert S.clip_span(32, 2) == 63
    assert S.clip_indices(5, 4, 3, 100).tolist() == [5, 8, 11, 14]
    assert S.clip_indices(8, 4, 3, 12).tolist() == [8, 11, 11, 11]  # short video: last frame repeats
    with pytest.raises(ValueError, match="stride must be positive"):
        S.clip_indices(0, 4, 0, 10)


def test_random_clip_range_and_reproducibility():
    g = torch.Generator().manual_seed(0)
    starts = set()
    for _ in range(200):
        idx = S.random_clip(20, 4, 2, generator=g)  # span 7 -> start in [0, 13]
        assert (idx[1:] - idx[:-1]).tolist() == [2, 2, 2]
        starts.add(int(idx[0]))
    assert starts == set(range(14))
    a = S.random_clip(100, 8, 2, generator=torch.Generator().manual_seed(3))
    b = S.random_clip(100, 8, 2, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert S.random_clip(5, 4, 2).tolist() == [0, 2, 4, 4]  # shorter than the span: start 0


def test_uniform_clips_bin_centres():
    # N=100, span 15 -> delta 85; K=3 starts floor(85*(k+.5)/3) = 14, 42, 70
    idx = S.uniform_clips(100, 8, 2, 3)
    assert idx[:, 0].tolist() == [14, 42, 70]
    assert idx[1].tolist() == [42, 44, 46, 48, 50, 52, 54, 56]
    assert S.uniform_clips(100, 8, 2, 1)[0, 0].item() == 42  # single view = centre clip
    ten = S.uniform_clips(300, 32, 2, 10)
    assert ten.shape == (10, 32) and ten[:, 0].tolist() == [11, 35, 59, 82, 106, 130, 154, 177, 201, 225]  # floor(23.7 * (k + .5))


def test_spatial_crop_offsets_slowfast_convention():
    assert S.spatial_crop_offsets(256, 340, 256) == [(0, 0), (0, 42), (0, 84)]  # left, centre, right
    assert S.spatial_crop_offsets(340, 256, 256) == [(0, 0), (42, 0), (84, 0)]  # top, centre, bottom
    assert S.spatial_crop_offsets(256, 340, 224, num_crops=1) == [(16, 58)]
    with pytest.raises(ValueError, match="larger than frame"):
        S.spatial_crop_offsets(200, 300, 224)


def test_tsn_segments():
    assert S.segment_indices(100, 4, train=False).tolist() == [12, 37, 62, 87]
    assert S.segment_indices(100, 4, train=False, frames_per_segment=2).tolist() == [11, 12, 36, 37, 61, 62, 86, 87]
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        idx = S.segment_indices(10, 3, train=True, generator=g)  # segments [0,3) [3,6) [6,10)
        assert 0 <= idx[0] < 3 and 3 <= idx[1] < 6 and 6 <= idx[2] < 10
    assert S.segment_indices(2, 4, train=False).tolist() == [0, 0, 1, 1]  # more segments than frames


def test_strided_sequence_for_detection():
    assert S.strided_sequence(100, 50, 7, 10).tolist() == [20, 30, 40, 50, 60, 70, 80]
    assert S.strided_sequence(100, 3, 7, 10).tolist() == [0, 0, 0, 3, 13, 23, 33]
    assert S.strided_sequence(100, 95, 3, 10, anchor="start").tolist() == [95, 99, 99]
    assert S.strided_sequence(100, 50, 3, 10, anchor="end").tolist() == [30, 40, 50]
    with pytest.raises(ValueError, match="key_index 100 outside"):
        S.strided_sequence(100, 100, 3, 10)


def test_audio_window_alignment():
    idx = torch.arange(30, 94, 2)  # 32 frames at stride 2 from frame 30 at 30 fps
    t0, t1 = S.clip_time_span(idx, 30.0, 2)
    assert (t0, t1) == (1.0, 94 / 30)
    assert S.aligned_audio_window(t0, t1) == (t0, t1)
    a0, a1 = S.aligned_audio_window(1.0, 3.0, window_sec=2.064)
    assert a0 == pytest.approx(0.968) and a1 == pytest.approx(3.032)
    assert S.aligned_audio_window(1.0, 3.0, window_sec=1.0, align="start", shift_sec=0.5) == (1.5, 2.5)
    with pytest.raises(ValueError, match="empty clip span"):
        S.aligned_audio_window(2.0, 2.0)
