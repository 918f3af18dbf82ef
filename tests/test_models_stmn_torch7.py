"""Torch7 checkpoint conversion, on files written here in the Torch7 binary serialisation format
(torch7 File.lua: typed objects, tables with back-reference indices, tensors + storages)."""
import struct

import pytest
import torch
from torch import nn

from mmzoo.convert.torch7 import (Torch7FormatError, convert_rfcn_r101, convert_stmn_r101, convert_stmn_r101_single,
                                  convert_stmn_r101_with_rfcn, load_t7, t7_layers)
from mmzoo.models.stmn import STMN

TINY = dict(backbone="resnet18", pretrained_backbone=False, head_channels=16, embed_channels=24, mem_channels=8,
            anchor_sizes=(16, 32), rpn_pre_nms_test=50, rpn_post_nms_test=20)


class Mod:
    def __init__(self, cls, **fields):
        self.cls, self.fields = cls, fields


class T7Writer:
    def __init__(self, f):
        self.f, self.idx = f, 0

    def _i(self, v):
        self.f.write(struct.pack("<i", v))

    def _l(self, v):
        self.f.write(struct.pack("<q", v))

    def _s(self, s):
        b = s.encode()
        self._i(len(b))
        self.f.write(b)

    def _index(self):
        self.idx += 1
        self._i(self.idx)

    def obj(self, o):
        if o is None:
            self._i(0)
        elif isinstance(o, bool):
            self._i(5)
            self._i(int(o))
        elif isinstance(o, (int, float)):
            self._i(1)
            self.f.write(struct.pack("<d", float(o)))
        elif isinstance(o, str):
            self._i(2)
            self._s(o)
        elif isinstance(o, torch.Tensor):
            t = o.detach().float().contiguous()
            self._i(4)
            self._index()
            self._s("V 1")
            self._s("torch.FloatTensor")
            self._i(t.dim())
            for v in t.shape:
                self._l(v)
            for v in t.stride():
                self._l(v)
            self._l(1)  # 1-based storage offset
            self._i(4)
            self._index()
            self._s("V 1")
            self._s("torch.FloatStorage")
            self._l(t.numel())
            self.f.write(t.numpy().tobytes())
        elif isinstance(o, Mod):
            self._i(4)
            self._index()
            self._s("V 1")
            self._s(o.cls)
            self.obj(dict(o.fields))
        elif isinstance(o, (list, tuple)):
            self.obj({i + 1: v for i, v in enumerate(o)})
        elif isinstance(o, dict):
            self._i(3)
            self._index()
            self._i(len(o))
            for k, v in o.items():
                self.obj(k)
                self.obj(v)
        else:
            raise TypeError(type(o))


def conv_mod(c: nn.Conv2d, bias=None, cls="cudnn.SpatialConvolution"):
    b = c.bias if bias is None else bias
    f = dict(weight=c.weight, nInputPlane=c.in_channels, nOutputPlane=c.out_channels, kH=c.kernel_size[0],
             kW=c.kernel_size[1], dH=c.stride[0], dW=c.stride[1], padH=c.padding[0], padW=c.padding[1], train=False)
    if b is not None:
        f["bias"] = b
    return Mod(cls, **f)


def bn_mod(bn):
    return Mod("nn.SpatialBatchNormalization", weight=bn.weight, bias=bn.bias, running_mean=bn.running_mean,
               running_var=bn.running_var, eps=1e-5, momentum=0.1, affine=True)


