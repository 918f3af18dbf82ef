"""MatchTrans: exact recovery of a known shift, parity with the per-position loop, gradients."""
import torch

from mmzoo.nn.matchtrans import MatchTrans, matchtrans_affinity, matchtrans_naive


def _one_hot_frames(h, w, dy, dx):
    """Features with one orthogonal code per scene point; frame t sees the scene moved by (dy, dx)."""
    d = (h + 8) * (w + 8)
    codes = torch.eye(d).view(d, h + 8, w + 8)
    prev = codes[:, 4:4 + h, 4:4 + w]
    cur = codes[:, 4 - dy:4 - dy + h, 4 - dx:4 - dx + w]  # cur(y, x) = prev(y - dy, x - dx)
    return cur[None], prev[None]


def test_recovers_known_shift():
    h, w, dy, dx = 9, 11, 1, -2
    cur, prev = _one_hot_frames(h, w, dy, dx)
    mem = torch.randn(1, 6, h, w)
    out = MatchTrans(k=2)(cur, prev, mem)
    expected = torch.roll(mem, shifts=(dy, dx), dims=(2, 3))
    # interior: every position whose source lies inside the frame
    ys = slice(max(dy, 0), h + min(dy, 0))
    xs = slice(max(dx, 0), w + min(dx, 0))
    assert torch.allclose(out[..., ys, xs], expected[..., ys, xs], atol=1e-5)
    # a shift beyond the 5x5 window cannot be recovered: nothing matches, output is zero
    cur3, prev3 = _one_hot_frames(h, w, 3, 0)
    out3 = MatchTrans(k=2)(cur3, prev3, mem)
    assert out3[..., 3:, :].abs().max() < 1e-6


def test_affinity_normalised_and_nonnegative():
    torch.manual_seed(0)
    cur, prev = torch.randn(2, 8, 5, 6), torch.randn(2, 8, 5, 6)
    aff = matchtrans_affinity(cur, prev, k=2)
    assert aff.shape == (2, 25, 5, 6)
    assert (aff >= 0).all()
    s = aff.sum(1)
    assert torch.allclose(s[s > 0], torch.ones_like(s[s > 0]), atol=1e-5)


def test_matches_naive_loop():
    torch.manual_seed(1)
    cur, prev, mem = torch.randn(2, 7, 6, 5), torch.randn(2, 7, 6, 5), torch.randn(2, 3, 6, 5)
    fast = MatchTrans(k=2)(cur, prev, mem)
    slow = matchtrans_naive(cur, prev, mem, k=2)
    assert torch.allclose(fast, slow, atol=1e-5)
    assert torch.allclose(MatchTrans(k=2, impl="unfold")(cur, prev, mem), slow, atol=1e-5)
    fast1 = MatchTrans(k=1)(cur, prev, mem)
    assert torch.allclose(fast1, matchtrans_naive(cur, prev, mem, k=1), atol=1e-5)
    assert not torch.allclose(fast1, fast)


def test_no_gradient_through_affinity_by_default():
    torch.manual_seed(2)
    cur = torch.randn(1, 4, 5, 5, requires_grad=True)
    prev = torch.randn(1, 4, 5, 5, requires_grad=True)
    mem = torch.randn(1, 3, 5, 5, requires_grad=True)
    MatchTrans(k=2)(cur, prev, mem).sum().backward()
    assert cur.grad is None and prev.grad is None
    assert mem.grad is not None and mem.grad.abs().sum() > 0
    cur2 = cur.detach().clone().requires_grad_(True)
    MatchTrans(k=2, affinity_grad=True)(cur2, prev.detach(), mem.detach()).pow(2).sum().backward()
    assert cur2.grad is not None and cur2.grad.abs().sum() > 0
