"""Context gating and gated embedding units (Miech et al., "Learnable pooled features with context
gating", 2017), the global-branch projections of T2VLAD (Wang, thesis ch. 6, global alignment: each expert's
pooled feature is projected and context-gated into ``F_i``)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ContextGating", "GatedEmbeddingUnit"]


class ContextGating(nn.Module):
    """Miech et al.'s context gating: ``x * sigmoid(BN(W x + b))``."""

    def __init__(self, dim: int, use_bn: bool = True):
        super().__init__()
        self.fc = nn.Linear(dim, dim)
        self.bn = nn.BatchNorm1d(dim) if use_bn else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.bn(self.fc(x)))


class GatedEmbeddingUnit(nn.Module):
    """Linear projection -> context gating -> L2 normalisation."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.fc = nn.Linear(in_dim, out_dim)
        self.cg = ContextGating(out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.cg(self.fc(x)), dim=-1)
