"""Space-time non-local block (X. Wang, PhD thesis CMU, ch. 5; Wang et al., CVPR 2018).

`z = BN(W_z y) + x` with `y_i = (1/C(x)) sum_j f(x_i, x_j) g(x_j)` (Eq. 5.1-5.2): theta, phi and
g are 1x1x1 convs to half the channels, phi and g see a max-pooled copy of x (1x2x2 by default,
the public code's choice; the thesis only says "e.g. by pooling"), and the BN after W_z starts
with gamma = 0 so the block is an identity at initialisation (section 5.3.2).

Pairwise functions (`mode`, the table of section 5.3.1):

* "softmax" (alias "embedded_gaussian", the thesis' default): `f = exp(theta_i^T phi_j)`,
  `C = sum_j f`, i.e. a softmax over j;
* "gaussian": `f = exp(x_i^T x_j)`, `C = sum_j f` (no theta / phi embedding: the raw features,
  x_j taken from the pooled copy);
* "dot_product": `f = theta_i^T phi_j`, `C = N` (the number of pooled positions j);
* "concatenation": `f = ReLU(w_f^T [theta_i, phi_j])`, `C = N`.

`scale` multiplies the exponent of the two softmax forms by `d^-0.5` (d = channels of the
vectors compared); the public code does it (`USE_SCALE = True`), the thesis is silent.

`extent` restricts j (Table 5.2d): "spacetime" (every position), "space" (positions of the same
frame) or "time" (the same spatial position in every frame; the spatial pooling of phi / g is
then skipped, since the key set is a single position per frame). `temporal_groups` > 1 splits
time into that many consecutive chunks and applies the block inside each one (the authors'
`add_nonlocal_group`, used in res3 of their 128-frame models to save memory).
"""
from __future__ import annotations

from typing import Literal, Optional, Sequence

import torch
from torch import nn

__all__ = ["NonLocal3d", "NONLOCAL_MODES"]

NonLocalMode = Literal["softmax", "embedded_gaussian", "gaussian", "dot_product", "concatenation"]
NONLOCAL_MODES: tuple[str, ...] = ("softmax", "embedded_gaussian", "gaussian", "dot_product", "concatenation")
Extent = Literal["spacetime", "space", "time"]


