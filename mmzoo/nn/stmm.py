"""Spatial-Temporal Memory Module (STMM), its BN* gate normaliser, and the ConvGRU ablation.

Thesis equations (Xiao 2020, Eqs. 3.1-3.4), ``*`` a 2-D convolution:

    z_t  = BN*( ReLU( W_z * F_t + U_z * M_{t-1} ) )
    r_t  = BN*( ReLU( W_r * F_t + U_r * M_{t-1} ) )
    M~_t = ReLU( W * F_t + U * (M_{t-1} . r_t) )
    M_t  = (1 - z_t) . M_{t-1} + z_t . M~_t

With alignment, every ``M_{t-1}`` is the MatchTrans-warped memory ``M'_{t-1}``.

[SILENT] points of the thesis, settled by the authors' Torch7 code (``modules/STMM.lua``,
``modules/AdaLinearScale.lua``) and exposed as arguments:

* all W and U convolutions are 3x3, stride 1, padding 1; the U's have no bias;
* the W * F terms are multiplied by ``w_scale`` (authors: 20 = 1 / 0.05 for ResNet-101);
* BN* statistics: one mean / std over the positive elements of the whole gate tensor of one
  time step (``bn_stats="global_positive"``), unbiased std, treated as constants in backward;
  upper bound ``mu + 3 sigma``; bound 1 when there is no (or a single) positive element;
* U init: PyTorch's default conv init (``u_init="default"``; the authors use Torch7's default
  uniform init) or zeros (``u_init="zeros"``, the first step then equals the pretrained conv);
* W_z, W_r and W are copied from the pretrained convolution the module replaces
  (:meth:`STMM.init_from_conv`, thesis Sec. 3.2.2); the thesis does not say which filters go to
  which direction. With two directions of M channels replacing a 2M-output conv
  (:meth:`BidirectionalMemory.init_from_conv`), the forward memory takes filters ``0..M-1`` and
  the backward memory filters ``M..2M-1`` (the authors' ``models/model.lua``), so the
  concatenated candidate memory ``[M~_fwd ; M~_bwd]`` of a zero memory is the swapped-out conv's
  output, channel for channel, as the pretrained layer after the memory expects it.

The ConvGRU ablation (``ConvGRU-Pretrain`` / ``ConvGRU-FreshFC``, Table 3.2) keeps ConvGRU's
random W initialisation: the thesis contrasts STMM's pretrained W_z, W_r, W with ConvGRU's
"random weights" (Sec. 3.2.2).
"""
from __future__ import annotations

from typing import Literal, Optional

import torch
import torch.nn.functional as F
from torch import nn

from mmzoo.nn.matchtrans import MatchTrans

__all__ = ["bn_star", "BNStar", "STMM", "ConvGRUCell", "BidirectionalMemory"]

BNStats = Literal["global_positive", "channel_positive", "global_all"]


def bn_star(x: torch.Tensor, k: float = 3.0, stats: BNStats = "global_positive") -> torch.Tensor:
    """BN*: map ``x >= 0`` linearly to [0, 1], saturating at ``mu + k sigma``.

    ``mu``, ``sigma`` come from this very tensor (per batch, no running averages) and are
    treated as constants by autograd. ``stats`` chooses which elements they are computed over:
    the positive elements of the whole tensor (authors), the positive elements of each channel,
    or all elements of the tensor.
    """
    if stats not in ("global_positive", "channel_positive", "global_all"):
        raise ValueError(f"unknown BN* statistics {stats!r}")
    with torch.no_grad():  # masked sums: no data-dependent shapes, no host sync
        if stats == "channel_positive":
            c = x.shape[1]
            flat = x.transpose(0, 1).reshape(c, -1)
            dims, shape = 1, [1, c] + [1] * (x.dim() - 2)
        else:
            flat = x.reshape(1, -1)
            dims, shape = 1, [1] * x.dim()
        mask = flat > 0 if stats != "global_all" else torch.ones_like(flat, dtype=torch.bool)
        w = mask.to(x.dtype)
        n = w.sum(dim=dims)
        mean = (flat * w).sum(dim=dims) / n.clamp(min=1)
        var = (((flat - mean[:, None]) ** 2) * w).sum(dim=dims) / (n - 1).clamp(min=1)
        ub = mean + k * var.sqrt()
        ok = (n > 1) & torch.isfinite(ub) & (ub > 0)
        ub = torch.where(ok, ub, torch.ones_like(ub)).view(shape)
    return torch.minimum(x.clamp(min=0), ub) / ub


