"""MatchTrans: align a spatial memory to the current frame by local feature affinity.

Thesis (Xiao 2020, Sec. 3.3.2): for every position ``(x, y)`` of frame ``t`` and offsets
``i, j in [-k, k]``

    G_{x,y}(i, j) = F_t(x,y) . F_{t-1}(x+i, y+j) / sum_{i,j} F_t(x,y) . F_{t-1}(x+i, y+j)
    M'_{t-1}(x, y) = sum_{i,j} G_{x,y}(i, j) M_{t-1}(x+i, y+j)

with ``k = 2`` (a 5x5 window). Points the thesis leaves open follow the authors' Torch7 module
(``modules/MatchTrans.lua`` of github.com/fanyix/STMN), each a
constructor argument:

* the dot product is the cosine (features L2-normalised over channels, ``+1e-8`` on the norm);
* affinities ``<= aff_threshold`` (0) are zeroed, the rest divided by their window sum (``+eps``);
* positions outside the frame count as zero affinity (zero padding);
* no gradient reaches the two feature maps through the affinity (the authors return zeros);
  ``affinity_grad=True`` lets autograd differentiate it instead.

Two vectorised implementations, both without any loop over positions: ``impl="shift"`` (default)
visits the ``(2k+1)^2`` offsets and handles every position and channel of an offset with one
shifted slice of the zero-padded map (nothing larger than the input is materialised);
``impl="unfold"`` gathers all neighbours at once with ``F.unfold`` (``(2k+1)^2`` times the input
in memory, 2-4x slower on CPU in benchmarks/stmn_speed.py). :func:`matchtrans_naive` is a
per-position loop kept as the reference for tests and the speed benchmark.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MatchTrans", "matchtrans_affinity", "matchtrans_naive"]


def _neighbours(x: torch.Tensor, k: int) -> torch.Tensor:
    """[B, C, H, W] -> [B, C, (2k+1)^2, H*W]: the window around each position (zero padded)."""
    b, c, h, w = x.shape
    win = 2 * k + 1
    return F.unfold(x, kernel_size=win, padding=k).view(b, c, win * win, h * w)


def _offsets(k: int):
    win = 2 * k + 1
    return [(n // win, n % win) for n in range(win * win)]


def matchtrans_affinity(
    cur: torch.Tensor, prev: torch.Tensor, k: int = 2, aff_threshold: float = 0.0,
    eps: float = 1e-8, norm_eps: float = 1e-8, impl: str = "shift",
) -> torch.Tensor:
    """Normalised affinities ``[B, (2k+1)^2, H, W]`` between each position of ``cur`` and the
    ``(2k+1)^2`` positions around it in ``prev`` (offset index ``(i + k) * (2k+1) + (j + k)``
    for a row offset ``i`` and a column offset ``j``)."""
    if cur.shape != prev.shape:
        raise ValueError(f"MatchTrans needs equal feature shapes, got {tuple(cur.shape)} and {tuple(prev.shape)}")
    b, c, h, w = cur.shape
    cur_n = cur / (cur.norm(dim=1, keepdim=True) + norm_eps)
    prev_n = prev / (prev.norm(dim=1, keepdim=True) + norm_eps)
    if impl == "shift":
        pp = F.pad(prev_n, (k, k, k, k))
        aff = torch.stack([(cur_n * pp[:, :, i:i + h, j:j + w]).sum(1) for i, j in _offsets(k)], 1).view(b, -1, h * w)
    elif impl == "unfold":
        nb = _neighbours(prev_n, k)  # B, C, K2, HW
        aff = (nb * cur_n.reshape(b, c, 1, h * w)).sum(1)
    else:
        raise ValueError(f"impl must be 'shift' or 'unfold', got {impl!r}")
    aff = torch.where(aff > aff_threshold, aff, torch.zeros_like(aff))
    aff = aff / (aff.sum(dim=1, keepdim=True) + eps)
    return aff.view(b, -1, h, w)


class MatchTrans(nn.Module):
    """Warp ``memory`` (the previous step's memory) onto the current frame.

    Args:
        k: half window size (thesis: 2, i.e. a 5x5 window).
        aff_threshold: affinities at or below this are dropped before normalising (authors: 0).
        eps: added to the window sum of affinities.
        affinity_grad: let gradients flow into the features through the affinity
            (authors: False, their backward returns zeros for both feature maps).
        impl: "shift" (offset loop, default) or "unfold" (one gather); same result.
    """

    def __init__(self, k: int = 2, aff_threshold: float = 0.0, eps: float = 1e-8, affinity_grad: bool = False,
                 impl: str = "shift"):
        super().__init__()
        self.impl = impl
        self.k = k
        self.aff_threshold = aff_threshold
        self.eps = eps
        self.affinity_grad = affinity_grad

    def forward(self, cur: torch.Tensor, prev: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        b, m, h, w = memory.shape
        if cur.shape[-2:] != (h, w):
            raise ValueError("MatchTrans: memory and features must share their spatial size")
        with torch.set_grad_enabled(self.affinity_grad and torch.is_grad_enabled()):
            aff = matchtrans_affinity(cur, prev, self.k, self.aff_threshold, self.eps, impl=self.impl)
        if not self.affinity_grad:
            aff = aff.detach()
        if self.impl == "unfold":
            nb = _neighbours(memory, self.k)  # B, M, K2, HW
            return (nb * aff.reshape(b, 1, -1, h * w)).sum(2).view(b, m, h, w)
        k = self.k
        mp = F.pad(memory, (k, k, k, k))
        out = memory.new_zeros(memory.shape)
        for n, (i, j) in enumerate(_offsets(k)):
            out = out + aff[:, n:n + 1] * mp[:, :, i:i + h, j:j + w]
        return out

    def extra_repr(self) -> str:
        return f"k={self.k}, window={2 * self.k + 1}x{2 * self.k + 1}, affinity_grad={self.affinity_grad}"


@torch.no_grad()
def matchtrans_naive(
    cur: torch.Tensor, prev: torch.Tensor, memory: torch.Tensor, k: int = 2,
    aff_threshold: float = 0.0, eps: float = 1e-8,
) -> torch.Tensor:
    """Loop-over-positions reference of the same computation (slow; tests and benchmarks only)."""
    b, _, h, w = cur.shape
    out = torch.zeros_like(memory)
    for n in range(b):
        cn = cur[n] / (cur[n].norm(dim=0, keepdim=True) + 1e-8)
        pn = prev[n] / (prev[n].norm(dim=0, keepdim=True) + 1e-8)
        for y in range(h):
            for x in range(w):
                weights, cells = [], []
                for i in range(-k, k + 1):
                    for j in range(-k, k + 1):
                        yy, xx = y + i, x + j
                        if 0 <= yy < h and 0 <= xx < w:
                            a = float((cn[:, y, x] * pn[:, yy, xx]).sum())
                            if a > aff_threshold:
                                weights.append(a)
                                cells.append(memory[n, :, yy, xx])
                total = sum(weights) + eps
                for a, cell in zip(weights, cells):
                    out[n, :, y, x] += a / total * cell
    return out
