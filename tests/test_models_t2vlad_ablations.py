"""T2VLAD ablations of the thesis (Tables 6.4-6.6) as constructor arguments: each variant builds,
trains a step and has the behaviour that defines it."""
import pytest
import torch
import torch.nn.functional as F

import mmzoo
from mmzoo.models.t2vlad import T2VLAD

TINY_BERT = dict(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                 max_position_embeddings=40)
K, C = 3, 16

# thesis row -> constructor arguments (the table of docs/t2vlad.md and model_cards/t2vlad.md)
ROWS = {
    "full / shared VLAD": {},
    "6.4 w/o global alignment (test only)": dict(eval_similarity="local"),
    "6.4 w/o local alignment ([CLS])": dict(local_alignment=False, text_global_input="cls"),
    "6.5 only text VLAD": dict(video_local_aggregation="maxpool"),
    "6.5 two separate VLADs": dict(vlad_sharing="separate"),
    "6.6 w/o visual self-attention": dict(transformer_layers=0),
    "local alignment only (no table: does not converge)": dict(global_alignment=False),
}


def tiny(**kw):
    args = dict(experts=["audio", "face"], expert_dims=[12, 10], expert_max_tokens=[5, 4], text_encoder_config=TINY_BERT,
                text_encoder_init="random", embed_dim=C, transformer_ffn_dim=C, num_clusters=K, text_max_tokens=8)
    args.update(kw)
    return T2VLAD(**args)


def tiny_batch(m, b=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 40, (b, 8), generator=g)
    experts = {e: torch.randn(b, n, d, generator=g) for e, d, n in zip(m.hparams.experts, m.hparams.expert_dims, m.hparams.expert_max_tokens)}
    return ids, torch.ones_like(ids), experts


@pytest.mark.parametrize("row", list(ROWS))
def test_every_ablation_row_builds_trains_and_evaluates(row):
    torch.manual_seed(0)
    m = tiny(**ROWS[row])
    ids, att, experts = tiny_batch(m)
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.1)
    m.train()
    loss = m.compute_loss(m(ids, att, experts))
    opt.zero_grad()
    loss.backward()
    # every parameter takes part in training (nothing built that the variant does not use: DDP-safe)
    unused = [n for n, p in m.named_parameters() if p.grad is None]
    assert not unused, unused
    opt.step()
    m.eval()
    with torch.no_grad():
        s = m(ids, att, experts)
    assert s.shape == (4, 4) and torch.isfinite(s).all()


def test_variant_modules_and_similarity():
    cls = tiny(**ROWS["6.4 w/o local alignment ([CLS])"])
    assert cls.vlad is None and cls.local_proj is None and cls.transformer is None
    assert cls.text_gu["audio"].fc.in_features == C and cls.moe_fc.in_features == C  # from [CLS], not K*C
    only_text = tiny(**ROWS["6.5 only text VLAD"])
    assert only_text.vlad.num_branches == 1 and only_text.video_local_fc.out_features == K * C
    local_only = tiny(**ROWS["local alignment only (no table: does not converge)"])
    assert local_only.video_gu is None and local_only.moe_fc is None
    torch.manual_seed(0)
    for m in (cls, local_only):
        m.eval()
        ids, att, experts = tiny_batch(m)
        t, v = m.encode_text(ids, att), m.encode_video(experts)
        mode = "global" if m is cls else "local"
        assert torch.allclose(m.similarity(t, v), m.similarity(t, v, mode))  # "both" = the one branch built
        with pytest.raises(ValueError, match="no .* branch"):
            m.similarity(t, v, "local" if m is cls else "global")
    with pytest.raises(ValueError, match="local_alignment"):
        tiny(local_alignment=False, eval_similarity="local")
    with pytest.raises(ValueError, match="at least one"):
        tiny(local_alignment=False, global_alignment=False)
    with pytest.raises(ValueError, match="needs local_alignment"):
        tiny(local_alignment=False, video_local_aggregation="maxpool")


