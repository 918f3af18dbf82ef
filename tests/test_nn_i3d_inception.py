"""I3D (Inception-v1, RGB and flow): parameter parity, TF "SAME" padding, and the pytorch-i3d
checkpoint converter on files written in that format."""
from __future__ import annotations

import argparse

import pytest
import torch

from mmzoo.convert.i3d import convert_pytorch_i3d
from mmzoo.errors import ConversionError
from mmzoo.nn.i3d_inception import InceptionI3d, Unit3d, tf_same_padding

KNOWN_GAPS = {
    # paper Table 1 gives "25M" for two-stream I3D, a rounded figure
    "two-stream I3D params (Carreira & Zisserman, Table 1)": (25.0e6, "RGB + flow with 400-class logits"),
}


def _params(m) -> int:
    return sum(p.numel() for p in m.parameters())


def test_two_stream_parameters_match_the_paper():
    with torch.device("meta"):
        rgb, flow = InceptionI3d(3, 400), InceptionI3d(2, 400)
    total = _params(rgb) + _params(flow)
    print("KNOWN_GAPS", KNOWN_GAPS, "measured", total)
    assert abs(total - 25.0e6) / 25.0e6 < 0.02
    # the streams differ only by conv1's input channels: 64 x 7 x 7 x 7 weights per channel
    assert _params(rgb) - _params(flow) == 64 * 7 * 7 * 7
    # 400 x 1024 logits weights + 400 biases on top of the backbone
    with torch.device("meta"):
        assert _params(rgb) - _params(InceptionI3d(3, 0)) == 400 * 1024 + 400


def test_layer_shapes_are_pytorch_i3d_s():
    """Names and shapes the released rgb_imagenet.pt holds (from pytorch_i3d.py's layer table)."""
    with torch.device("meta"):
        sd = InceptionI3d(3, 400).state_dict()
    expected = {
        "Conv3d_1a_7x7.conv3d.weight": (64, 3, 7, 7, 7),
        "Conv3d_2c_3x3.conv3d.weight": (192, 64, 3, 3, 3),
        "Mixed_3b.b0.conv3d.weight": (64, 192, 1, 1, 1),
        "Mixed_4b.b1a.conv3d.weight": (96, 480, 1, 1, 1),
        "Mixed_4f.b3b.conv3d.weight": (128, 528, 1, 1, 1),
        "Mixed_5c.b1b.conv3d.weight": (384, 192, 3, 3, 3),
        "Mixed_5c.b2b.bn.running_var": (128,),
        "logits.conv3d.weight": (400, 1024, 1, 1, 1),
        "logits.conv3d.bias": (400,),
    }
    for k, shape in expected.items():
        assert tuple(sd[k].shape) == shape, k
    assert not any(k.startswith("logits.bn") for k in sd)
    assert len([k for k in sd if k.endswith("conv3d.weight")]) == 3 + 9 * 6 + 1  # 3 stem convs, 6 per inception block, the logits


def test_tf_same_padding_is_asymmetric_like_tensorflow():
    # (t, h, w) = (8, 7, 224), kernel (3, 3, 7), stride 2: pads w (2, 3), h (1, 1), t (0, 1)
    assert tf_same_padding((8, 7, 224), (3, 3, 7), (2, 2, 2)) == (2, 3, 1, 1, 0, 1)
    unit = Unit3d(1, 1, (7, 7, 7), (2, 2, 2), bn=False, relu=False)
    y = unit(torch.randn(1, 1, 9, 15, 16))
    assert tuple(y.shape[2:]) == (5, 8, 8)  # ceil(n / 2), as TF "SAME"
    # a 1x1 kernel of weight 1 at stride 2 samples pixels 0, 2, 4 ...: padding goes at the end only
    unit = Unit3d(1, 1, (1, 3, 3), (1, 2, 2), bn=False, relu=False)
    with torch.no_grad():
        unit.conv3d.weight.zero_()
        unit.conv3d.weight[0, 0, 0, 0, 0] = 1.0  # top-left tap
    x = torch.arange(16.0).view(1, 1, 1, 4, 4)
    # size 4, k 3, s 2 -> total pad 1, all at the end: the top-left tap sees rows / cols 0 and 2
    assert torch.equal(unit(x)[0, 0, 0], x[0, 0, 0][::2, ::2])


def test_flow_stream_takes_two_channels():
    m = InceptionI3d(2, 7, width_divisor=16).eval()
    assert m(torch.randn(1, 2, 8, 32, 32)).shape == (1, 7)
    assert m.features(torch.randn(1, 2, 16, 64, 64)).shape == (1, 1024 // 16, 2, 2, 2)
    with pytest.raises(ValueError, match="B,2,T,H,W"):
        m(torch.randn(1, 3, 8, 32, 32))


def _tiny_state():
    torch.manual_seed(0)
    m = InceptionI3d(3, 5, width_divisor=16).eval()
    for mod in m.modules():  # non-trivial BN statistics
        if isinstance(mod, torch.nn.BatchNorm3d):
            mod.running_mean.uniform_(-0.1, 0.1)
            mod.running_var.uniform_(0.5, 1.5)
    return m


def test_converter_reads_a_legacy_pytorch_i3d_file(tmp_path):
    src = _tiny_state()
    path = tmp_path / "rgb_imagenet.pt"
    torch.save(src.state_dict(), path, _use_new_zipfile_serialization=False)  # the 2018 format
    state = convert_pytorch_i3d(path)
    dst = InceptionI3d(3, 5, width_divisor=16).eval()
    dst.load_state_dict(state, strict=True)
    x = torch.randn(1, 3, 8, 32, 32)
    assert torch.equal(dst(x), src(x))
    backbone = convert_pytorch_i3d(path, keep_logits=False)
    assert not any(k.startswith("logits.") for k in backbone)
    assert len(backbone) == len(state) - 2


def test_converter_refuses_foreign_keys_and_code(tmp_path):
    sd = _tiny_state().state_dict()
    sd["Mixed_6a.b0.conv3d.weight"] = torch.zeros(1)
    torch.save(sd, tmp_path / "bad.pt")
    with pytest.raises(ConversionError, match="Mixed_6a.b0.conv3d.weight"):
        convert_pytorch_i3d(tmp_path / "bad.pt")
    torch.save({"args": argparse.Namespace(lr=0.1), "model_state": {}}, tmp_path / "obj.pt")
    with pytest.raises(ConversionError, match="only full unpickling"):
        convert_pytorch_i3d(tmp_path / "obj.pt")
