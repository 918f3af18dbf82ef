"""The shared 3D ResNet pathway builder and the blocks of the SlowFast family."""
from __future__ import annotations

import pytest
import torch

from mmzoo.nn.av_fusion import FuseAudioToVisual, FuseFastToSlow
from mmzoo.nn.drop_pathway import DropPathway
from mmzoo.nn.nonlocal_block import NonLocal3d
from mmzoo.nn.resnet3d import ResNetPathway3d, TimeFreqBottleneck, init_resnet_weights


def _count(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_resnet50_pathway_matches_resnet50_parameter_count():
    # A C2D ResNet-50 pathway (1x1 temporal kernels) has exactly the 2D ResNet-50 conv/BN
    # parameters: 25,557,032 - 2,049,000 (the 1000-class fc) = 23,508,032.
    with torch.device("meta"):
        p = ResNetPathway3d(3, 64, 50, "visual", 1, stage_temporal_kernels=(1, 1, 1, 1))
    assert _count(p) == 23_508_032


def test_c2d_pathway_shapes_with_pool2():
    p = ResNetPathway3d(3, 8, 14, "visual", 1, stage_temporal_kernels=(1, 1, 3, 3), pool2=True).eval()
    y = p(torch.randn(2, 3, 8, 64, 64))
    # stem /4 spatially, res3-res5 /2 each; pool2 halves time after res2
    assert y.shape == (2, 8 * 32, 4, 2, 2)
    assert p.out_channels == [32, 64, 128, 256]


def test_i3d_inflation_pattern_sets_temporal_kernels_per_block():
    p = ResNetPathway3d(3, 8, 50, "visual", 5, stage_temporal_kernels=([3, 3, 3], [3, 1, 3, 1], [3, 1, 3, 1, 3, 1], [1, 3, 1]))
    ks = [blk.conv_a.kernel_size[0] for blk in p.stages[2].blocks]
    assert ks == [3, 1, 3, 1, 3, 1]
    assert p.stem.conv.kernel_size == (5, 7, 7)
    with pytest.raises(ValueError):
        ResNetPathway3d(3, 8, 50, stage_temporal_kernels=([3, 3], 1, 1, 1))


def test_audio_pathway_layout_and_strides():
    # audio as B, C, T, F, 1: stride-2 time/frequency downsampling from res3 on (authors' code)
    p = ResNetPathway3d(
        1, 8, 14, "timefreq", stage_temporal_kernels=(1, 1, 1, 1),
        stage_strides=[(1, 1, 1), (2, 2, 1), (2, 2, 1), (2, 2, 1)],
        stage_blocks=["timefreq", "timefreq", "bottleneck", "bottleneck"], kernel_b=(3, 3, 1),
    ).eval()  # fmt: skip
    x = torch.randn(2, 1, 128, 80, 1)
    y = p(x)
    assert y.shape == (2, 256, 16, 10, 1)
    assert isinstance(p.stages[0].blocks[0], TimeFreqBottleneck)
    assert p.stem.conv_t.kernel_size == (9, 1, 1) and p.stem.conv_f.kernel_size == (1, 9, 1)
    assert isinstance(p.stem, torch.nn.Module) and not hasattr(p.stem, "pool")  # no pool1


def test_timefreq_block_variants():
    x = torch.randn(2, 16, 32, 20, 1)
    concat = TimeFreqBottleneck(16, 64, 8, (2, 2, 1), variant="concat").eval()
    reduce_sum = TimeFreqBottleneck(16, 64, 8, (2, 2, 1), variant="reduce_sum").eval()
    assert concat(x).shape == reduce_sum(x).shape == (2, 64, 16, 10, 1)
    # concat: t/f convs on the 16 input channels, 1x1 from 2 x 8; reduce_sum: 1x1 16->8 first
    assert concat.conv_t.in_channels == 16 and concat.conv_c.in_channels == 16
    assert reduce_sum.conv_t.in_channels == 8 and reduce_sum.conv_c.in_channels == 8
    with pytest.raises(ValueError):
        TimeFreqBottleneck(16, 64, 8, variant="serial")


def test_timefreq_stem_sums_parallel_time_and_frequency_filters():
    p = ResNetPathway3d(1, 4, 14, "timefreq", stage_temporal_kernels=(1, 1, 1, 1)).eval()
    stem = p.stem
    x = torch.zeros(1, 1, 20, 20, 1)
    x[0, 0, 10, 10, 0] = 1.0  # an impulse: the response is the union of a time and a freq line
    with torch.no_grad():
        stem.bn.running_mean.zero_(), stem.bn.running_var.fill_(1 - 1e-5)
        stem.conv_t.weight.fill_(1.0)
        stem.conv_f.weight.fill_(2.0)
        y = (stem.conv_t(x) + stem.conv_f(x))[0, 0, :, :, 0]
    assert y[10, 10] == 3.0  # both filters cover the centre
    assert y[6, 10] == 1.0 and y[10, 6] == 2.0 and y[6, 6] == 0.0


def test_nonlocal_block_is_identity_at_init_and_attends_after():
    torch.manual_seed(0)
    for mode in ("softmax", "dot_product"):
        nl = NonLocal3d(16, 8, (1, 2, 2), mode).eval()
        x = torch.randn(2, 16, 2, 4, 4)
        assert torch.equal(nl(x), x)  # BN gamma = 0
        with torch.no_grad():
            nl.bn.weight.fill_(1.0)
        y = nl(x)
        assert not torch.allclose(y, x)
        # a change at one position reaches every other position (non-local)
        x2 = x.clone()
        x2[:, :, 0, 0, 0] += 5.0
        d = (nl(x2) - y).abs().sum(1)
        assert (d[:, 1, 3, 3] > 0).all()


def test_init_zeroes_final_bn_of_residual_branches():
    p = ResNetPathway3d(3, 8, 14, stage_temporal_kernels=(1, 1, 3, 3))
    init_resnet_weights(p)
    blk = p.stages[1].blocks[0]
    assert torch.all(blk.bn_c.weight == 0) and torch.all(blk.bn_a.weight == 1)


def test_fast_to_slow_fusion_time_stride():
    f = FuseFastToSlow(8, ratio=2, kernel=5, alpha=8).eval()
    slow, fast = torch.randn(1, 64, 4, 7, 7), torch.randn(1, 8, 32, 7, 7)
    out = f(slow, fast)
    assert out.shape == (1, 64 + 16, 4, 7, 7)
    assert torch.equal(out[:, :64], slow)


def test_audio_to_visual_fusion_shape_and_frequency_average():
    f = FuseAudioToVisual(dim_audio=32, dim_visual=80, time_stride=16, dim_inner=64).eval()
    a = torch.randn(2, 32, 64, 40, 1)
    out = f(a)
    assert out.shape == (2, 80, 4, 1, 1)
    # only the frequency average matters: permuting frequency bins changes nothing
    perm = torch.randperm(40)
    assert torch.allclose(f(a[:, :, :, perm]), out, atol=1e-5)


def test_drop_pathway_statistics_and_zero_sum():
    gen = torch.Generator().manual_seed(0)
    d = DropPathway(0.8).train()
    draws = [d.sample(gen) for _ in range(4000)]
    rate = sum(draws) / len(draws)
    assert abs(rate - 0.8) < 0.03  # binomial sd = 0.0063
    x = torch.randn(3, 4)
    d.dropped = True
    assert torch.equal(d(x), torch.zeros_like(x))
    d.dropped = False
    assert torch.equal(d(x), x)
    d.eval()
    assert not any(d.sample(gen) for _ in range(200))
    assert not any(DropPathway(0.0).train().sample(gen) for _ in range(200))
    with pytest.raises(ValueError):
        DropPathway(1.5)
