"""`mmzoo predict --model <t2vlad id> --input <MSR-VTT-format root> --query TEXT`: rank a feature set.

T2VLAD (Wang, thesis ch. 6) scores a caption against every video of a pre-extracted expert
feature set with its similarity ``s = (s_global + s_local) / 2``; :func:`rank_videos` returns the
videos best first, :func:`rank_feature_set` reads an MSR-VTT-format root with the ``msrvtt``
DataModule and writes ``ranking.json`` and a results page (``results.html``, query, top-k frames
and captions, ground truth marked as in the thesis's Fig. 6.4; :mod:`mmzoo.predict.results_page`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Optional

import torch

from mmzoo.errors import MmzooError

__all__ = ["rank_videos", "rank_feature_set", "predict_input", "QueryRequiredError", "FEATURE_SET_JSON"]

#: Written beside a saved index: the feature set's root, video folder and annotation files, so
#: that ranking from the index alone can still show frames and captions on the results page.
FEATURE_SET_JSON = "feature_set.json"


class QueryRequiredError(MmzooError, ValueError):
    """A retrieval model was asked to rank without a text query."""


@torch.no_grad()
def rank_videos(model: Any, query: str, features: Any, top_k: Optional[int] = None) -> list[tuple[str, float]]:
    """Rank videos for a text ``query``; returns ``[(video_id, score), ...]`` best first.

    The videos are encoded into a :class:`mmzoo.predict.retrieval_index.T2VLADIndex` (in memory)
    and scored with one matrix product; the scores are ``model.similarity``'s.

    ``features`` is a DataModule (its ``predict_dataloader``: the test videos of
    ``mmzoo.data.msrvtt``), any iterable of batches with ``video_id`` and ``experts`` (+ optional
    ``expert_masks`` / ``expert_available``), or one such batch dict.
    """
    if not isinstance(query, str) or not query.strip():
        raise ValueError("query must be a non-empty string")
    from mmzoo.predict.retrieval_index import T2VLADIndex

    if isinstance(features, dict):
        batches: Iterable = [features]
    elif hasattr(features, "predict_dataloader"):
        if hasattr(features, "setup"):
            features.setup("predict")
        batches = features.predict_dataloader()
    else:
        batches = features
    return T2VLADIndex.build(model, batches, hash_weights=False).search(model, query, top_k)


def rank_feature_set(model: Any, path: str, output_dir: str, query: Optional[str], top_k: int = 10) -> list:
    """Rank the test videos of the feature set at ``path`` (the 1k-A test list,
    ``val_list_jsfusion.txt``; the ``msrvtt`` DataModule's defaults, reading only the model's
    experts) for ``query``, print the top ``top_k`` and write ``ranking.json`` (every video, best
    first) under ``output_dir``. Returns ``[(video_id, score), ...]``.

    The encoded videos are saved as an index in ``output_dir/index`` (``index.safetensors`` +
    ``index.json``); passing that folder as ``path`` ranks against it without reading or encoding
    the videos again (the model id and weights SHA-256 must match the index's).

    Also writes the results page ``output_dir/results.html`` (and ``results.json``): the top
    ``top_k`` with frames from ``root/videos/all/<id>.mp4`` and their captions
    (:mod:`mmzoo.predict.results_page`); ``ranking.json`` is unchanged by it."""
    from mmzoo.data.msrvtt import MSRVTTDataModule
    from mmzoo.predict.retrieval_index import INDEX_JSON, T2VLADIndex

    if not query:
        raise QueryRequiredError("T2VLAD ranks videos for a text: give --query TEXT")
    dm = None
    if (Path(path) / INDEX_JSON).is_file():  # a saved index: no features read, no video encoded
        index = T2VLADIndex.load(path, model.device)
        index.check_model(model, check_weights=True)
    else:
        # the captions are not needed to rank: take the first one, so that the 1k-A caption index
        # file (needed only to evaluate) may be absent; read only the experts this model uses
        dm = MSRVTTDataModule(root=str(path), test_captions="first", experts=list(model.experts))
        dm.setup("predict")
        index = T2VLADIndex.build(model, dm.predict_dataloader())
        saved = index.save(Path(output_dir) / "index")
        (saved / FEATURE_SET_JSON).write_text(json.dumps({  # where the results page finds videos and captions
            "root": str(dm.root.resolve()), "video_dir": str(dm.video_dir.resolve()),
            "annotation_files": dm.annotation_files, "raw_captions": f"{dm._data_dir_rel}/{dm.raw_captions}"}, indent=1))
    ranked = index.search(model, query)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ranking.json").write_text(json.dumps(
        {"query": query, "source": str(path), "ranking": [{"video_id": v, "score": s} for v, s in ranked]}, indent=2))
    print(f"query: {query!r}  ({len(ranked)} videos in {path})")
    for rank, (video_id, score) in enumerate(ranked[:top_k], 1):
        print(f"{rank:4d}  {video_id:<16} {score: .4f}")
    print(f"full ranking written to {out / 'ranking.json'}")
    _write_page(model, path, out, query, ranked, top_k, dm)
    return ranked



def _write_page(model: Any, path: str, out: Path, query: str, ranked: list, top_k: int, dm: Any) -> None:
    """``out/results.html`` (+ ``results.json``) for the top ``top_k``. Videos and captions come
    from the feature set's root (``dm``, the ``msrvtt`` layout: ``videos/all/<id>.mp4`` and the
    annotations); a saved index remembers that root in ``feature_set.json`` (written beside it
    when it is built), and without one the page has no frames and no captions and says why."""
    from mmzoo.data.msrvtt import MSRVTTFormatError, load_annotations
    from mmzoo.predict.results_page import PAGE, write_results_page

    video_dir, captions, no_video, note = None, None, "", ""
    if dm is not None:
        video_dir, captions = dm.video_dir, {v: dm.records[v].captions for v, _ in ranked}
    else:
        where = Path(path) / FEATURE_SET_JSON
        try:
            meta = json.loads(where.read_text())
            meta = meta if isinstance(meta, dict) and {"root", "video_dir", "annotation_files", "raw_captions"} <= set(meta) else None
            problem = "does not name root, video_dir, annotation_files and raw_captions"
        except FileNotFoundError:
            meta, problem = None, "not found"
        except (OSError, json.JSONDecodeError) as e:
            meta, problem = None, f"unreadable ({e})"
        if meta is None:
            no_video = note = f"{where} {problem}: this index does not say where its feature set (videos, captions) is"
        else:
            video_dir = meta["video_dir"]
            try:
                records = load_annotations(meta["root"], meta["annotation_files"], meta["raw_captions"])
                captions = {v: records[v].captions for v, _ in ranked if v in records}
            except (MSRVTTFormatError, OSError) as e:
                note = f"captions not available: {e}"
    rows = write_results_page(out, query, ranked, top_k, video_dir=video_dir, captions=captions, source=str(path),
                              model=getattr(model, "zoo_id", None) or type(model).__name__, no_video_reason=no_video,
                              captions_note=note)
    missing = [r.video_id for r in rows if r.missing]
    print(f"results page written to {out / PAGE} ({len(rows)} videos"
          + (f"; no video for {len(missing)}: {', '.join(missing)})" if missing else ")"))


#: The `mmzoo predict --input` entry point of the T2VLAD family.
predict_input = rank_feature_set
