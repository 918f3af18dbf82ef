"""T2VLAD: full-size parity (params from an independent formula), shared centres, ghost cluster,
losses against hand computation, Lookahead, offline behaviour."""
import json

import pytest
import torch

import mmzoo
from mmzoo.models.t2vlad import (T2VLAD, Lookahead, hardest_negative_loss, max_margin_ranking_loss)

DIMS = {"audio": 128, "rgb": 2048, "ocr": 300, "speech": 300, "scene": 2208, "flow": 1024, "s3d": 1024, "face": 512}
TINY_BERT = dict(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                 max_position_embeddings=40)


def tiny(**kw):
    args = dict(experts=["audio", "face"], expert_dims=[12, 10], expert_max_tokens=[5, 4], text_encoder_config=TINY_BERT,
                text_encoder_init="random", embed_dim=16, transformer_ffn_dim=16, num_clusters=3, text_max_tokens=8)
    args.update(kw)
    return T2VLAD(**args)


def tiny_batch(m, b=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 40, (b, 8), generator=g)
    experts = {e: torch.randn(b, n, d, generator=g) for e, d, n in zip(m.hparams.experts, m.hparams.expert_dims, m.hparams.expert_max_tokens)}
    return ids, torch.ones_like(ids), experts


def test_full_size_parameter_count_matches_formula():
    with torch.device("meta"):
        m = mmzoo.create("t2vlad")
    C, K, E, H = 768, 9, 8, 9 * 768
    bert = 108_891_648  # bert-base-uncased without its (unused) pooler
    local = sum(d * C + C for d in DIMS.values())
    transformer = (3 * C * C + 3 * C) + (C * C + C) + 2 * (C * C + C) + 2 * 2 * C + 2 * C  # attn, out, ffn 768, 2 LN + final LN
    vlad = (K + 1) * C + 2 * 4 * (K + 1) + K * C  # c, one BN(K+1) per modality incl. running stats, c'
    gated = lambda i: (i * C + C) + (C * C + C) + 4 * C  # fc, cg.fc, cg.bn (weight, bias, running mean/var)
    video_gu = sum(gated(d) for d in DIMS.values())
    text_gu = E * gated(H)
    moe = H * E + E
    n_params = sum(p.numel() for p in m.parameters())
    n_buffers = sum(b.numel() for n, b in m.named_buffers() if "running" in n)
    assert n_params + n_buffers == bert + local + transformer + vlad + video_gu + text_gu + moe
    assert n_params == 176_057_136
    with torch.device("meta"):
        gflops = m.count_flops() / 1e9
    print(f"t2vlad params: {n_params:,} (BERT {bert:,}); GFLOPs (1 text x 1 video): {gflops:.2f}")


def test_ids_and_configurations():
    assert {"t2vlad", "t2vlad-lsmdc", "t2vlad-anetcaps", "t2vlad-paddle"} <= set(mmzoo.list_models("t2vlad*"))
    with torch.device("meta"):
        ls, an, pd = mmzoo.create("t2vlad-lsmdc"), mmzoo.create("t2vlad-anetcaps"), mmzoo.create("t2vlad-paddle")
    assert ls.experts == ["rgb", "audio", "ocr", "scene", "flow", "s3d"] and ls.vlad.num_clusters == 9
    assert an.experts == ["s3d", "audio"] and an.vlad.num_clusters == 16 and an.vlad.ghost_clusters == 1
    assert len(pd.vlad.residual_centers) == 1 and len(pd.vlad.assign_norm) == 2 and pd.hparams.margin == 0.2 and pd.transformer.layers[0].dropout.p == 0.0
    assert "t2vlad-paddle.msrvtt-1ka" in mmzoo.list_models("t2vlad*", pretrained=True)


def test_forward_shapes_and_config_roundtrip():
    torch.manual_seed(0)
    m = tiny().eval()
    ids, att, experts = tiny_batch(m)
    s = m(ids, att, experts)
    assert s.shape == (4, 4) and torch.isfinite(s).all()
    cfg = json.loads(json.dumps(m.init_kwargs()))
    m2 = T2VLAD(**cfg)
    m2.load_state_dict(m.state_dict())
    assert torch.allclose(m2.eval()(ids, att, experts), s)


