"""AVSlowFast's shared audio pass for easy AVS negatives is exact.

With every negative the next clip's audio, running the audio branch once on the positives and
rolling its outputs must give the features, AVS losses, gradients and BN running statistics of the
thesis' 2B batch (positives and negatives through the pathway together).
"""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import mmzoo
from mmzoo.nn.av_sync import negatives_are_batch_roll

TINY = dict(depth=14, width=8, slow_frames=2, alpha=4, crop_size=32, num_classes=5, audio_frames=32, mel_bins=16)


def _step(model, video, audio, audio_neg, seed: int):
    torch.manual_seed(seed)  # DropPathway draws once per forward
    model.zero_grad(set_to_none=True)
    feats, losses = model.extract(video, audio, audio_neg)
    total = sum(f.float().pow(2).mean() for f in feats) + sum(losses.values())
    total.backward()
    return feats, losses


def _bn_state(model):
    return {k: v.clone() for k, v in model.state_dict().items() if "running_" in k}


def _audio_batch_sizes(model, video, audio, audio_neg):
    seen = []
    h = model.backbone.audio.stem.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0]))
    try:
        torch.manual_seed(0)
        model.extract(video, audio, audio_neg)
    finally:
        h.remove()
    return seen


@pytest.fixture(scope="module")
def inputs():
    torch.manual_seed(0)
    model = mmzoo.create("avslowfast-r50-4x16", **TINY).train()
    ex = model.example_input(4)
    video = ex["video"]
    audio = model._prepare_audio(ex["audio"])
    return model, video, audio


def test_easy_negatives_share_one_audio_pass_with_identical_results(inputs):
    model, video, audio = inputs
    audio_neg = audio.roll(1, dims=0)
    shared = copy.deepcopy(model)
    full = copy.deepcopy(model)
    full.backbone.share_easy_negatives = False
    assert negatives_are_batch_roll(audio, audio_neg)
    assert _audio_batch_sizes(copy.deepcopy(shared), video, audio, audio_neg) == [4]
    assert _audio_batch_sizes(copy.deepcopy(full), video, audio, audio_neg) == [8]
    for step in range(2):  # two steps: the corrected running statistics feed the second
        f_s, l_s = _step(shared, video, audio, audio_neg, seed=step)
        f_f, l_f = _step(full, video, audio, audio_neg, seed=step)
        assert sorted(l_s) == sorted(l_f) and l_s
        for k in l_s:
            torch.testing.assert_close(l_s[k], l_f[k], rtol=1e-5, atol=1e-6)
        for a, b in zip(f_s, f_f):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
        grads_s = {n: p.grad for n, p in shared.named_parameters() if p.grad is not None}
        grads_f = {n: p.grad for n, p in full.named_parameters() if p.grad is not None}
        assert grads_s.keys() == grads_f.keys()
        for n in grads_s:
            torch.testing.assert_close(grads_s[n], grads_f[n], rtol=1e-3, atol=1e-5, msg=n)
        bn_s, bn_f = _bn_state(shared), _bn_state(full)
        for k in bn_f:
            torch.testing.assert_close(bn_s[k], bn_f[k], rtol=1e-5, atol=1e-6, msg=k)


def test_running_variance_without_the_correction_would_differ(inputs):
    """The control: the same shared pass without the 2n/(2n-1) correction moves audio BN's
    running variance to a different value, so the test above can fail."""
    model, video, audio = inputs
    audio_neg = audio.roll(1, dims=0)
    shared = copy.deepcopy(model)
    full = copy.deepcopy(model)
    full.backbone.share_easy_negatives = False
    _step(full, video, audio, audio_neg, seed=0)
    torch.manual_seed(0)
    with torch.no_grad():  # positives only, no correction: what a naive shared pass would record
        shared.backbone.audio.stem(audio.unsqueeze(-1))
    bn = next(m for m in shared.backbone.audio.stem.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm))
    name = next(n for n, m in shared.named_modules() if m is bn)
    assert not torch.allclose(bn.running_var, full.state_dict()[f"{name}.running_var"], rtol=1e-6, atol=0)


def test_a_hard_negative_falls_back_to_the_doubled_batch(inputs):
    model, video, audio = inputs
    audio_neg = audio.roll(1, dims=0).clone()
    audio_neg[2] = audio[2].roll(8, dims=1)  # one hard negative: the clip's own audio, shifted
    assert not negatives_are_batch_roll(audio, audio_neg)
    assert _audio_batch_sizes(copy.deepcopy(model), video, audio, audio_neg) == [8]


def test_the_training_step_shares_the_pass_before_the_curriculum_switch(inputs):
    model, video, audio = inputs
    m = copy.deepcopy(model)
    m.log = lambda *a, **k: None  # no Trainer here
    seen = []
    m.backbone.audio.stem.register_forward_hook(lambda mod, i, o: seen.append(i[0].shape[0]))
    batch = {"video": video, "audio": audio[:, 0], "label": torch.zeros(4, dtype=torch.long)}
    m.training_step(batch, 0)  # progress 0: easy negatives only, known without comparing tensors
    assert seen == [4] and not m.last_hard_negatives.any()