def test_cls_only_text_representation_depends_only_on_the_cls_token():
    torch.manual_seed(0)
    m = tiny(**ROWS["6.4 w/o local alignment ([CLS])"]).eval()
    full = tiny().eval()
    z = torch.randn(3, 8, C)
    other_tokens = z.clone()
    other_tokens[:, 1:] = torch.randn(3, 7, C) * 3  # every token but [CLS] changed
    cls_changed = z.clone()
    cls_changed[:, 0] = torch.randn(3, C)
    with torch.no_grad():
        a, b, c = (m.encode_text_tokens(x) for x in (z, other_tokens, cls_changed))
        assert set(a) == {"global", "moe"}  # no local text representation at all
        for k in a:
            assert torch.allclose(a[k], b[k], atol=1e-6), k
            assert not torch.allclose(a[k], c[k], atol=1e-4), k
        # the thesis model's text representation does depend on the other tokens (the check can fail)
        fa, fb = full.encode_text_tokens(z), full.encode_text_tokens(other_tokens)
        assert not torch.allclose(fa["global"], fb["global"], atol=1e-4) and not torch.allclose(fa["local"], fb["local"], atol=1e-4)
    # through BERT: the text encoder's [CLS] output is what reaches the heads
    ids, att, _ = tiny_batch(m)
    with torch.no_grad():
        z_bert = m.text_encoder(input_ids=ids, attention_mask=att).last_hidden_state
        expected = torch.stack([m.text_gu[e](z_bert[:, 0]) for e in m.experts], 1)
        assert torch.allclose(m.encode_text(ids, att)["global"], expected, atol=1e-6)


def test_only_text_vlad_video_local_is_projected_max_pool_of_the_tokens():
    torch.manual_seed(0)
    m = tiny(**ROWS["6.5 only text VLAD"]).eval()
    full = tiny().eval()
    z = torch.randn(2, 9, C)
    z[:, 4] = z.min(dim=1).values  # token 4 is the channel-wise minimum: it never sets the max
    lowered = z.clone()
    lowered[:, 4] = z[:, 4] - 5.0  # changing a token that is below the max in every channel
    raised = z.clone()
    raised[:, 4, 0] = z[:, :, 0].max(dim=1).values + 1.0  # ... or makes it the max of one channel
    with torch.no_grad():
        a, b, c = (m.aggregate_video_local(x) for x in (z, lowered, raised))
        assert torch.allclose(a, F.normalize(m.video_local_fc(z.max(dim=1).values), dim=-1), atol=1e-6)
        assert a.shape == (2, K * C) and torch.allclose(a, b, atol=1e-6) and not torch.allclose(a, c, atol=1e-4)
        # whereas the video VLAD of the thesis model sees every token
        assert not torch.allclose(full.aggregate_video_local(z), full.aggregate_video_local(lowered), atol=1e-4)
        # the model's video local feature is that of its transformer output
        _, _, experts = tiny_batch(m, b=2)
        zv, _ = m.video_local_tokens(experts)
        assert torch.allclose(m.encode_video(experts)["local"], m.aggregate_video_local(zv), atol=1e-6)
    # the VLAD serves the text only: no gradient into it from the video side, some from the text side
    m.train()
    ids, att, experts = tiny_batch(m)
    m.zero_grad()
    m.encode_video(experts)["local"].mul(torch.randn(4, K * C)).sum().backward()
    assert all(p.grad is None for p in m.vlad.parameters())
    m.encode_text(ids, att)["local"].mul(torch.randn(4, K * C)).sum().backward()
    assert m.vlad.assign_centers[0].grad.abs().sum() > 0


def test_full_size_ablation_parameter_counts():
    """Meta-device parameter counts of the full-size variants against the removed/added layers."""
    C_, K_, E = 768, 9, 8
    with torch.device("meta"):
        full = mmzoo.create("t2vlad")
        cls = mmzoo.create("t2vlad", **ROWS["6.4 w/o local alignment ([CLS])"])
        only_text = mmzoo.create("t2vlad", **ROWS["6.5 only text VLAD"])
    n = lambda m: sum(p.numel() for p in m.parameters())
    local = sum(p.numel() for p in full.local_proj.parameters()) + sum(p.numel() for p in full.transformer.parameters())
    vlad = (K_ + 1) * C_ + 2 * 2 * (K_ + 1) + K_ * C_  # c, one BN affine per modality, c'
    # text projections and MoE weights read the 768-d [CLS] instead of the 6912-d G_text
    text_heads = E * (K_ * C_ - C_) * C_ + (K_ * C_ - C_) * E
    assert n(full) - n(cls) == local + vlad + text_heads
    # the max-pool projection to K*C, less the video's assignment BN (the VLAD has one branch)
    assert n(only_text) - n(full) == C_ * K_ * C_ + K_ * C_ - 2 * (K_ + 1)
    print(f"t2vlad params: full {n(full):,}, [CLS] w/o local {n(cls):,}, only text VLAD {n(only_text):,}")