def authors_tree(model, fold_stem=True, stmm=False):
    """The model's layers as the authors' nested Torch7 tree (Sequential / ConcatTable nesting)."""
    body = model.backbone.body
    mods = []
    if fold_stem:  # BN folded into conv1, as the authors' loadResNet does for early layers
        bn = body.bn1
        s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        w = body.conv1.weight * s[:, None, None, None]
        folded = nn.Conv2d(3, w.shape[0], 7, 2, 3)
        folded.weight.data.copy_(w)
        mods.append(conv_mod(folded, bias=bn.bias - bn.running_mean * s))
    else:
        mods += [conv_mod(body.conv1, bias=torch.zeros(body.conv1.out_channels)), bn_mod(body.bn1)]
    mods += [Mod("cudnn.ReLU"), Mod("nn.SpatialMaxPooling", kW=3, kH=3)]
    for layer in (body.layer1, body.layer2, body.layer3, body.layer4):
        blocks = []
        for blk in layer:
            main = [conv_mod(blk.conv1, bias=torch.zeros(blk.conv1.out_channels)), bn_mod(blk.bn1), Mod("cudnn.ReLU"),
                    conv_mod(blk.conv2, bias=torch.zeros(blk.conv2.out_channels)), bn_mod(blk.bn2)]
            short = Mod("nn.Identity") if blk.downsample is None else Mod("nn.Sequential", modules=[
                conv_mod(blk.downsample[0], bias=torch.zeros(blk.downsample[0].out_channels)),
                Mod("inn.ConstAffine", weight=blk.downsample[1].weight / torch.sqrt(blk.downsample[1].running_var + 1e-5),
                    bias=blk.downsample[1].bias - blk.downsample[1].running_mean * blk.downsample[1].weight
                    / torch.sqrt(blk.downsample[1].running_var + 1e-5))])
            blocks.append(Mod("nn.Sequential", modules=[
                Mod("nn.ConcatTable", modules=[Mod("nn.Sequential", modules=main), short]),
                Mod("nn.CAddTable"), Mod("cudnn.ReLU")]))
        mods.append(Mod("nn.Sequential", modules=blocks))
    features = Mod("nn.Sequential", modules=mods)
    classifier = Mod("nn.Sequential", modules=[
        Mod("nn.SpatialDilatedConvolution", **conv_mod(model.reduce[0]).fields, dilationW=6, dilationH=6),
        Mod("cudnn.ReLU"), conv_mod(model.embed[0]), Mod("cudnn.ReLU")])
    head = Mod("nn.ConcatTable", modules=[
        Mod("nn.Sequential", modules=[Mod("nn.ParallelTable", modules=[conv_mod(model.head.cls_conv, cls="nn.SpatialConvolution"), Mod("nn.Identity")]),
                                      Mod("rfcn.PSROIPooling", spatial_scale=1 / 16)]),
        Mod("nn.Sequential", modules=[Mod("nn.ParallelTable", modules=[conv_mod(model.head.box_conv, cls="nn.SpatialConvolution"), Mod("nn.Identity")]),
                                      Mod("rfcn.PSROIPooling", spatial_scale=1 / 16)])])
    if not stmm:
        embed = Mod("nn.Sequential", modules=[conv_mod(model.temporal[0], cls="nn.SpatialConvolution"), Mod("cudnn.ReLU"),
                                              conv_mod(model.post, cls="nn.SpatialConvolution")])
        return Mod("nn.Sequential", modules=[
            Mod("nn.ParallelTable", modules=[Mod("nn.Sequential", modules=[features, classifier, embed]), Mod("nn.Identity")]),
            head])

    def stmm_obj(cell):
        f = {}
        for ours, theirs in (("w_z", "conv_z_w"), ("w_r", "conv_r_w"), ("w", "conv_w"), ("u_z", "conv_z_u"),
                             ("u_r", "conv_r_u"), ("u", "conv_u")):
            f[theirs] = conv_mod(getattr(cell, ours), cls="cudnn.SpatialConvolution")
        return Mod("nn.STMM", N=1, T=6, D=cell.in_channels, M=cell.mem_channels, mult_after_w=20.0, **f)

    layer = Mod("nn.Sequential", modules=[
        Mod("nn.ConcatTable", modules=[
            Mod("nn.Sequential", modules=[stmm_obj(model.temporal.forward_cell)]),
            Mod("nn.Sequential", modules=[Mod("nn.VidFlip"), stmm_obj(model.temporal.backward_cell), Mod("nn.VidFlip")])]),
        Mod("nn.JoinTable", dimension=2)])
    bottom = Mod("nn.Sequential", modules=[
        Mod("nn.ParallelTable", modules=[conv_mod(model.post, cls="nn.SpatialConvolution"), Mod("nn.Identity")]), head])
    return Mod("nn.Sequential", modules=[
        Mod("nn.ParallelTable", modules=[Mod("nn.Sequential", modules=[Mod("nn.Sequential", modules=[features, classifier]), layer]),
                                         Mod("nn.Identity")]), bottom])


def _randomise(model):
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for n, b in model.named_buffers():
            if n.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=g) * 0.1)
            elif n.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.01)


def _write(path, tree):
    with open(path, "wb") as f:
        T7Writer(f).obj(tree)


