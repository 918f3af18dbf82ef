"""Text-video retrieval metrics: R@K, median rank (MdR) and mean rank (MnR), both directions.

T2VLAD (thesis ch. 6, Tables 6.1-6.3: R@1/5/10 (R@50) and MdR, text->video and video->text) is
evaluated with the metric code of the Collaborative Experts codebase, ``model/metric.py`` of
albanie/collaborative-experts (functions ``t2v_metrics``, ``v2t_metrics``, ``cols2metrics``);
the authors' port PaddleVideo ``applications/T2VLAD/model/metric.py`` carries the same three
functions unchanged. This module computes the same numbers, point by point:

- Layout. ``sims`` has one row per text query and one column per video; query ``q`` describes
  video ``query_to_video[q]``. The reference code fixes the layout instead (``num_videos x
  captions_per_video`` rows, video-major, query ``q`` -> video ``q // captions_per_video``);
  pass ``query_to_video = arange(num_queries) // captions_per_video`` for that layout.
- Missing captions (reference ``query_masks``: MSR-VTT videos with 19 instead of 20 captions
  are padded to 20). ``query_mask`` (bool per row, False = padding) does what the reference
  does: a masked query gets no text->video rank and is not counted in the denominator
  (``t2v_metrics`` drops its column and sets ``num_queries = query_masks.sum()``), and it is no
  candidate for video->text (``v2t_metrics`` gives it the distance ``MISSING_VAL = 1e8`` so it
  sorts after every real caption, and skips it as a ground truth) -- i.e. exactly as if the
  padded rows were not in ``sims``. Without ``query_mask`` every row is a real query.
- text->video rank of a query: its 0-based position in its row sorted by descending score.
  Ties are *averaged* over the tied positions (reference ``break_ties = "averaging"``, the
  default it hard-codes, citing McSherry & Najork, ECIR 2008): rank = #greater + (#equal - 1)/2,
  where #equal counts the ground truth itself. ``ties="optimistic"`` is the reference's other
  option (``"optimistically"``: the first tied position, #greater); ``"pessimistic"`` (the last
  one) is an extra of this module.
- video->text rank of a video: the candidates are *all* captions of all videos (every unmasked
  row); each of the video's own captions gets its (tie-averaged) position in that column sorted
  by descending score, and the video's rank is the *smallest* of these (reference comment: "the
  closest GT caption in the style of VSE"). Ties are averaged here too, also among the video's
  own captions: when k of its captions share the top score (identical caption texts embed to
  identical vectors) the video's rank is (k - 1) / 2, not 0, even for a perfect model. The
  reference code keeps this (its comment: with several captions per video "it's possible for the
  method to do worse than chance in the degenerate case when all similarities are tied", marked
  TODO) and so does this module. It matters only for multi-caption evaluation with duplicate
  captions (MSR-VTT "full" / ``test_captions="all"``); T2VLAD's 1k-A numbers use one caption per
  test video (PaddleVideo ``configs/msrvtt_transformers.json``: ``split_name "jsfusion"``,
  ``num_test_captions 1``; the caption is the one named by ``jsfusion_val_caption_idx.pkl``).
- Summary (reference ``cols2metrics``): R@1 = 100 * fraction of ranks *equal to* 0 (a ground
  truth tied with another candidate has an averaged rank >= 0.5 and is no hit); R@K (K > 1) =
  100 * fraction of ranks < K (an averaged rank of 4.5 counts for R@5); MdR = numpy's median of
  the 0-based ranks + 1 (may be fractional: x.5 for an even count, x.25 / x.75 with averaged
  ties); MnR = mean + 1; ``R1-R5-R10`` = geometric mean of R@1, R@5, R@10 (the reference's
  ``geometric_mean_R1-R5-R10``, ``scipy.stats.mstats.gmean``; 0 when one of them is 0). The
  denominators are the number of unmasked queries (text->video) and of videos (video->text).
  The thesis reports R@K and MdR; MnR and the geometric mean are kept because the reference
  code reports them.

Where this module knowingly differs from the reference code (none of these changes a number
for a float32 similarity matrix of finite values with at least one real caption per video,
which is what the reference code is run on):

- dtype: the reference code casts the matrix to float32 before ranking (``.float()`` in the
  CE trainer, ``dtype='float32'`` in the PaddleVideo ``test.py``); here it is ranked in the
  dtype it comes in, so float64 near-ties stay distinct (float32/16 input: identical result).
- a video without any (unmasked) caption has rank ``inf`` there (and MnR becomes inf); here it
  is a ValueError naming the video. NaN scores: an assertion there, a ValueError here; +-inf
  scores are ranked normally here (the reference's ``sorted - gt == 0`` test fails on them).

:class:`RetrievalMetrics` is a ``torchmetrics.Metric``: ``update`` turns (part of) a similarity
matrix into ranks and stores them in concatenation states, so under DDP every rank may pass
the full matrix with a disjoint ``query_subset`` / ``video_subset`` and ``compute`` sees every
rank exactly once after the sync. :func:`retrieval_ranks` and :func:`ranks_to_metrics` are the
functional building blocks.
"""
from __future__ import annotations

