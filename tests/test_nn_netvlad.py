"""NetVLAD: ghost clusters, shared centres and their gradients, masks, against hand computation."""
import pytest
import torch

from mmzoo.nn.netvlad import NetVLAD


def _manual(x, c, b, res, k):
    """Eqs. 6.1-6.2 written out token by token (no normalisation)."""
    B, N, D = x.shape
    out = torch.zeros(B, k, D)
    for bi in range(B):
        for i in range(N):
            logits = torch.stack([x[bi, i] @ c[j] + b[j] for j in range(c.shape[0])])
            a = torch.exp(logits) / torch.exp(logits).sum()
            for j in range(k):
                out[bi, j] += a[j] * (x[bi, i] - res[j])
    return out


def test_ghost_cluster_takes_mass_and_is_dropped():
    torch.manual_seed(0)
    v = NetVLAD(4, num_clusters=2, ghost_clusters=1, assignment_norm="bias", intra_norm=False, final_norm=False)
    x = torch.randn(2, 5, 4)
    out, a = v(x, return_assignment=True)
    assert out.shape == (2, 2 * 4) and a.shape == (2, 5, 3)
    assert torch.allclose(a.sum(-1), torch.ones(2, 5))
    c, b, res = v.assign_centers[0].detach(), v.assign_norm[0].detach(), v.residual_centers[0].detach()
    expected = _manual(x, c, b, res, 2)
    assert torch.allclose(out.view(2, 2, 4), expected, atol=1e-5)
    # the ghost really takes mass: making it dominant shrinks the kept residuals
    with torch.no_grad():
        v.assign_norm[0][2] = 20.0
    out_ghosty = v(x)
    assert out_ghosty.abs().sum() < 1e-3 * expected.abs().sum()
    # and a softmax over the K kept clusters alone would be different
    no_ghost = NetVLAD(4, 2, 0, assignment_norm="bias", intra_norm=False, final_norm=False)
    with torch.no_grad():
        no_ghost.assign_centers[0].copy_(c[:2]); no_ghost.assign_norm[0].copy_(b[:2]); no_ghost.residual_centers[0].copy_(res)
    assert not torch.allclose(no_ghost(x), out, atol=1e-4)


def test_normalisations():
    v = NetVLAD(6, 3, 1)
    v.eval()
    out = v(torch.randn(4, 7, 6))
    assert torch.allclose(out.norm(dim=-1), torch.ones(4), atol=1e-5)
    v2 = NetVLAD(6, 3, 1, final_norm=False)
    v2.load_state_dict(v.state_dict())
    v2.eval()
    per = v2(torch.randn(4, 7, 6)).view(4, 3, 6).norm(dim=-1)
    assert torch.allclose(per, torch.ones(4, 3), atol=1e-5)


def test_shared_centres_receive_gradient_from_both_branches():
    torch.manual_seed(0)
    v = NetVLAD(8, 3, 1, num_branches=2)
    assert len(v.assign_centers) == 1 and len(v.residual_centers) == 1 and len(v.assign_norm) == 1
    text, video = torch.randn(3, 5, 8), torch.randn(3, 9, 8)
    for branch, x in ((0, video), (1, text)):
        v.zero_grad()
        (v(x, branch=branch) * torch.randn(3, 24)).sum().backward()
        assert v.assign_centers[0].grad is not None and v.assign_centers[0].grad.abs().sum() > 0
        assert v.residual_centers[0].grad.abs().sum() > 0
    # both calls read the very same parameters: same input -> same output from either branch
    v.eval()
    assert torch.equal(v(text, branch=0), v(text, branch=1))


def test_port_layout_detaches_video_assignment_and_separates_residuals():
    torch.manual_seed(0)
    v = NetVLAD(8, 3, 1, num_branches=2, share_assignment=True, share_assignment_norm=False, share_residual_centers=False)
    assert len(v.assign_centers) == 1 and len(v.residual_centers) == 2 and len(v.assign_norm) == 2
    x = torch.randn(3, 5, 8)
    v(x, branch=0, detach_assignment=True).sum().backward()
    assert v.assign_centers[0].grad is None
    assert v.residual_centers[0].grad.abs().sum() > 0 and v.residual_centers[1].grad is None
    v(x, branch=1).pow(2).sum().backward()
    assert v.assign_centers[0].grad.abs().sum() > 0 and v.residual_centers[1].grad.abs().sum() > 0
    with pytest.raises(ValueError, match="branch"):
        v(x, branch=2)


def test_mask_excludes_padded_tokens():
    torch.manual_seed(0)
    v = NetVLAD(4, 2, 1, assignment_norm="bias")
    x = torch.randn(1, 3, 4)
    padded = torch.cat([x, torch.randn(1, 2, 4) * 5], dim=1)
    mask = torch.tensor([[True, True, True, False, False]])
    assert torch.allclose(v(padded, mask=mask), v(x), atol=1e-6)
    assert not torch.allclose(v(padded), v(x), atol=1e-3)
    # BatchNorm on the logits, the alternative to the bias b_j
    vb = NetVLAD(4, 2, 1, assignment_norm="batchnorm")
    assert isinstance(vb.assign_norm[0], torch.nn.BatchNorm1d) and vb.assign_norm[0].num_features == 3
