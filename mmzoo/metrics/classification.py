"""Video classification metrics with multi-view aggregation per video.

Testing protocols of the SlowFast family score several views of each video (10 temporal clips x
3 spatial crops on Kinetics) and combine them before ranking: the softmax scores are averaged
per video (Kinetics, EPIC-Kitchens) or max-pooled (Charades). The metrics here therefore keep
every view's scores together with its video index and aggregate in `compute`, after the states
of all processes have been gathered (`dist_reduce_fx="cat"`), so views of one video scored on
different GPUs are combined correctly under DDP.

* `MultiViewAccuracy`: top-k accuracy (in %) over videos.
* `EpicActionAccuracy`: EPIC-Kitchens verb, noun and action top-k (in %). The action of a
  sample is a (verb, noun) pair; its score is the product of the verb and noun softmax
  probabilities, and a prediction among the top k pairs is correct when both its verb and its
  noun are (the action scoring of the EPIC-Kitchens action-recognition baselines, which rank
  the products of the top verb and noun probabilities).
* `MultiLabelMeanAP`: Charades mAP. ``ties="official"`` follows ``Charades_v1_classify.m``
  (its ``THUMOSeventclspr``): per class, the videos are sorted by decreasing score with ties kept
  in input order (MATLAB's stable ``sort``; the official script's rows are in the order of the
  ground-truth CSV, i.e. of the video index), and AP is the mean of the precision at the rank of
  each positive; ``wAP`` weights each class's AP by its number of positives, as the script also
  prints. ``ties="sklearn"`` is ``sklearn.metrics.average_precision_score`` (tied scores form one
  threshold), the convention of PySlowFast's Charades evaluation and so of AVSlowFast's published
  Charades numbers. Classes without a positive video are left out of the mean (the official
  script would return NaN for them; the official test and validation sets have none).

When no video index is given, each row is its own video (plain clip-level metrics), in input
order. Every result is a float64 tensor (percent).
"""
from __future__ import annotations

from typing import Literal, Optional, Sequence

import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

__all__ = ["aggregate_views", "MultiViewAccuracy", "EpicActionAccuracy", "MultiLabelMeanAP", "average_precision"]