class NonLocal3d(nn.Module):
    """Args:
    dim: channels of the input (and output).
    dim_inner: channels of theta / phi / g (half of `dim` in the paper).
    pool: max-pool kernel (= stride) applied before phi and g; (1,1,1) disables it.
    mode: pairwise function (see the module docstring); "softmax" = embedded Gaussian.
    bn_eps / bn_momentum: the BN after W_z.
    scale: multiply the exponent of "softmax" / "gaussian" by `d^-0.5` (public code: True).
    extent: "spacetime", "space" (same frame only) or "time" (same position only).
    temporal_groups: apply the block separately to this many consecutive chunks of time.
    """

    def __init__(
        self,
        dim: int,
        dim_inner: int,
        pool: Sequence[int] = (1, 2, 2),
        mode: NonLocalMode = "softmax",
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
        scale: bool = True,
        extent: Extent = "spacetime",
        temporal_groups: int = 1,
    ) -> None:
        super().__init__()
        if mode not in NONLOCAL_MODES:
            raise ValueError(f"unknown non-local mode {mode!r}; expected one of {NONLOCAL_MODES}")
        if extent not in ("spacetime", "space", "time"):
            raise ValueError(f"unknown non-local extent {extent!r}; expected spacetime, space or time")
        if temporal_groups < 1:
            raise ValueError(f"temporal_groups must be >= 1, got {temporal_groups}")
        self.mode = "softmax" if mode == "embedded_gaussian" else mode
        self.dim_inner = dim_inner
        self.scale = scale
        self.extent = extent
        self.temporal_groups = temporal_groups
        if self.mode != "gaussian":
            self.theta = nn.Conv3d(dim, dim_inner, 1)
            self.phi = nn.Conv3d(dim, dim_inner, 1)
        if self.mode == "concatenation":
            self.concat_project = nn.Linear(2 * dim_inner, 1, bias=False)  # w_f
        self.g = nn.Conv3d(dim, dim_inner, 1)
        pool = tuple(int(p) for p in pool)
        if extent == "space" and pool[0] != 1:
            raise ValueError(f"extent='space' needs no temporal pooling, got pool {pool}")
        if extent == "time":
            pool = (pool[0], 1, 1)
        self.pool_size = pool
        self.pool = nn.MaxPool3d(pool, pool) if any(p > 1 for p in pool) else nn.Identity()
        self.out = nn.Conv3d(dim_inner, dim, 1)
        self.bn = nn.BatchNorm3d(dim, eps=bn_eps, momentum=bn_momentum)
        self.bn.is_nonlocal_bn = True  # gamma initialised to 0 by init_resnet_weights
        nn.init.zeros_(self.bn.weight)

    def reset_parameters(self, std: float = 0.01) -> None:
        """The authors' initialisation: theta / phi / g / W_z (and w_f) ~ N(0, std), biases 0,
        BN gamma 0 and beta 0 (`NONLOCAL.CONV_INIT_STD = 0.01`, `BN_INIT_GAMMA = 0`)."""
        for m in self.modules():
            if isinstance(m, (nn.Conv3d, nn.Linear)):
                nn.init.normal_(m.weight, std=std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.zeros_(self.bn.weight)
        nn.init.zeros_(self.bn.bias)

    # ------------------------------------------------------------------ pairwise
    def _affinity(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """Normalised pairwise weights f / C for queries q (G, C, N) and keys k (G, C, M) -> (G, N, M)."""
        if self.mode == "concatenation":
            w = self.concat_project.weight.view(-1)
            d = q.shape[1]
            a = torch.einsum("gcn,c->gn", q, w[:d])
            b = torch.einsum("gcm,c->gm", k, w[d:])
            return torch.relu(a[:, :, None] + b[:, None, :]) / k.shape[-1]
        affinity = torch.einsum("gcn,gcm->gnm", q, k)
        if self.mode == "dot_product":
            return affinity / k.shape[-1]
        if self.scale:
            affinity = affinity * q.shape[1] ** -0.5
        return affinity.softmax(dim=-1)

    @staticmethod
    def _group(x: torch.Tensor, extent: str) -> torch.Tensor:
        """(B, C, T, H, W) -> (G, C, positions) with the groups the extent allows to interact."""
        b, c, t, h, w = x.shape
        if extent == "spacetime":
            return x.reshape(b, c, t * h * w)
        if extent == "space":  # one group per frame
            return x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h * w)
        return x.permute(0, 3, 4, 1, 2).reshape(b * h * w, c, t)  # one group per position

    def _nonlocal(self, x: torch.Tensor) -> torch.Tensor:
        b, _, t, h, w = x.shape
        pooled = self.pool(x)
        if self.mode == "gaussian":
            q, k = x, pooled
        else:
            q, k = self.theta(x), self.phi(pooled)
        v = self.g(pooled)
        if self.extent == "space" and pooled.shape[2] != t:
            raise ValueError("extent='space' needs phi / g to keep every frame")
        if self.extent == "time" and pooled.shape[3:] != x.shape[3:]:
            raise ValueError("extent='time' needs phi / g to keep every spatial position")
        qg, kg, vg = self._group(q, self.extent), self._group(k, self.extent), self._group(v, self.extent)
        y = torch.einsum("gnm,gcm->gcn", self._affinity(qg, kg), vg)
        c = self.dim_inner
        if self.extent == "spacetime":
            y = y.reshape(b, c, t, h, w)
        elif self.extent == "space":
            y = y.reshape(b, t, c, h, w).permute(0, 2, 1, 3, 4)
        else:
            y = y.reshape(b, h, w, c, t).permute(0, 3, 4, 1, 2)
        return y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        groups = self.temporal_groups
        if groups == 1:
            y = self._nonlocal(x)
        else:
            b, c, t, h, w = x.shape
            if t % groups:
                raise ValueError(f"{t} frames cannot be split into temporal_groups={groups}")
            xg = x.reshape(b, c, groups, t // groups, h, w).permute(0, 2, 1, 3, 4, 5).reshape(b * groups, c, t // groups, h, w)
            yg = self._nonlocal(xg)
            y = yg.reshape(b, groups, -1, t // groups, h, w).permute(0, 2, 1, 3, 4, 5).reshape(b, -1, t, h, w)
        return x + self.bn(self.out(y))


def nonlocal_positions(depth: int, every: int, count: Optional[int] = None, last: bool = False) -> list[int]:
    """Indices of the residual blocks of a stage followed by a non-local block, the authors' rule
    `i % every == every - 1` (`NONLOCAL.LAYER_MOD`; 2 in res3 / res4 of R50, 2 and 7 for R101);
    `count` keeps the first ones; `last=True` is the single block "before the last residual
    block" of the stage (index depth - 2)."""
    if last:
        return [depth - 2] if depth >= 2 else []
    idx = [i for i in range(depth) if i % every == every - 1]
    return idx if count is None else idx[:count]


__all__.append("nonlocal_positions")