def test_global_removed_at_test_only_and_separate_vlads():
    torch.manual_seed(0)
    m = tiny(**ROWS["6.4 w/o global alignment (test only)"])
    ids, att, experts = tiny_batch(m)
    m.eval()
    with torch.no_grad():
        t, v = m.encode_text(ids, att), m.encode_video(experts)
        s_global, s_local = m.similarity(t, v, "global"), m.similarity(t, v, "local")
        assert torch.allclose(m(ids, att, experts), s_local, atol=1e-6)  # test: s_local alone
        assert not torch.allclose(s_local, 0.5 * (s_global + s_local), atol=1e-4)
    # training still optimises s = (s_global + s_local) / 2 (only the model's own flag is set, so
    # that dropout / BatchNorm stay in eval mode and the outputs compare)
    m.training = True
    with torch.no_grad():
        assert torch.allclose(m(ids, att, experts), 0.5 * (s_global + s_local), atol=1e-6)
    m.training = False
    # two separate VLADs: the text's centres do not touch the video descriptor
    sep = tiny(**ROWS["6.5 two separate VLADs"]).eval()
    with torch.no_grad():
        v0, t0 = sep.encode_video(experts)["local"], sep.encode_text(ids, att)["local"]
        sep.vlad.assign_centers[1].add_(torch.randn_like(sep.vlad.assign_centers[1]))
        sep.vlad.residual_centers[1].add_(torch.randn_like(sep.vlad.residual_centers[1]))
        assert torch.allclose(sep.encode_video(experts)["local"], v0, atol=1e-6)
        assert not torch.allclose(sep.encode_text(ids, att)["local"], t0, atol=1e-4)


def _documented_rows(path, heading):
    """(row label, kwargs) of the ablation table under ``heading`` in a markdown file."""
    import re
    from pathlib import Path

    text = Path(__file__).resolve().parents[1].joinpath(path).read_text()
    section = text[text.index(heading):]
    rows = []
    for line in section.splitlines()[1:]:
        if line.startswith("#"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 5 or not re.match(r"^\d\.\d|^text", cells[0]):
            continue
        args = re.findall(r"`([^`]*)`", cells[2])
        rows.append((cells[1], eval(f"dict({args[0]})") if args else {}))  # noqa: S307 - our own docs
    return rows


@pytest.mark.parametrize("path,heading", [("docs/t2vlad.md", "## Ablations"), ("model_cards/t2vlad.md", "Ablations on 1k-A")])
def test_documented_ablation_tables_match_the_tested_rows(path, heading):
    rows = _documented_rows(path, heading)
    assert len(rows) >= 6
    documented = sorted(sorted(kw.items()) for _, kw in rows)
    tested = sorted(sorted(kw.items()) for name, kw in ROWS.items() if "no table" not in name or path.startswith("docs"))
    assert documented == tested
    for _, kw in rows:
        tiny(**kw)  # every documented set of arguments builds


@pytest.mark.parametrize("row", ["6.4 w/o local alignment ([CLS])", "6.5 only text VLAD", "local alignment only (no table: does not converge)"])
def test_variant_evaluation_epoch_ranks_with_its_own_similarity(row, tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "red", "blue", "dog", "cat", "a", "is"]) + "\n")
    torch.manual_seed(0)
    m = tiny(tokenizer=str(vocab), **ROWS[row]).eval()
    _, _, ex = tiny_batch(m, b=3)
    texts = [["a red dog"], ["a blue cat", "blue cat is"], ["a dog is red"]]
    m.on_test_epoch_start()
    with torch.no_grad():
        m.test_step({"text": texts, "video_index": torch.arange(3), "experts": ex}, 0)
        m.on_test_epoch_end()
        ref = m.similarity(m.encode_texts(["a red dog", "a blue cat", "blue cat is", "a dog is red"]), m.encode_video(ex))
    assert m.last_eval_sims.shape == (4, 3) and torch.allclose(m.last_eval_sims, ref, atol=1e-5)
    assert 0.0 <= m.last_eval_metrics["t2v/R@1"] <= 100.0