def test_similarity_is_half_global_plus_half_local_and_moe_renormalised():
    torch.manual_seed(0)
    m = tiny().eval()
    ids, att, experts = tiny_batch(m)
    avail = {"audio": torch.tensor([True, True, False, True]), "face": torch.tensor([True, False, True, True])}
    t = m.encode_text(ids, att)
    v = m.encode_video(experts, expert_available=avail)
    s, sg, sl = (m.similarity(t, v, mode) for mode in ("both", "global", "local"))
    assert torch.allclose(s, 0.5 * (sg + sl), atol=1e-6)
    # by hand: video 1 lacks "face" -> its global similarity is the audio cosine alone
    cos_audio = t["global"][:, 0] @ v["global"][1, 0]
    assert torch.allclose(sg[:, 1], cos_audio, atol=1e-6)
    w = t["moe"]
    expected_v0 = w[:, 0] * (t["global"][:, 0] @ v["global"][0, 0]) + w[:, 1] * (t["global"][:, 1] @ v["global"][0, 1])
    assert torch.allclose(sg[:, 0], expected_v0 / w.sum(1), atol=1e-6)
    assert torch.allclose(sl, t["local"] @ v["local"].t(), atol=1e-6)


def test_shared_centres_get_gradient_from_text_and_from_video():
    torch.manual_seed(0)
    m = tiny().train()
    ids, att, experts = tiny_batch(m)
    centers = m.vlad.assign_centers
    assert len(centers) == 1 and len(m.vlad.residual_centers) == 1
    m.zero_grad()
    m.encode_text(ids, att)["local"].pow(2).mul(torch.randn(4, 48)).sum().backward()
    g_text = centers[0].grad.clone()
    m.zero_grad()
    m.encode_video(experts)["local"].mul(torch.randn(4, 48)).sum().backward()
    g_video = centers[0].grad.clone()
    assert g_text.abs().sum() > 0 and g_video.abs().sum() > 0
    # the port's layout: video assignment is detached -> no gradient from the video side
    p = tiny(vlad_sharing="port").train()
    p.zero_grad()
    p.encode_video(experts)["local"].mul(torch.randn(4, 48)).sum().backward()
    assert p.vlad.assign_centers[0].grad is None or p.vlad.assign_centers[0].grad.abs().sum() == 0
    sep = tiny(vlad_sharing="separate")
    assert len(sep.vlad.assign_centers) == 2


def test_ghost_cluster_in_model_takes_mass_but_is_not_in_output():
    torch.manual_seed(0)
    m = tiny().eval()
    ids, att, _ = tiny_batch(m)
    z = m.text_encoder(input_ids=ids, attention_mask=att).last_hidden_state
    out, a = m.vlad(z, branch=1, return_assignment=True)
    assert a.shape[-1] == 4 and out.shape[-1] == 3 * 16  # K+1 assignments, K clusters out
    assert torch.allclose(a.sum(-1), torch.ones(a.shape[:2]), atol=1e-6) and a[..., 3].sum() > 0


def test_max_margin_loss_hand_computed():
    s = torch.tensor([[0.5, 0.4, 0.1], [0.3, 0.2, 0.25], [0.0, 0.45, 0.6]])
    m = 0.1
    total = 0.0
    for i in range(3):
        for j in range(3):
            if i != j:
                total += max(0.0, m - s[i, i].item() + s[i, j].item()) + max(0.0, m - s[i, i].item() + s[j, i].item())
    assert max_margin_ranking_loss(s, m).item() == pytest.approx(total / (2 * 3 * 2))
    # hand: row0 t2v: 0.1-0.5+0.4=0 ; 0.1-0.5+0.1<0 ; v2t col0: 0.1-0.5+0.3<0, 0.1-0.5+0 <0
    #       row1: 0.1-0.2+0.3=0.2, 0.1-0.2+0.25=0.15 ; col1: 0.1-0.2+0.4=0.3, 0.1-0.2+0.45=0.35
    #       row2: 0.1-0.6+0<0, 0.1-0.6+0.45<0 ; col2: 0.1-0.6+0.1<0, 0.1-0.6+0.25<0
    assert max_margin_ranking_loss(s, m).item() == pytest.approx((0.2 + 0.15 + 0.3 + 0.35) / 12)
    # hardest negative: rows max {0, 0.2, 0} -> mean 0.0667 ; cols max {0, 0.35, 0} -> 0.1167
    assert hardest_negative_loss(s, m).item() == pytest.approx(0.2 / 3 + 0.35 / 3)


