"""STMM (Eqs. 3.1-3.4) against a manual computation; BN* clamping; init from the replaced conv."""
import torch
import torch.nn.functional as F

from mmzoo.nn.stmm import STMM, BidirectionalMemory, ConvGRUCell, bn_star


def test_bn_star_clamps_at_mean_plus_3_std_of_positives():
    x = torch.tensor([[-1.0, 0.0, 1.0, 2.0], [3.0, 4.0, 100.0, -5.0]])
    pos = torch.tensor([1.0, 2.0, 3.0, 4.0, 100.0])
    ub = pos.mean() + 3 * pos.std()
    y = bn_star(x)
    assert torch.allclose(y, torch.minimum(x.clamp(min=0), ub) / ub)
    assert y.min() == 0 and y.max() <= 1
    # a value above the bound saturates at exactly 1
    x2 = torch.cat([torch.ones(1000), torch.tensor([1e6])])
    y2 = bn_star(x2)
    assert y2[-1] == 1.0 and torch.allclose(y2[:-1], torch.full((1000,), 1.0 / (x2.mean() + 3 * x2.std())))
    # no positive element: bound 1, output zeros
    assert torch.equal(bn_star(-torch.ones(3, 3)), torch.zeros(3, 3))
    # per-batch statistics: same value, different companions -> different output
    a = bn_star(torch.tensor([1.0, 1.0, 2.0]))[0]
    b = bn_star(torch.tensor([1.0, 5.0, 9.0]))[0]
    assert a != b
    # statistics are constants for autograd: d/dx of x/ub below the bound is 1/ub
    xg = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    bn_star(xg).sum().backward()
    ub3 = torch.tensor([1.0, 2.0, 3.0])
    ub3 = ub3.mean() + 3 * ub3.std()
    assert torch.allclose(xg.grad, torch.full((3,), 1 / ub3))


def test_bn_star_per_channel_option():
    x = torch.stack([torch.tensor([1.0, 2.0, 3.0]), torch.tensor([10.0, 20.0, 30.0])])[None, :, :, None]  # 1,2,3,1
    y = bn_star(x, stats="channel_positive")
    # per-channel bounds: both channels scale to the same pattern
    assert torch.allclose(y[0, 0], y[0, 1])


def test_stmm_equations_manual():
    torch.manual_seed(0)
    d, m, h, w = 5, 4, 6, 7
    cell = STMM(d, m, w_scale=2.0, matchtrans=False)
    f1, f2 = torch.randn(2, d, h, w), torch.randn(2, d, h, w)
    out = cell(torch.stack([f1, f2], 1))

    def conv(c, x):
        return F.conv2d(x, c.weight, c.bias, padding=1)

    def bn(x):
        p = x[x > 0]
        ub = p.mean() + 3 * p.std()
        return torch.minimum(x.clamp(min=0), ub) / ub

    mem = torch.zeros(2, m, h, w)
    for f, got in ((f1, out[:, 0]), (f2, out[:, 1])):
        z = bn(F.relu(2 * conv(cell.w_z, f) + conv(cell.u_z, mem)))
        r = bn(F.relu(2 * conv(cell.w_r, f) + conv(cell.u_r, mem)))
        cand = F.relu(2 * conv(cell.w, f) + conv(cell.u, mem * r))
        mem = (1 - z) * mem + z * cand
        assert torch.allclose(got, mem, atol=1e-5)


def test_stmm_uses_matchtrans_memory():
    torch.manual_seed(1)
    feats = torch.randn(1, 3, 6, 5, 5)
    a = STMM(6, 4, matchtrans=True)
    b = STMM(6, 4, matchtrans=False)
    b.load_state_dict(a.state_dict())
    oa, ob = a(feats), b(feats)
    assert torch.allclose(oa[:, 0], ob[:, 0])  # first step: zero memory, nothing to align
    assert not torch.allclose(oa[:, 2], ob[:, 2])


def test_init_from_replaced_conv_and_bidirectional():
    torch.manual_seed(2)
    conv = torch.nn.Conv2d(6, 8, 3, padding=1)
    bi = BidirectionalMemory(cell="stmm", in_channels=6, mem_channels=4, matchtrans=True, u_init="zeros")
    bi.init_from_conv(conv)
    # forward memory: filters 0..3 of the swapped-out conv; backward memory: filters 4..7
    for c, sl in ((bi.forward_cell, slice(0, 4)), (bi.backward_cell, slice(4, 8))):
        for wconv in (c.w_z, c.w_r, c.w):
            assert torch.equal(wconv.weight, conv.weight[sl]) and torch.equal(wconv.bias, conv.bias[sl])
        assert c.u.weight.abs().sum() == 0
    feats = torch.randn(2, 4, 6, 5, 5)
    out = bi(feats)
    assert out.shape == (2, 4, 8, 5, 5)
    # forward half at t=0 only sees frame 0; backward half at the last step only sees the last frame
    single0 = bi.forward_cell(feats[:, :1])[:, 0]
    assert torch.allclose(out[:, 0, :4], single0, atol=1e-6)
    single_last = bi.backward_cell(feats[:, -1:])[:, 0]
    assert torch.allclose(out[:, -1, 4:], single_last, atol=1e-6)
    # with zero U and zero memory the first step is z * relu(W F); W = replaced conv slice
    z = bn_star(F.relu(conv(feats[:, 0])[:, :4]))
    assert torch.allclose(single0, z * F.relu(conv(feats[:, 0])[:, :4]), atol=1e-5)


def test_convgru_cell_is_sigmoid_tanh():
    torch.manual_seed(3)
    g = ConvGRUCell(3, 2)
    f = torch.randn(1, 1, 3, 4, 4)
    out = g(f)[:, 0]
    z = torch.sigmoid(g.w_z(f[:, 0]))
    cand = torch.tanh(g.w(f[:, 0]))
    assert torch.allclose(out, z * cand, atol=1e-6)


def test_bidirectional_candidate_of_zero_memory_is_the_swapped_out_conv():
    """Thesis Sec. 3.2.2: W_z, W_r, W start from the swapped-out conv, "a way to initialize the memory
    with the pre-trained static convolutional feature maps": with a zero memory the concatenated
    candidates [M~_fwd ; M~_bwd] = ReLU(W * F) are that conv's output, channel for channel."""
    torch.manual_seed(5)
    conv = torch.nn.Conv2d(6, 8, 3, padding=1)
    bi = BidirectionalMemory(cell="stmm", in_channels=6, mem_channels=4)
    bi.init_from_conv(conv)
    f = torch.randn(2, 6, 5, 5)
    cand = torch.cat([F.relu(bi.forward_cell.w(f)), F.relu(bi.backward_cell.w(f))], 1)
    assert torch.allclose(cand, F.relu(conv(f)), atol=1e-6)
    # a single direction, or a conv with only M outputs, falls back to its first M filters
    one = BidirectionalMemory(cell="stmm", in_channels=6, mem_channels=4, bidirectional=False)
    one.init_from_conv(conv)
    assert torch.equal(one.forward_cell.w.weight, conv.weight[:4])