def aggregate_views(
    scores: torch.Tensor, video_index: torch.Tensor, mode: Literal["mean", "max"] = "mean"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Combine the rows of `scores` (N, C) that share a video index.

    Returns (unique video ids (V,), aggregated scores (V, C), the position of the first row
    of each video (V,), for picking its target)."""
    ids, inverse = torch.unique(video_index, return_inverse=True)
    v, c = ids.numel(), scores.shape[1]
    if mode == "mean":
        out = torch.zeros(v, c, dtype=scores.dtype, device=scores.device).index_add_(0, inverse, scores)
        count = torch.zeros(v, dtype=scores.dtype, device=scores.device).index_add_(0, inverse, torch.ones_like(scores[:, 0]))
        out = out / count[:, None]
    elif mode == "max":
        out = torch.full((v, c), float("-inf"), dtype=scores.dtype, device=scores.device)
        out = out.scatter_reduce(0, inverse[:, None].expand(-1, c), scores, reduce="amax", include_self=True)
    else:
        raise ValueError(f"unknown aggregation {mode!r}")
    order = torch.arange(inverse.numel(), device=scores.device)
    first = torch.full((v,), inverse.numel(), dtype=torch.long, device=scores.device).scatter_reduce(0, inverse, order, reduce="amin")
    return ids, out, first


def _check_consistent_targets(target: torch.Tensor, video_index: torch.Tensor, first: torch.Tensor, inverse_ids) -> None:
    _, inverse = inverse_ids
    expected = target[first][inverse]
    if not torch.equal(expected, target):
        raise ValueError("views of the same video carry different labels; check the video index of the batches")


#: Automatic video ids (no video index given) are negative, so they never collide with real
#: (>= 0) indices, and increase with the input order, so sorted ids keep that order.
_AUTO_BASE = -(2**62)


class _MultiViewBase(Metric):
    full_state_update = False
    is_differentiable = False

    def __init__(self, aggregate: Literal["mean", "max"] = "mean", **kwargs) -> None:
        super().__init__(**kwargs)
        if aggregate not in ("mean", "max"):
            raise ValueError(f"unknown aggregation {aggregate!r}")
        self.aggregate = aggregate
        self.add_state("video_index", default=[], dist_reduce_fx="cat")
        self._auto_index = 0

    def _index(self, n: int, video_index: Optional[torch.Tensor], device) -> torch.Tensor:
        if video_index is None:
            # each row its own video: negative ids never collide with real (>= 0) indices, and
            # interleaving by rank keeps them distinct across processes under DDP
            rank, world = 0, 1
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
            local = torch.arange(self._auto_index, self._auto_index + n, device=device)
            self._auto_index += n
            return _AUTO_BASE + local * world + rank
        video_index = torch.as_tensor(video_index, device=device).long().view(-1)
        if video_index.numel() != n:
            raise ValueError(f"video_index has {video_index.numel()} entries for {n} rows")
        if (video_index < 0).any():
            raise ValueError("video indices must be >= 0")
        return video_index

    def reset(self) -> None:
        super().reset()
        self._auto_index = 0


def _topk_correct(scores: torch.Tensor, target: torch.Tensor, k: int) -> torch.Tensor:
    k = min(k, scores.shape[1])
    top = scores.topk(k, dim=1).indices
    return (top == target[:, None]).any(dim=1)


class MultiViewAccuracy(_MultiViewBase):
    """Top-k accuracy (%) over videos after aggregating view scores.

    Args: top_k: the k values reported ("top1", "top5"); aggregate: "mean" or "max".
    `update(scores (N, C), target (N,), video_index (N,) or None)`.
    """

    higher_is_better = True

    def __init__(self, top_k: Sequence[int] = (1, 5), aggregate: Literal["mean", "max"] = "mean", **kwargs) -> None:
        super().__init__(aggregate, **kwargs)
        self.top_k = tuple(int(k) for k in top_k)
        self.add_state("scores", default=[], dist_reduce_fx="cat")
        self.add_state("target", default=[], dist_reduce_fx="cat")

    def update(self, scores: torch.Tensor, target: torch.Tensor, video_index: Optional[torch.Tensor] = None) -> None:
        scores = scores.detach().float()
        self.scores.append(scores)
        self.target.append(torch.as_tensor(target, device=scores.device).long().view(-1))
        self.video_index.append(self._index(scores.shape[0], video_index, scores.device))

    def compute(self) -> dict[str, torch.Tensor]:
        scores = dim_zero_cat(self.scores)
        target = dim_zero_cat(self.target)
        vid = dim_zero_cat(self.video_index)
        _, agg, first = aggregate_views(scores, vid, self.aggregate)
        _check_consistent_targets(target, vid, first, torch.unique(vid, return_inverse=True))
        t = target[first]
        return {f"top{k}": _topk_correct(agg, t, k).double().mean() * 100 for k in self.top_k}


class EpicActionAccuracy(_MultiViewBase):
    """EPIC-Kitchens verb / noun / action top-k accuracy (%).

    `update(verb_scores (N, V), noun_scores (N, M), verb (N,), noun (N,), video_index or None)`;
    scores should be probabilities (softmax), since action scores are their products.
    """

    higher_is_better = True

    def __init__(self, top_k: Sequence[int] = (1, 5), aggregate: Literal["mean", "max"] = "mean", **kwargs) -> None:
        super().__init__(aggregate, **kwargs)
        self.top_k = tuple(int(k) for k in top_k)
        for name in ("verb_scores", "noun_scores", "verb", "noun"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(
        self,
        verb_scores: torch.Tensor,
        noun_scores: torch.Tensor,
        verb: torch.Tensor,
        noun: torch.Tensor,
        video_index: Optional[torch.Tensor] = None,
    ) -> None:
        verb_scores = verb_scores.detach().float()
        self.verb_scores.append(verb_scores)
        self.noun_scores.append(noun_scores.detach().float())
        self.verb.append(torch.as_tensor(verb, device=verb_scores.device).long().view(-1))
        self.noun.append(torch.as_tensor(noun, device=verb_scores.device).long().view(-1))
        self.video_index.append(self._index(verb_scores.shape[0], video_index, verb_scores.device))

    def compute(self) -> dict[str, torch.Tensor]:
        vid = dim_zero_cat(self.video_index)
        _, vs, first = aggregate_views(dim_zero_cat(self.verb_scores), vid, self.aggregate)
        _, ns, _ = aggregate_views(dim_zero_cat(self.noun_scores), vid, self.aggregate)
        verb = dim_zero_cat(self.verb)[first]
        noun = dim_zero_cat(self.noun)[first]
        out: dict[str, torch.Tensor] = {}
        n_nouns = ns.shape[1]
        action_scores = (vs[:, :, None] * ns[:, None, :]).flatten(1)  # (V, verbs * nouns)
        action = verb * n_nouns + noun
        for k in self.top_k:
            out[f"verb_top{k}"] = _topk_correct(vs, verb, k).double().mean() * 100
            out[f"noun_top{k}"] = _topk_correct(ns, noun, k).double().mean() * 100
            out[f"action_top{k}"] = _topk_correct(action_scores, action, k).double().mean() * 100
        return out


def average_precision(scores: torch.Tensor, target: torch.Tensor, ties: Literal["official", "sklearn"] = "official") -> torch.Tensor:
    """AP of one class (float64). NaN when the class has no positive.

    ``"official"``: mean of the precision at the rank of each positive, rows sorted by decreasing
    score with ties in input order (``Charades_v1_classify.m``). ``"sklearn"``: tied scores are
    one threshold, AP = sum over thresholds of (recall step) x precision
    (``sklearn.metrics.average_precision_score``)."""
    order = scores.argsort(descending=True, stable=True)
    t = target[order].double()
    npos = t.sum()
    if npos == 0:
        return torch.tensor(float("nan"), dtype=torch.float64, device=scores.device)
    hits = t.cumsum(0)
    rank = torch.arange(1, t.numel() + 1, device=scores.device, dtype=torch.float64)
    if ties == "official":
        return ((hits / rank) * t).sum() / npos
    if ties != "sklearn":
        raise ValueError(f"ties must be 'official' or 'sklearn', got {ties!r}")
    srt = scores[order]
    last = torch.ones_like(t, dtype=torch.bool)  # the last row of each group of tied scores
    last[:-1] = srt[1:] != srt[:-1]
    tp, n = hits[last], rank[last]
    recall_step = torch.diff(tp, prepend=tp.new_zeros(1)) / npos
    return (recall_step * tp / n).sum()


class MultiLabelMeanAP(_MultiViewBase):
    """Charades mean average precision (%) over classes with at least one positive video.

    Args:
        aggregate: how view scores of one video combine (``"max"``, the Charades protocol).
        ties: ``"official"`` (``Charades_v1_classify.m``) or ``"sklearn"`` (PySlowFast).
        per_class: also return ``AP/<c>`` for every class (NaN where no positive).

    `update(scores (N, C), target (N, C) multi-hot, video_index or None)`. `compute` returns
    ``mAP``, ``wAP`` (AP weighted by positives) and, with ``per_class``, the per-class APs.
    Videos are ranked in the order of their video index (the ground-truth CSV order).
    """

    higher_is_better = True

    def __init__(self, aggregate: Literal["mean", "max"] = "max", ties: Literal["official", "sklearn"] = "official",
                 per_class: bool = False, **kwargs) -> None:
        super().__init__(aggregate, **kwargs)
        if ties not in ("official", "sklearn"):
            raise ValueError(f"ties must be 'official' or 'sklearn', got {ties!r}")
        self.ties = ties
        self.per_class = per_class
        self.add_state("scores", default=[], dist_reduce_fx="cat")
        self.add_state("target", default=[], dist_reduce_fx="cat")

    def update(self, scores: torch.Tensor, target: torch.Tensor, video_index: Optional[torch.Tensor] = None) -> None:
        scores = scores.detach()
        target = torch.as_tensor(target, device=scores.device)
        if target.shape != scores.shape:
            raise ValueError(f"multi-label target must be multi-hot {tuple(scores.shape)}, got {tuple(target.shape)}")
        self.scores.append(scores)
        self.target.append(target.long())
        self.video_index.append(self._index(scores.shape[0], video_index, scores.device))

    def compute(self) -> dict[str, torch.Tensor]:
        if isinstance(self.video_index, list) and not self.video_index:
            raise ValueError("mAP over zero videos: the evaluation set is empty")
        vid = dim_zero_cat(self.video_index)
        _, agg, first = aggregate_views(dim_zero_cat(self.scores), vid, self.aggregate)
        target = dim_zero_cat(self.target)[first]
        aps = torch.stack([average_precision(agg[:, c], target[:, c], self.ties) for c in range(agg.shape[1])])
        valid = ~torch.isnan(aps)
        npos = target.sum(0).double()
        zero = torch.tensor(0.0, dtype=torch.float64, device=agg.device)
        out = {
            "mAP": aps[valid].mean() * 100 if valid.any() else zero,
            "wAP": (aps[valid] * npos[valid]).sum() / npos[valid].sum() * 100 if valid.any() else zero,
        }
        if self.per_class:
            out.update({f"AP/{c}": aps[c] * 100 for c in range(aps.numel())})
        return out
