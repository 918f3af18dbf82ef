"""`mmzoo predict --model <t2vlad id> --input <MSR-VTT-format root> --query TEXT`: rank a feature set.

T2VLAD (Wang, thesis ch. 6) scores a caption against every video of a pre-extracted expert
feature set with its similarity ``s = (s_global + s_local) / 2``; :func:`rank_videos` returns the
videos best first, :func:`rank_feature_set` reads an MSR-VTT-format root with the ``msrvtt``
DataModule and writes ``ranking.json``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Optional

import torch

from mmzoo.errors import MmzooError

__all__ = ["rank_videos", "rank_feature_set", "predict_input", "QueryRequiredError"]


class QueryRequiredError(MmzooError, ValueError):
    """A retrieval model was asked to rank without a text query."""


@torch.no_grad()
def rank_videos(model: Any, query: str, features: Any, top_k: Optional[int] = None) -> list[tuple[str, float]]:
    """Rank videos for a text ``query``; returns ``[(video_id, score), ...]`` best first.

    ``features`` is a DataModule (its ``predict_dataloader``: the test videos of
    ``mmzoo.data.msrvtt``), any iterable of batches with ``video_id`` and ``experts`` (+ optional
    ``expert_masks`` / ``expert_available``), or one such batch dict.
    """
    if not isinstance(query, str) or not query.strip():
        raise ValueError("query must be a non-empty string")
    was_training = model.training
    model.eval()
    try:
        if isinstance(features, dict):
            batches: Iterable = [features]
        elif hasattr(features, "predict_dataloader"):
            if hasattr(features, "setup"):
                features.setup("predict")
            batches = features.predict_dataloader()
        else:
            batches = features
        text = model.encode_texts([query])
        ids, scores = [], []
        for b in batches:
            exp = {k: v.to(model.device) for k, v in b["experts"].items()}
            masks = {k: v.to(model.device) for k, v in b["expert_masks"].items()} if b.get("expert_masks") else None
            avail = {k: v.to(model.device) for k, v in b["expert_available"].items()} if b.get("expert_available") else None
            video = model.encode_video(exp, masks, avail)
            scores.append(model.similarity(text, video, model.hparams.eval_similarity)[0].cpu())
            ids += list(b["video_id"])
        if not ids:
            raise ValueError("no videos to rank")
        s = torch.cat(scores)
        order = torch.argsort(s, descending=True, stable=True)
        if top_k is not None:
            order = order[:top_k]
        return [(ids[i], float(s[i])) for i in order.tolist()]
    finally:
        model.train(was_training)


def rank_feature_set(model: Any, path: str, output_dir: str, query: Optional[str], top_k: int = 10) -> list:
    """Rank the test videos of the feature set at ``path`` (the 1k-A test list,
    ``val_list_jsfusion.txt``; the ``msrvtt`` DataModule's defaults, reading only the model's
    experts) for ``query``, print the top ``top_k`` and write ``ranking.json`` (every video, best
    first) under ``output_dir``. Returns ``[(video_id, score), ...]``."""
    from mmzoo.data.msrvtt import MSRVTTDataModule

    if not query:
        raise QueryRequiredError("T2VLAD ranks videos for a text: give --query TEXT")
    # the captions are not needed to rank: take the first one, so that the 1k-A caption index
    # file (needed only to evaluate) may be absent; read only the experts this model uses
    dm = MSRVTTDataModule(root=str(path), test_captions="first", experts=list(model.experts))
    ranked = rank_videos(model, query, dm)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ranking.json").write_text(json.dumps(
        {"query": query, "source": str(path), "ranking": [{"video_id": v, "score": s} for v, s in ranked]}, indent=2))
    print(f"query: {query!r}  ({len(ranked)} videos in {path})")
    for rank, (video_id, score) in enumerate(ranked[:top_k], 1):
        print(f"{rank:4d}  {video_id:<16} {score: .4f}")
    print(f"full ranking written to {out / 'ranking.json'}")
    return ranked


#: The `mmzoo predict --input` entry point of the T2VLAD family.
predict_input = rank_feature_set
