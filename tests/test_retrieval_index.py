"""The precomputed T2VLAD index (mmzoo.predict.retrieval_index): the same scores and ranking as
T2VLAD.similarity over freshly encoded videos, a hand-computed 2-video case, save / load with
its manifest, refusal of other weights, and `mmzoo predict --query` on a saved index."""
import json

import pytest
import torch

from mmzoo.data.msrvtt import MSRVTTDataModule
from mmzoo.data.synthetic.msrvtt import SYNTHETIC_VOCAB, write_msrvtt
from mmzoo.models.t2vlad import T2VLAD
from mmzoo.predict.retrieval_index import INDEX_JSON, IndexMismatchError, T2VLADIndex, weights_sha256
from mmzoo.predict.t2vlad import rank_feature_set

QUERY = "a red man is running"


@pytest.fixture(scope="module")
def feature_set(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("idx")
    root = write_msrvtt(tmp / "msrvtt", num_videos=40, num_mp4=0, experts=["audio", "face"])
    vocab = tmp / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + SYNTHETIC_VOCAB) + "\n")
    return root, vocab


def _model(vocab, **kw):
    cfg = dict(vocab_size=len(SYNTHETIC_VOCAB) + 5, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
               intermediate_size=32, max_position_embeddings=40)
    torch.manual_seed(0)
    return T2VLAD(experts=["audio", "face"], expert_dims=[128, 512], expert_max_tokens=[5, 4], text_encoder_config=cfg,
                  text_encoder_init="random", tokenizer=str(vocab), embed_dim=16, transformer_ffn_dim=16, num_clusters=3,
                  text_max_tokens=8, **kw).eval()


def _reference(model, dm, query, mode):
    """The pre-index path: encode each batch of videos and call T2VLAD.similarity."""
    ids, scores = [], []
    with torch.no_grad():
        text = model.encode_texts([query])
        for b in dm.predict_dataloader():
            v = model.encode_video(b["experts"], b.get("expert_masks"), b.get("expert_available"))
            scores.append(model.similarity(text, v, mode)[0])
            ids += list(b["video_id"])
    return ids, torch.cat(scores)


@pytest.mark.parametrize("kw,mode", [({}, "both"), ({}, "global"), ({}, "local"), ({"renormalise_moe": False}, "both"),
                                     ({"local_alignment": False, "text_global_input": "cls"}, "both")])
def test_index_scores_equal_model_similarity(feature_set, kw, mode):
    root, vocab = feature_set
    m = _model(vocab, **kw)
    dm = MSRVTTDataModule(str(root), test_captions="first", experts=["audio", "face"], eval_batch_size=3)
    dm.setup("predict")
    # one video without its face expert, so availability (and the MoE renormalisation) matters
    batches = list(dm.predict_dataloader())
    batches[0]["expert_available"]["face"][0] = 0.0
    ids, ref = _reference(m, batches_as_dm(batches), QUERY, mode)
    index = T2VLADIndex.build(m, batches)
    with torch.no_grad():
        got = index.scores(m.encode_texts([QUERY]), mode)[0]
    assert index.video_ids == ids
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)
    assert torch.argsort(got, descending=True).tolist() == torch.argsort(ref, descending=True).tolist()
    ranked = index.search(m, QUERY, mode=mode)
    assert [v for v, _ in ranked] == [ids[i] for i in torch.argsort(ref, descending=True, stable=True).tolist()]


class batches_as_dm:  # noqa: N801 - a stand-in with the DataModule's predict_dataloader()
    def __init__(self, batches):
        self.batches = batches

    def predict_dataloader(self):
        return self.batches


