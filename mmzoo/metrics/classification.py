"""Video classification metrics with multi-view aggregation per video.

Testing protocols of the SlowFast family score several views of each video (10 temporal clips x
3 spatial crops on Kinetics) and combine them before ranking: the softmax scores are averaged
per video (Kinetics, EPIC-Kitchens) or max-pooled (Charades). The metrics here therefore keep
every view's scores together with its video index and aggregate in `compute`, after the states
of all processes have been gathered (`dist_reduce_fx="cat"`), so views of one video scored on
different GPUs are combined correctly under DDP.

* `MultiViewAccuracy`: top-k accuracy (in %) over videos.
* `EpicActionAccuracy`: EPIC-Kitchens verb, noun and action top-k (in %), as the EPIC-100
  ``C1-Action-Recognition`` ``evaluate.py`` computes them: the action of a segment is a (verb,
  noun) pair scored by the product of the verb and noun probabilities, over the ``top_n`` = 100
  best verbs x 100 best nouns of the segment (``compute_action_scores``); a prediction among
  the top k pairs is correct when both its verb and its noun are. Segments are scored in chunks,
  so memory stays bounded on the 9,668 segments of EPIC-100 val (the full 97 x 300 product per
  segment would need about 1 GB). With per-segment ``unseen`` flags and the tail class lists,
  the toolkit's subsets are reported too: ``unseen_*_top1`` (participants absent from training)
  and ``tail_*_top1`` (tail verbs; tail nouns; actions whose verb *or* noun is a tail class).
  With the many-shot class lists of EPIC-55 (``EPIC_many_shot_verbs.csv`` / ``_nouns`` /
  ``_actions``), the ``epic-kitchens-55-lib`` class-mean precision and recall of the top-1
  prediction are reported too, over the many-shot classes present in the ground truth (a class
  never predicted has precision 0).
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

__all__ = ["aggregate_views", "MultiViewAccuracy", "EpicActionAccuracy", "MultiLabelMeanAP", "average_precision",
           "class_mean_precision_recall"]


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
        if isinstance(self.scores, list) and not self.scores:
            raise ValueError("accuracy over zero videos: the evaluation set is empty")
        scores = dim_zero_cat(self.scores)
        target = dim_zero_cat(self.target)
        vid = dim_zero_cat(self.video_index)
        _, agg, first = aggregate_views(scores, vid, self.aggregate)
        _check_consistent_targets(target, vid, first, torch.unique(vid, return_inverse=True))
        t = target[first]
        return {f"top{k}": _percent(_topk_correct(agg, t, k)) for k in self.top_k}


class EpicActionAccuracy(_MultiViewBase):
    """EPIC-Kitchens verb / noun / action top-k accuracy (%), overall and on the toolkit subsets.

    Args:
        top_k: the k of top-k (the toolkit: 1 and 5).
        aggregate: how view scores of one segment combine.
        top_n: verbs and nouns kept per segment for action scoring (the toolkit: 100).
        tail_verbs / tail_nouns: the tail classes (``EPIC_100_tail_verbs.csv`` /
            ``EPIC_100_tail_nouns.csv``); when given, ``tail_{verb,noun,action}_top1`` are
            reported.
        many_shot_verbs / many_shot_nouns / many_shot_actions: EPIC-55's many-shot classes
            (actions as (verb, noun) pairs); when given, ``many_shot_{verb,noun,action}_{precision,
            recall}`` are reported.

    `update(verb_scores (N, V), noun_scores (N, M), verb (N,), noun (N,), video_index=None,
    unseen=None)`; scores are probabilities (softmax), since action scores are their products;
    ``unseen`` (N,) bool marks segments of participants absent from training
    (``EPIC_100_unseen_participant_ids.csv``) and enables ``unseen_{verb,noun,action}_top1``.
    """

    higher_is_better = True
    chunk = 1024

    def __init__(self, top_k: Sequence[int] = (1, 5), aggregate: Literal["mean", "max"] = "mean", top_n: int = 100,
                 tail_verbs: Optional[Sequence[int]] = None, tail_nouns: Optional[Sequence[int]] = None,
                 many_shot_verbs: Optional[Sequence[int]] = None, many_shot_nouns: Optional[Sequence[int]] = None,
                 many_shot_actions: Optional[Sequence[tuple[int, int]]] = None, **kwargs) -> None:
        super().__init__(aggregate, **kwargs)
        self.top_k = tuple(int(k) for k in top_k)
        if top_n < max(self.top_k):
            raise ValueError(f"top_n ({top_n}) must be at least the largest k of top_k {self.top_k}")
        self.top_n = int(top_n)
        self.tail_verbs = None if tail_verbs is None else sorted(int(v) for v in tail_verbs)
        self.tail_nouns = None if tail_nouns is None else sorted(int(n) for n in tail_nouns)
        self.many_shot = None
        if many_shot_verbs is not None and many_shot_nouns is not None and many_shot_actions is not None:
            self.many_shot = ([int(v) for v in many_shot_verbs], [int(n) for n in many_shot_nouns],
                              [(int(v), int(n)) for v, n in many_shot_actions])
        for name in ("verb_scores", "noun_scores", "verb", "noun", "unseen"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(
        self,
        verb_scores: torch.Tensor,
        noun_scores: torch.Tensor,
        verb: torch.Tensor,
        noun: torch.Tensor,
        video_index: Optional[torch.Tensor] = None,
        unseen: Optional[torch.Tensor] = None,
    ) -> None:
        verb_scores = verb_scores.detach()
        n, dev = verb_scores.shape[0], verb_scores.device
        self.verb_scores.append(verb_scores)
        self.noun_scores.append(noun_scores.detach())
        self.verb.append(torch.as_tensor(verb, device=dev).long().view(-1))
        self.noun.append(torch.as_tensor(noun, device=dev).long().view(-1))
        # -1: not given; 0 / 1: seen / unseen participant
        flags = torch.full((n,), -1, dtype=torch.long, device=dev) if unseen is None else torch.as_tensor(unseen, device=dev).long().view(-1)
        self.unseen.append(flags)
        self.video_index.append(self._index(n, video_index, dev))

    def _action_hits(self, vs: torch.Tensor, ns: torch.Tensor, verb: torch.Tensor, noun: torch.Tensor,
                     ks: Sequence[int]) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
        """Per segment and k, whether the true (verb, noun) is among the k best pairs of the
        segment's top_n verbs x top_n nouns; and the best pair of each segment, as (verb, noun)."""
        hits = {k: torch.zeros(len(verb), dtype=torch.bool, device=vs.device) for k in ks}
        top1 = torch.zeros(len(verb), 2, dtype=torch.long, device=vs.device)
        kmax = max(ks)
        for a in range(0, len(verb), self.chunk):
            b = a + self.chunk
            tv, iv = vs[a:b].topk(min(self.top_n, vs.shape[1]), dim=1)
            tn, in_ = ns[a:b].topk(min(self.top_n, ns.shape[1]), dim=1)
            prod = (tv[:, :, None] * tn[:, None, :]).flatten(1)
            best = prod.topk(min(kmax, prod.shape[1]), dim=1).indices
            pv = iv.gather(1, best // tn.shape[1])
            pn = in_.gather(1, best % tn.shape[1])
            ok = (pv == verb[a:b, None]) & (pn == noun[a:b, None])
            for k in ks:
                hits[k][a:b] = ok[:, :k].any(dim=1)
            top1[a:b, 0], top1[a:b, 1] = pv[:, 0], pn[:, 0]
        return hits, top1

    def compute(self) -> dict[str, torch.Tensor]:
        if isinstance(self.video_index, list) and not self.video_index:
            raise ValueError("EPIC accuracy over zero segments: the evaluation set is empty")
        vid = dim_zero_cat(self.video_index)
        _, vs, first = aggregate_views(dim_zero_cat(self.verb_scores), vid, self.aggregate)
        _, ns, _ = aggregate_views(dim_zero_cat(self.noun_scores), vid, self.aggregate)
        verb = dim_zero_cat(self.verb)[first]
        noun = dim_zero_cat(self.noun)[first]
        unseen = dim_zero_cat(self.unseen)[first]
        action, best_pair = self._action_hits(vs, ns, verb, noun, sorted({1, *self.top_k}))
        verb_hit = {k: _topk_correct(vs, verb, k) for k in self.top_k}
        noun_hit = {k: _topk_correct(ns, noun, k) for k in self.top_k}
        out: dict[str, torch.Tensor] = {}
        for k in self.top_k:
            out[f"verb_top{k}"] = _percent(verb_hit[k])
            out[f"noun_top{k}"] = _percent(noun_hit[k])
            out[f"action_top{k}"] = _percent(action[k])
        top1 = {"verb": _topk_correct(vs, verb, 1), "noun": _topk_correct(ns, noun, 1), "action": action[1]}
        if (unseen >= 0).all() and (unseen == 1).any():
            for task, hit in top1.items():
                out[f"unseen_{task}_top1"] = _percent(hit[unseen == 1])
        elif (unseen >= 0).any() and not (unseen >= 0).all():
            raise ValueError("EpicActionAccuracy: give `unseen` in every update or in none")
        if self.tail_verbs is not None and self.tail_nouns is not None:
            tv = torch.isin(verb, torch.tensor(self.tail_verbs, device=verb.device))
            tn = torch.isin(noun, torch.tensor(self.tail_nouns, device=noun.device))
            for task, mask in (("verb", tv), ("noun", tn), ("action", tv | tn)):
                if mask.any():
                    out[f"tail_{task}_top1"] = _percent(top1[task][mask])
        if self.many_shot is not None:
            n_nouns = ns.shape[1]
            msv, msn, msa = self.many_shot
            tasks = (("verb", verb, vs.argmax(1), msv), ("noun", noun, ns.argmax(1), msn),
                     ("action", verb * n_nouns + noun, best_pair[:, 0] * n_nouns + best_pair[:, 1],
                      [v * n_nouns + n for v, n in msa]))
            for task, truth, pred, classes in tasks:
                p, r = class_mean_precision_recall(truth, pred, classes)
                out[f"many_shot_{task}_precision"], out[f"many_shot_{task}_recall"] = p, r
        return out


def class_mean_precision_recall(truth: torch.Tensor, pred: torch.Tensor, classes: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean over ``classes`` present in ``truth`` of the per-class precision and recall (%) of
    the top-1 predictions (``epic-kitchens-55-lib``'s ``precision_recall``: sklearn's
    ``precision_recall_fscore_support``, precision 0 for a class never predicted)."""
    present = torch.unique(truth)
    cls = torch.tensor(sorted(set(int(c) for c in classes)), dtype=torch.long, device=truth.device)
    cls = cls[torch.isin(cls, present)]
    if cls.numel() == 0:
        nan = torch.tensor(float("nan"), dtype=torch.float64, device=truth.device)
        return nan, nan
    tp = ((pred[:, None] == cls) & (truth[:, None] == cls)).sum(0).double()
    predicted = (pred[:, None] == cls).sum(0).double()
    actual = (truth[:, None] == cls).sum(0).double()
    precision = torch.where(predicted > 0, tp / predicted.clamp_min(1), torch.zeros_like(tp))
    return precision.mean() * 100, (tp / actual).mean() * 100


def _percent(hits: torch.Tensor) -> torch.Tensor:
    return hits.double().mean() * 100


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