def test_lookahead_hand_computed_and_recipe():
    p = torch.nn.Parameter(torch.tensor([1.0]))
    opt = Lookahead(torch.optim.SGD([p], lr=0.1), k=2, alpha=0.5)
    for _ in range(2):  # gradient 1 each step: fast 1.0 -> 0.9 -> 0.8; sync: 1.0 + 0.5 * (0.8 - 1.0) = 0.9
        opt.zero_grad()
        p.grad = torch.ones(1)
        opt.step()
    assert p.item() == pytest.approx(0.9)
    state = opt.state_dict()
    assert state["lookahead_steps"] == 2 and torch.allclose(state["slow"][0], torch.tensor([0.9]))
    m = tiny()
    conf = m.configure_optimizers()
    assert isinstance(conf["optimizer"], Lookahead) and isinstance(conf["optimizer"].optimizer, torch.optim.RAdam)
    sched = conf["lr_scheduler"]["scheduler"]
    assert conf["optimizer"].param_groups[0]["lr"] == pytest.approx(1e-4)
    for _ in range(5):
        conf["optimizer"].step()
        sched.step()
    assert conf["optimizer"].optimizer.param_groups[0]["lr"] == pytest.approx(0.9e-4)


def test_offline_text_encoder_and_tokenizer_fail_clearly(tmp_path):
    m = tiny(tokenizer=str(tmp_path / "nope"))
    with pytest.raises(RuntimeError, match="could not load the tokenizer"):
        m.tokenize(["a dog"])
    m2 = tiny()
    m2.hparams.text_encoder = "bert-base-uncased-not-cached"
    with pytest.raises(RuntimeError, match="could not load the pretrained text encoder"):
        m2.load_pretrained_text_encoder()
    with pytest.raises(ValueError, match="embed_dim"):
        tiny(embed_dim=32)


def test_token_masks_make_padding_irrelevant():
    torch.manual_seed(0)
    m = tiny(use_token_masks=True).eval()
    _, _, experts = tiny_batch(m, b=2)
    masks = {e: torch.tensor([[True] * 2 + [False] * (x.shape[1] - 2)] * 2) for e, x in experts.items()}
    noisy = {e: torch.where(masks[e].unsqueeze(-1), x, torch.randn_like(x) * 10) for e, x in experts.items()}
    a, b = m.encode_video(experts, masks), m.encode_video(noisy, masks)
    assert torch.allclose(a["local"], b["local"], atol=1e-5) and torch.allclose(a["global"], b["global"], atol=1e-5)
    unmasked = tiny(use_token_masks=False).eval()
    unmasked.load_state_dict(m.state_dict())
    assert not torch.allclose(unmasked.encode_video(experts, masks)["local"], unmasked.encode_video(noisy, masks)["local"], atol=1e-3)


def test_evaluation_gathers_dedupes_and_ranks(tmp_path):
    """Eval epoch: embeddings of all batches -> one similarity matrix; videos repeated by a
    (distributed) sampler's padding are counted once; the logged ranks are those of that matrix."""
    from mmzoo.metrics.retrieval import t2v_ranks, v2t_ranks

    words = ["red", "blue", "dog", "cat", "a", "is"]
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words) + "\n")
    torch.manual_seed(0)
    m = tiny(tokenizer=str(vocab)).eval()
    _, _, ex = tiny_batch(m, b=3)
    texts = {0: ["a red dog"], 1: ["a blue cat", "blue cat is"], 2: ["a dog is red"]}

    def batch(idx):
        return {"text": [texts[i] for i in idx], "video_index": torch.tensor(idx),
                "experts": {e: v[idx] for e, v in ex.items()}}

    m.on_validation_epoch_start()
    with torch.no_grad():
        m.validation_step(batch([0, 1]), 0)
        m.validation_step(batch([2, 1]), 1)  # video 1 again, as DistributedSampler padding does
        m.on_validation_epoch_end()
    sims = m.last_eval_sims
    assert sims.shape == (4, 3)
    with torch.no_grad():
        ref = m.similarity(m.encode_texts(["a red dog", "a blue cat", "blue cat is", "a dog is red"]), m.encode_video(ex))
    assert torch.allclose(sims, ref, atol=1e-5)
    q2v = torch.tensor([0, 1, 1, 2])
    t2v, v2t = t2v_ranks(sims, q2v), v2t_ranks(sims, q2v)  # (untrained: near-ties, so rank the logged matrix)
    assert m.last_eval_metrics["t2v/R@1"] == pytest.approx(100.0 * float((t2v < 1).double().mean()))
    assert m.last_eval_metrics["v2t/MnR"] == pytest.approx(float(v2t.mean() + 1))


