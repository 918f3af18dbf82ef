"""Clip transforms (boxes follow pixels), pathway packing, log-mel front ends and collate."""
from __future__ import annotations

import math

import pytest
import torch

from mmzoo.data import transforms as TF
from mmzoo.data.audio import LogMel, avslowfast_logmel
from mmzoo.data.collate import collate_dicts


def _coords(t: int = 4, h: int = 6, w: int = 8) -> torch.Tensor:
    """C,T,H,W video whose channel 0 = x, channel 1 = y, channel 2 = t."""
    y, x = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    v = torch.zeros(3, t, h, w)
    v[0], v[1] = x, y
    v[2] = torch.arange(t).float().view(t, 1, 1)
    return v


def test_to_cthw_float():
    f = torch.zeros(2, 4, 5, 3, dtype=torch.uint8)
    f[1, :, :, 2] = 255
    v = TF.to_cthw_float(f)
    assert v.shape == (3, 2, 4, 5) and v.dtype == torch.float32 and v[2, 1].eq(1).all() and v[:2].eq(0).all()
    with pytest.raises(ValueError, match="expected T,H,W,C"):
        TF.to_cthw_float(torch.zeros(2, 3, 4))


def test_short_side_scale_sizes_and_boxes():
    v = torch.rand(3, 2, 240, 320)
    boxes = torch.tensor([[32.0, 24.0, 160.0, 120.0]])
    out, b = TF.short_side_scale(v, 256, boxes)
    assert out.shape == (3, 2, 256, 341)
    assert torch.allclose(b, torch.tensor([[32 * 341 / 320, 24 * 256 / 240, 160 * 341 / 320, 120 * 256 / 240]]))
    out, _ = TF.short_side_scale(torch.rand(3, 1, 400, 300), 256)
    assert out.shape == (3, 1, 341, 256)
    g = torch.Generator().manual_seed(0)
    sizes = {TF.random_short_side_scale(torch.rand(3, 1, 16, 20), 8, 10, generator=g)[0].shape[-2] for _ in range(40)}
    assert sizes == {8, 9, 10}


def test_crop_and_boxes():
    v = _coords()
    boxes = torch.tensor([[1.0, 1.0, 5.0, 4.0], [6.0, 0.0, 8.0, 2.0]])
    out, b = TF.crop(v, 1, 2, (4, 5), boxes)
    assert out.shape == (3, 4, 4, 5)
    assert out[0, 0, 0].tolist() == [2, 3, 4, 5, 6] and out[1, 0, :, 0].tolist() == [1, 2, 3, 4]
    assert b.tolist() == [[0.0, 0.0, 3.0, 3.0], [4.0, 0.0, 5.0, 1.0]]
    out, _ = TF.center_crop(v, 4)
    assert out[0, 0, 0].tolist() == [2, 3, 4, 5] and out[1, 0, :, 0].tolist() == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="outside frame"):
        TF.crop(v, 4, 0, 4)


def test_three_crops_left_center_right():
    crops = TF.three_crops(_coords(h=4, w=8), 4)
    assert [c[0, 0, 0, 0].item() for c in crops] == [0, 2, 4]
    crops = TF.three_crops(_coords(h=8, w=4), 4)  # portrait: top, centre, bottom
    assert [c[1, 0, 0, 0].item() for c in crops] == [0, 2, 4]


def test_random_crop_and_flip_with_boxes():
    v = _coords()
    g = torch.Generator().manual_seed(1)
    out, b = TF.random_crop(v, 4, torch.tensor([[2.0, 2.0, 6.0, 5.0]]), generator=g)
    x0, y0 = int(out[0, 0, 0, 0]), int(out[1, 0, 0, 0])
    assert b.tolist() == [[max(2 - x0, 0), max(2 - y0, 0), min(6 - x0, 4), min(5 - y0, 4)]]
    out, b = TF.horizontal_flip(v, torch.tensor([[1.0, 2.0, 3.0, 5.0]]))
    assert out[0, 0, 0].tolist() == [7, 6, 5, 4, 3, 2, 1, 0]
    assert b.tolist() == [[5.0, 2.0, 7.0, 5.0]]
    flips = [TF.random_horizontal_flip(v, p=0.5, generator=g)[2] for _ in range(50)]
    assert any(flips) and not all(flips)


def test_normalize():
    v = torch.full((3, 1, 2, 2), 0.45)
    out = TF.normalize(v, TF.KINETICS_MEAN, TF.KINETICS_STD)
    assert torch.allclose(out, torch.zeros_like(out), atol=1e-6)
    out = TF.normalize(torch.ones(3, 1, 1, 1), (0.5, 0.5, 0.5), (0.25, 0.5, 1.0))
    assert out.flatten().tolist() == [2.0, 1.0, 0.5]
    with pytest.raises(ValueError, match="for 3 channels"):
        TF.normalize(v, (0.5,), (0.5,))


def test_pack_pathway_conventions():
    v = _coords(t=32)
    slow, fast = TF.pack_pathway(v, 8)
    assert fast is v and slow[2, :, 0, 0].tolist() == [0, 10, 20, 31]  # PySlowFast / PyTorchVideo
    slow, _ = TF.pack_pathway(v, 8, mode="stride")
    assert slow[2, :, 0, 0].tolist() == [0, 8, 16, 24]  # frames[::alpha]
    assert TF.slow_indices(64, 16).tolist() == [0, 21, 42, 63]
    with pytest.raises(ValueError, match="alpha 8 must be in"):
        TF.slow_indices(4, 8)


