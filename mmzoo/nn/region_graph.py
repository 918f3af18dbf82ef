"""Space-time region graphs and their graph convolutions (STRG, X. Wang, PhD thesis CMU 2019, ch. 6,
section 6.3; Wang and Gupta, "Videos as Space-Time Region Graphs", ECCV 2018).

Nodes are object proposals: ``K`` boxes in each of ``T`` feature frames, node ``n = t * K + k``
(``N = T * K``), with features ``X`` (``B, N, d``) and a validity mask (``B, N``; padding nodes of
frames with fewer than ``K`` proposals are invalid: no edge leads to them and they are left out
of every average).

* :class:`SimilarityGraph` (eq. 6.2-6.3): ``G^sim_ij = softmax_j(phi(x_i)^T phi'(x_j))`` with
  ``phi(x) = w x`` and ``phi'(x) = w' x`` (``d x d``, no bias), ``w`` / ``w'`` ~ N(0, 0.01).
* :func:`temporal_iou_graphs` (eq. 6.4-6.5): ``G^front_ij = sigma_ij / sum_j sigma_ij`` with
  ``sigma_ij`` the IoU of box ``i`` in frame ``t`` and box ``j`` in frame ``t + 1`` (an edge when
  ``sigma_ij > 0``), ``G^back`` the same from frame ``t + 1`` to ``t``. Edges exist only between
  consecutive frames, so both graphs are kept as ``T - 1`` blocks of ``K x K``
  (:class:`TemporalGraph`) and applied block by block (:meth:`TemporalGraph.matmul`) instead of
  as a dense ``N x N`` matrix; :meth:`TemporalGraph.dense` gives the dense matrix. A node with no
  overlapping box in the next (previous) frame has an all-zero row.
* :class:`GraphConvLayer` (eq. 6.6-6.7): ``Z = sum_i G_i X W_i + X`` (``W_i`` not shared), then
  LayerNorm and ReLU; ``W_i`` initialised to zero, so a new layer starts as ``ReLU(LN(X))``.
* :class:`RegionGCN`: one branch of ``num_layers`` such layers on a fixed set of graphs, whose
  first layer reads ``g(X)`` (a learned ``d x d`` projection, N(0, 0.01)) instead of ``X``.

Thesis gaps (ch. 6, "not stated") and the choices made here, each an argument:
whether ``G^sim`` has self-edges (``self_edges=True``: the softmax runs over every node, as the
non-local operation the thesis relates it to); whether IoU is computed in image or feature
coordinates (it is scale invariant, so the two agree for boxes scaled by one factor; we take the
boxes as given); whether ``phi(x_i)^T phi'(x_j)`` is scaled (``scale=False``: eq. 6.2 has no scale).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "DenseGraph",
    "GraphConvLayer",
    "RegionGCN",
    "SimilarityGraph",
    "TemporalGraph",
    "masked_node_mean",
    "pairwise_iou",
    "temporal_iou_graphs",
]


def pairwise_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of every box of ``a`` (``..., K, 4``) with every box of ``b`` (``..., M, 4``), boxes
    ``x1, y1, x2, y2``; returns ``..., K, M``. Empty boxes (zero area) have IoU 0 with everything."""
    area_a = (a[..., 2] - a[..., 0]).clamp(min=0) * (a[..., 3] - a[..., 1]).clamp(min=0)
    area_b = (b[..., 2] - b[..., 0]).clamp(min=0) * (b[..., 3] - b[..., 1]).clamp(min=0)
    lt = torch.maximum(a[..., :, None, :2], b[..., None, :, :2])
    rb = torch.minimum(a[..., :, None, 2:], b[..., None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[..., :, None] + area_b[..., None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(inter.dtype).tiny), torch.zeros_like(inter))


def _row_normalise(sigma: torch.Tensor) -> torch.Tensor:
    """``sigma_ij / sum_j sigma_ij``; rows summing to 0 stay 0."""
    total = sigma.sum(-1, keepdim=True)
    return torch.where(total > 0, sigma / total.clamp(min=torch.finfo(sigma.dtype).tiny), torch.zeros_like(sigma))


class TemporalGraph:
    """A graph whose edges go from frame ``t`` to frame ``t + 1`` (``direction="front"``) or from
    frame ``t + 1`` to frame ``t`` (``"back"``), stored as blocks ``B, T - 1, K, K``:
    ``blocks[b, t, i, j]`` is the weight of the edge from node ``(t, i)`` to node ``(t + 1, j)``
    (front) or from node ``(t + 1, i)`` to node ``(t, j)`` (back)."""

    def __init__(self, blocks: torch.Tensor, direction: str) -> None:
        if blocks.dim() != 4 or blocks.shape[-1] != blocks.shape[-2]:
            raise ValueError(f"temporal graph blocks must be B, T-1, K, K; got {tuple(blocks.shape)}")
        if direction not in ("front", "back"):
            raise ValueError(f"direction must be 'front' or 'back', got {direction!r}")
        self.blocks, self.direction = blocks, direction

    @property
    def frames(self) -> int:
        return self.blocks.shape[1] + 1

    def matmul(self, x: torch.Tensor) -> torch.Tensor:
        """``G x`` for node features ``x`` (``B, N, d``, ``N = T * K``), block by block."""
        b, t1, k, _ = self.blocks.shape
        xt = x.reshape(b, t1 + 1, k, x.shape[-1])
        out = torch.zeros_like(xt)
        if self.direction == "front":  # rows of frame t read frame t + 1
            out[:, :-1] = torch.matmul(self.blocks, xt[:, 1:])
        else:  # rows of frame t + 1 read frame t
            out[:, 1:] = torch.matmul(self.blocks, xt[:, :-1])
        return out.reshape_as(x)

    __call__ = matmul

    def dense(self) -> torch.Tensor:
        """The ``B, N, N`` adjacency matrix (zero outside the consecutive-frame blocks)."""
        b, t1, k, _ = self.blocks.shape
        n = (t1 + 1) * k
        g = self.blocks.new_zeros(b, n, n)
        for t in range(t1):
            rows, cols = (t, t + 1) if self.direction == "front" else (t + 1, t)
            g[:, rows * k:(rows + 1) * k, cols * k:(cols + 1) * k] = self.blocks[:, t]
        return g


class DenseGraph:
    """A dense ``B, N, N`` adjacency matrix as a graph operator (``G x``)."""

    def __init__(self, adjacency: torch.Tensor) -> None:
        self.adjacency = adjacency

    def matmul(self, x: torch.Tensor) -> torch.Tensor:
        return torch.bmm(self.adjacency, x)

    __call__ = matmul

    def dense(self) -> torch.Tensor:
        return self.adjacency


Graph = DenseGraph | TemporalGraph


def temporal_iou_graphs(boxes: torch.Tensor, valid: torch.Tensor | None = None) -> tuple[TemporalGraph, TemporalGraph]:
    """``(G^front, G^back)`` of eq. 6.4-6.5 from the proposals ``boxes`` (``B, T, K, 4``, ``x1, y1,
    x2, y2`` in any one coordinate frame) and their validity ``valid`` (``B, T, K`` bool; None:
    all valid). ``sigma_ij = IoU(box i of frame t, box j of frame t + 1)`` (0 for an invalid box);
    ``G^front`` normalises each row of ``sigma`` over ``j``, ``G^back`` each row of ``sigma^T``."""
    if boxes.dim() != 4 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes must be B, T, K, 4; got {tuple(boxes.shape)}")
    if boxes.shape[1] < 2:
        raise ValueError(f"temporal graphs need at least 2 frames, got {boxes.shape[1]}")
    sigma = pairwise_iou(boxes[:, :-1], boxes[:, 1:])  # B, T-1, K(t), K(t+1)
    if valid is not None:
        v = valid.to(torch.bool)
        sigma = sigma * (v[:, :-1, :, None] & v[:, 1:, None, :]).to(sigma.dtype)
    return TemporalGraph(_row_normalise(sigma), "front"), TemporalGraph(_row_normalise(sigma.transpose(-1, -2)), "back")


class SimilarityGraph(nn.Module):
    """``G^sim = softmax_j(phi(x_i)^T phi'(x_j))`` (eq. 6.2-6.3) over the valid nodes ``j``.

    Args:
        dim: node feature size ``d`` (512).
        init_std: std of the Gaussian init of ``phi`` / ``phi'`` (0.01, section 6.4.1).
        self_edges: let ``j = i`` take part in the softmax (the thesis does not say; True, as in
            the non-local operation ``G^sim`` generalises).
        scale: divide the affinities by ``sqrt(d)`` (eq. 6.2 does not; False).
    """

    def __init__(self, dim: int, init_std: float = 0.01, self_edges: bool = True, scale: bool = False) -> None:
        super().__init__()
        self.phi = nn.Linear(dim, dim, bias=False)
        self.phi_prime = nn.Linear(dim, dim, bias=False)
        self.self_edges, self.scale = self_edges, scale
        self.reset_parameters(init_std)

    def reset_parameters(self, init_std: float = 0.01) -> None:
        nn.init.normal_(self.phi.weight, std=init_std)
        nn.init.normal_(self.phi_prime.weight, std=init_std)

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> DenseGraph:
        """``x``: ``B, N, d``; ``valid``: ``B, N`` bool (None: all). Rows of invalid nodes are 0."""
        f = torch.bmm(self.phi(x), self.phi_prime(x).transpose(1, 2))
        if self.scale:
            f = f / x.shape[-1] ** 0.5
        n = x.shape[1]
        allowed = torch.ones(x.shape[0], n, n, dtype=torch.bool, device=x.device)
        if valid is not None:
            allowed = allowed & valid[:, None, :].to(torch.bool)
        if not self.self_edges:
            allowed = allowed & ~torch.eye(n, dtype=torch.bool, device=x.device)
        f = f.masked_fill(~allowed, float("-inf"))
        g = torch.softmax(f, dim=-1)
        g = torch.nan_to_num(g, nan=0.0)  # rows without any allowed column
        if valid is not None:
            g = g * valid[:, :, None].to(g.dtype)
        return DenseGraph(g)


class GraphConvLayer(nn.Module):
    """``Z = ReLU(LN(sum_i G_i X W_i + X))`` (eq. 6.6-6.7): one ``W_i`` (``d x d``, no bias) per
    graph, zero-initialised (the layer starts as ``ReLU(LN(X))``).

    Args:
        dim: ``d``.
        num_graphs: graphs summed in this layer (1 for ``G^sim``, 2 for ``G^front + G^back``).
        residual: add ``X`` (the thesis' modified form; False gives eq. 6.6's plain ``G X W``).
        zero_init: initialise every ``W_i`` to 0 (section 6.4.1); False: N(0, 0.01).
    """

    def __init__(self, dim: int, num_graphs: int = 1, residual: bool = True, zero_init: bool = True) -> None:
        super().__init__()
        if num_graphs < 1:
            raise ValueError(f"num_graphs must be >= 1, got {num_graphs}")
        self.weights = nn.ModuleList(nn.Linear(dim, dim, bias=False) for _ in range(num_graphs))
        self.norm = nn.LayerNorm(dim)
        self.residual = residual
        for w in self.weights:
            if zero_init:
                nn.init.zeros_(w.weight)
            else:
                nn.init.normal_(w.weight, std=0.01)

    def forward(self, x: torch.Tensor, graphs: Sequence[Graph]) -> torch.Tensor:
        if len(graphs) != len(self.weights):
            raise ValueError(f"this layer has {len(self.weights)} graph weight(s), got {len(graphs)} graph(s)")
        z = x if self.residual else torch.zeros_like(x)
        for g, w in zip(graphs, self.weights):
            z = z + g.matmul(w(x))  # G (X W) == (G X) W; X W first keeps d x d work per node
        return F.relu(self.norm(z))


class RegionGCN(nn.Module):
    """One branch: ``g`` then ``num_layers`` :class:`GraphConvLayer` s on the same graphs.

    Args:
        dim: ``d``.
        num_graphs: graphs per layer (1: similarity branch; 2: front + back branch).
        num_layers: 3 (section 6.3.3).
        init_std: std of the Gaussian init of ``g`` (0.01).
        residual / zero_init: see :class:`GraphConvLayer`.
    """

    def __init__(self, dim: int, num_graphs: int, num_layers: int = 3, init_std: float = 0.01,
                 residual: bool = True, zero_init: bool = True) -> None:
        super().__init__()
        self.g = nn.Linear(dim, dim, bias=False)
        nn.init.normal_(self.g.weight, std=init_std)
        self.layers = nn.ModuleList(GraphConvLayer(dim, num_graphs, residual, zero_init) for _ in range(num_layers))

    def forward(self, x: torch.Tensor, graphs: Sequence[Graph]) -> torch.Tensor:
        z = self.g(x)
        for layer in self.layers:
            z = layer(z, graphs)
        return z


def masked_node_mean(x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of ``x`` (``B, N, d``) over the valid nodes (``B, N`` bool; None: all); 0 where a
    sample has no valid node."""
    if valid is None:
        return x.mean(1)
    w = valid.to(x.dtype)[..., None]
    return (x * w).sum(1) / w.sum(1).clamp(min=1.0)
