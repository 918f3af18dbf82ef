"""The non-local block (thesis ch. 5, Eq. 5.1-5.2 and the table of pairwise functions) against
hand-written per-position formulas, its identity start, extents, temporal groups, and the 2D ->
3D ResNet inflation helper."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from mmzoo.nn.nonlocal_block import NonLocal3d
from mmzoo.nn.resnet3d import ResNetPathway3d, inflate_resnet2d_state_dict

B, C, CI, T, H, W = 2, 6, 3, 2, 4, 4


def _block(mode, **kw) -> NonLocal3d:
    torch.manual_seed(0)
    blk = NonLocal3d(C, CI, (1, 2, 2), mode, **kw)
    blk.reset_parameters(0.5)
    with torch.no_grad():  # a non-zero, non-trivial BN so that y shows in the output
        blk.bn.weight.uniform_(0.5, 1.5)
        blk.bn.bias.uniform_(-0.2, 0.2)
        blk.bn.running_mean.uniform_(-0.1, 0.1)
        blk.bn.running_var.uniform_(0.5, 1.5)
        for m in blk.modules():
            if isinstance(m, nn.Conv3d):
                m.bias.uniform_(-0.3, 0.3)
    return blk.eval()


def _conv1x1(conv: nn.Conv3d, v: torch.Tensor) -> torch.Tensor:
    """A 1x1x1 conv applied to one position's vector."""
    return conv.weight[:, :, 0, 0, 0] @ v + conv.bias


def _reference(blk: NonLocal3d, x: torch.Tensor, mode: str, scale: bool, extent: str = "spacetime") -> torch.Tensor:
    """z = x + BN(W_z y), y_i = 1/C(x) sum_j f(x_i, x_j) g(x_j), written position by position."""
    pooled = torch.nn.functional.max_pool3d(x, (1, 2, 2), (1, 2, 2)) if extent != "time" else x
    out = torch.empty(x.shape[0], CI, *x.shape[2:])
    for b in range(x.shape[0]):
        keys = [(t, h, w) for t in range(pooled.shape[2]) for h in range(pooled.shape[3]) for w in range(pooled.shape[4])]
        for t in range(x.shape[2]):
            for h in range(x.shape[3]):
                for w in range(x.shape[4]):
                    xi = x[b, :, t, h, w]
                    if extent == "space":
                        js = [k for k in keys if k[0] == t]
                    elif extent == "time":
                        js = [k for k in keys if k[1:] == (h, w)]
                    else:
                        js = keys
                    xj = [pooled[b, :, tj, hj, wj] for tj, hj, wj in js]
                    gj = [_conv1x1(blk.g, v) for v in xj]
                    if mode == "gaussian":
                        d = C
                        s = torch.stack([xi @ v for v in xj]) * (d**-0.5 if scale else 1.0)
                        f, norm = torch.exp(s), torch.exp(s).sum()
                    elif mode == "softmax":
                        th = _conv1x1(blk.theta, xi)
                        s = torch.stack([th @ _conv1x1(blk.phi, v) for v in xj]) * (CI**-0.5 if scale else 1.0)
                        f, norm = torch.exp(s), torch.exp(s).sum()
                    elif mode == "dot_product":
                        th = _conv1x1(blk.theta, xi)
                        f, norm = torch.stack([th @ _conv1x1(blk.phi, v) for v in xj]), len(xj)
                    else:  # concatenation: ReLU(w_f^T [theta_i, phi_j])
                        th = _conv1x1(blk.theta, xi)
                        wf = blk.concat_project.weight.view(-1)
                        f = torch.stack([torch.relu(wf @ torch.cat([th, _conv1x1(blk.phi, v)])) for v in xj])
                        norm = len(xj)
                    out[b, :, t, h, w] = sum(fj * gv for fj, gv in zip(f, gj)) / norm
    z = torch.nn.functional.conv3d(out, blk.out.weight, blk.out.bias)
    return x + blk.bn(z)


@pytest.mark.parametrize(("mode", "scale"), [("softmax", True), ("softmax", False), ("gaussian", True),
                                             ("gaussian", False), ("dot_product", True), ("concatenation", True)])
