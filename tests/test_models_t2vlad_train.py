"""A tiny T2VLAD trains and tests through a Lightning Trainer on the synthetic MSR-VTT with the
real msrvtt DataModule; rank_videos and predict_step rank the test videos for a query."""
import json

import pytest
import pytorch_lightning as pl
import torch

from mmzoo.data.msrvtt import MSRVTTDataModule
from mmzoo.data.synthetic.msrvtt import SYNTHETIC_VOCAB
from mmzoo.models.t2vlad import T2VLAD
from mmzoo.predict.t2vlad import rank_feature_set, rank_videos


def _model(vocab, **kw):
    cfg = dict(vocab_size=len(SYNTHETIC_VOCAB) + 5, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
               intermediate_size=64, max_position_embeddings=64)
    return T2VLAD(text_encoder_config=cfg, text_encoder_init="random", tokenizer=str(vocab), embed_dim=32,
                  transformer_ffn_dim=32, num_clusters=3, text_max_tokens=16, lr=1e-3, **kw)


def _trainer(epochs):
    return pl.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)


def test_fit_and_test_full_protocol(msrvtt_vocab):
    root, vocab = msrvtt_vocab
    torch.manual_seed(0)
    m = _model(vocab)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    dm = MSRVTTDataModule(str(root), split="full", batch_size=8, eval_batch_size=4)
    tr = _trainer(2)
    tr.fit(m, dm)
    assert torch.isfinite(tr.callback_metrics["train/loss"])
    changed = [k for k, v in m.state_dict().items() if v.dtype.is_floating_point and not torch.equal(v, before[k])]
    assert any(k.startswith("text_encoder.") for k in changed) and "vlad.assign_centers.0" in changed
    res = tr.test(m, dm)[0]
    # full protocol: 7 test videos, 139 queries (one video has 19 captions); ranks are within range
    assert m.last_eval_sims.shape == (7 * 20 - 1, 7)
    for d in ("t2v", "v2t"):
        assert 0.0 <= res[f"test/{d}/R@1"] <= res[f"test/{d}/R@5"] <= res[f"test/{d}/R@10"] <= 100.0
        assert 1.0 <= res[f"test/{d}/MdR"] <= 7 * 20
    assert res["test/t2v/R@10"] == 100.0  # only 7 videos: every query's video is in the top 10


def test_1ka_protocol_and_ranking(msrvtt_vocab, tmp_path):
    root, vocab = msrvtt_vocab
    torch.manual_seed(0)
    m = _model(vocab, vlad_sharing="port", loss="hardest_negative", margin=0.2, optimizer="adamw")
    dm = MSRVTTDataModule(str(root), split="1k-A", batch_size=8, eval_batch_size=8)
    tr = _trainer(1)
    tr.fit(m, dm)
    tr.test(m, dm)
    n_test = len(dm.split_ids["test"])
    assert m.last_eval_sims.shape == (n_test, n_test)  # one caption per test video
    ranked = rank_videos(m, "a red man is running", dm)
    assert sorted(v for v, _ in ranked) == sorted(dm.split_ids["test"])
    scores = [s for _, s in ranked]
    assert scores == sorted(scores, reverse=True)
    # rank_videos agrees with the model's own similarity for the first video
    b = next(iter(dm.predict_dataloader()))
    m.eval()
    with torch.no_grad():
        s = m.similarity(m.encode_texts(["a red man is running"]), m.encode_video(b["experts"], b["expert_masks"], b["expert_available"]))
    assert dict(ranked)[b["video_id"][0]] == pytest.approx(float(s[0, 0]), abs=1e-5)
    out = m.predict_step(b, 0)
    assert out["video_id"] == list(b["video_id"]) and out["local"].shape[1] == 3 * 32
    written = rank_feature_set(m, str(root), str(tmp_path / "pred"), query="a red man is running", top_k=3)
    assert written == ranked
    saved = json.loads((tmp_path / "pred" / "ranking.json").read_text())["ranking"]
    assert [r["video_id"] for r in saved] == [v for v, _ in ranked]


def test_mmzoo_fit_then_test_cli(msrvtt_vocab, tmp_path):
    import json

    from mmzoo.cli import main

    root, vocab = msrvtt_vocab
    cfg = json.dumps(dict(vocab_size=len(SYNTHETIC_VOCAB) + 5, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                          intermediate_size=64, max_position_embeddings=64))
    common = ["--model", "t2vlad", "--data", "msrvtt", "--data.root", str(root), "--data.split", "full",
              "--data.batch_size", "8", "--model.text_encoder_config", cfg, "--model.text_encoder_init", "random",
              "--model.tokenizer", str(vocab), "--model.embed_dim", "32", "--model.transformer_ffn_dim", "32",
              "--model.num_clusters", "3", "--trainer.accelerator", "cpu", "--trainer.logger", "false",
              "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(tmp_path)]
    main(["fit", *common, "--trainer.max_epochs", "1", "--trainer.num_sanity_val_steps", "0"])
    ckpt = sorted(tmp_path.rglob("last.ckpt"))
    assert ckpt, "fit wrote no checkpoint"
    out = tmp_path / "res.json"
    main(["test", *common, "--ckpt_path", str(ckpt[0]), "--results_json", str(out)])
    metrics = json.loads(out.read_text())["metrics"]
    assert {"test/t2v/R@1", "test/t2v/MdR", "test/v2t/R@10", "test/v2t/MnR"} <= set(metrics)
    assert metrics["test/t2v/R@10"] == 100.0  # 7 test videos
    # `mmzoo predict --input <feature set> --query` ranks the feature set's test videos
    main(["predict", "--model", "t2vlad", "--input", str(root), "--query", "a red man is running",
          "--ckpt_path", str(ckpt[0]), "--output_dir", str(tmp_path / "pred"), "--top_k", "3"])
    ranking = json.loads((tmp_path / "pred" / "ranking.json").read_text())["ranking"]
    scores = [r["score"] for r in ranking]
    dm = MSRVTTDataModule(str(root))
    dm.setup("predict")
    assert sorted(r["video_id"] for r in ranking) == sorted(dm.split_ids["test"])
    assert scores == sorted(scores, reverse=True)


def test_two_process_ddp_test_equals_single_process(msrvtt_vocab):
    """DDP (2 CPU processes, gloo, fork): embeddings are gathered, the sampler's padding duplicate
    is dropped, each rank ranks a disjoint subset and the synced metrics equal one process's."""
    root, vocab = msrvtt_vocab
    torch.manual_seed(0)
    m = _model(vocab)
    dm = MSRVTTDataModule(str(root), split="full", batch_size=8, eval_batch_size=3)
    _trainer(1).fit(m, dm)  # a little training so that the similarities are not degenerate
    kw = dict(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False)
    single = pl.Trainer(devices=1, **kw).test(m, dm, verbose=False)[0]
    ddp = pl.Trainer(devices=2, strategy="ddp_fork", **kw).test(m, dm, verbose=False)[0]
    assert single.keys() == ddp.keys() and len(single) == 12  # R@1/5/10, MdR, MnR, R1-R5-R10 per direction
    for k in single:
        assert ddp[k] == pytest.approx(single[k], abs=1e-4), k