import math
from typing import Literal, Optional, Sequence

import torch
from torchmetrics import Metric

__all__ = ["RetrievalMetrics", "retrieval_ranks", "ranks_to_metrics", "t2v_ranks", "v2t_ranks"]

Ties = Literal["averaging", "optimistic", "pessimistic"]


def _tie_rank(greater: torch.Tensor, equal: torch.Tensor, ties: Ties) -> torch.Tensor:
    """0-based rank from the counts of strictly greater and equal scores (equal includes self)."""
    greater = greater.double()
    equal = equal.double()
    if ties == "averaging":
        return greater + (equal - 1.0) / 2.0
    if ties == "optimistic":
        return greater
    if ties == "pessimistic":
        return greater + equal - 1.0
    raise ValueError(f"ties must be 'averaging', 'optimistic' or 'pessimistic', got {ties!r}")


def _valid_rows(sims: torch.Tensor, query_to_video: torch.Tensor, query_mask: Optional[torch.Tensor]) -> torch.Tensor:
    """Check the inputs; return the indices of the real (unmasked) query rows."""
    if sims.ndim != 2:
        raise ValueError(f"sims must be a [num_queries, num_videos] matrix, got shape {tuple(sims.shape)}")
    if query_to_video.ndim != 1 or query_to_video.numel() != sims.shape[0]:
        raise ValueError(
            f"query_to_video must have one entry per row of sims ({sims.shape[0]}), got shape "
            f"{tuple(query_to_video.shape)}"
        )
    if query_to_video.numel() and (query_to_video.min() < 0 or query_to_video.max() >= sims.shape[1]):
        raise ValueError("query_to_video holds a video index outside [0, num_videos)")
    if query_mask is None:
        rows = torch.arange(sims.shape[0], device=sims.device)
    else:
        query_mask = torch.as_tensor(query_mask, device=sims.device)
        if query_mask.dtype != torch.bool or query_mask.shape != query_to_video.shape:
            raise ValueError(
                f"query_mask must be a bool tensor with one entry per row of sims ({sims.shape[0]}), got "
                f"{query_mask.dtype} of shape {tuple(query_mask.shape)}"
            )
        rows = query_mask.nonzero().flatten()
    if torch.isnan(sims[rows]).any():
        raise ValueError("sims contains NaN in a (unmasked) query row; retrieval ranks would be meaningless")
    return rows