class BNStar(nn.Module):
    """Module form of :func:`bn_star` (no parameters, no buffers: nothing is tracked)."""

    def __init__(self, k: float = 3.0, stats: BNStats = "global_positive"):
        super().__init__()
        self.k = k
        self.stats = stats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return bn_star(x, self.k, self.stats)

    def extra_repr(self) -> str:
        return f"k={self.k}, stats={self.stats}"


def _conv(cin: int, cout: int, kernel: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=bias)


class ConvGRUCell(nn.Module):
    """Plain ConvGRU (sigmoid gates, tanh candidate): the ConvGRU rows of thesis Table 3.2, and
    the convolutions W_z, W_r, W (on F_t) and U_z, U_r, U (on the memory) that :class:`STMM`
    shares.

    Args:
        in_channels: channels D of the input features F_t.
        mem_channels: memory channels M (thesis: 512).
        kernel_size: size of the W and U convolutions (authors: 3).
        w_scale: factor on every ``W * F_t`` term (authors: 20 for ResNet-101; 1 for VGG-16).
        u_init: "default" (PyTorch's conv init) or "zeros".
    """

    def __init__(self, in_channels: int, mem_channels: int = 512, kernel_size: int = 3, w_scale: float = 1.0,
                 u_init: str = "default"):
        super().__init__()
        self.in_channels, self.mem_channels, self.w_scale = in_channels, mem_channels, w_scale
        self.w_z = _conv(in_channels, mem_channels, kernel_size)
        self.w_r = _conv(in_channels, mem_channels, kernel_size)
        self.w = _conv(in_channels, mem_channels, kernel_size)
        self.u_z = _conv(mem_channels, mem_channels, kernel_size, bias=False)
        self.u_r = _conv(mem_channels, mem_channels, kernel_size, bias=False)
        self.u = _conv(mem_channels, mem_channels, kernel_size, bias=False)
        if u_init == "zeros":
            for u in (self.u_z, self.u_r, self.u):
                nn.init.zeros_(u.weight)
        elif u_init != "default":
            raise ValueError(f"u_init must be 'default' or 'zeros', got {u_init!r}")
        self.align: Optional[nn.Module] = None

    @torch.no_grad()
    def init_from_conv(self, conv: nn.Conv2d, offset: int = 0) -> None:
        """Copy filters ``offset .. offset + mem_channels - 1`` of the pretrained conv this module
        replaces into W_z, W_r and W (thesis Sec. 3.2.2)."""
        if conv.in_channels != self.in_channels or conv.out_channels < offset + self.mem_channels:
            raise ValueError(
                f"cannot initialise {type(self).__name__}({self.in_channels}->{self.mem_channels}) from "
                f"filters {offset}.. of conv {conv.in_channels}->{conv.out_channels}")
        if conv.weight.shape[-2:] != self.w.weight.shape[-2:]:
            raise ValueError("kernel sizes of the replaced conv and the W convs differ")
        sl = slice(offset, offset + self.mem_channels)
        for dst in (self.w_z, self.w_r, self.w):
            dst.weight.copy_(conv.weight[sl])
            if conv.bias is not None:
                dst.bias.copy_(conv.bias[sl])

    def step(self, feat: torch.Tensor, prev_feat: Optional[torch.Tensor], mem: Optional[torch.Tensor]):
        """One time step; returns (M_t, z_t, r_t). ``mem=None`` starts from a zero memory."""
        if mem is None:
            mem = feat.new_zeros(feat.shape[0], self.mem_channels, *feat.shape[-2:])
        s = self.w_scale
        z = torch.sigmoid(s * self.w_z(feat) + self.u_z(mem))
        r = torch.sigmoid(s * self.w_r(feat) + self.u_r(mem))
        cand = torch.tanh(s * self.w(feat) + self.u(mem * r))
        return (1 - z) * mem + z * cand, z, r

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """``feats`` [B, T, D, H, W] -> memories [B, T, M, H, W] (time runs along dim 1)."""
        mem, prev, outs = None, None, []
        for t in range(feats.shape[1]):
            f = feats[:, t]
            mem, _, _ = self.step(f, prev, mem)
            outs.append(mem)
            prev = f
        return torch.stack(outs, dim=1)


