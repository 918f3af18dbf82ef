"""OpenL3 converter: a Keras-layout .h5 written with h5py (model_weights/<layer>/<layer>/kernel:0, the
Kapre layer included) converts into the openl3-* L3-Net subnet, whose embedding equals a numpy forward
pass of the same Keras arrays in Keras' own channels-last layout."""
from __future__ import annotations

import gzip

import h5py
import numpy as np
import pytest
import torch

import mmzoo
from mmzoo.convert import convert
from mmzoo.convert.openl3 import convert_openl3
from mmzoo.errors import ConversionError
from mmzoo.hub.repo import load_state_dict_strict


def _keras_layers(widths, cin, rng):
    """Keras layer list of an OpenL3 subnet: (name, {weight: array}) incl. weightless layers."""
    layers = [("input_1", {}), ("melspectrogram_1", {"real_kernels": rng.standard_normal((8, 1, 1, 4)),
                                                     "freq2mel": rng.standard_normal((5, 4))})]
    bn_i, conv_i = 1, 1

    def bn(c):
        nonlocal bn_i
        layers.append((f"batch_normalization_{bn_i}", {
            "gamma": rng.uniform(0.5, 1.5, c), "beta": rng.standard_normal(c) * 0.1,
            "moving_mean": rng.standard_normal(c) * 0.1, "moving_variance": rng.uniform(0.5, 2.0, c)}))
        bn_i += 1

    bn(cin)
    c = cin
    for b, w in enumerate(widths):
        for j in range(2):
            name = "audio_embedding_layer" if (b, j) == (3, 1) else f"conv2d_{conv_i}"
            layers.append((name, {"kernel": rng.standard_normal((3, 3, c, w)) * np.sqrt(2.0 / (9 * c)),
                                  "bias": rng.standard_normal(w) * 0.1}))
            conv_i += 1
            c = w
            if (b, j) != (3, 1):
                bn(w)
                layers.append((f"activation_{conv_i}", {}))
        if b < 3:
            layers.append((f"max_pooling2d_{b + 1}", {}))
    return [(n, {k: v.astype(np.float32) for k, v in ws.items()}) for n, ws in layers]


def write_keras_h5(path, layers, root="model_weights"):
    with h5py.File(path, "w") as f:
        g = f.create_group(root) if root else f
        g.attrs["layer_names"] = [n.encode() for n, _ in layers]
        for name, ws in layers:
            lg = g.create_group(name)
            lg.attrs["weight_names"] = [f"{name}/{k}:0".encode() for k in ws]
            for k, v in ws.items():
                lg.create_dataset(f"{name}/{k}:0", data=v)
    return path


def _np_forward(x, layers, eps=1e-3):
    """Keras forward in numpy, channels-last (H, W, C): input BN, (conv, BN, ReLU) x 7 with 2x2 pools
    after convs 2, 4, 6, then the last conv (no BN / ReLU)."""
    ws = [w for _, w in layers if w and "kernel" in w or "gamma" in w]

    def bn(x, w):
        return (x - w["moving_mean"]) / np.sqrt(w["moving_variance"] + eps) * w["gamma"] + w["beta"]

    def conv(x, w):
        k, (h, wd, _) = w["kernel"], x.shape
        p = np.pad(x, ((1, 1), (1, 1), (0, 0)))
        out = sum(np.einsum("hwc,co->hwo", p[dy:dy + h, dx:dx + wd], k[dy, dx]) for dy in range(3) for dx in range(3))
        return out + w["bias"]

    def pool(x):
        h, wd = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
        return x[:h, :wd].reshape(h // 2, 2, wd // 2, 2, -1).max(axis=(1, 3))

    x = bn(x, ws[0])
    for i in range(8):
        x = conv(x, ws[1 + 2 * i])
        if i == 7:
            return x
        x = np.maximum(bn(x, ws[2 + 2 * i]), 0)
        if i % 2 == 1:
            x = pool(x)


@pytest.mark.parametrize("root", ["model_weights", None])
def test_audio_subnet_equals_numpy_forward(tmp_path, root):
    widths = [2, 3, 4, 5]
    layers = _keras_layers(widths, 1, np.random.default_rng(0))
    path = write_keras_h5(tmp_path / "openl3_audio_mel128_env.h5", layers, root)
    model = mmzoo.create("openl3-audio-mel128", widths=widths).eval()
    load_state_dict_strict(model, convert_openl3(str(path)), "test")
    wave = torch.randn(1, 48000) * 0.1
    with torch.no_grad():
        spec = model.audio_spec(wave)  # (1, 1, 128 mels, 199 frames)
        emb = model.embed_audio(wave)
    ref = _np_forward(spec[0].permute(1, 2, 0).double().numpy(), layers)  # (16, 24, 5)
    assert ref.shape == (16, 24, 5)
    grid = ref.reshape(4, 4, 3, 8, 5).max(axis=(1, 3))  # OpenL3's (4, 8) max pool: 4 x 3 x 5
    np.testing.assert_allclose(emb[0].view(5, 4, 3).numpy(), grid.transpose(2, 0, 1), rtol=1e-4, atol=1e-4)


def test_image_subnet_and_registered_convert(tmp_path):
    layers = _keras_layers([64, 128, 256, 512], 3, np.random.default_rng(1))
    path = write_keras_h5(tmp_path / "openl3_image_mel256_env.h5", layers)
    gz = tmp_path / "openl3_image_mel256_env-v0_4_0.h5.gz"  # the form the OpenL3 release publishes
    gz.write_bytes(gzip.compress(path.read_bytes(), compresslevel=1))
    out = convert("openl3-image.mel256-env", gz, output_dir=tmp_path / "repo", push_to_local_hub=False)
    model = mmzoo.load(str(out))
    frame = torch.rand(1, 3, 1, 32, 32)
    with torch.no_grad():
        emb = model.embed_video(frame)  # (1, 8192) = 512 x 4 x 4
    ref = _np_forward(frame[0, :, 0].permute(1, 2, 0).double().numpy(), layers)  # (4, 4, 512)
    np.testing.assert_allclose(emb[0].view(512, 4, 4).numpy(), ref.transpose(2, 0, 1), rtol=1e-3, atol=1e-3)


def test_wrong_layout_is_a_conversion_error(tmp_path):
    layers = _keras_layers([2, 3, 4, 5], 1, np.random.default_rng(2))
    del layers[3]  # drop the first conv
    path = write_keras_h5(tmp_path / "broken.h5", layers)
    with pytest.raises(ConversionError, match="expected the OpenL3 subnet's layers"):
        convert_openl3(str(path))
    layers = _keras_layers([2, 3, 4, 5], 1, np.random.default_rng(2))
    layers.append(("dense_1", {"kernel": np.zeros((4, 2), np.float32)}))
    with pytest.raises(ConversionError, match="layer 'dense_1' has weights"):
        convert_openl3(str(write_keras_h5(tmp_path / "dense.h5", layers)))
