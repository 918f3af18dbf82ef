"""R(2+1)D-34 (IG-65M layout): parameter parity, the VMZ intermediate widths, torchvision parity of
the shared-width variant, and the IG-65M checkpoint converter on a written file."""
from __future__ import annotations

import pytest
import torch
import torchvision

from mmzoo.convert.r2plus1d import convert_ig65m_r2plus1d
from mmzoo.errors import ConversionError
from mmzoo.nn.r2plus1d import R2Plus1dResNet

#: Tran et al. 2018 list R(2+1)D-34 at 63.8M parameters (recalled; the paper was not available
#: offline to re-check): the measured count is printed beside it.
KNOWN_GAPS = {"R(2+1)D-34 params (Tran et al. 2018)": 63.8e6}


def _params(m) -> int:
    return sum(p.numel() for p in m.parameters())


def test_r2plus1d_34_parameters():
    with torch.device("meta"):
        k400, ig65m, bare = R2Plus1dResNet(34, 400), R2Plus1dResNet(34, 359), R2Plus1dResNet(34, 0)
    print("KNOWN_GAPS", KNOWN_GAPS, "measured", _params(k400))
    assert abs(_params(k400) - 63.8e6) / 63.8e6 < 0.02
    assert _params(k400) - _params(bare) == 512 * 400 + 400
    assert _params(ig65m) - _params(bare) == 512 * 359 + 359


def test_vmz_intermediate_widths():
    with torch.device("meta"):
        sd = R2Plus1dResNet(34, 400).state_dict()
        tv_like = R2Plus1dResNet(34, 400, vmz_midplanes=False).state_dict()
    # second conv of layer2's first block: 128 -> 128, M = 27*128*128 / (9*128 + 3*128) = 288 in VMZ;
    # torchvision sizes it from the block input (64): 27*64*128 / (9*64 + 3*128) = 230
    assert tuple(sd["layer2.0.conv2.0.0.weight"].shape) == (288, 128, 1, 3, 3)
    assert tuple(tv_like["layer2.0.conv2.0.0.weight"].shape) == (230, 128, 1, 3, 3)
    assert tuple(sd["layer1.0.conv1.0.0.weight"].shape) == (144, 64, 1, 3, 3)  # 27*64*64 / 768
    assert tuple(sd["stem.0.weight"].shape) == (45, 3, 1, 7, 7)
    assert tuple(sd["stem.3.weight"].shape) == (64, 45, 3, 1, 1)


def test_shared_width_variant_is_torchvision_r2plus1d_18():
    with torch.device("meta"):
        ours = R2Plus1dResNet(18, 400, vmz_midplanes=False).state_dict()
        ref = torchvision.models.video.r2plus1d_18().state_dict()
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in ref.items()}


def test_converter_reads_an_ig65m_file(tmp_path):
    torch.manual_seed(0)
    src = R2Plus1dResNet(34, 359, width=8).eval()
    path = tmp_path / "r2plus1d_34_clip32_ig65m_from_scratch-449a7af9.pth"
    torch.save(src.state_dict(), path)
    state = convert_ig65m_r2plus1d(path)
    dst = R2Plus1dResNet(34, 359, width=8).eval()
    dst.load_state_dict(state, strict=True)
    x = torch.randn(1, 3, 8, 32, 32)
    assert torch.equal(dst(x), src(x))
    assert "fc.weight" not in convert_ig65m_r2plus1d(path, keep_fc=False)
    bad = dict(src.state_dict(), **{"layer5.0.conv1.0.0.weight": torch.zeros(1)})
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(ConversionError, match="layer5"):
        convert_ig65m_r2plus1d(tmp_path / "bad.pth")