class STMM(ConvGRUCell):
    """One direction of the spatial-temporal memory (Eqs. 3.1-3.4): the ConvGRU's convolutions
    with ReLU gates and candidate, BN* on the gates, and the memory aligned to the current frame
    by MatchTrans before each step.

    Args (besides :class:`ConvGRUCell`'s):
        bn_k: saturation point of BN* in standard deviations (thesis: 3).
        bn_stats: which elements BN* statistics use, see :func:`bn_star`.
        matchtrans: align the memory with MatchTrans before each step.
        matchtrans_k: MatchTrans half window (thesis: 2).
        affinity_grad: see :class:`MatchTrans`.
    """

    def __init__(
        self, in_channels: int, mem_channels: int = 512, kernel_size: int = 3, w_scale: float = 1.0,
        bn_k: float = 3.0, bn_stats: BNStats = "global_positive", u_init: str = "default",
        matchtrans: bool = True, matchtrans_k: int = 2, affinity_grad: bool = False,
    ):
        super().__init__(in_channels, mem_channels, kernel_size, w_scale, u_init)
        self.bn_star = BNStar(bn_k, bn_stats)
        self.align = MatchTrans(matchtrans_k, affinity_grad=affinity_grad) if matchtrans else None

    def step(self, feat: torch.Tensor, prev_feat: Optional[torch.Tensor], mem: Optional[torch.Tensor]):
        """One time step; returns (M_t, z_t, r_t). ``mem=None`` starts from a zero memory."""
        if mem is None:
            b, _, h, w = feat.shape
            mem = feat.new_zeros(b, self.mem_channels, h, w)
        elif self.align is not None and prev_feat is not None:
            mem = self.align(feat, prev_feat, mem)
        s = self.w_scale
        z = self.bn_star(F.relu(s * self.w_z(feat) + self.u_z(mem)))
        r = self.bn_star(F.relu(s * self.w_r(feat) + self.u_r(mem)))
        cand = F.relu(s * self.w(feat) + self.u(mem * r))
        new = (1 - z) * mem + z * cand
        return new, z, r


class BidirectionalMemory(nn.Module):
    """A forward and a backward memory over a sequence, concatenated on channels.

    The backward module runs the same kind of cell on the time-reversed sequence (authors'
    ``VidFlip``); output [B, T, 2M, H, W] = [M_forward ; M_backward].
    """

    def __init__(self, cell: str = "stmm", bidirectional: bool = True, **kwargs):
        super().__init__()
        make = (lambda: STMM(**kwargs)) if cell == "stmm" else (lambda: ConvGRUCell(
            **{k: v for k, v in kwargs.items() if k in ("in_channels", "mem_channels", "kernel_size", "w_scale", "u_init")}))
        if cell not in ("stmm", "convgru"):
            raise ValueError(f"cell must be 'stmm' or 'convgru', got {cell!r}")
        self.forward_cell = make()
        self.backward_cell = make() if bidirectional else None

    @property
    def out_channels(self) -> int:
        m = self.forward_cell.mem_channels
        return 2 * m if self.backward_cell is not None else m

    def init_from_conv(self, conv: nn.Conv2d) -> None:
        """W_z, W_r, W of both directions from the swapped-out conv (thesis Sec. 3.2.2): the
        forward memory takes its filters ``0..M-1``, the backward memory ``M..2M-1`` when the conv
        has that many outputs (the authors' split; a single direction, or a conv with fewer than
        2M outputs, gives both its first M filters)."""
        m = self.forward_cell.mem_channels
        self.forward_cell.init_from_conv(conv)
        if self.backward_cell is not None:
            self.backward_cell.init_from_conv(conv, m if conv.out_channels >= 2 * m else 0)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        fwd = self.forward_cell(feats)
        if self.backward_cell is None:
            return fwd
        bwd = self.backward_cell(feats.flip(1)).flip(1)
        return torch.cat([fwd, bwd], dim=2)
