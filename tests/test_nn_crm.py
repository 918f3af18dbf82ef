"""Context Relation Mining variants (PSN thesis, Sec. 5.2.2): shapes for N = 25 and other N, the
ED-TCN's temporal resolutions and additive skips, and the non-local block's identity start."""
from __future__ import annotations

import pytest
import torch

from mmzoo.nn.crm import CRM_VARIANTS, EDTCN, ContextRelationMining


@pytest.mark.parametrize("variant", CRM_VARIANTS)
@pytest.mark.parametrize("n", [25, 1, 2, 8, 16, 31, 40])
def test_every_variant_keeps_one_output_per_frame(variant, n):
    torch.manual_seed(0)
    crm = ContextRelationMining(variant, dim=12, filters=[6, 5, 4], out_dim=7).eval()
    out = crm(torch.randn(2, 12, n))
    assert out.shape == (2, 7, n)


def test_ed_tcn_resolutions_for_25_frames():
    net = EDTCN(dim=8, filters=[6, 5, 4], out_dim=3).eval()
    sizes = []
    hooks = [m.register_forward_hook(lambda _m, _i, o: sizes.append((o.shape[1], o.shape[2])))
             for m in [*net.encoder, *net.decoder]]
    net(torch.randn(1, 8, 25))
    for h in hooks:
        h.remove()
    # encoder: stride 2 to 1/8 (25 -> 13 -> 7 -> 4); decoder mirrors it with the mirror widths
    assert sizes == [(6, 13), (5, 7), (4, 4), (5, 7), (6, 13), (3, 25)]


def test_ed_tcn_skips_are_additive_and_reach_the_output():
    torch.manual_seed(0)
    net = EDTCN(dim=4, filters=[3, 3, 3], out_dim=2, decoder_norm=False).eval()
    x = torch.randn(1, 4, 25)
    base = net(x)
    # zeroing the deepest encoder layer leaves the output depending on the skips only
    with torch.no_grad():
        for p in net.encoder[2].parameters():
            p.zero_()
    skip_only = net(x)
    assert not torch.allclose(base, skip_only)
    # the first decoder layer's input is e3 alone, the next ones add the mirror encoder map
    captured = {}

    def grab(_module, args, kwargs):
        captured["in"] = args[0]

    net.decoder[1].register_forward_pre_hook(grab, with_kwargs=True)
    e1 = net.encoder[0](x)
    e2 = net.encoder[1](e1)
    e3 = net.encoder[2](e2)
    d1 = net.decoder[0](e3, output_size=[e2.shape[-1]])
    net(x)
    assert torch.allclose(captured["in"], d1 + e2)


def test_nonlocal_variant_starts_as_the_projection_alone():
    torch.manual_seed(0)
    crm = ContextRelationMining("nonlocal", dim=6, out_dim=4).eval()
    x = torch.randn(2, 6, 25)
    # the block's last BN starts with gamma = 0, so the attention adds nothing at initialisation
    assert torch.allclose(crm(x), crm.body.proj(x), atol=1e-6)
    with torch.no_grad():
        crm.body.block.bn.weight.fill_(1.0)
    assert not torch.allclose(crm(x), crm.body.proj(x), atol=1e-3)


def test_vanilla_tcn_mixes_neighbouring_frames_only():
    torch.manual_seed(0)
    crm = ContextRelationMining("tcn", dim=3, filters=[4, 4, 4], out_dim=2, kernel=3).eval()
    x = torch.randn(1, 3, 25)
    y = x.clone()
    y[..., 0] += 5.0  # 3 layers of kernel 3: frame 0 reaches frames 0..3 only
    diff = (crm(x) - crm(y)).abs().sum(1)[0]
    assert diff[0] > 0 and (diff[4:] == 0).all()


def test_unknown_variant_and_bad_input_raise():
    with pytest.raises(ValueError, match="unknown CRM variant"):
        ContextRelationMining("lstm", dim=4)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="B, D, N"):
        ContextRelationMining("none", dim=4)(torch.randn(4, 5))
