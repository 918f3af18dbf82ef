"""BERT text encoder loading for T2VLAD (Wang, thesis ch. 6: ``bert-base-uncased``, fine-tuned end
to end): the architecture from a config (never downloaded), the pretrained weights and the
tokenizer from the Hugging Face Hub or its cache, under mmzoo's offline policy."""
from __future__ import annotations

import inspect
import os
from typing import Any, Optional

from mmzoo.offline import hf_offline

__all__ = ["build_bert", "load_pretrained_bert_state", "load_bert_tokenizer"]


def build_bert(config: Optional[dict] = None) -> Any:
    """A randomly initialised ``transformers.BertModel`` without pooler; ``config`` holds
    ``BertConfig`` kwargs, None = bert-base-uncased's architecture."""
    from transformers import BertConfig, BertModel

    cfg = BertConfig(**config) if config is not None else BertConfig()
    return BertModel(cfg, add_pooling_layer=False)


def load_pretrained_bert_state(name: str, owner: str = "T2VLAD") -> dict:
    """The state dict of the pretrained BERT ``name`` (Hub or cache); a clear error when offline."""
    from transformers import BertModel

    try:
        pre = BertModel.from_pretrained(name, add_pooling_layer=False, local_files_only=hf_offline())
    except Exception as e:  # offline, not cached, wrong name
        raise RuntimeError(
            f"{owner} could not load the pretrained text encoder '{name}' ({type(e).__name__}: {e}). "
            "Connect to the Hugging Face Hub or pre-populate its cache (HF_HOME), or pass "
            "text_encoder_init='random' to train BERT from scratch."
        ) from e
    return pre.state_dict()


def _tokenizer_from_vocab_file(cls: Any, path: str) -> Any:
    """``cls`` (``BertTokenizerFast``) built on the WordPiece vocabulary of ``path``.

    transformers 4 takes the file as ``vocab_file``; transformers 5 names it ``vocab`` and sends an
    unknown ``vocab_file`` into ``**kwargs`` without a word, leaving a vocabulary of the five special
    tokens only (every word becomes [UNK], and the text side of a model carries no information).
    """
    params = inspect.signature(cls.__init__).parameters
    key = "vocab_file" if "vocab_file" in params else "vocab"
    tok = cls(**{key: path}, do_lower_case=True)
    with open(path, encoding="utf-8") as f:
        expected = len({line.rstrip("\n") for line in f if line.strip()})
    got = len(tok.get_vocab())
    if got < expected:
        raise ValueError(f"tokenizer vocabulary {path}: the BERT tokenizer holds {got} tokens, the file has "
                         f"{expected} (transformers {_transformers_version()} did not read it)")
    return tok


def _transformers_version() -> str:
    import transformers

    return transformers.__version__


def load_bert_tokenizer(src: str, owner: str = "T2VLAD") -> Any:
    """A fast BERT tokenizer from a vocab.txt file, a tokenizer folder or a Hub name."""
    from transformers import BertTokenizerFast

    try:
        if os.path.isfile(src):
            return _tokenizer_from_vocab_file(BertTokenizerFast, src)
        return BertTokenizerFast.from_pretrained(src, local_files_only=hf_offline())
    except Exception as e:
        raise RuntimeError(
            f"{owner} could not load the tokenizer '{src}' ({type(e).__name__}: {e}). Pass "
            "tokenizer=<path to vocab.txt or a tokenizer folder>, or connect to the Hugging Face Hub."
        ) from e
