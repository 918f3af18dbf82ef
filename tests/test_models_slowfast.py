"""SlowFast / AVSlowFast / AudioNet ids at full size: parameters and FLOPs against the thesis,
and parity with PyTorchVideo's `create_slowfast` (parameter count and logits)."""
from __future__ import annotations

import pytest
import torch

import mmzoo
from mmzoo.info import measure

# id -> (measured params, measured GFLOPs (multiply-adds, one view at the thesis' input),
#        thesis GFLOPs or None, allowed relative gap to the thesis)
# Gaps above 1% are explained in the model cards (docs/slowfast.md, "FLOPs and parameters").
FULL_SIZE = {
    "slowfast-r50-4x16": (34_480_216, 36.10, 36.1, 0.01),
    "slowfast-r50-8x8": (34_566_488, 65.71, None, None),
    "slowfast-r101-8x8": (53_774_808, 106.51, 106.0, 0.01),
    "avslowfast-r50-4x16": (44_203_320, 39.60, 39.8, 0.01),
    "avslowfast-r50-8x8": (44_203_320, 68.27, 63.4, 0.08),
    "avslowfast-r50-16x4": (44_203_320, 125.62, 117.9, 0.07),
    "avslowfast-r101-8x8": (68_259_000, 112.52, 129.0, 0.13),
    "avslowfast-r101nl-16x8": (74_564_280, 254.03, 278.0, 0.09),
    "audionet-r50": (25_261_456, 16.08, 14.2, 0.14),
}


@pytest.mark.parametrize("model_id", sorted(FULL_SIZE))
def test_full_size_params_and_flops(model_id):
    params, gflops, thesis, tol = FULL_SIZE[model_id]
    m = measure(model_id)
    assert m["params"] == params
    assert m["gflops"] == pytest.approx(gflops, rel=2e-3)
    if thesis is not None:
        assert abs(m["gflops"] - thesis) / thesis <= tol


def test_avslowfast_inference_params_and_beta_a_ablation_flops():
    # AVSlowFast R50 without the training-only AVS heads / res5 AVS branch: 41.82 M
    # (thesis: 38.5 M; see the card). Table 4.6a GFLOPs for beta_A = 1/8, 1/4, 1/2, 1: the
    # thesis' counts include the res5 AVS branch (0.17-0.18 G) that the authors' code runs even
    # at test time and mmzoo skips at inference, hence measured = thesis - 0.17 +- 0.1 (rounding of the table).
    with torch.device("meta"):
        m = mmzoo.create("avslowfast-r50-4x16", use_avs=False)
    assert m.num_parameters() == 41_820_984
    for beta_inv, thesis in ((8, 36.0), (4, 36.8), (2, 39.8), (1, 51.9)):
        g = measure("avslowfast-r50-4x16", audio_beta_inv=beta_inv, use_avs=False)["gflops"]
        assert g == pytest.approx(thesis - 0.17, abs=0.1), (beta_inv, g)


def test_thesis_audio_downsampling_option_changes_audio_resolution():
    m = mmzoo.create("avslowfast-r50-4x16", depth=14, width=8, audio_downsample_from="res2").eval()
    a = mmzoo.create("avslowfast-r50-4x16", depth=14, width=8).eval()
    x = [torch.randn(1, 3, 4, 64, 64), torch.randn(1, 3, 32, 64, 64)]
    au = torch.randn(1, 1, 128, 80)
    fm, _ = m.extract(x, au)
    fa, _ = a.extract(x, au)
    assert fm[2].shape[2:4] == (8, 5) and fa[2].shape[2:4] == (16, 10)


import pytorchvideo.models.slowfast as ptv  # the reference implementation (test extra)

# id -> create_slowfast kwargs of the same configuration
PTV_CONFIGS = {
    "slowfast-r50-4x16": dict(model_depth=50, slowfast_fusion_conv_kernel_size=(5, 1, 1), slowfast_fusion_conv_stride=(8, 1, 1)),
    "slowfast-r50-8x8": dict(model_depth=50, slowfast_fusion_conv_kernel_size=(7, 1, 1), slowfast_fusion_conv_stride=(4, 1, 1)),
    "slowfast-r101-8x8": dict(
        model_depth=101,
        slowfast_fusion_conv_kernel_size=(5, 1, 1),
        slowfast_fusion_conv_stride=(4, 1, 1),
        # PySlowFast's R101 "50_50" pattern: temporal kernels in the first 6 res4 blocks
        stage_conv_a_kernel_sizes=(
            ((1, 1, 1), (1, 1, 1), ((3, 1, 1),) * 6 + ((1, 1, 1),) * 17, (3, 1, 1)),
            ((3, 1, 1), (3, 1, 1), ((3, 1, 1),) * 6 + ((1, 1, 1),) * 17, (3, 1, 1)),
        ),
    ),
}


def _ptv(model_id, slow_t, fast_t, size):
    k = size // 32
    return ptv.create_slowfast(head_pool_kernel_sizes=((slow_t, k, k), (fast_t, k, k)), **PTV_CONFIGS[model_id])


def _randomise_bn(model):
    g = torch.Generator().manual_seed(3)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) * 0.2 - 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) * 0.5 + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=g) * 0.2 - 0.1)


@pytest.mark.parametrize("model_id", sorted(PTV_CONFIGS))
def test_parameter_count_equals_pytorchvideo(model_id):
    with torch.device("meta"):
        ref = _ptv(model_id, 8, 32, 224)
        mine = mmzoo.create(model_id)
    assert mine.num_parameters() == sum(p.numel() for p in ref.parameters())


@pytest.mark.parametrize("model_id,size", [("slowfast-r50-4x16", 64), ("slowfast-r50-8x8", 64), ("slowfast-r101-8x8", 32)])
def test_logits_equal_pytorchvideo_after_conversion(model_id, size):
    from mmzoo.convert.pytorchvideo import pytorchvideo_to_mmzoo

    torch.manual_seed(0)
    mine = mmzoo.create(model_id).eval()
    t, alpha = mine.hparams.slow_frames, mine.hparams.alpha
    ref = _ptv(model_id, t, t * alpha, size).eval()
    with torch.no_grad():
        _randomise_bn(ref)
    mine.load_state_dict(pytorchvideo_to_mmzoo(ref.state_dict()), strict=True)
    x = [torch.randn(2, 3, t, size, size), torch.randn(2, 3, t * alpha, size, size)]
    with torch.no_grad():
        expected = ref(list(x))  # PyTorchVideo overwrites the list it is given
        got = mine(list(x))
    assert got.shape == (2, 400)
    scale = expected.abs().max()
    assert torch.allclose(got, expected, rtol=0, atol=1e-5 * float(scale)), float((got - expected).abs().max() / scale)
    # a single packed clip gives the same logits as the pre-split pathways
    assert torch.allclose(mine(x[1]), mine([x[1][:, :, torch.linspace(0, t * alpha - 1, t).long()], x[1]]))
