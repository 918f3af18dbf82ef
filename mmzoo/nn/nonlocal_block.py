"""Space-time non-local block (X. Wang, PhD thesis CMU, ch. 5; Wang et al., CVPR 2018).

`z = BN(W_z y) + x` with `y_i = (1/C(x)) sum_j f(x_i, x_j) g(x_j)`: theta, phi and g are 1x1x1
convs to half the channels, phi and g see a max-pooled copy of x (1x2x2 by default, the
public code's choice; the thesis only says "e.g. by pooling"), and the BN after W_z starts
with gamma = 0 so the block is an identity at initialisation.

Instantiations:
* "softmax": embedded Gaussian, `softmax(theta^T phi * d^-0.5)`; the scale follows the public
  code (the thesis is silent on it);
* "dot_product": `theta^T phi / N` with N the number of (pooled) positions.
"""
from __future__ import annotations

from typing import Literal, Sequence

import torch
from torch import nn

__all__ = ["NonLocal3d"]


class NonLocal3d(nn.Module):
    """Args:
    dim: channels of the input (and output).
    dim_inner: channels of theta / phi / g (half of `dim` in the paper).
    pool: max-pool kernel (= stride) applied before phi and g; (1,1,1) disables it.
    mode: "softmax" (embedded Gaussian, default of the thesis) or "dot_product".
    """

    def __init__(
        self,
        dim: int,
        dim_inner: int,
        pool: Sequence[int] = (1, 2, 2),
        mode: Literal["softmax", "dot_product"] = "softmax",
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        if mode not in ("softmax", "dot_product"):
            raise ValueError(f"unknown non-local mode {mode!r}")
        self.mode = mode
        self.dim_inner = dim_inner
        self.theta = nn.Conv3d(dim, dim_inner, 1)
        self.phi = nn.Conv3d(dim, dim_inner, 1)
        self.g = nn.Conv3d(dim, dim_inner, 1)
        pool = tuple(pool)
        self.pool = nn.MaxPool3d(pool, pool) if any(p > 1 for p in pool) else nn.Identity()
        self.out = nn.Conv3d(dim_inner, dim, 1)
        self.bn = nn.BatchNorm3d(dim, eps=bn_eps, momentum=bn_momentum)
        self.bn.is_nonlocal_bn = True  # gamma initialised to 0 by init_resnet_weights
        nn.init.zeros_(self.bn.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, t, h, w = x.shape
        theta = self.theta(x).flatten(2)  # B, C', N
        pooled = self.pool(x)
        phi = self.phi(pooled).flatten(2)  # B, C', M
        g = self.g(pooled).flatten(2)  # B, C', M
        affinity = torch.einsum("bcn,bcm->bnm", theta, phi)
        if self.mode == "softmax":
            affinity = (affinity * self.dim_inner**-0.5).softmax(dim=-1)
        else:
            affinity = affinity / phi.shape[-1]
        y = torch.einsum("bnm,bcm->bcn", affinity, g).reshape(b, self.dim_inner, t, h, w)
        return x + self.bn(self.out(y))