def t2v_ranks(sims: torch.Tensor, query_to_video: torch.Tensor, query_subset: Optional[torch.Tensor] = None,
              ties: Ties = "averaging", query_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """0-based text->video rank of each query of ``query_subset`` (all queries by default),
    masked queries (``query_mask`` False) left out, in row order."""
    query_to_video = torch.as_tensor(query_to_video, device=sims.device).long()
    valid = _valid_rows(sims, query_to_video, query_mask)
    if query_subset is None:
        rows = valid
    else:
        keep = torch.zeros(sims.shape[0], dtype=torch.bool, device=sims.device)
        keep[valid] = True
        rows = query_subset.to(sims.device).long()
        rows = rows[keep[rows]]
    s = sims[rows]
    gt = s.gather(1, query_to_video[rows].unsqueeze(1))
    greater = (s > gt).sum(1)
    equal = (s == gt).sum(1)
    return _tie_rank(greater, equal, ties)


def v2t_ranks(sims: torch.Tensor, query_to_video: torch.Tensor, video_subset: Optional[torch.Tensor] = None,
              ties: Ties = "averaging", query_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """0-based video->text rank of each video of ``video_subset`` (all by default): the smallest
    tie-averaged rank of its own captions among all unmasked captions.

    Every video of the subset must have at least one unmasked caption (a video without one has no
    video->text rank; an error names it)."""
    query_to_video = torch.as_tensor(query_to_video, device=sims.device).long()
    pool = _valid_rows(sims, query_to_video, query_mask)
    pool_video = query_to_video[pool]
    cols = torch.arange(sims.shape[1], device=sims.device) if video_subset is None else video_subset.to(sims.device).long()
    out = torch.empty(cols.numel(), dtype=torch.float64, device=sims.device)
    for i, v in enumerate(cols.tolist()):
        col = sims[pool, v]
        vals = col[pool_video == v].unsqueeze(1)
        if vals.numel() == 0:
            raise ValueError(f"video {v} has no caption among the (unmasked) queries; cannot rank it video->text")
        greater = (col.unsqueeze(0) > vals).sum(1)
        equal = (col.unsqueeze(0) == vals).sum(1)
        out[i] = _tie_rank(greater, equal, ties).min()
    return out


def _hits(ranks: torch.Tensor, k: int) -> torch.Tensor:
    """Queries counted by R@k: rank exactly 0 for k = 1, rank < k otherwise (``cols2metrics``)."""
    return ranks == 0 if k == 1 else ranks < k


def ranks_to_metrics(ranks: torch.Tensor, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """R@K (percent), MdR and MnR (1-based) and, when 1, 5 and 10 are among ``ks``, the geometric
    mean ``R1-R5-R10`` of 0-based ranks."""
    ranks = torch.as_tensor(ranks, dtype=torch.float64).flatten()
    if ranks.numel() == 0:
        raise ValueError("no ranks to summarise")
    out = {f"R@{k}": float(100.0 * _hits(ranks, k).double().mean()) for k in ks}
    srt = ranks.sort().values
    n = srt.numel()
    median = srt[n // 2] if n % 2 else (srt[n // 2 - 1] + srt[n // 2]) / 2.0  # numpy's median
    out["MdR"] = float(median + 1.0)
    out["MnR"] = float(ranks.mean() + 1.0)
    if {1, 5, 10} <= set(ks):
        r = [out["R@1"], out["R@5"], out["R@10"]]
        out["R1-R5-R10"] = 0.0 if min(r) == 0 else math.exp(sum(math.log(x) for x in r) / 3.0)
    return out


def retrieval_ranks(sims: torch.Tensor, query_to_video: torch.Tensor, ties: Ties = "averaging",
                    query_mask: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(text->video ranks per unmasked query, video->text ranks per video)."""
    return (t2v_ranks(sims, query_to_video, ties=ties, query_mask=query_mask),
            v2t_ranks(sims, query_to_video, ties=ties, query_mask=query_mask))


class RetrievalMetrics(Metric):
    """Text->video and video->text R@K, MdR and MnR as a DDP-correct torchmetrics ``Metric``.

    Args:
        ks: the K of R@K (``(1, 5, 10)`` for MSR-VTT / LSMDC; ActivityNet Captions adds 50).
        ties: tie-breaking rule for equal scores (``"averaging"``, the reference code's default).

    ``update(sims, query_to_video, query_subset=None, video_subset=None, query_mask=None)``:
    ``sims`` is the ``[num_queries, num_videos]`` similarity matrix of the whole evaluation set
    (queries from one caption per video for 1k-A, all 20 for the full protocol); the optional
    subsets pick the rows / columns whose ranks this call records (disjoint per DDP rank);
    ``query_mask`` marks padded rows (False) as the reference code's ``query_masks`` does.
    ``compute()`` returns ``{"t2v/R@1": ..., "t2v/MdR": ..., "v2t/R@1": ..., ...}``.
    """

    full_state_update = False
    higher_is_better = None

    def __init__(self, ks: Sequence[int] = (1, 5, 10), ties: Ties = "averaging", **kwargs):
        super().__init__(**kwargs)
        self.ks = tuple(int(k) for k in ks)
        if ties not in ("averaging", "optimistic", "pessimistic"):
            raise ValueError(f"ties must be 'averaging', 'optimistic' or 'pessimistic', got {ties!r}")
        self.ties = ties
        self.add_state("t2v", default=[], dist_reduce_fx="cat")
        self.add_state("v2t", default=[], dist_reduce_fx="cat")

    def update(self, sims: torch.Tensor, query_to_video: torch.Tensor, query_subset: Optional[torch.Tensor] = None,
               video_subset: Optional[torch.Tensor] = None, query_mask: Optional[torch.Tensor] = None) -> None:
        sims = sims.detach()  # ranked in its own dtype: casting float64 to float32 creates ties
        if query_subset is None or query_subset.numel() > 0:
            self.t2v.append(t2v_ranks(sims, query_to_video, query_subset, self.ties, query_mask))
        if video_subset is None or video_subset.numel() > 0:
            self.v2t.append(v2t_ranks(sims, query_to_video, video_subset, self.ties, query_mask))

    def ranks(self) -> dict[str, list[float]]:
        """The 0-based ranks recorded so far, per direction (text->video in query order of the
        updates), e.g. to write per-query ranks next to the summary metrics."""
        return {name: [float(r) for r in _cat(getattr(self, name)).tolist()] for name in ("t2v", "v2t")}

    def compute(self) -> dict[str, float]:
        t2v, v2t = _cat(self.t2v), _cat(self.v2t)
        if t2v.numel() == 0 and v2t.numel() == 0:
            raise ValueError("retrieval metrics over zero queries: the evaluation set is empty")
        out = {}
        for name, ranks in (("t2v", t2v), ("v2t", v2t)):
            if ranks.numel():
                out.update({f"{name}/{k}": v for k, v in ranks_to_metrics(ranks, self.ks).items()})
        return out


def _cat(x) -> torch.Tensor:
    """A concatenation state as one float64 tensor (a tensor already after a DDP sync)."""
    if isinstance(x, torch.Tensor):
        return x.double()
    return torch.cat(x).double() if len(x) else torch.empty(0, dtype=torch.float64)
