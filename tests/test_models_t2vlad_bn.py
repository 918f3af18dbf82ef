"""T2VLAD's assignment BatchNorm per modality (the authors' port) vs one shared by text and video,
and per-query ranks written next to the results of ``mmzoo test``."""
import json

import pytest
import pytorch_lightning as pl
import torch

import mmzoo
from mmzoo.cli import main
from mmzoo.data.msrvtt import MSRVTTDataModule
from mmzoo.data.synthetic.msrvtt import SYNTHETIC_VOCAB
from mmzoo.metrics.retrieval import ranks_to_metrics
from mmzoo.models.t2vlad import T2VLAD

TINY_BERT = dict(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                 max_position_embeddings=40)


def tiny(**kw):
    args = dict(experts=["audio", "face"], expert_dims=[12, 10], expert_max_tokens=[5, 4], text_encoder_config=TINY_BERT,
                text_encoder_init="random", embed_dim=16, transformer_ffn_dim=16, num_clusters=3, text_max_tokens=8,
                transformer_dropout=0.0)  # deterministic train-mode passes: only BatchNorm statistics move
    return T2VLAD(**{**args, **kw})


def tiny_batch(m, b=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 40, (b, 8), generator=g)
    experts = {e: torch.randn(b, n, d, generator=g) for e, d, n in zip(m.hparams.experts, m.hparams.expert_dims, m.hparams.expert_max_tokens)}
    return ids, torch.ones_like(ids), experts


def _bn_state(m):
    return [(n.running_mean.clone(), n.running_var.clone()) for n in m.vlad.assign_norm]


def _changed(before, after):
    return [not (torch.equal(b[0], a[0]) and torch.equal(b[1], a[1])) for b, a in zip(before, after)]


def test_shared_bn_mixes_text_and_video_statistics_per_modality_does_not():
    torch.manual_seed(0)
    ids, att, experts = tiny_batch(tiny(), b=6)
    # shared: a text-only batch moves the statistics the video branch is normalised with
    shared = tiny(vlad_norm_sharing="shared").train()
    assert len(shared.vlad.assign_norm) == 1
    s0 = _bn_state(shared)
    with torch.no_grad():
        shared.encode_text(ids, att)
    assert _changed(s0, _bn_state(shared)) == [True]
    # ... so the eval-mode video embedding depends on whether text went through the model
    torch.manual_seed(1)
    a, b = tiny(vlad_norm_sharing="shared"), tiny(vlad_norm_sharing="shared")
    b.load_state_dict(a.state_dict())
    with torch.no_grad():
        a.train().encode_video(experts); b.train().encode_video(experts)
        b.encode_text(ids, att)  # text-only batch on b
        va, vb = a.eval().encode_video(experts)["local"], b.eval().encode_video(experts)["local"]
    assert not torch.allclose(va, vb, atol=1e-4)

    # per modality (the default): text updates only the text BN, video only the video BN
    per = tiny().train()
    assert per.hparams.vlad_norm_sharing == "per_modality" and len(per.vlad.assign_norm) == 2
    p0 = _bn_state(per)
    with torch.no_grad():
        per.encode_text(ids, att)
    p1 = _bn_state(per)
    assert _changed(p0, p1) == [False, True]  # branch 0 = video, 1 = text
    with torch.no_grad():
        per.encode_video(experts)
    assert _changed(p1, _bn_state(per)) == [True, False]
    torch.manual_seed(1)
    a, b = tiny(), tiny()
    b.load_state_dict(a.state_dict())
    with torch.no_grad():
        a.train().encode_video(experts); b.train().encode_video(experts)
        b.encode_text(ids, att)
        va, vb = a.eval().encode_video(experts)["local"], b.eval().encode_video(experts)["local"]
    assert torch.equal(va, vb)


def test_norm_sharing_options_and_paddle_layout():
    with torch.device("meta"):
        pd, th = mmzoo.create("t2vlad-paddle"), mmzoo.create("t2vlad")
    # the port: one c, one c' (clusters2, used by both calls), one BN per modality
    assert (len(pd.vlad.assign_centers), len(pd.vlad.residual_centers), len(pd.vlad.assign_norm)) == (1, 1, 2)
    assert (len(th.vlad.assign_centers), len(th.vlad.residual_centers), len(th.vlad.assign_norm)) == (1, 1, 2)
    bias = tiny(vlad_assignment_norm="bias", vlad_norm_sharing="shared")
    assert len(bias.vlad.assign_norm) == 1
    only_text = tiny(video_local_aggregation="maxpool")  # a one-branch VLAD has one norm
    assert len(only_text.vlad.assign_norm) == 1
    with pytest.raises(ValueError, match="separate"):
        tiny(vlad_sharing="separate", vlad_norm_sharing="shared")
    with pytest.raises(ValueError, match="vlad_norm_sharing"):
        tiny(vlad_norm_sharing="both")


