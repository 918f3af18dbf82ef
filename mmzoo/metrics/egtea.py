"""EGTEA Gaze+ action recognition metrics: mean class accuracy of verbs, nouns and actions.

EGTEA Gaze+ (Li et al., "In the Eye of Beholder", ECCV 2018) is evaluated by *mean class
accuracy* on each of its three train/test splits (and their average; the IPL thesis, Table 4.4,
reports actions). Mean class accuracy is the mean over classes of the per-class top-1 accuracy
(recall), i.e. the mean of the diagonal of the row-normalised confusion matrix. A class absent
from the split's ground truth has no row and is left out of the mean (as
``sklearn.metrics.balanced_accuracy_score`` does, which the tests use as the independent check).

:class:`EgteaAccuracy` takes verb and noun probabilities (the IPL / two-head models) and scores the
106 actions as the product of their verb's and noun's probabilities (the rule of the EPIC
toolkit; the action classes are the (verb, noun) pairs of ``action_idx.txt``). Views of one clip
(``video_index``) are averaged first. States are concatenated across processes, so results are
exact under DDP. :func:`average_over_splits` gives the "Avg" column.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import torch
from torchmetrics.utilities import dim_zero_cat

from mmzoo.metrics.classification import _MultiViewBase, aggregate_views

__all__ = ["EgteaAccuracy", "average_over_splits", "mean_class_accuracy"]


def mean_class_accuracy(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the classes present in ``target`` of the fraction of their samples predicted
    correctly (%; float64)."""
    if target.numel() == 0:
        raise ValueError("mean class accuracy over zero samples")
    classes, inverse = torch.unique(target, return_inverse=True)
    hits = torch.zeros(classes.numel(), dtype=torch.float64, device=target.device)
    hits.index_add_(0, inverse, (pred == target).double())
    counts = torch.bincount(inverse, minlength=classes.numel()).double()
    return (hits / counts).mean() * 100


class EgteaAccuracy(_MultiViewBase):
    """Verb / noun / action top-1 and mean class accuracy (%) on one EGTEA split.

    Args:
        action_pairs: ``(verb, noun)`` (0-based) of each action class, in action-id order.
        aggregate: how the views of one clip combine ("mean").

    ``update(verb_scores (N, V), noun_scores (N, M), verb (N,), noun (N,), action (N,),
    video_index=None)``; scores are probabilities.
    """

    higher_is_better = True

    def __init__(self, action_pairs: Sequence[tuple[int, int]], aggregate: Literal["mean", "max"] = "mean", **kwargs) -> None:
        super().__init__(aggregate, **kwargs)
        pairs = torch.as_tensor([tuple(p) for p in action_pairs], dtype=torch.long)
        if pairs.ndim != 2 or pairs.shape[1] != 2 or pairs.shape[0] == 0:
            raise ValueError("action_pairs must be a non-empty list of (verb, noun) pairs")
        self.register_buffer("pairs", pairs, persistent=False)
        for name in ("verb_scores", "noun_scores", "verb", "noun", "action"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(self, verb_scores: torch.Tensor, noun_scores: torch.Tensor, verb: torch.Tensor, noun: torch.Tensor,
               action: torch.Tensor, video_index: torch.Tensor | None = None) -> None:
        dev = verb_scores.device
        n = verb_scores.shape[0]
        if int(self.pairs[:, 0].max()) >= verb_scores.shape[1] or int(self.pairs[:, 1].max()) >= noun_scores.shape[1]:
            raise ValueError(f"action_pairs name verb / noun classes beyond the scores' {verb_scores.shape[1]} verbs / "
                             f"{noun_scores.shape[1]} nouns")
        self.verb_scores.append(verb_scores.detach())
        self.noun_scores.append(noun_scores.detach())
        for name, t in (("verb", verb), ("noun", noun), ("action", action)):
            getattr(self, name).append(torch.as_tensor(t, device=dev).long().view(-1))
        self.video_index.append(self._index(n, video_index, dev))

    def compute(self) -> dict[str, torch.Tensor]:
        if isinstance(self.video_index, list) and not self.video_index:
            raise ValueError("EGTEA accuracy over zero clips: the evaluation set is empty")
        vid = dim_zero_cat(self.video_index)
        _, vs, first = aggregate_views(dim_zero_cat(self.verb_scores), vid, self.aggregate)
        _, ns, _ = aggregate_views(dim_zero_cat(self.noun_scores), vid, self.aggregate)
        pairs = self.pairs.to(vs.device)
        action_scores = vs[:, pairs[:, 0]] * ns[:, pairs[:, 1]]
        out = {}
        for task, scores, target in (("verb", vs, dim_zero_cat(self.verb)[first]),
                                     ("noun", ns, dim_zero_cat(self.noun)[first]),
                                     ("action", action_scores, dim_zero_cat(self.action)[first])):
            pred = scores.argmax(dim=1)
            out[f"{task}_top1"] = (pred == target).double().mean() * 100
            out[f"{task}_mean_class_accuracy"] = mean_class_accuracy(pred, target)
        return out


def average_over_splits(results: Mapping[str, Mapping[str, float]], key: str = "action_mean_class_accuracy") -> float:
    """The mean of ``key`` over the per-split results ``{"split1": {...}, "split2": ..., ...}`` (the
    "Avg" column of Table 4.4); every split must report it."""
    if not results:
        raise ValueError("no split results to average")
    missing = [s for s, r in results.items() if key not in r]
    if missing:
        raise KeyError(f"{key!r} missing from split(s) {missing}")
    return float(sum(float(r[key]) for r in results.values()) / len(results))
