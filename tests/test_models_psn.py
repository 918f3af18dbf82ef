"""PSN (thesis ch. 5): every id builds; the GFLOPs columns of Tables 5.4-5.6 against the measured
cost and against a hand count (which also checks the M each table implies); the budget loss,
the q-weighted softmax of Eq. 5.4, top-M selection and weighting at inference, the inference
variants of Table 5.3, and the frozen recogniser."""
from __future__ import annotations

import functools
import math

import pytest
import torch
from torch import nn

import mmzoo
from mmzoo.errors import MissingKeysError, NotSupportedError
from mmzoo.models.psn import PSN, load_recognizer_state, uniform_positions
from mmzoo.models.tsn import TSNRecognizer

PSN_IDS = ["psn-r101-anet", "psn-r50-anet", "psn-r152-anet", "psn-r101-fcvid", "psn-r50-minik"]

def hand_count(module: nn.Module, *inputs: torch.Tensor) -> int:
    """Multiply-adds of the convolutions and linear layers of one forward pass, from each layer's
    hyper-parameters and output size (written out here, independent of torch's FLOP counter)."""
    total = 0

    def hook(m, args, out):
        nonlocal total
        if isinstance(m, nn.Conv2d):
            kh, kw = m.kernel_size
            total += out.numel() * (m.in_channels // m.groups) * kh * kw
        elif isinstance(m, nn.Conv1d):
            total += out.numel() * (m.in_channels // m.groups) * m.kernel_size[0]
        elif isinstance(m, nn.ConvTranspose1d):  # every input element scatters k x C_out products
            total += args[0].numel() * (m.out_channels // m.groups) * m.kernel_size[0]
        elif isinstance(m, nn.Linear):
            total += out.numel() * m.in_features

    handles = [m.register_forward_hook(hook) for m in module.modules()
               if isinstance(m, (nn.Conv2d, nn.Conv1d, nn.ConvTranspose1d, nn.Linear))]
    try:
        with torch.no_grad():
            module(*inputs)
    finally:
        for h in handles:
            h.remove()
    return total


@functools.cache
def _meta_cached(model_id: str, overrides: tuple) -> tuple[PSN, int]:
    """(the full-size model on the meta device, its measured multiply-adds), built once per module."""
    with torch.device("meta"):
        model = mmzoo.create(model_id, **dict(overrides)).eval()
        return model, model.count_flops()


def _meta(model_id: str, **kw):
    return _meta_cached(model_id, tuple(sorted(kw.items())))


@pytest.mark.parametrize("model_id", PSN_IDS)
def test_every_id_builds_and_its_cost_is_the_hand_count(model_id):
    model, measured = _meta(model_id)
    hp = model.hparams
    with torch.device("meta"):
        frame = torch.zeros(1, 3, 224, 224)
        feats = torch.zeros(1, 1024, hp.num_segments)
        per_shuffle = hand_count(model.sampler.backbone, frame)
        crm = hand_count(model.sampler.crm, feats) + hp.num_segments * model.sampler.score.in_features
        per_rec = hand_count(model.recognizer, frame)
    assert measured == hp.num_segments * per_shuffle + crm + hp.num_selected * per_rec
    # ShuffleNet-V2 1.0x is 0.146 GFLOPs per frame in its paper (Ma et al. 2018)
    assert per_shuffle / 1e9 == pytest.approx(0.146, rel=0.02)


#: (id, overrides, thesis GFLOPs, source)
TABLE_GFLOPS = [
    ("psn-r101-anet", {}, 82.3, "Tables 5.4/5.5, R-101, ActivityNet"),
    ("psn-r101-fcvid", {}, 82.3, "Tables 5.4/5.5, R-101, FCVID"),
    ("psn-r50-anet", {}, 28.6, "Table 5.5, R-50, ActivityNet"),
    ("psn-r50-anet", {"num_selected": 8, "num_classes": 239}, 36.8, "Table 5.5, R-50, FCVID"),
    ("psn-r50-minik", {}, 28.6, "Table 5.6, Mini-Kinetics"),
    ("tsn-r101", {}, 195.8, "Tables 5.4/5.5, Uniform (25 frames)"),
    ("frame-r101", {}, 195.8, "Table 5.4, Uniform (25 frames)"),
]


@pytest.mark.parametrize("model_id,overrides,gflops,source", TABLE_GFLOPS)
def test_gflops_match_the_thesis_tables(model_id, overrides, gflops, source):
    measured = _meta(model_id, **overrides)[1] / 1e9
    print(f"{model_id} {overrides}: {measured:.2f} GFLOPs, thesis {gflops} ({source})")
    assert measured == pytest.approx(gflops, rel=0.02)


@pytest.mark.parametrize("model_id,gflops,m", [("psn-r101-anet", 82.3, 10), ("psn-r50-anet", 28.6, 6),
                                               ("psn-r50-anet", 36.8, 8)])
def test_each_gflops_column_implies_one_m(model_id, gflops, m):
    """The spec's arithmetic: 25 ShuffleNet frames + M recogniser frames; only one M fits within 2 %."""
    model, _ = _meta(model_id)
    with torch.device("meta"):
        frame = torch.zeros(1, 3, 224, 224)
        sampler = 25 * hand_count(model.sampler.backbone, frame) / 1e9
        rec = hand_count(model.recognizer, frame) / 1e9
    fits = [k for k in range(1, 26) if math.isclose(sampler + k * rec, gflops, rel_tol=0.02)]
    assert fits == [m]


# ---------------------------------------------------------------------------------------- tiny
def _tiny(**kw) -> PSN:
    torch.manual_seed(0)
    args = dict(num_classes=4, num_segments=8, num_selected=3, recognizer_backbone="resnet50",
                recognizer_layers=[1, 1, 1, 1], recognizer_channels=[8, 8, 8, 8], recognizer_stem_width=8,
                recognizer_dropout=0.0, crop_size=32, sampler_pretrained=False, sampler_repeats=[1, 1, 1],
                sampler_channels=[8, 16, 16, 16, 32], crm_filters=[8, 8, 8], crm_out_dim=8)  # fmt: skip
    args.update(kw)
    return PSN(**args)


def _video(b=2, n=8):
    torch.manual_seed(1)
    return torch.randn(b, 3, n, 32, 32)


def test_budget_loss_and_the_weighted_softmax():
    model = _tiny(budget_weight=0.1)
    torch.manual_seed(2)
    logits = torch.randn(2, 8, 4)
    target = torch.tensor([[0.0, 1, 0, 0], [1, 0, 0, 1]])
    low = torch.full((2, 8), 0.25)  # sum 2 <= M = 3: no budget penalty
    high = torch.full((2, 8), 0.75)  # sum 6: penalty 6 - 3
    for q, penalty in ((low, 0.0), (high, 3.0)):
        loss, logs = model.sampler_loss(q, logits, target)
        weighted = (q[..., None] * logits).sum(1)  # Eq. 5.4: a sum over frames
        l_c = -(target * weighted.log_softmax(-1)).sum(-1).mean()
        assert float(logs["train/budget_loss"]) == pytest.approx(penalty)
        assert float(loss) == pytest.approx(float(l_c) + 0.1 * penalty, rel=1e-6)
    mean_model = _tiny(weighting="mean", budget=1.0)
    loss, logs = mean_model.sampler_loss(low, logits, target)
    weighted = (low[..., None] * logits).sum(1) / 8
    l_c = -(target * weighted.log_softmax(-1)).sum(-1).mean()
    assert float(loss) == pytest.approx(float(l_c) + 0.1 * (2.0 - 1.0), rel=1e-6)


def test_only_the_sampler_learns_and_the_recogniser_stays_in_eval_mode():
    model = _tiny().train()
    assert not model.recognizer.training and model.sampler.training
    assert all(not p.requires_grad for p in model.recognizer.parameters())
    loss, _ = model._train_loss({"video": _video(), "label": torch.tensor([0, 3])})
    loss.backward()
    assert all(p.grad is None for p in model.recognizer.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.sampler.parameters())
    opt = model.configure_optimizers()["optimizer"]
    opt_params = {id(p) for g in opt.param_groups for p in g["params"]}
    assert opt_params == {id(p) for p in model.sampler.parameters()}
    assert opt.param_groups[0]["lr"] == pytest.approx(0.002)


def test_inference_runs_the_recogniser_on_the_top_m_weighted_by_q():
    model = _tiny().eval()
    video = _video()
    with torch.no_grad():
        q = model.sampler(video)
        idx, w = model.select(video)
        out = model(video)
        frame_logits = model.recognizer.video_logits(video)  # every frame, to pick from
    top = q.topk(3, dim=1).indices.sort(dim=1).values
    assert torch.equal(idx, top)
    assert torch.allclose(w, q.gather(1, top))
    expected = torch.stack([(q[b, top[b], None] * frame_logits[b, top[b]]).sum(0) for b in range(2)])
    assert torch.allclose(out, expected, atol=1e-5)
    # the recogniser sees M frames only
    seen = []
    h = model.recognizer.register_forward_hook(lambda _m, args, _o: seen.append(args[0].shape[0]))
    with torch.no_grad():
        model(video)
    h.remove()
    assert seen == [2 * 3]


def test_table_5_3_inference_variants():
    video = _video()
    uniform = uniform_positions(8, 3)
    assert uniform.tolist() == [1, 4, 6]
    base = _tiny(inference="uniform").eval()
    with torch.no_grad():
        frame_logits = base.recognizer.video_logits(video)
        q = base.sampler(video)
        # uniform: the plain average of the M uniformly spaced frames; the sampler is not used
        assert torch.allclose(base(video), frame_logits[:, uniform].mean(1), atol=1e-5)
        for p in base.sampler.parameters():
            p.add_(1.0)
        assert torch.allclose(base(video), frame_logits[:, uniform].mean(1), atol=1e-5)
    for inference, expected in (
        ("weight", (q[:, uniform, None] * frame_logits[:, uniform]).sum(1)),
        ("sample", torch.stack([frame_logits[b, q[b].topk(3).indices].mean(0) for b in range(2)])),
    ):
        model = _tiny(inference=inference).eval()
        with torch.no_grad():
            assert torch.allclose(model(video), expected, atol=1e-5), inference
    probs = _tiny(inference_scores="probs").eval()
    with torch.no_grad():
        top = q.topk(3, dim=1).indices.sort(dim=1).values
        w = q.gather(1, top)[..., None]
        p = torch.stack([frame_logits[b, top[b]] for b in range(2)]).softmax(-1)
        assert torch.allclose(probs(video).softmax(-1), (w * p).sum(1) / w.sum(1), atol=1e-5)


def test_recogniser_checkpoint_is_required_and_must_fit(tmp_path):
    model = _tiny()
    with pytest.raises(NotSupportedError, match="recognizer_checkpoint"):
        model.on_fit_start()
    rec = TSNRecognizer(num_classes=4, backbone="resnet50", pretrained_backbone=False, backbone_layers=[1, 1, 1, 1],
                        backbone_channels=[8, 8, 8, 8], stem_width=8, dropout=0.0, crop_size=32)
    torch.save({"state_dict": rec.state_dict()}, tmp_path / "rec.ckpt")
    loaded = _tiny(recognizer_checkpoint=str(tmp_path / "rec.ckpt"))
    loaded.on_fit_start()  # no error
    assert torch.equal(loaded.recognizer.fc.weight, rec.net.fc.weight)
    assert set(load_recognizer_state(tmp_path / "rec.ckpt")) == set(rec.net.state_dict())
    with pytest.raises(MissingKeysError, match="does not fit"):
        _tiny(recognizer_checkpoint=str(tmp_path / "rec.ckpt"), num_classes=5)
    with pytest.raises(FileNotFoundError, match="recognizer_checkpoint"):
        _tiny(recognizer_checkpoint=str(tmp_path / "absent.ckpt"))
    with pytest.raises(ValueError, match="pre-sampled frames"):
        model.eval()(torch.randn(1, 3, 5, 32, 32))
    with pytest.raises(ValueError, match="num_selected"):
        _tiny(num_selected=9)


def test_cost_breakdown_adds_up_to_forward():
    model = _tiny().eval()
    cost = model.cost_breakdown()
    assert cost["total"] * 1e9 == pytest.approx(model.count_flops(), rel=1e-9)
    assert cost["sampler"] == pytest.approx(8 * cost["sampler_backbone_per_frame"] + cost["crm_and_score"])
    assert cost["recognizer"] == pytest.approx(3 * cost["recognizer_per_frame"])
    uniform = _tiny(inference="uniform").eval()
    assert uniform.cost_breakdown()["sampler"] == 0.0
    assert uniform.cost_breakdown()["total"] * 1e9 == pytest.approx(uniform.count_flops(), rel=1e-9)