def test_without_visual_self_attention_ablation():
    torch.manual_seed(0)
    m = tiny(transformer_layers=0).eval()
    assert m.transformer is None
    _, _, experts = tiny_batch(m, b=2)
    # local video tokens go straight from the per-expert FC (+L2) into the shared VLAD
    tokens = torch.cat([torch.nn.functional.normalize(m.local_proj[e](experts[e]), dim=-1) for e in m.experts], 1)
    assert torch.allclose(m.encode_video(experts)["local"], m.vlad(tokens, branch=0), atol=1e-6)


def test_push_and_load_roundtrip_keeps_weights_and_skips_bert_download():
    torch.manual_seed(0)
    m = tiny().eval()
    m.zoo_id = "t2vlad"
    ids, att, experts = tiny_batch(m)
    mmzoo.push(m, "someone/t2vlad-tiny")  # into the test's local hub (MMZOO_HUB)
    loaded = mmzoo.load("someone/t2vlad-tiny")
    assert isinstance(loaded, T2VLAD) and not loaded.training
    assert torch.allclose(loaded(ids, att, experts), m(ids, att, experts), atol=1e-6)
    # weights were loaded: starting a fit must not replace BERT by downloaded weights
    loaded.hparams.text_encoder_init = "pretrained"
    loaded.setup("fit")  # would raise offline if it tried to download


def test_predict_input_ranks_a_feature_set_without_the_1ka_caption_index(tmp_path, capsys):
    """`mmzoo predict --model t2vlad --input ROOT --query TEXT` -> `rank_feature_set`: the 1k-A
    test videos of ROOT, best first, printed and written to ranking.json; the caption index file
    (needed only to evaluate) may be absent. Run on an ablation variant ([CLS], global only)."""
    from mmzoo.data.synthetic.msrvtt import SYNTHETIC_VOCAB, write_msrvtt
    from mmzoo.predict.t2vlad import rank_feature_set, rank_videos

    root = write_msrvtt(tmp_path / "msrvtt", num_videos=8, num_mp4=0, experts=["audio", "face"])
    (root / "structured-symlinks" / "jsfusion_val_caption_idx.pkl").unlink()
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + SYNTHETIC_VOCAB) + "\n")
    torch.manual_seed(0)
    m = tiny(expert_dims=[128, 512], tokenizer=str(vocab), local_alignment=False, text_global_input="cls",
             text_encoder_config={**TINY_BERT, "vocab_size": len(SYNTHETIC_VOCAB) + 5}).eval()
    ranked = rank_feature_set(m, str(root), str(tmp_path / "out"), query="a red man is running", top_k=2)
    test_ids = (root / "structured-symlinks" / "val_list_jsfusion.txt").read_text().split()
    assert sorted(v for v, _ in ranked) == sorted(test_ids)
    assert [s for _, s in ranked] == sorted((s for _, s in ranked), reverse=True)
    saved = json.loads((tmp_path / "out" / "ranking.json").read_text())
    assert saved["query"] == "a red man is running" and [r["video_id"] for r in saved["ranking"]] == [v for v, _ in ranked]
    printed = capsys.readouterr().out
    assert f"   1  {ranked[0][0]}" in printed and "   3  " not in printed  # top_k=2 lines
    # the scores are the model's own similarities ([CLS] variant: s_global alone)
    from mmzoo.data.msrvtt import MSRVTTDataModule

    dm = MSRVTTDataModule(str(root), test_captions="first", experts=["audio", "face"])
    assert rank_videos(m, "a red man is running", dm) == ranked
