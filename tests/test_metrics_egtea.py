"""EGTEA mean class accuracy: against sklearn's balanced accuracy, with action scores from verb x
noun probabilities, views averaged per clip, and the split average."""
from __future__ import annotations

import pytest
import torch
from sklearn.metrics import balanced_accuracy_score

from mmzoo.metrics.egtea import EgteaAccuracy, average_over_splits, mean_class_accuracy


def test_mean_class_accuracy_matches_sklearn_balanced_accuracy():
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 6, (50,), generator=g)
    pred = torch.where(torch.rand(50, generator=g) < 0.6, target, torch.randint(0, 7, (50,), generator=g))
    want = balanced_accuracy_score(target.numpy(), pred.numpy()) * 100
    assert mean_class_accuracy(pred, target).item() == pytest.approx(want)
    # hand case: class 0 2/2 right, class 1 1/4 right -> (100 + 25) / 2; overall accuracy would be 50
    assert mean_class_accuracy(torch.tensor([0, 0, 1, 0, 0, 0]), torch.tensor([0, 0, 1, 1, 1, 1])).item() == 62.5


def test_actions_are_scored_by_verb_times_noun_and_views_averaged():
    pairs = [(0, 0), (0, 1), (1, 1)]
    m = EgteaAccuracy(pairs)
    # clip 0 (action 1 = verb 0, noun 1): view scores average to verb (0.6, 0.4), noun (0.3, 0.7)
    # -> action scores (0.18, 0.42, 0.28): action 1 right
    m.update(torch.tensor([[0.8, 0.2], [0.4, 0.6]]), torch.tensor([[0.4, 0.6], [0.2, 0.8]]),
             torch.tensor([0, 0]), torch.tensor([1, 1]), torch.tensor([1, 1]), torch.tensor([0, 0]))
    # clip 1 (action 2 = verb 1, noun 1): verb (0.55, 0.45), noun (0.5, 0.5) -> (0.275, 0.275, 0.225):
    # the first best (action 0) is wrong, though verb 1 alone is not the argmax either
    m.update(torch.tensor([[0.55, 0.45]]), torch.tensor([[0.5, 0.5]]), torch.tensor([1]), torch.tensor([1]),
             torch.tensor([2]), torch.tensor([1]))
    out = m.compute()
    assert out["action_top1"].item() == 50.0 and out["action_mean_class_accuracy"].item() == 50.0
    assert out["noun_top1"].item() == 50.0  # clip 1's noun tie resolves to class 0
    assert out["verb_top1"].item() == 50.0 and out["verb_mean_class_accuracy"].item() == 50.0


def test_split_average():
    res = {"split1": {"action_mean_class_accuracy": 60.15}, "split2": {"action_mean_class_accuracy": 59.03},
           "split3": {"action_mean_class_accuracy": 57.98}}
    assert average_over_splits(res) == pytest.approx((60.15 + 59.03 + 57.98) / 3)  # Table 4.4's 59.05
    with pytest.raises(KeyError, match="split2"):
        average_over_splits({"split1": {"action_mean_class_accuracy": 1.0}, "split2": {}})