def test_shared_norm_state_dict_loads_into_per_modality_model():
    torch.manual_seed(0)
    old = tiny(vlad_norm_sharing="shared")
    with torch.no_grad():
        old.vlad.assign_norm[0].running_mean.uniform_(-1, 1)
        old.vlad.assign_norm[0].running_var.uniform_(0.5, 2)
        old.vlad.assign_norm[0].weight.uniform_(0.5, 2)
    new = tiny()
    new.load_state_dict(old.state_dict(), strict=True)
    for n in new.vlad.assign_norm:
        assert torch.equal(n.running_mean, old.vlad.assign_norm[0].running_mean)
        assert torch.equal(n.weight, old.vlad.assign_norm[0].weight)
    ids, att, experts = tiny_batch(old)
    old.eval(); new.eval()
    with torch.no_grad():
        assert torch.allclose(new(ids, att, experts), old(ids, att, experts), atol=1e-6)


# ------------------------------------------------------------------------------ per-query ranks


BERT = dict(vocab_size=len(SYNTHETIC_VOCAB) + 5, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
            intermediate_size=64, max_position_embeddings=64)
SMALL = dict(embed_dim=32, transformer_ffn_dim=32, num_clusters=3, text_max_tokens=16)


def test_save_ranks_on_the_module_after_a_test_epoch(msrvtt_vocab):
    root, vocab = msrvtt_vocab
    torch.manual_seed(0)
    m = T2VLAD(text_encoder_config=BERT, text_encoder_init="random", tokenizer=str(vocab),
                                   save_ranks=True, **SMALL)
    dm = MSRVTTDataModule(str(root), split="1k-A", batch_size=8, eval_batch_size=8)
    tr = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    res = tr.test(m, dm)[0]
    ranks = m.last_eval_ranks
    n = m.last_eval_sims.shape[0]
    assert set(ranks) == {"t2v", "v2t"} and len(ranks["t2v"]) == n and len(ranks["v2t"]) == m.last_eval_sims.shape[1]
    # the ranks are the test metrics' own: summarising them gives the logged R@K / MdR
    for d in ("t2v", "v2t"):
        for k, v in ranks_to_metrics(torch.tensor(ranks[d])).items():
            assert res[f"test/{d}/{k}"] == pytest.approx(v, abs=1e-4)
    # t2v rank 0-based, by hand for the first query
    s = m.last_eval_sims[0]
    assert ranks["t2v"][0] == pytest.approx(float((s > s[0]).sum() + 0.5 * ((s == s[0]).sum() - 1)))
    off = T2VLAD(text_encoder_config=BERT, text_encoder_init="random", tokenizer=str(vocab), **SMALL)
    tr.test(off, dm)
    assert off.last_eval_ranks is None


def test_mmzoo_test_writes_ranks_to_the_results_json(msrvtt_vocab, tmp_path, capsys):
    root, vocab = msrvtt_vocab
    common = ["--model", "t2vlad", "--data", "msrvtt", "--data.root", str(root), "--data.split", "1k-A",
              "--data.batch_size", "8", "--data.num_workers", "0", "--pretrained", "false",
              "--model.text_encoder_config", json.dumps(BERT), "--model.text_encoder_init", "random",
              "--model.tokenizer", str(vocab), *[x for k, v in SMALL.items() for x in (f"--model.{k}", str(v))],
              "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.enable_progress_bar", "false",
              "--trainer.default_root_dir", str(tmp_path / "run"), "--seed_everything", "0"]
    out = tmp_path / "with.json"
    main(["test", *common, "--model.save_ranks", "true", "--results_json", str(out)])
    result = json.loads(out.read_text())
    t2v, v2t = result["ranks"]["t2v"], result["ranks"]["v2t"]
    assert len(t2v) > 0 and len(v2t) > 0 and all(0 <= r < len(v2t) for r in t2v)
    assert result["metrics"]["test/t2v/R@1"] == pytest.approx(ranks_to_metrics(torch.tensor(t2v))["R@1"], abs=1e-4)
    out2 = tmp_path / "without.json"
    main(["test", *common, "--results_json", str(out2)])
    assert "ranks" not in json.loads(out2.read_text())
