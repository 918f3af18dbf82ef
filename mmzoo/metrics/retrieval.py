"""Text-video retrieval metrics: R@K, median rank (MdR) and mean rank (MnR), both directions.

Definitions (the ones of the collaborative-experts / MMT / T2VLAD evaluation code, which the
T2VLAD thesis follows for MSR-VTT, LSMDC and ActivityNet Captions):

- A similarity matrix ``sims`` has one row per text query and one column per video; the query
  ``q`` describes video ``query_to_video[q]``. Several queries may describe one video (MSR-VTT
  "full" protocol: 20 captions per video; 1k-A: one caption per test video).
- text->video: the rank of a query is the number of videos scored strictly above its ground
  truth video (0-based). Ties are broken by *averaging* over the tied positions by default
  (``ties="averaging"``: rank = #greater + (#equal - 1) / 2, as the reference code does); the
  optimistic (``#greater``) and pessimistic (``#greater + #equal - 1``) rules are options.
- video->text: the rank of a video is the rank of its *best-ranked* caption among all queries
  (every caption of every video is a candidate): ``min_q rank_q`` over the captions ``q`` of that
  video, the VSE convention that the reference code uses for multi-caption data.
- R@1 = 100 * fraction of ranks *equal to* 0 (a query whose ground truth ties with another
  video has an averaged rank of 0.5 or more and is not a hit); R@K (K > 1) = 100 * fraction of
  ranks < K; MdR = median(rank) + 1; MnR = mean(rank) + 1 (1-based); ``R1-R5-R10`` = the
  geometric mean of R@1, R@5 and R@10 (reported by MMT and Collaborative Experts; 0 when any of
  them is 0). These are the reference code's ``cols2metrics`` definitions. The thesis reports
  R@1/5/10 (R@50 for ActivityNet Captions) and MdR; MnR and the geometric mean are added for
  convenience.
- Similarities are ranked in the dtype they come in (float64 near-ties stay distinct); ranks and
  results are float64.

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


def _check(sims: torch.Tensor, query_to_video: torch.Tensor) -> None:
    if sims.ndim != 2:
        raise ValueError(f"sims must be a [num_queries, num_videos] matrix, got shape {tuple(sims.shape)}")
    if query_to_video.ndim != 1 or query_to_video.numel() != sims.shape[0]:
        raise ValueError(
            f"query_to_video must have one entry per row of sims ({sims.shape[0]}), got shape "
            f"{tuple(query_to_video.shape)}"
        )
    if query_to_video.numel() and (query_to_video.min() < 0 or query_to_video.max() >= sims.shape[1]):
        raise ValueError("query_to_video holds a video index outside [0, num_videos)")
    if torch.isnan(sims).any():
        raise ValueError("sims contains NaN; retrieval ranks would be meaningless")


def t2v_ranks(sims: torch.Tensor, query_to_video: torch.Tensor, query_subset: Optional[torch.Tensor] = None,
              ties: Ties = "averaging") -> torch.Tensor:
    """0-based text->video rank of each query (of ``query_subset``, all queries by default)."""
    query_to_video = torch.as_tensor(query_to_video, device=sims.device).long()
    _check(sims, query_to_video)
    rows = torch.arange(sims.shape[0], device=sims.device) if query_subset is None else query_subset.to(sims.device).long()
    s = sims[rows]
    gt = s.gather(1, query_to_video[rows].unsqueeze(1))
    greater = (s > gt).sum(1)
    equal = (s == gt).sum(1)
    return _tie_rank(greater, equal, ties)


def v2t_ranks(sims: torch.Tensor, query_to_video: torch.Tensor, video_subset: Optional[torch.Tensor] = None,
              ties: Ties = "averaging") -> torch.Tensor:
    """0-based video->text rank of each video (of ``video_subset``): its best-ranked caption.

    Every video of the subset must have at least one caption (a video without a query has no
    video->text rank; an error names it)."""
    query_to_video = torch.as_tensor(query_to_video, device=sims.device).long()
    _check(sims, query_to_video)
    cols = torch.arange(sims.shape[1], device=sims.device) if video_subset is None else video_subset.to(sims.device).long()
    out = torch.empty(cols.numel(), dtype=torch.float64, device=sims.device)
    for i, v in enumerate(cols.tolist()):
        col = sims[:, v]
        own = (query_to_video == v).nonzero().flatten()
        if own.numel() == 0:
            raise ValueError(f"video {v} has no caption among the queries; cannot rank it video->text")
        vals = col[own].unsqueeze(1)
        greater = (col.unsqueeze(0) > vals).sum(1)
        equal = (col.unsqueeze(0) == vals).sum(1)
        out[i] = _tie_rank(greater, equal, ties).min()
    return out


def _hits(ranks: torch.Tensor, k: int) -> torch.Tensor:
    """Queries counted by R@k: rank exactly 0 for k = 1, rank < k otherwise (reference code)."""
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


def retrieval_ranks(sims: torch.Tensor, query_to_video: torch.Tensor, ties: Ties = "averaging") -> tuple[torch.Tensor, torch.Tensor]:
    """(text->video ranks per query, video->text ranks per video)."""
    return t2v_ranks(sims, query_to_video, ties=ties), v2t_ranks(sims, query_to_video, ties=ties)


class RetrievalMetrics(Metric):
    """Text->video and video->text R@K, MdR and MnR as a DDP-correct torchmetrics ``Metric``.

    Args:
        ks: the K of R@K (``(1, 5, 10)`` for MSR-VTT / LSMDC; ActivityNet Captions adds 50).
        ties: tie-breaking rule for equal scores (``"averaging"``, the reference code's choice).

    ``update(sims, query_to_video, query_subset=None, video_subset=None)``: ``sims`` is the
    ``[num_queries, num_videos]`` similarity matrix of the whole evaluation set (queries from
    one caption per video for 1k-A, all 20 for the full protocol); the optional subsets pick the
    rows / columns whose ranks this call records (disjoint per DDP rank). ``compute()`` returns
    ``{"t2v/R@1": ..., "t2v/MdR": ..., "v2t/R@1": ..., ...}``.
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
               video_subset: Optional[torch.Tensor] = None) -> None:
        sims = sims.detach()  # ranked in its own dtype: casting float64 to float32 creates ties
        if query_subset is None or query_subset.numel() > 0:
            self.t2v.append(t2v_ranks(sims, query_to_video, query_subset, self.ties))
        if video_subset is None or video_subset.numel() > 0:
            self.v2t.append(v2t_ranks(sims, query_to_video, video_subset, self.ties))

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
