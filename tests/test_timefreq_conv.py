"""FlatConv3d (mmzoo.nn.timefreq_conv): the Audio pathway's (k_t, k_f, 1) Conv3d layers run as
2-D convs give the same outputs, gradients and state dict as plain Conv3d; AVSlowFast and AudioNet use them
and its logits, AVS losses and gradients are unchanged (issue 14)."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import mmzoo
from mmzoo.nn.timefreq_conv import FlatConv3d, flatten_conv3d_

TINY = dict(depth=14, width=8, slow_frames=2, alpha=4, crop_size=32, audio_frames=32, mel_bins=16, num_classes=5)


def _unflatten(module):
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is FlatConv3d:
                plain = nn.Conv3d.__new__(nn.Conv3d)
                plain.__dict__.update(child.__dict__)
                setattr(parent, name, plain)


@pytest.mark.parametrize("kernel,stride,padding,groups", [((9, 1, 1), 1, (4, 0, 0), 1), ((1, 9, 1), 1, (0, 4, 0), 1),
                                                          ((3, 3, 1), (2, 2, 1), (1, 1, 0), 2), (1, 1, 0, 1)])
def test_flat_conv_equals_conv3d(kernel, stride, padding, groups):
    torch.manual_seed(0)
    conv = nn.Conv3d(4, 6, kernel, stride, padding, groups=groups, bias=True)
    x = torch.randn(2, 4, 12, 10, 1, requires_grad=True)
    ref = F.conv3d(x, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups)
    holder = nn.Sequential(conv)
    assert flatten_conv3d_(holder) == 1 and type(holder[0]) is FlatConv3d
    assert holder[0].weight is conv.weight  # the same Parameter object: optimisers keep working
    out = holder(x)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    g_ref = torch.autograd.grad(ref.square().sum(), (x, conv.weight))
    g_out = torch.autograd.grad(out.square().sum(), (x, conv.weight))
    for a, b in zip(g_out, g_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    # an input whose last axis is not 1 goes through the ordinary Conv3d
    x3 = torch.randn(1, 4, 12, 10, 3)
    torch.testing.assert_close(holder(x3), F.conv3d(x3, conv.weight, conv.bias, conv.stride, conv.padding, 1, groups))


def test_only_eligible_convs_are_replaced():
    m = nn.Sequential(nn.Conv3d(2, 2, (3, 3, 1)), nn.Conv3d(2, 2, (1, 1, 3)), nn.Conv3d(2, 2, 1, stride=(1, 1, 2)),
                      nn.Conv3d(2, 2, (3, 1, 1), padding=(1, 0, 1)))
    assert flatten_conv3d_(m) == 1
    assert [type(c).__name__ for c in m] == ["FlatConv3d", "Conv3d", "Conv3d", "Conv3d"]


def test_avslowfast_outputs_and_gradients_unchanged():
    torch.manual_seed(0)
    now = mmzoo.create("avslowfast-r50-4x16", **TINY)
    n_audio = sum(type(c) is FlatConv3d for c in now.backbone.audio.modules())
    assert n_audio > 0 and not any(type(c) is nn.Conv3d for c in now.backbone.audio.modules())
    before = copy.deepcopy(now)
    _unflatten(before)
    assert not any(type(c) is FlatConv3d for c in before.modules())
    assert list(now.state_dict()) == list(before.state_dict())
    g = torch.Generator().manual_seed(1)
    batch = {"video": [torch.randn(3, 3, 2, 32, 32, generator=g), torch.randn(3, 3, 8, 32, 32, generator=g)],
             "audio": torch.randn(3, 1, 32, 16, generator=g), "label": torch.tensor([0, 1, 2])}
    now.eval(), before.eval()
    with torch.no_grad():
        torch.testing.assert_close(now(batch["video"], batch["audio"]), before(batch["video"], batch["audio"]), rtol=1e-5, atol=1e-6)
    losses = []
    for m in (now, before):
        m.train()
        m.log = m.log_dict = lambda *a, **k: None
        m.backbone.drop.p = 0.0  # the same DropPathway draw for both
        torch.manual_seed(5)
        loss = m.training_step(batch, 0)
        loss.backward()
        losses.append(loss.detach())
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-5, atol=1e-6)
    for (name, p), q in zip(now.named_parameters(), before.parameters(), strict=True):
        if p.grad is not None or q.grad is not None:
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_audionet_runs_flat_convs_with_unchanged_logits():
    torch.manual_seed(0)
    now = mmzoo.create("audionet-r50", depth=14, width=8, audio_frames=32, mel_bins=16, num_classes=5).eval()
    assert sum(type(c) is FlatConv3d for c in now.audio.modules()) > 0
    assert not any(type(c) is nn.Conv3d for c in now.audio.modules())
    before = copy.deepcopy(now)
    _unflatten(before)
    assert list(now.state_dict()) == list(before.state_dict())
    x = torch.randn(2, 1, 32, 16)
    with torch.no_grad():
        torch.testing.assert_close(now(x), before(x), rtol=1e-5, atol=1e-6)