def test_pairwise_functions_match_the_formulas(mode, scale):
    blk = _block(mode, scale=scale)
    x = torch.randn(B, C, T, H, W, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        got, want = blk(x), _reference(blk, x, mode, scale)
    assert torch.allclose(got, want, atol=1e-5), (mode, (got - want).abs().max())
    assert not torch.allclose(got, x, atol=1e-3)  # the block did something


def test_embedded_gaussian_alias_and_positional_signature_are_backward_compatible():
    torch.manual_seed(1)
    old = NonLocal3d(C, CI, (1, 2, 2), "softmax", 1e-5, 0.1)  # the SlowFast call
    torch.manual_seed(1)
    new = NonLocal3d(C, CI, (1, 2, 2), "embedded_gaussian")
    assert old.mode == new.mode == "softmax" and old.scale and old.extent == "spacetime"
    x = torch.randn(1, C, T, H, W)
    with torch.no_grad():
        old.bn.weight.fill_(1.0)
        new.bn.weight.fill_(1.0)
    assert torch.allclose(old.eval()(x), new.eval()(x))
    with pytest.raises(ValueError, match="unknown non-local mode"):
        NonLocal3d(C, CI, mode="cosine")  # type: ignore[arg-type]


@pytest.mark.parametrize("extent", ["space", "time"])
def test_extents_restrict_the_pairs(extent):
    blk = _block("softmax", extent=extent)
    x = torch.randn(B, C, T, H, W, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        got = blk(x)
        want = _reference(blk, x, "softmax", True, extent)
        spacetime = _reference(blk, x, "softmax", True, "spacetime")
    assert torch.allclose(got, want, atol=1e-5)
    assert not torch.allclose(got, spacetime, atol=1e-4)


@pytest.mark.parametrize("mode", ["softmax", "gaussian", "dot_product", "concatenation"])
def test_zero_initialised_bn_makes_the_block_an_identity(mode):
    blk = NonLocal3d(C, CI, (1, 2, 2), mode)  # as constructed, and after the authors' init
    x = torch.randn(B, C, T, H, W)
    for m in (blk.train(), blk.eval()):
        assert torch.equal(m(x), x)
    blk.reset_parameters(0.01)
    assert torch.equal(blk.train()(x), x)
    assert float(blk.bn.weight.detach().abs().sum()) == 0.0


def test_temporal_groups_apply_the_block_per_chunk():
    blk = _block("softmax", temporal_groups=2)
    x = torch.randn(1, C, 4, H, W)
    with torch.no_grad():
        got = blk(x)
        blk.temporal_groups = 1
        parts = torch.cat([blk(x[:, :, :2]), blk(x[:, :, 2:])], dim=2)
        whole = blk(x)
    assert torch.allclose(got, parts, atol=1e-6)
    assert not torch.allclose(got, whole, atol=1e-4)


def test_inflated_c2d_reproduces_the_2d_resnet_on_a_static_clip():
    """Copy inflation (t=1 kernels) of a torchvision ResNet-50 into a C2D pathway with the same
    stem: every frame of a static clip gives the 2D network's pooled features."""
    tv = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    net2d = tv.models.resnet50(weights=None).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in net2d.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.running_mean.uniform_(-0.1, 0.1, generator=g)
                m.running_var.uniform_(0.5, 1.5, generator=g)
    c2d = ResNetPathway3d(stem_temporal_kernel=1, stage_temporal_kernels=(1, 1, 1, 1), stem_pool_kernel=(1, 3, 3),
                          stem_pool_stride=(1, 2, 2)).eval()  # fmt: skip
    new = inflate_resnet2d_state_dict(net2d.state_dict(), c2d.state_dict())
    missing = set(c2d.state_dict()) - set(new)
    assert not missing, missing
    c2d.load_state_dict(new)
    img = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        want = torch.flatten(net2d.avgpool(net2d.layer4(net2d.layer3(net2d.layer2(net2d.layer1(
            net2d.maxpool(net2d.relu(net2d.bn1(net2d.conv1(img))))))))), 1)  # fmt: skip
        got = c2d(img[:, :, None].repeat(1, 1, 2, 1, 1)).mean((2, 3, 4))
    assert torch.allclose(got, want, rtol=0, atol=1e-5 * float(want.abs().max()))


def test_inflation_divides_by_t_or_centres():
    w2d = {"conv1.weight": torch.randn(64, 3, 7, 7)}
    i3d = ResNetPathway3d(stem_temporal_kernel=5).state_dict()
    avg = inflate_resnet2d_state_dict(w2d, i3d)["stem.conv.weight"]
    assert avg.shape == (64, 3, 5, 7, 7)
    assert torch.allclose(avg.sum(2), w2d["conv1.weight"], atol=1e-6)
    assert torch.allclose(avg[:, :, 0], w2d["conv1.weight"] / 5)
    ctr = inflate_resnet2d_state_dict(w2d, i3d, mode="center")["stem.conv.weight"]
    assert torch.equal(ctr[:, :, 2], w2d["conv1.weight"]) and float(ctr[:, :, [0, 1, 3, 4]].abs().sum()) == 0
    with pytest.raises(ValueError, match="does not have"):
        inflate_resnet2d_state_dict({"layer9.0.conv1.weight": torch.zeros(1)}, i3d)
    with pytest.raises(ValueError, match="cannot be inflated"):
        inflate_resnet2d_state_dict({"conv1.weight": torch.randn(32, 3, 7, 7)}, i3d)
    assert math.isclose(float(avg.abs().sum()), float(w2d["conv1.weight"].abs().sum()), rel_tol=1e-5)
