"""The Caffe2 converter of the Non-local family (authors' video-nonlocal-net `.pkl`, PySlowFast's
C2D / I3D / I3D-NLN `.pkl`), on files written by the test in that format: a latin-1 pickle
`{"blobs": {name: ndarray}}` with the authors' blob names, solver blobs and momenta included."""
from __future__ import annotations

import pickle
import re

import numpy as np
import pytest
import torch
from torch import nn

from mmzoo.convert import load_converter
from mmzoo.convert.nonlocal_caffe2 import CAFFE2_BN_EPS, convert_nonlocal_caffe2
from mmzoo.errors import ConversionError
from mmzoo.models.nonlocal_net import NonLocalNet
from mmzoo.registry import get_spec
from mmzoo.safe_pickle import UnsafePickleError

_BN = {"weight": "s", "bias": "b", "running_mean": "rm", "running_var": "riv"}


def caffe2_name(key: str) -> str | None:
    """The blob the authors' Caffe2 net (resnet_video_org.py / nonlocal_helper.py) names for a
    NonLocalNet parameter, written out by hand from their code."""
    if key.endswith("num_batches_tracked"):
        return None
    *path, p = key.split(".")
    path = ".".join(path)
    if path == "backbone.stem.conv":
        return "conv1_w"
    if path == "backbone.stem.bn":
        return f"res_conv1_bn_{_BN[p]}"
    if path == "head.fc":
        return f"pred_{'w' if p == 'weight' else 'b'}"
    m = re.fullmatch(r"backbone\.stages\.(\d)\.blocks\.(\d+)\.(conv|bn)_([abc])", path)
    if m:
        pre = f"res{int(m[1]) + 2}_{m[2]}_branch2{m[4]}"
        return f"{pre}_w" if m[3] == "conv" else f"{pre}_bn_{_BN[p]}"
    m = re.fullmatch(r"backbone\.stages\.(\d)\.blocks\.(\d+)\.shortcut\.(conv|bn)", path)
    if m:
        pre = f"res{int(m[1]) + 2}_{m[2]}_branch1"
        return f"{pre}_w" if m[3] == "conv" else f"{pre}_bn_{_BN[p]}"
    m = re.fullmatch(r"backbone\.stages\.(\d)\.nonlocal_blocks\.(\d+)\.(theta|phi|g|out|bn)", path)
    if m:
        pre = f"nonlocal_conv{int(m[1]) + 2}_{m[2]}_{m[3]}"
        return f"{pre}_{_BN[p]}" if m[3] == "bn" else f"{pre}_{'w' if p == 'weight' else 'b'}"
    raise AssertionError(f"unexpected parameter {key}")


def _tiny(**kw) -> NonLocalNet:
    cfg = dict(depth=14, width=8, frames=16, crop_size=32, num_classes=7, arch="i3d_3x1x1", dropout=0.0,
               nonlocal_placement="custom", nonlocal_positions=[[], [0], [0], []])
    cfg.update(kw)
    return NonLocalNet(**cfg).eval()


def _randomise(model: nn.Module) -> None:
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm3d):  # includes the zero-initialised non-local BN
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.uniform_(-0.1, 0.1, generator=g)
                m.running_mean.uniform_(-0.1, 0.1, generator=g)
                m.running_var.uniform_(0.5, 1.5, generator=g)


def _write_caffe2(model: nn.Module, path, test_net_pred: bool = False, affine: bool = False) -> None:
    blobs: dict = {"model_iter": np.array(400000), "lr": np.array(1e-4, dtype=np.float32)}
    for key, t in model.state_dict().items():
        name = caffe2_name(key)
        if name is None or (affine and name.endswith(("_rm", "_riv"))):
            continue
        arr = t.detach().numpy().astype(np.float32)
        if test_net_pred and name == "pred_w":
            arr = arr.reshape(*arr.shape, 1, 1, 1)  # the test net's 1x1x1 conv
        blobs[name] = arr
        if not name.endswith(("_rm", "_riv")):
            blobs[name + "_momentum"] = np.zeros_like(arr)
    with open(path, "wb") as f:
        pickle.dump({"blobs": blobs}, f, protocol=2)


@pytest.mark.parametrize("test_net_pred", [False, True])
def test_authors_pickle_converts_to_identical_logits(tmp_path, test_net_pred):
    torch.manual_seed(0)
    src = _tiny()
    _randomise(src)
    path = tmp_path / "i3d_nonlocal_32x2_IN_pretrain_400k.pkl"
    _write_caffe2(src, path, test_net_pred)
    dst = _tiny()
    dst.load_state_dict(convert_nonlocal_caffe2(path))  # strict: every parameter and buffer present
    x = torch.randn(2, 3, 16, 32, 32)
    with torch.no_grad():
        assert torch.equal(dst(video=x), src(video=x))


