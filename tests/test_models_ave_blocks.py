"""The special parts of the AVE models, each against an independent computation."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmzoo.models.ave import AVEventLocalizer, AVSDNClassifier, DMRNStateFusion, event_loss
from mmzoo.nn.ave_attention import (
    InterFrameConv3d,
    InterFrameLSTM,
    InterFrameMLP,
    IntraFrameEncoder,
    RegionAttention,
)

torch.manual_seed(0)


# ----------------------------------------------------------------- co-attention (Eqs. 3.6-3.7)
def _identity_(lin: nn.Linear) -> None:
    with torch.no_grad():
        lin.weight.copy_(torch.eye(lin.out_features, lin.in_features))
        if lin.bias is not None:
            lin.bias.zero_()


def test_dot_attention_finds_the_region_that_matches_the_audio():
    D = 16
    att = RegionAttention(region_dim=D, audio_dim=D, attention="dot", intra_v=False, inter_v="none", attn_dim=D)
    _identity_(att.inter)  # keys = the regions themselves
    regions = 0.1 * torch.randn(2, 3, 49, D)
    audio = torch.randn(2, 3, D)
    target = torch.tensor([[5, 17, 48], [0, 30, 30]])
    for b in range(2):
        for t in range(3):
            regions[b, t, target[b, t]] = audio[b, t] / audio[b, t].norm() * 4
    pooled, weights = att(regions, audio)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3))
    assert (weights.argmax(-1) == target).all()
    assert (weights.max(-1).values > 0.9).all()
    # Eq. 3.7: the output is the weighted sum of the region features
    torch.testing.assert_close(pooled, torch.einsum("btr,btrk->btk", weights, regions))


def test_cmcoatt_scores_come_from_the_inter_frame_keys_and_pool_the_intra_values():
    K, D = 8, 8
    att = RegionAttention(region_dim=K, audio_dim=D, attention="cmcoatt", intra_v=True, inter_v="mlp",
                          attn_dim=D, inter_layers=1)
    # Inter-frame MLP that keeps only frame t of the 3 (weights [0 | I | 0]): keys = v_hat^t.
    with torch.no_grad():
        w = torch.zeros(D, 3 * K)
        w[:, K : 2 * K] = torch.eye(K)
        att.inter.mlp[0].weight.copy_(w)
        att.inter.mlp[0].bias.zero_()
    regions = torch.randn(1, 4, 49, K)
    audio = torch.randn(1, 4, D)
    pooled, weights = att(regions, audio)
    v_hat = att.intra(regions.reshape(4, 49, K)).reshape(1, 4, 49, K)
    expected_w = torch.softmax(torch.einsum("btrd,btd->btr", v_hat, audio), dim=-1)  # Eq. 3.6
    torch.testing.assert_close(weights, expected_w)
    torch.testing.assert_close(pooled, torch.einsum("btr,btrk->btk", expected_w, v_hat))  # Eq. 3.7
    # the "keys" reading pools the inter-frame features instead (here equal to v_hat as well)
    att.values = "keys"
    torch.testing.assert_close(att(regions, audio)[0], pooled)


def test_scaled_dot_divides_by_sqrt_d():
    D = 4
    a = RegionAttention(region_dim=D, audio_dim=D, attention="dot", intra_v=False, inter_v="none", attn_dim=D)
    b = RegionAttention(region_dim=D, audio_dim=D, attention="dot", intra_v=False, inter_v="none", attn_dim=D, scale=True)
    _identity_(a.inter)
    _identity_(b.inter)
    regions, audio = torch.randn(1, 2, 49, D), torch.randn(1, 2, D)
    logits = torch.einsum("btrd,btd->btr", regions, audio)
    torch.testing.assert_close(a(regions, audio)[1], torch.softmax(logits, -1))
    torch.testing.assert_close(b(regions, audio)[1], torch.softmax(logits / math.sqrt(D), -1))


def test_add_attention_matches_tian_formula():
    K, A = 12, 6
    att = RegionAttention(region_dim=K, audio_dim=A, attention="add", intra_v=False, inter_v="none",
                          add_hidden=10, add_proj=49)
    s = att.scorer
    regions, audio = torch.randn(2, 3, 49, K), torch.randn(2, 3, A)
    pooled, weights = att(regions, audio)
    z = s.score(torch.tanh(s.visual_proj(F.relu(s.visual_in(regions)))
                           + s.audio_proj(F.relu(s.audio_in(audio))).unsqueeze(2))).squeeze(-1)
    torch.testing.assert_close(weights, torch.softmax(z, -1))
    torch.testing.assert_close(pooled, (weights.unsqueeze(-1) * regions).sum(2))


def test_no_attention_is_the_region_mean():
    att = RegionAttention(region_dim=8, attention="none", intra_v=False, inter_v="none")
    regions = torch.randn(2, 3, 49, 8)
    pooled, weights = att(regions, torch.randn(2, 3, 128))
    assert weights is None
    torch.testing.assert_close(pooled, regions.mean(2))


# ----------------------------------------------------------------- intra-frame encoder (Eq. 3.4)
def test_intra_frame_bilstm_sums_forward_and_backward_passes():
    K = 6
    enc = IntraFrameEncoder(K)
    fwd, bwd = nn.LSTM(K, K, batch_first=True), nn.LSTM(K, K, batch_first=True)
    with torch.no_grad():
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            getattr(fwd, name).copy_(getattr(enc.lstm, name))
            getattr(bwd, name).copy_(getattr(enc.lstm, name + "_reverse"))
    x = torch.randn(5, 49, K)
    expected = fwd(x)[0] + bwd(x.flip(1))[0].flip(1)
    out = enc(x)
    assert out.shape == (5, 49, K)
    torch.testing.assert_close(out, expected)
    # a concatenating BiLSTM would differ (and be 2K wide); the sum mixes both scan orders
    assert not torch.allclose(out, fwd(x)[0])


# ----------------------------------------------------------------- inter-frame encoders (Eq. 3.5)
def test_inter_frame_mlp_sees_exactly_three_consecutive_frames():
    K, D, T = 4, 3, 6
    mlp = InterFrameMLP(K, D, hidden=7, layers=2, pad="zero")
    x = torch.randn(2, T, 49, K)
    y = mlp(x)
    assert y.shape == (2, T, 49, D)
    x2 = x.clone()
    x2[:, 4] += 1.0  # change frame t+2 for t = 2
    y2 = mlp(x2)
    torch.testing.assert_close(y2[:, :3], y[:, :3])  # outputs 0..2 do not see frame 4
    assert not torch.allclose(y2[:, 3], y[:, 3]) and not torch.allclose(y2[:, 5], y[:, 5])
    # boundary t=1: zero padding for the missing previous frame
    first = mlp.mlp(torch.cat([torch.zeros_like(x[:, 0]), x[:, 0], x[:, 1]], dim=-1))
    torch.testing.assert_close(y[:, 0], first)
    rep = InterFrameMLP(K, D, hidden=7, layers=2, pad="replicate")
    rep.load_state_dict(mlp.state_dict())
    last = mlp.mlp(torch.cat([x[:, -2], x[:, -1], x[:, -1]], dim=-1))
    torch.testing.assert_close(rep(x)[:, -1], last)


def test_inter_frame_conv3d_reach_is_one_frame_and_lstm_is_causal():
    K, D = 4, 3
    conv = InterFrameConv3d(K, D, grid=7)
    lstm = InterFrameLSTM(K, D)
    x = torch.randn(1, 6, 49, K)
    x2 = x.clone()
    x2[:, 4] += 1.0
    c, c2 = conv(x), conv(x2)
    torch.testing.assert_close(c2[:, :3], c[:, :3])
    assert not torch.allclose(c2[:, 3], c[:, 3])
    l, l2 = lstm(x), lstm(x2)
    torch.testing.assert_close(l2[:, :4], l[:, :4])
    assert not torch.allclose(l2[:, 5], l[:, 5])
    # the LSTM runs over time at each location separately: location 10's output ignores location 11
    x3 = x.clone()
    x3[:, :, 11] += 1.0
    torch.testing.assert_close(lstm(x3)[:, :, 10], l[:, :, 10])


# ----------------------------------------------------------------- DMRN fusion (Eq. 3.2)
def _set_g(g: nn.Sequential, scale: float, bias: float) -> None:
    # g(x) = scale * tanh(x) + bias  (Linear = identity, Tanh, Linear = scale * I + bias)
    with torch.no_grad():
        g[0].weight.copy_(torch.eye(2))
        g[0].bias.zero_()
        g[2].weight.copy_(scale * torch.eye(2))
        g[2].bias.fill_(bias)


def test_dmrn_fusion_matches_hand_computation():
    fuse = DMRNStateFusion(2, share=True, combine="sum")
    _set_g(fuse.g_audio, 2.0, 0.5)
    xa = torch.tensor([[0.5, -1.0]])
    xv = torch.tensor([[1.0, 0.0]])
    # by hand, element 0: g(a)=2 tanh(.5)+.5 = 1.424234, g(v)=2 tanh(1)+.5 = 2.023188
    ga0, gv0 = 2 * math.tanh(0.5) + 0.5, 2 * math.tanh(1.0) + 0.5
    m0 = 0.5 * (ga0 + gv0)
    e0 = math.tanh(0.5 + m0) + math.tanh(1.0 + m0)
    ga1, gv1 = 2 * math.tanh(-1.0) + 0.5, 0.5
    m1 = 0.5 * (ga1 + gv1)
    e1 = math.tanh(-1.0 + m1) + math.tanh(0.0 + m1)
    torch.testing.assert_close(fuse(xa, xv), torch.tensor([[e0, e1]]))
    mean = DMRNStateFusion(2, share=True, combine="mean")
    mean.load_state_dict(fuse.state_dict())
    torch.testing.assert_close(mean(xa, xv), torch.tensor([[e0, e1]]) / 2)
    # separate MLPs (Tian's U_a, U_v): a different g for the visual state changes the result
    sep = DMRNStateFusion(2, share=False)
    _set_g(sep.g_audio, 2.0, 0.5)
    _set_g(sep.g_visual, 0.0, 0.0)
    m0s = 0.5 * ga0
    torch.testing.assert_close(sep(xa, xv)[0, 0], torch.tensor(math.tanh(0.5 + m0s) + math.tanh(1.0 + m0s)))
    assert fuse.g_visual is None and isinstance(sep.g_visual, nn.Module)
    assert sum(p.numel() for p in fuse.parameters()) * 2 == sum(p.numel() for p in sep.parameters())


def test_avsdn_decoder_starts_from_the_fused_states():
    clf = AVSDNClassifier(audio_dim=5, visual_dim=7, hidden=6, num_classes=4)
    a, v = torch.randn(3, 10, 5), torch.randn(3, 10, 7)
    _, (ha, ca) = clf.audio_encoder(a)
    _, (hv, cv) = clf.visual_encoder(v)
    h0, c0 = clf.fuse_h(ha, hv), clf.fuse_c(ca, cv)
    assert clf.fuse_c is not None  # cell states get their own MLPs by default
    out, _ = clf.decoder(torch.cat([a, v], -1), (h0, c0))
    logits, extras = clf(a, v)
    torch.testing.assert_close(logits, clf.head(out))
    assert extras == {}
    # the initial state matters: a zero-initialised decoder gives different predictions
    out0, _ = clf.decoder(torch.cat([a, v], -1))
    assert not torch.allclose(clf.head(out0), logits)
    # Table 4.5 ablations start the decoder from one encoder only
    clf.init_state = "audio"
    torch.testing.assert_close(clf(a, v)[0], clf.head(clf.decoder(torch.cat([a, v], -1), (ha, ca))[0]))


# ----------------------------------------------------------------- losses (Eq. 3.3, supervision)
def test_event_loss_bce_matches_torch_on_softmax():
    logits = torch.randn(4, 10, 29)
    target = F.one_hot(torch.randint(0, 29, (4, 10)), 29).float()
    expected = F.binary_cross_entropy(torch.softmax(logits, -1), target)
    torch.testing.assert_close(event_loss(logits, target, "bce"), expected)
    ce = -(target * F.log_softmax(logits, -1)).sum(-1).mean()
    torch.testing.assert_close(event_loss(logits, target, "ce"), ce)
    mlsm = F.multilabel_soft_margin_loss(torch.softmax(logits, -1), target)
    torch.testing.assert_close(event_loss(logits, target, "mlsm"), mlsm)


def _tiny(**kw) -> AVEventLocalizer:
    return AVEventLocalizer(**{"classifier": "lstm", "attention": "none", "intra_v": False, "inter_v": "none",
                               "visual_dim": 16, "region_dim": 8, "hidden_dim": 8, "num_classes": 5, **kw})


def test_weak_loss_is_on_the_mean_of_segment_predictions():
    model = _tiny(supervision="weak", weak_target="average")
    label = torch.tensor([[0, 0, 4, 4, 4, 1, 1, 1, 1, 1]])
    batch = {"visual": torch.randn(1, 10, 7, 7, 16), "audio": torch.randn(1, 10, 128), "label": label}
    out = model.forward_with_attention(batch["visual"], batch["audio"])
    Y = torch.tensor([[0.2, 0.5, 0.0, 0.0, 0.3]])  # Y = (1/T) sum_t y_t, background mass included
    torch.testing.assert_close(model.video_target(batch), Y)
    # by default the DataModule's video_label is the target (its weak_label rule decides Y)
    default = _tiny(supervision="weak")
    torch.testing.assert_close(default.video_target({**batch, "video_label": Y}), Y)
    with pytest.raises(KeyError, match="video_label"):
        default.video_target(batch)
    expected = F.binary_cross_entropy(torch.softmax(out["logits"].mean(1), -1), Y)  # Eq. 3.3
    torch.testing.assert_close(model.compute_loss(out, batch), expected)
    # weak loss ignores where in time the labels are; the supervised loss does not
    shuffled = {**batch, "label": label.flip(1)}
    torch.testing.assert_close(model.compute_loss(out, shuffled), expected)
    full = _tiny(supervision="full")
    assert not torch.isclose(full.compute_loss(out, shuffled), full.compute_loss(out, batch))
    seg = F.binary_cross_entropy(torch.softmax(out["logits"], -1), F.one_hot(label, 5).float())
    torch.testing.assert_close(full.compute_loss(out, batch), seg)
    # Tian's MIL max pooling and one-hot video labels are options
    tian = _tiny(supervision="weak", weak_pool="max")
    vl = torch.tensor([[0.0, 1.0, 0.0, 0.0, 0.0]])
    got = tian.compute_loss(out, {**batch, "video_label": vl})
    torch.testing.assert_close(got, F.binary_cross_entropy(torch.softmax(out["logits"].amax(1), -1), vl))


def test_label_guided_variant_adds_encoder_losses():
    model = AVEventLocalizer(classifier="avsdn", attention="none", intra_v=False, inter_v="none", visual_dim=16,
                             region_dim=8, hidden_dim=8, num_classes=5, supervision="weak", init_state="sum",
                             label_guided_weight=0.5, weak_target="average")
    batch = {"visual": torch.randn(2, 10, 7, 7, 16), "audio": torch.randn(2, 10, 128),
             "label": torch.randint(0, 5, (2, 10))}
    out = model.forward_with_attention(batch["visual"], batch["audio"])
    assert out["guide_logits"].shape == (2, 2, 5)
    Y = model.video_target(batch)
    main = event_loss(out["logits"].mean(1), Y)
    aux = event_loss(out["guide_logits"], Y.unsqueeze(1).expand(2, 2, 5))
    torch.testing.assert_close(model.compute_loss(out, batch), main + 0.5 * aux)


def test_shared_cell_fusion_reuses_the_hidden_state_mlp():
    clf = AVSDNClassifier(audio_dim=5, visual_dim=7, hidden=6, num_classes=4, cell_fusion="shared")
    assert clf.fuse_c is None
    h = [torch.randn(1, 2, 6) for _ in range(4)]
    h0, c0 = clf.initial_state(*h)
    torch.testing.assert_close(c0, clf.fuse_h(h[1], h[3]))
