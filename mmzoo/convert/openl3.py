"""OpenL3's released Keras ``.h5`` embedding models -> the ``openl3-audio-*`` / ``openl3-image`` state
dicts (an L3-Net subnet, :mod:`mmzoo.models.l3net`), read with h5py: no TensorFlow or Keras.

The files (``openl3_audio_<linear|mel128|mel256>_<env|music>.h5`` and ``openl3_image_...``; published
gzipped as ``https://github.com/marl/openl3/raw/models/<name>-v0_4_0.h5.gz``, which the ``openl3``
package's setup downloads and unpacks; both forms are read) hold one subnet: an input ``BatchNormalization``, then eight ``Conv2D``
(3x3, bias) each but the last followed by ``BatchNormalization`` (+ ReLU, max pooling: no weights).
The audio files also contain the Kapre spectrogram layer's fixed DFT / mel matrices; they are not
read: mmzoo computes the front end itself (:class:`~mmzoo.models.l3net.L3Spectrogram`, same DFT
size, hop, mel bands and dB scaling), see docs/l3net.md for what that leaves unverified.

HDF5 layout read (Keras 2 ``save`` / ``save_weights``): the weights group is the root or
``model_weights/``; its attribute ``layer_names`` lists the layers in model order; each layer group
has the attribute ``weight_names`` (``conv2d_1/kernel:0`` ...) naming its datasets
(``model_weights/conv2d_1/conv2d_1/kernel:0``). Conversions: conv kernel ``(kh, kw, cin, cout)`` ->
``(cout, cin, kh, kw)`` (Keras' channels-last frequency x time maps are mmzoo's ``(C, F, T)``);
BatchNormalization ``gamma, beta, moving_mean, moving_variance`` -> ``weight, bias, running_mean,
running_var`` (epsilon 1e-3, the model's ``bn_eps`` default).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mmzoo.errors import ConversionError

__all__ = ["convert_openl3", "read_keras_weights"]

_CONV = {"kernel", "bias"}
_BN = {"gamma", "beta", "moving_mean", "moving_variance"}
_FRONT_END_LAYERS = ("melspectrogram", "spectrogram")


def _text(x) -> str:
    return x.decode("utf-8") if isinstance(x, bytes) else str(x)


def read_keras_weights(path: str | Path) -> list[tuple[str, dict[str, np.ndarray]]]:
    """``[(layer name, {weight short name: array})]`` in model order, layers without weights left out."""
    import gzip
    import io

    import h5py

    out = []
    source = io.BytesIO(gzip.decompress(Path(path).read_bytes())) if str(path).endswith(".gz") else str(path)
    with h5py.File(source, "r") as f:
        g = f.get("model_weights", f)
        if "layer_names" not in g.attrs:
            raise ConversionError(f"{path}: no 'layer_names' attribute: not a Keras weights file")
        for name in (_text(n) for n in g.attrs["layer_names"]):
            layer = g[name]
            weights = {}
            for wn in (_text(w) for w in layer.attrs.get("weight_names", [])):
                short = wn.split("/")[-1].split(":")[0]
                weights[short] = np.asarray(layer[wn][()])
            if weights:
                out.append((name, weights))
    return out


def _bn(prefix: str, w: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {f"{prefix}.weight": torch.from_numpy(w["gamma"].astype(np.float32)),
            f"{prefix}.bias": torch.from_numpy(w["beta"].astype(np.float32)),
            f"{prefix}.running_mean": torch.from_numpy(w["moving_mean"].astype(np.float32)),
            f"{prefix}.running_var": torch.from_numpy(w["moving_variance"].astype(np.float32)),
            f"{prefix}.num_batches_tracked": torch.tensor(0)}


def convert_openl3(path: str) -> dict[str, torch.Tensor]:
    """An OpenL3 embedding ``.h5`` (audio or image) -> the state dict of the matching ``openl3-*`` id."""
    layers = []
    for name, w in read_keras_weights(path):
        keys = set(w)
        if keys == _CONV:
            layers.append(("conv", name, w))
        elif keys == _BN:
            layers.append(("bn", name, w))
        elif name.lower().startswith(_FRONT_END_LAYERS):
            continue  # Kapre's fixed DFT / mel matrices: recomputed by L3Spectrogram
        else:
            raise ConversionError(f"{path}: layer {name!r} has weights {sorted(keys)}, neither a Conv2D, a "
                                  "BatchNormalization nor the Kapre front end of an OpenL3 embedding model")
    kinds = [k for k, _, _ in layers]
    want = ["bn"] + ["conv", "bn"] * 7 + ["conv"]
    if kinds != want:
        raise ConversionError(f"{path}: expected the OpenL3 subnet's layers {want}, found {kinds} "
                              f"({[n for _, n, _ in layers]})")
    cin = layers[1][2]["kernel"].shape[2]
    if cin not in (1, 3):
        raise ConversionError(f"{path}: first conv takes {cin} channels; OpenL3 audio takes 1, image 3")
    tower = "audio" if cin == 1 else "vision"
    state = _bn(f"{tower}.input_bn", layers[0][2])
    for i in range(8):
        _, name, w = layers[1 + 2 * i]
        k = w["kernel"]
        if k.ndim != 4 or k.shape[:2] != (3, 3):
            raise ConversionError(f"{path}: {name} kernel has shape {k.shape}, expected (3, 3, cin, cout)")
        state[f"{tower}.convs.{i}.weight"] = torch.from_numpy(np.ascontiguousarray(k.transpose(3, 2, 0, 1)).astype(np.float32))
        state[f"{tower}.convs.{i}.bias"] = torch.from_numpy(w["bias"].astype(np.float32))
        if i < 7:
            state.update(_bn(f"{tower}.bns.{i}", layers[2 + 2 * i][2]))
    return state
