"""The authors' `.pth.tar` layout converts into mmzoo's TimeCycle without running code."""
from __future__ import annotations

import pickle

import pytest
import torch

import mmzoo
from mmzoo.convert.timecycle import convert_timecycle
from mmzoo.errors import ConversionError

TINY = {"depth": 50, "width": 4, "feature_dim": 8, "crop_size": 48, "patch_size": 24, "localizer_channels": [4, 4], "localizer_kernel": 2}


def _authors_file(model, path):
    """Write `model`'s weights as the authors' train script saves them (DataParallel, 5D convs,
    an unused layer4, column-major localizer input, no num_batches_tracked)."""
    positions = model.localizer.conv1.weight.shape[1]
    side = int(positions ** 0.5)
    back = torch.arange(positions).view(side, side).t().reshape(-1)  # row-major -> column-major
    state = {}
    for k, v in model.state_dict().items():
        if k.endswith("num_batches_tracked"):
            continue
        if k.startswith("encoder.afterconv1"):
            name = "afterconv1.weight"
        elif k.startswith("encoder."):
            name = "encoderVideo." + k[len("encoder."):]
        else:
            name = {"localizer.conv1.weight": "afterconv3_trans.weight", "localizer.conv2.weight": "afterconv4_trans.weight",
                    "localizer.linear.weight": "linear2.weight", "localizer.linear.bias": "linear2.bias"}[k]
        if k == "localizer.conv1.weight":
            v = v[:, back]
        if v.dim() == 4 and not name.startswith("afterconv3") and not name.startswith("afterconv4"):
            v = v.unsqueeze(2)
        state["module." + name] = v.clone()
    state["module.encoderVideo.layer4.0.conv1.weight"] = torch.randn(8, 64, 1, 1, 1)
    torch.save({"epoch": 15, "state_dict": state}, path)


def test_authors_checkpoint_converts_exactly(tmp_path):
    torch.manual_seed(0)
    model = mmzoo.create("timecycle-r50", **TINY)
    for m in model.modules():  # non-trivial BN statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    path = tmp_path / "checkpoint_14.pth.tar"
    _authors_file(model, path)
    state = convert_timecycle(path)
    assert not any("layer4" in k for k in state)
    fresh = mmzoo.create("timecycle-r50", **TINY)
    fresh.load_state_dict(state, strict=True)
    for k, v in model.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            assert torch.equal(fresh.state_dict()[k], v), k
    video = torch.randn(1, 3, 2, 48, 48)
    model.eval(), fresh.eval()
    with torch.no_grad():
        assert torch.allclose(model(video), fresh(video))


def test_localizer_input_is_reordered_from_column_major():
    w = torch.zeros(2, 9, 1, 1)
    w[:, 1 * 3 + 2] = 1.0  # the authors' channel of image position x = 1, y = 2
    state = {"encoderVideo.conv1.weight": torch.zeros(4, 3, 1, 7, 7), "afterconv3_trans.weight": w}
    from mmzoo.convert.timecycle import timecycle_to_mmzoo

    out = timecycle_to_mmzoo(state)["localizer.conv1.weight"]
    assert out[0, :, 0, 0].nonzero().flatten().tolist() == [2 * 3 + 1]  # row-major index y * 3 + x


def test_files_with_code_are_refused_without_allow_pickle(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pth.tar"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": Evil()}, f)
    with pytest.raises(ConversionError, match="can run code"):
        convert_timecycle(path)


def test_foreign_state_dict_is_refused(tmp_path):
    path = tmp_path / "other.pth.tar"
    torch.save({"state_dict": {"fc.weight": torch.zeros(2, 2)}}, path)
    with pytest.raises(ConversionError, match="unexpected tensor 'fc.weight'"):
        convert_timecycle(path)