def test_hand_computed_two_videos():
    """E=2 experts, C=2, local dim 2: scores written out by hand (renormalised MoE, one missing expert)."""
    layout = {"local": True, "global": True, "experts": ["a", "b"], "renormalise_moe": True, "local_dim": 2, "global_dim": 4}
    video = {"local": torch.tensor([[1.0, 0.0], [0.0, 1.0]]),
             "global": torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [1.0, 0.0]]]),
             "available": torch.tensor([[1.0, 1.0], [1.0, 0.0]])}
    index = T2VLADIndex(["v0", "v1"], T2VLADIndex.rows(video, layout), video["available"], layout)
    text = {"local": torch.tensor([[0.6, 0.8]]), "global": torch.tensor([[[1.0, 0.0], [0.0, 1.0]]]), "moe": torch.tensor([[0.25, 0.75]])}
    # v0: s_local 0.6; global: 0.25*1 + 0.75*1 = 1 over norm 1 -> 1;     s = (0.6 + 1) / 2 = 0.8
    # v1: s_local 0.8; global: 0.25*0 + (b missing) -> 0 over norm 0.25; s = (0.8 + 0) / 2 = 0.4
    assert index.scores(text).tolist() == [[pytest.approx(0.8), pytest.approx(0.4)]]
    assert index.scores(text, "local").tolist() == [[pytest.approx(0.6), pytest.approx(0.8)]]
    assert index.scores(text, "global").tolist() == [[pytest.approx(1.0), pytest.approx(0.0)]]


def test_save_load_manifest_and_wrong_weights(feature_set, tmp_path):
    root, vocab = feature_set
    m = _model(vocab)
    m.zoo_id = "t2vlad"
    dm = MSRVTTDataModule(str(root), test_captions="first", experts=["audio", "face"])
    dm.setup("predict")
    index = T2VLADIndex.build(m, dm.predict_dataloader())
    index.save(tmp_path / "idx")
    meta = json.loads((tmp_path / "idx" / INDEX_JSON).read_text())
    assert meta["model_id"] == "t2vlad" and meta["weights_sha256"] == weights_sha256(m) and len(meta["weights_sha256"]) == 64
    assert meta["video_ids"] == index.video_ids and meta["num_videos"] == len(index) == 6  # 1k-A test: 6 of 40
    loaded = T2VLADIndex.load(tmp_path / "idx")
    assert torch.equal(loaded.descriptors, index.descriptors) and loaded.search(m, QUERY) == index.search(m, QUERY)
    loaded.check_model(m, check_weights=True)
    other = _model(vocab)
    with torch.no_grad():
        other.moe_fc.bias.add_(1.0)
    other.zoo_id = "t2vlad"
    with pytest.raises(IndexMismatchError, match="weights sha256"):
        loaded.check_model(other, check_weights=True)
    with pytest.raises(IndexMismatchError, match="index built for a T2VLAD"):
        loaded.check_model(_model(vocab, local_alignment=False, text_global_input="cls"))
    (tmp_path / "idx" / INDEX_JSON).write_text(json.dumps({**meta, "format": "something-else"}))
    with pytest.raises(IndexMismatchError, match="format"):
        T2VLADIndex.load(tmp_path / "idx")


def test_predict_writes_an_index_and_ranks_from_it(feature_set, tmp_path):
    """`mmzoo predict --input ROOT --query` saves out/index; `--input out/index` gives the same ranking."""
    root, vocab = feature_set
    m = _model(vocab)
    first = rank_feature_set(m, str(root), str(tmp_path / "out"), query=QUERY, top_k=3)
    assert (tmp_path / "out" / "index" / INDEX_JSON).is_file()
    again = rank_feature_set(m, str(tmp_path / "out" / "index"), str(tmp_path / "out2"), query=QUERY, top_k=3)
    assert again == first
    dm = MSRVTTDataModule(str(root), test_captions="first", experts=["audio", "face"])
    dm.setup("predict")
    ids, ref = _reference(m, dm, QUERY, "both")
    assert [v for v, _ in first] == [ids[i] for i in torch.argsort(ref, descending=True, stable=True).tolist()]
    torch.testing.assert_close(torch.tensor([s for _, s in first]), ref.sort(descending=True).values, rtol=1e-5, atol=1e-6)
