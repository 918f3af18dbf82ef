"""Bidirectional ranking losses for text-video retrieval on a ``[texts, videos]`` similarity matrix
(Wang, thesis ch. 6: the max-margin ranking loss T2VLAD trains with; and the
hardest-negative variant of its PaddleVideo port)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["max_margin_ranking_loss", "hardest_negative_loss"]


def max_margin_ranking_loss(sims: torch.Tensor, margin: float) -> torch.Tensor:
    """Bidirectional max-margin ranking loss (Miech et al. / MMT, ``fix_norm``): the mean over
    all ``i != j`` of ``relu(m - s_ii + s_ij)`` (text i vs video j) and ``relu(m - s_ii + s_ji)``
    (video i vs text j). ``sims[i, j]`` is text i vs video j; the diagonal holds the pairs."""
    b = sims.shape[0]
    if sims.shape != (b, b) or b < 2:
        raise ValueError(f"need a square similarity matrix with at least 2 pairs, got {tuple(sims.shape)}")
    pos = sims.diagonal()
    off = ~torch.eye(b, dtype=torch.bool, device=sims.device)
    t2v = F.relu(margin - pos.unsqueeze(1) + sims)[off]
    v2t = F.relu(margin - pos.unsqueeze(0) + sims)[off]
    return (t2v.sum() + v2t.sum()) / (2 * b * (b - 1))


def hardest_negative_loss(sims: torch.Tensor, margin: float) -> torch.Tensor:
    """VSE++-style loss of the PaddleVideo port (``ContrastiveLoss``, max violation, top-1):
    mean over texts of the hardest ``relu(m + s_ij - s_ii)`` plus mean over videos of the hardest
    ``relu(m + s_ij - s_jj)``."""
    b = sims.shape[0]
    if sims.shape != (b, b) or b < 2:
        raise ValueError(f"need a square similarity matrix with at least 2 pairs, got {tuple(sims.shape)}")
    pos = sims.diagonal()
    eye = torch.eye(b, dtype=torch.bool, device=sims.device)
    cost_t = F.relu(margin + sims - pos.unsqueeze(1)).masked_fill(eye, 0.0)
    cost_v = F.relu(margin + sims - pos.unsqueeze(0)).masked_fill(eye, 0.0)
    return cost_t.max(dim=1).values.mean() + cost_v.max(dim=0).values.mean()