def test_rfcn_roundtrip_through_torch7_file(tmp_path):
    torch.manual_seed(0)
    src = STMN(temporal="none", ensemble="none", seq_nms=False, **TINY).eval()
    _randomise(src)
    _write(tmp_path / "rfcn.t7", authors_tree(src, fold_stem=True))
    layers = t7_layers(load_t7(tmp_path / "rfcn.t7"))
    assert layers[0]["kind"] == "conv" and layers[0]["bias"] is not None and layers[1]["kind"] == "conv"
    dst = STMN(temporal="none", ensemble="none", seq_nms=False, **TINY).eval()
    with pytest.warns(UserWarning, match="no RPN"):
        state = convert_rfcn_r101(tmp_path / "rfcn.t7", dst)
    dst.load_state_dict(state, strict=True)
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        a = src.post(src.temporal(src._trunk(x)[1]))
        b = dst.post(dst.temporal(dst._trunk(x)[1]))
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)
        assert torch.equal(dst.head.cls_conv.weight, src.head.cls_conv.weight)
        rois = torch.tensor([[0, 4.0, 4, 60, 50], [1, 10, 0, 90, 63]])
        for u, v in zip(src.head(a, rois), dst.head(b, rois)):
            assert torch.allclose(u, v, atol=1e-4)


def test_stmn_roundtrip_with_named_stmm_convs(tmp_path):
    torch.manual_seed(1)
    src = STMN(temporal="stmm", ensemble="none", **TINY).eval()
    _randomise(src)
    _write(tmp_path / "stmn.t7", authors_tree(src, fold_stem=False, stmm=True))
    dst = STMN(temporal="stmm", ensemble="none", **TINY).eval()
    with pytest.warns(UserWarning):
        dst.load_state_dict(convert_stmn_r101_single(tmp_path / "stmn.t7", dst), strict=True)
    for k, v in src.state_dict().items():
        if k.startswith(("temporal.", "post.", "head.", "embed.", "reduce.")):
            assert torch.equal(v, dst.state_dict()[k]), k
    x = torch.randn(1, 3, 3, 64, 96)
    with torch.no_grad():
        fa = src._temporal(src._trunk(x[0].transpose(0, 1))[1], 1, 3)
        fb = dst._temporal(dst._trunk(x[0].transpose(0, 1))[1], 1, 3)
    assert torch.allclose(fa, fb, atol=1e-4, rtol=1e-4)


def test_wrong_architecture_and_html_are_rejected(tmp_path):
    src = STMN(temporal="none", ensemble="none", seq_nms=False, **TINY)
    _write(tmp_path / "rfcn.t7", authors_tree(src))
    other = STMN(temporal="none", ensemble="none", seq_nms=False, **{**TINY, "head_channels": 32})
    with pytest.raises(Torch7FormatError, match="weights"):
        convert_rfcn_r101(tmp_path / "rfcn.t7", other)
    (tmp_path / "page.t7").write_text("<!DOCTYPE html><html>Google Drive - Virus scan warning</html>")
    with pytest.raises(Torch7FormatError, match="HTML page"):
        load_t7(tmp_path / "page.t7")
    (tmp_path / "trunc.t7").write_bytes((tmp_path / "rfcn.t7").read_bytes()[:1000])
    with pytest.raises(Torch7FormatError, match="cannot read"):
        load_t7(tmp_path / "trunc.t7")


def test_stmn_with_rfcn_fills_the_ensemble_branch(tmp_path):
    torch.manual_seed(2)
    rfcn_src = STMN(temporal="none", ensemble="none", seq_nms=False, **TINY).eval()
    stmn_src = STMN(temporal="stmm", ensemble="none", **TINY).eval()
    _randomise(rfcn_src)
    _write(tmp_path / "rfcn.t7", authors_tree(rfcn_src))
    _write(tmp_path / "stmn.t7", authors_tree(stmn_src, stmm=True))

    def build(model_id, **kw):
        temporal = "none" if model_id == "rfcn-r101" else "stmm"
        ens = kw.get("ensemble", "none" if model_id == "rfcn-r101" else "score_avg")
        return STMN(temporal=temporal, ensemble=ens, seq_nms=False, **TINY)

    with pytest.warns(UserWarning):
        state = convert_stmn_r101_with_rfcn(tmp_path / "stmn.t7", tmp_path / "rfcn.t7", build=build)
    full = build("stmn-r101")
    full.load_state_dict(state, strict=True)
    assert torch.equal(full.ensemble_branch["conv"][0].weight, rfcn_src.temporal[0].weight)
    assert torch.equal(full.ensemble_branch["head"].cls_conv.weight, rfcn_src.head.cls_conv.weight)
    assert torch.equal(full.head.cls_conv.weight, stmn_src.head.cls_conv.weight)
    assert torch.equal(full.temporal.backward_cell.u.weight, stmn_src.temporal.backward_cell.u.weight)
    (tmp_path / "rfcn.t7").unlink()
    with pytest.raises(Torch7FormatError, match="rfcn.t7 next to stmn.t7"):
        convert_stmn_r101(tmp_path / "stmn.t7")
