"""Converters: PyTorchVideo `.pyth`, PySlowFast `.pyth` and Caffe2 `.pkl` SlowFast checkpoints.

Each test writes a randomly initialised PyTorchVideo SlowFast in the original checkpoint format
(the released `.pyth` files are `{"model_state": state_dict, ...}` torch pickles; the PySlowFast
Caffe2 zoo files are `{"blobs": {name: ndarray}}` latin-1 pickles), converts it with `mmzoo
convert`'s code path, loads the result with `mmzoo.load` and compares logits with the original.
"""
from __future__ import annotations

import pickle
import re

import pytest
import torch

import mmzoo
from mmzoo.convert import convert, load_converter
from mmzoo.convert.pytorchvideo import ConversionError, caffe2_to_pyslowfast_name, pytorchvideo_to_mmzoo
from mmzoo.registry import get_spec

import pytorchvideo.models.slowfast as ptv  # the reference implementation (test extra)

SIZE = 64


def _reference(kernel: int, alpha: int, slow_t: int):
    torch.manual_seed(0)
    k = SIZE // 32
    m = ptv.create_slowfast(
        model_depth=50,
        slowfast_fusion_conv_kernel_size=(kernel, 1, 1),
        slowfast_fusion_conv_stride=(alpha, 1, 1),
        head_pool_kernel_sizes=((slow_t, k, k), (slow_t * alpha, k, k)),
    ).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm3d):
                mod.running_mean.copy_(torch.rand(mod.num_features, generator=g) * 0.2 - 0.1)
                mod.running_var.copy_(torch.rand(mod.num_features, generator=g) + 0.5)
    return m


def _compare(ref, loaded, slow_t, alpha):
    x = [torch.randn(1, 3, slow_t, SIZE, SIZE), torch.randn(1, 3, slow_t * alpha, SIZE, SIZE)]
    with torch.no_grad():
        expected = ref(list(x))
        got = loaded(list(x))
    scale = float(expected.abs().max())
    assert torch.allclose(got, expected, rtol=0, atol=1e-5 * scale)


def test_pytorchvideo_pyth_checkpoint_converts_and_loads(tmp_path):
    ref = _reference(kernel=7, alpha=4, slow_t=8)  # the configuration of SLOWFAST_8x8_R50.pyth
    path = tmp_path / "SLOWFAST_8x8_R50.pyth"
    torch.save({"model_state": ref.state_dict(), "epoch": 196}, path)
    out = convert("slowfast-r50-8x8.k400", path, output_dir=tmp_path / "converted", push_to_local_hub=False)
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    loaded = mmzoo.load(str(out))
    assert not loaded.training
    _compare(ref, loaded, 8, 4)


class _SolverConfig:
    """Stands for the config objects PySlowFast pickles beside the weights."""

    def __init__(self):
        self.lr = 0.1


def test_checkpoint_with_python_objects_needs_explicit_consent(tmp_path, capsys):
    """`mmzoo.load`'s automatic conversion reads only tensors; full unpickling (which can run code
    from the file) happens only through the explicit `mmzoo convert` (allow_pickle=True)."""
    ref = _reference(kernel=7, alpha=4, slow_t=8)
    path = tmp_path / "with_cfg.pyth"
    torch.save({"model_state": ref.state_dict(), "cfg": _SolverConfig()}, path)
    with pytest.raises(ConversionError, match="mmzoo convert"):
        convert("slowfast-r50-8x8.k400", path, output_dir=tmp_path / "safe", push_to_local_hub=False)
    assert "unpickling can execute arbitrary code" not in capsys.readouterr().err
    out = convert("slowfast-r50-8x8.k400", path, output_dir=tmp_path / "trusted", push_to_local_hub=False,
                  allow_pickle=True)
    assert "unpickling can execute arbitrary code" in capsys.readouterr().err
    _compare(ref, mmzoo.load(str(out)), 8, 4)