def test_affine_frozen_bn_models_compute_x_times_s_plus_b(tmp_path):
    torch.manual_seed(0)
    src = _tiny()
    _randomise(src)
    with torch.no_grad():  # what the authors' AffineNd computes: BN with mean 0, var 1 - eps
        for m in src.modules():
            if isinstance(m, nn.BatchNorm3d):
                m.running_mean.zero_()
                m.running_var.fill_(1.0 - CAFFE2_BN_EPS)
    path = tmp_path / "i3d_nonlocal_128x1_I3D_pretrain_400k.pkl"
    _write_caffe2(src, path, affine=True)
    state = convert_nonlocal_caffe2(path)
    assert torch.equal(state["backbone.stem.bn.running_var"], torch.full((8,), 1.0 - CAFFE2_BN_EPS))
    dst = _tiny()
    dst.load_state_dict(state)
    x = torch.randn(1, 3, 16, 32, 32)
    with torch.no_grad():
        assert torch.allclose(dst(video=x), src(video=x), atol=1e-6)
        bn = dst.backbone.stem.bn
        y = torch.randn(1, 8, 2, 3, 3)
        assert torch.allclose(bn(y), y * bn.weight[:, None, None, None] + bn.bias[:, None, None, None], atol=1e-6)


def test_c2d_without_nonlocal_and_bad_files(tmp_path):
    src = _tiny(arch="c2d", nonlocal_placement="none")
    _randomise(src)
    path = tmp_path / "c2d_baseline_32x2_IN_pretrain_400k.pkl"
    _write_caffe2(src, path)
    dst = _tiny(arch="c2d", nonlocal_placement="none")
    dst.load_state_dict(convert_nonlocal_caffe2(path))
    # a SlowFast (two-pathway) file is refused by name
    bad = tmp_path / "SLOWFAST_4x16_R50.pkl"
    with open(bad, "wb") as f:
        pickle.dump({"blobs": {"t_res2_0_branch2a_w": np.zeros((1, 1, 1, 1, 1), np.float32)}}, f, protocol=2)
    with pytest.raises(ConversionError, match="SlowFast"):
        convert_nonlocal_caffe2(bad)
    # a pickle that would run code is refused before anything runs
    evil = tmp_path / "evil.pkl"
    with open(evil, "wb") as f:
        pickle.dump({"blobs": {"conv1_w": torch.nn.Identity()}}, f)
    with pytest.raises(UnsafePickleError, match="evil.pkl"):
        convert_nonlocal_caffe2(evil)
    notblobs = tmp_path / "plain.pkl"
    with open(notblobs, "wb") as f:
        pickle.dump({"weights": {}}, f, protocol=2)
    with pytest.raises(ConversionError, match="'blobs'"):
        convert_nonlocal_caffe2(notblobs)


@pytest.mark.parametrize(("model_id", "tag", "host"), [
    ("c2d-r50", "k400", "https://s3.amazonaws.com/video-nonlocal/"),
    ("nl-c2d-r50", "k400", "https://s3.amazonaws.com/video-nonlocal/"),
    ("i3d-r50", "k400", "https://s3.amazonaws.com/video-nonlocal/"),
    ("nl-i3d-r50", "k400", "https://s3.amazonaws.com/video-nonlocal/"),
    ("i3d-r50-8x8", "k400-pyslowfast", "https://dl.fbaipublicfiles.com/pyslowfast/model_zoo/kinetics400/"),
    ("nl-i3d-r50-8x8", "k400", "https://dl.fbaipublicfiles.com/pyslowfast/model_zoo/kinetics400/"),
])  # fmt: skip
def test_caffe2_checkpoints_are_registered_with_the_converter(model_id, tag, host):
    spec = get_spec(model_id)
    w = next(w for w in spec.weights if w.tag == tag)
    assert w.original_url.startswith(host) and w.original_url.endswith(".pkl")
    assert load_converter(w.converter) is convert_nonlocal_caffe2
    # the names of a full-size model all have a Caffe2 blob (the converter's inverse is total)
    with torch.device("meta"):
        model = spec.build()
    names = [caffe2_name(k) for k in model.state_dict()]
    assert len(set(n for n in names if n)) == sum(1 for n in names if n)


def test_pyslowfast_nln_8x8_layout(tmp_path):
    """PySlowFast's I3D_NLN_8x8_R50 (Kinetics/c2 config): softmax non-local blocks after res3 blocks
    1, 3 and res4 blocks 1, 3, 5, stem without temporal stride; its Caffe2 blob names convert
    into `nl-i3d-r50-8x8` (checked on a tiny model with the same block sites)."""
    spec = get_spec("nl-i3d-r50-8x8")
    with torch.device("meta"):
        full = spec.build()
    assert [sorted(int(k) for k in s.nonlocal_blocks) for s in full.backbone.stages] == [[], [1, 3], [1, 3, 5], []]
    assert full.backbone.stem.conv.stride == (1, 2, 2) and full.backbone.stem.pool.padding == (0, 1, 1)
    src = _tiny(depth=50, width=8, nonlocal_placement="5", **{k: spec.defaults[k] for k in (
        "stem_temporal_stride", "pool1_kernel", "pool1_stride", "pool1_padding")})
    _randomise(src)
    path = tmp_path / "I3D_NLN_8x8_R50.pkl"
    _write_caffe2(src, path)
    assert any(k.startswith("nonlocal_conv4_5_") for k in pickle.loads(path.read_bytes(), encoding="latin1")["blobs"])
    dst = _tiny(depth=50, width=8, nonlocal_placement="5", **{k: spec.defaults[k] for k in (
        "stem_temporal_stride", "pool1_kernel", "pool1_stride", "pool1_padding")})
    dst.load_state_dict(convert_nonlocal_caffe2(path))
    x = torch.randn(1, 3, 8, 32, 32)
    with torch.no_grad():
        assert torch.equal(dst(video=x), src(video=x))
