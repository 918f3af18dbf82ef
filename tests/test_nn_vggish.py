"""VGGish network and front end: shapes, parameter count, values against an independent numpy STFT."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mmzoo.nn.vggish import (
    VGGish,
    VGGishFrontEnd,
    convert_torchvggish_checkpoint,
    hz_to_mel_htk,
    load_vggish_weights,
    vggish_mel_matrix,
)

SR = 16000


def _tone(freq, seconds=1.0, amp=0.5, sr=SR):
    t = np.arange(int(seconds * sr)) / sr
    return torch.tensor(amp * np.sin(2 * np.pi * freq * t), dtype=torch.float32)


def test_network_shapes_and_parameter_count():
    with torch.device("meta"):
        model = VGGish()
    n = sum(p.numel() for p in model.parameters())
    # conv 4,499,712 + fc 50,335,744 + 16,781,312 + 524,416 (Hershey et al. VGGish, 72.1 M)
    assert n == 72_141_184
    small = VGGish().eval()
    out = small(torch.randn(3, 1, 96, 64))
    assert out.shape == (3, 128) and (out >= 0).all()
    linear = VGGish(final_relu=False).eval()
    assert (linear(torch.randn(4, 1, 96, 64)) < 0).any()
    with pytest.raises(ValueError, match="96, 64"):
        small(torch.randn(1, 1, 64, 96))


def test_front_end_frame_counts_and_examples():
    fe = VGGishFrontEnd()
    wav = _tone(1000, seconds=1.0)
    logmel = fe.log_mel(wav)
    assert logmel.shape == (1 + (16000 - 400) // 160, 64) == (98, 64)
    ex = fe(wav)
    assert ex.shape == (1, 1, 96, 64)
    ex10 = fe(_tone(1000, seconds=10.0))
    assert ex10.shape == (10, 1, 96, 64)  # 998 frames -> 10 non-overlapping examples
    silence = fe.log_mel(torch.zeros(16000))
    assert torch.allclose(silence, torch.full_like(silence, float(np.log(0.01))))
    with pytest.raises(ValueError, match="too short"):
        fe(torch.zeros(8000))


@pytest.mark.parametrize("freq", [250.0, 1000.0, 3000.0, 6000.0])
def test_pure_tone_lands_in_its_mel_band(freq):
    fe = VGGishFrontEnd()
    logmel = fe.log_mel(_tone(freq))
    band = int(logmel.mean(0).argmax())
    edges = np.linspace(float(hz_to_mel_htk(torch.tensor(125.0))), float(hz_to_mel_htk(torch.tensor(7500.0))), 66)
    centres = edges[1:-1]
    expected = int(np.abs(centres - float(hz_to_mel_htk(torch.tensor(freq)))).argmin())
    assert abs(band - expected) <= 1, (band, expected)


def test_log_mel_values_match_numpy_reference():
    # Independent computation: numpy framing, periodic Hann, rfft magnitude, mel matrix, log offset.
    wav = (_tone(440, amp=0.3) + _tone(2500, amp=0.2)).numpy()
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)
    frames = np.stack([wav[i * 160 : i * 160 + 400] * win for i in range(98)])
    mag = np.abs(np.fft.rfft(frames, n=512))
    mel = mag @ vggish_mel_matrix().numpy().astype(np.float64)
    ref = np.log(mel + 0.01)
    got = VGGishFrontEnd().log_mel(torch.tensor(wav)).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
    # A bin-centred tone (1000 Hz = FFT bin 32) of amplitude A has STFT magnitude A * sum(win) / 2.
    mag1k = np.abs(np.fft.rfft(_tone(1000, amp=0.5).numpy()[:400] * win, n=512))
    assert mag1k[32] == pytest.approx(0.5 * 200 / 2, rel=1e-3)


def test_mel_matrix_properties():
    m = vggish_mel_matrix()
    assert m.shape == (257, 64)
    assert (m[0] == 0).all()  # DC bin ignored
    assert float(m.max()) <= 1.0 + 1e-6 and (m >= 0).all()
    hz = np.linspace(0, 8000, 257)
    assert (m[hz < 125].sum() == 0) and (m[hz > 7500].sum() == 0)
    assert (m.sum(0) > 0).all()  # every band sees at least one FFT bin


def test_resampling_and_stereo_input():
    fe44 = VGGishFrontEnd(input_sample_rate=44100)
    t = np.arange(44100) / 44100
    stereo = torch.tensor(np.stack([np.sin(2 * np.pi * 1000 * t), np.sin(2 * np.pi * 1000 * t)]), dtype=torch.float32)
    a = fe44.log_mel(stereo)
    b = VGGishFrontEnd().log_mel(_tone(1000, amp=1.0))
    assert a.shape == b.shape
    assert int(a.mean(0).argmax()) == int(b.mean(0).argmax())


def test_weights_roundtrip_safetensors_and_torchvggish_pth(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    src = VGGish()
    pth = tmp_path / "vggish-port.pth"
    torch.save({**src.state_dict(), "pca.means": torch.zeros(128)}, pth)
    state = convert_torchvggish_checkpoint(pth)
    assert "pca.means" not in state and "features.0.weight" in state and "embeddings.4.weight" in state
    save_file(state, str(tmp_path / "vggish.safetensors"))
    dst = load_vggish_weights(VGGish(), tmp_path / "vggish.safetensors")
    x = torch.randn(2, 1, 96, 64)
    assert torch.equal(src.eval()(x), dst.eval()(x))
    with pytest.raises(ValueError, match="safetensors"):
        load_vggish_weights(VGGish(), pth)
    with pytest.raises(FileNotFoundError):
        load_vggish_weights(VGGish(), tmp_path / "nope.safetensors")
