"""Does T2VLAD learn? (Wang, thesis ch. 6.) A tiny T2VLAD trained with the real MSR-VTT DataModule on
the synthetic MSR-VTT files must retrieve held-out videos far above chance.

The synthetic writer gives every video a concept (colour x object x action): its captions name the
concept's three words and each expert's features are a fixed random direction of the concept plus
noise. With 100 videos every 1k-A test video's concept also belongs to some training video, so
retrieving the 1k-A test videos from their captions is learnable (with fewer videos, e.g. 24 or 60,
the test concepts are unseen and their random directions cannot be predicted from the words).

The bug this file guards against: with transformers 5, ``BertTokenizerFast(vocab_file=...)`` keeps
only the five special tokens (the keyword is now ``vocab`` and ``vocab_file`` is swallowed by
``**kwargs``), so every caption word became [UNK], the text side carried no information and
training stayed at chance (R@1 6.7 % = 1/15 on this set before the fix).
"""
import logging

import pytest
import pytorch_lightning as pl
import torch

from mmzoo.data.msrvtt import MSRVTTDataModule
from mmzoo.data.synthetic.msrvtt import SYNTHETIC_VOCAB, write_msrvtt
from mmzoo.models.t2vlad import T2VLAD
from mmzoo.nn.bert_text import _tokenizer_from_vocab_file, load_bert_tokenizer

_SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_EXPERTS = ["audio", "ocr"]  # ocr is missing for every 4th video: the MoE renormalisation is exercised
_DIMS = [128, 300]
_TOKENS = 4  # the writer's max_feature_tokens; the DataModule pads to this budget


@pytest.fixture(scope="module")
def learnable_msrvtt(tmp_path_factory):
    root = write_msrvtt(tmp_path_factory.mktemp("msrvtt_learn"), num_videos=100, num_mp4=0, experts=_EXPERTS)
    vocab = root / "vocab.txt"
    vocab.write_text("\n".join(_SPECIAL + SYNTHETIC_VOCAB) + "\n")
    return root, vocab


def test_vocab_file_tokenizer_knows_every_word(learnable_msrvtt):
    _, vocab = learnable_msrvtt
    tok = load_bert_tokenizer(str(vocab))
    ids = tok(" ".join(SYNTHETIC_VOCAB), add_special_tokens=False)["input_ids"]
    # vocab.txt line i is token id i: each synthetic word maps to its own line, none to [UNK] (1)
    assert ids == [len(_SPECIAL) + i for i in range(len(SYNTHETIC_VOCAB))]
    assert tok.unk_token_id not in tok("a red dog is cooking")["input_ids"]


def test_vocab_file_that_is_not_read_is_an_error(learnable_msrvtt):
    """A tokenizer class that drops the vocabulary argument (as transformers 5 does with
    ``vocab_file``) is refused in one line naming the file, not used with only [UNK]."""
    from transformers import BertTokenizerFast

    class Forgetful(BertTokenizerFast):
        def __init__(self, vocab_file=None, vocab=None, **kwargs):
            super().__init__(**kwargs)

    _, vocab = learnable_msrvtt
    n = len(_SPECIAL) + len(SYNTHETIC_VOCAB)
    with pytest.raises(ValueError, match=rf"vocab\.txt: the BERT tokenizer holds 5 tokens, the file has {n}"):
        _tokenizer_from_vocab_file(Forgetful, str(vocab))


def _model(vocab, **kw) -> T2VLAD:
    bert = dict(vocab_size=len(_SPECIAL) + len(SYNTHETIC_VOCAB), hidden_size=32, num_hidden_layers=1,
                num_attention_heads=2, intermediate_size=64, max_position_embeddings=16)
    return T2VLAD(experts=_EXPERTS, expert_dims=_DIMS, expert_max_tokens=[_TOKENS] * 2, text_encoder_config=bert,
                  text_encoder_init="random", tokenizer=str(vocab), embed_dim=32, transformer_ffn_dim=32,
                  num_clusters=3, text_max_tokens=12, optimizer="adamw", lr=1e-3, **kw)


def _test(model, dm) -> dict:
    kw = dict(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False)
    return pl.Trainer(**kw).test(model, dm, verbose=False)[0]


@pytest.mark.parametrize("recipe", [
    # thesis: shared VLAD centres, bidirectional max-margin loss with margin 0.02 (AdamW instead of Ranger:
    # RAdam's variance rectification keeps the effective step small for the first ~1000 steps, too many here)
    dict(),
    # the PaddleVideo port (t2vlad-paddle): detached video assignment centres, hardest-negative loss, margin 0.2
    dict(vlad_sharing="port", loss="hardest_negative", margin=0.2),
], ids=["thesis-loss", "port"])
def test_tiny_t2vlad_retrieves_held_out_videos(learnable_msrvtt, recipe):
    root, vocab = learnable_msrvtt
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    torch.manual_seed(0)
    model = _model(vocab, **recipe)
    # 1k-A: 15 held-out test videos (concepts seen in training), all 20 captions of each as queries
    dm = MSRVTTDataModule(str(root), split="1k-A", experts=_EXPERTS, max_tokens={e: _TOKENS for e in _EXPERTS},
                          test_captions="all", batch_size=16, eval_batch_size=64, num_workers=0)
    untrained = _test(model, dm)
    n_videos = model.last_eval_sims.shape[1]
    assert model.last_eval_sims.shape == (20 * n_videos, n_videos) and n_videos == 15
    chance = 100.0 / n_videos
    assert untrained["test/t2v/R@1"] < 3 * chance  # the check below can fail: an untrained model is near chance

    trainer = pl.Trainer(max_epochs=60, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)
    trainer.fit(model, dm)
    res = _test(model, dm)
    assert res["test/t2v/R@1"] > 6 * chance and res["test/t2v/MdR"] == 1.0
    # video->text on the 1k-A protocol (one caption per video): with all 20 captions, a video's own
    # captions repeat the same 4 templates, and ties among them are averaged into its rank
    one = _test(model, MSRVTTDataModule(str(root), split="1k-A", experts=_EXPERTS, max_tokens={e: _TOKENS for e in _EXPERTS},
                                        batch_size=16, eval_batch_size=64, num_workers=0))
    assert one["test/v2t/R@1"] > 6 * chance and one["test/t2v/R@1"] > 6 * chance
    if not recipe:  # each branch alone retrieves too: gradients reach both the local and the global alignment
        for branch in ("local", "global"):
            model.hparams.eval_similarity = branch
            assert _test(model, dm)["test/t2v/R@1"] > 2 * chance, branch