def _c2_blobs(ref) -> dict:
    """The Caffe2 blob names of PySlowFast's model zoo for a create_slowfast state dict."""
    blobs = {}
    bn = {"weight": "s", "bias": "b", "running_mean": "rm", "running_var": "riv"}
    sd = ref.state_dict()
    last_block = {s: max(int(k.split(".")[5]) for k in sd if k.startswith(f"blocks.{s}.multipathway_blocks.1.res_blocks")) for s in range(1, 5)}
    for k, v in sd.items():
        if k.endswith("num_batches_tracked"):
            continue
        field = k.rsplit(".", 1)[1]
        suffix = bn.get(field) if "norm" in k else {"weight": "w", "bias": "b"}[field]
        m = re.match(r"blocks\.0\.multipathway_blocks\.(\d)\.(conv|norm)\.", k)
        if m:
            t = "t_" if m[1] == "1" else ""
            name = f"{t}conv1_{suffix}" if m[2] == "conv" else f"{t}res_conv1_bn_{suffix}"
        elif m := re.match(r"blocks\.(\d)\.multipathway_fusion\.(conv_fast_to_slow|norm)\.", k):
            j = int(m[1])
            base = "t_pool1_subsample" if j == 0 else f"t_res{j + 1}_{last_block[j]}_branch2c_bn_subsample"
            name = f"{base}_{suffix}" if m[2] != "norm" else f"{base}_bn_{suffix}"
        elif m := re.match(r"blocks\.(\d)\.multipathway_blocks\.(\d)\.res_blocks\.(\d+)\.(branch1_conv|branch1_norm|branch2\.(conv|norm)_([abc]))\.", k):
            t = "t_" if m[2] == "1" else ""
            base = f"{t}res{int(m[1]) + 1}_{m[3]}_"
            if m[4] == "branch1_conv":
                name = base + f"branch1_{suffix}"
            elif m[4] == "branch1_norm":
                name = base + f"branch1_bn_{suffix}"
            else:
                name = base + f"branch2{m[6]}_" + ("bn_" if m[5] == "norm" else "") + suffix
        elif k.startswith("blocks.6.proj"):
            name = f"pred_{suffix}"
        else:  # pragma: no cover - the fixture covers every key
            raise AssertionError(k)
        blobs[name] = v.numpy().copy()
    return blobs


def test_caffe2_pickle_converts_and_loads(tmp_path):
    ref = _reference(kernel=5, alpha=8, slow_t=4)  # SLOWFAST_4x16_R50.pkl configuration
    blobs = _c2_blobs(ref)
    assert "t_res4_5_branch2c_bn_subsample_w" in blobs and "res_conv1_bn_riv" in blobs
    # Caffe2 pickles also hold solver state, which the converter must ignore
    blobs["res2_0_branch2a_w_momentum"] = blobs["res2_0_branch2a_w"] * 0
    blobs["lr"] = 0.1
    blobs["model_iter"] = 1
    path = tmp_path / "SLOWFAST_4x16_R50.pkl"
    with open(path, "wb") as f:
        pickle.dump({"blobs": blobs}, f, protocol=2)
    out = convert("slowfast-r50-4x16.k400", path, output_dir=tmp_path / "converted", push_to_local_hub=False)
    _compare(ref, mmzoo.load(str(out)), 4, 8)


def test_pyslowfast_pyth_names_convert(tmp_path):
    from mmzoo.convert.pytorchvideo import convert_pyslowfast

    ref = _reference(kernel=5, alpha=8, slow_t=4)
    psf = {}
    for name, arr in _c2_blobs(ref).items():
        psf["module." + caffe2_to_pyslowfast_name(name)] = torch.as_tensor(arr)  # DDP-wrapped names
    path = tmp_path / "psf.pyth"
    torch.save({"model_state": psf, "epoch": 1, "cfg": "..."}, path)
    state = convert_pyslowfast(path)
    model = mmzoo.create("slowfast-r50-4x16").eval()
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert unexpected == [] and all(k.endswith("num_batches_tracked") for k in missing)
    _compare(ref, model, 4, 8)


def test_unknown_keys_fail_loudly():
    with pytest.raises(ConversionError, match="blocks.9.something"):
        pytorchvideo_to_mmzoo({"blocks.9.something.weight": torch.zeros(1)})
    with pytest.raises(ConversionError):
        caffe2_to_pyslowfast_name("res2_0_branch9z_w")
    assert caffe2_to_pyslowfast_name("conv1_w_momentum") is None
    assert caffe2_to_pyslowfast_name("nonlocal_conv4_6_theta_w") == "s4.pathway0_nonlocal6.conv_theta.weight"


def test_registered_converters_exist():
    ids = ["slowfast-r50-4x16", "slowfast-r50-8x8", "slowfast-r101-8x8"]
    tags = [(i, w) for i in ids for w in get_spec(i).weights]
    assert sorted(f"{i}.{w.tag}" for i, w in tags) == [
        "slowfast-r50-4x16.k400", "slowfast-r50-8x8.k400", "slowfast-r50-8x8.k400-pyslowfast"]
    for _, w in tags:
        assert w.original_url.startswith("https://dl.fbaipublicfiles.com/")
        assert callable(load_converter(w.converter))