def test_avslowfast_logmel_shape_and_constants():
    m = avslowfast_logmel(normalization="none")
    assert (m.win_length, m.hop_length, m.n_fft, m.n_mels, m.num_frames) == (512, 256, 512, 80, 128)
    assert m.num_samples() == 127 * 256 + 512 and m.window_seconds == pytest.approx(2.064)
    sr = 16000
    t = torch.arange(40000) / sr
    tone = torch.sin(2 * math.pi * 1000 * t)
    x = m(tone)
    assert x.shape == (1, 128, 80)
    hz = torch.linspace(0, 2595 * math.log10(1 + 8000 / 700), 82)  # HTK mel bin centres
    centres = 700 * (10 ** (hz / 2595) - 1)
    peak = int(x[0].mean(0).argmax())
    assert abs(float(centres[peak + 1]) - 1000) < 120
    silent = m(torch.zeros(10))  # padded to 33024 samples
    assert torch.allclose(silent, torch.full_like(silent, math.log(1e-8)))
    fixed = avslowfast_logmel()(tone)
    assert torch.allclose(fixed, (x + 7.03) / 4.66, atol=1e-5)
    inst = avslowfast_logmel(normalization="instance")(tone)
    assert abs(float(inst.mean())) < 1e-4 and abs(float(inst.std()) - 1) < 1e-3
    batch = m(torch.stack([tone[:20000], -tone[:20000]]))  # both padded to 33024 samples
    assert batch.shape == (2, 1, 128, 80)
    with pytest.raises(ValueError, match="normalization must be"):
        LogMel(normalization="zscore")
    with pytest.raises(ValueError, match="shorter than one window"):
        LogMel(num_frames=None)(torch.zeros(100))


def test_logmel_window_longer_fft_still_gives_num_frames():
    """A window shorter than the FFT is zero-padded to n_fft inside each frame: the waveform for
    num_frames frames spans (num_frames - 1) * hop + n_fft samples."""
    m = LogMel(sample_rate=16000, win_ms=25.0, hop_ms=10.0, n_fft=1024, n_mels=16, num_frames=12, normalization="none")
    assert m.num_samples() == 11 * 160 + 1024
    assert m(torch.randn(50000)).shape == (1, 12, 16)


def test_collate_variable_boxes_and_pathways():
    s = lambda k, nb: {
        "video": [torch.full((3, 2, 4, 4), float(k)), torch.full((3, 8, 4, 4), float(k))],
        "audio": torch.zeros(1, 128, 80),
        "label": k,
        "has_audio": k % 2 == 0,
        "boxes": torch.zeros(nb, 4),
        "text": [f"caption {k}"] * nb,
        "meta": {"i": k},
    }
    b = collate_dicts([s(0, 1), s(1, 3), s(2, 0)])
    assert [x.shape for x in b["video"]] == [(3, 3, 2, 4, 4), (3, 3, 8, 4, 4)]
    assert b["video"][0][:, 0, 0, 0, 0].tolist() == [0, 1, 2]
    assert b["audio"].shape == (3, 1, 128, 80)
    assert b["label"].dtype == torch.long and b["label"].tolist() == [0, 1, 2]
    assert b["has_audio"].tolist() == [True, False, True]
    assert [x.shape[0] for x in b["boxes"]] == [1, 3, 0] and [len(t) for t in b["text"]] == [1, 3, 0]
    assert b["meta"] == [{"i": 0}, {"i": 1}, {"i": 2}]
    with pytest.raises(KeyError, match=r"sample 1 of the batch has different fields: \['label'\]"):
        collate_dicts([{"video": torch.zeros(1), "label": 1}, {"video": torch.zeros(1)}])
    with pytest.raises(ValueError, match="empty batch"):
        collate_dicts([])


def test_fused_uint8_path_matches_float_path():
    g = torch.Generator().manual_seed(0)
    f = torch.randint(0, 256, (4, 20, 30, 3), dtype=torch.uint8, generator=g)
    view = f[:, 3:19, 5:21].flip(2)  # non-contiguous crop + flip, as in the datasets
    fused = TF.to_normalized_cthw(view, (0.4, 0.5, 0.6), (0.2, 0.25, 0.3))
    ref = TF.normalize(TF.to_cthw_float(view.contiguous()), (0.4, 0.5, 0.6), (0.2, 0.25, 0.3))
    assert fused.is_contiguous() and fused.shape == (3, 4, 16, 16)
    assert torch.allclose(fused, ref, atol=1e-5)
    r = TF.resize_short_side_uint8(f, 10)
    assert r.shape == (4, 10, 15, 3) and r.dtype == torch.uint8
    flat = torch.full((2, 20, 30, 3), 77, dtype=torch.uint8)
    assert TF.resize_short_side_uint8(flat, 10).eq(77).all()
    assert TF.resize_short_side_uint8(f, 20) is f
    with pytest.raises(ValueError, match="expected T,H,W,3"):
        TF.to_normalized_cthw(torch.zeros(2, 4, 4, 1, dtype=torch.uint8), (0.5,) * 3, (0.5,) * 3)
