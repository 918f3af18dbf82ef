"""STRG graphs (thesis ch. 6, eq. 6.2-6.7) against hand-computed small cases."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mmzoo.nn.region_graph import (
    DenseGraph,
    GraphConvLayer,
    RegionGCN,
    SimilarityGraph,
    TemporalGraph,
    masked_node_mean,
    pairwise_iou,
    temporal_iou_graphs,
)


def test_pairwise_iou_by_hand():
    a = torch.tensor([[0.0, 0, 2, 2], [0, 0, 0, 0]])
    b = torch.tensor([[1.0, 1, 3, 3], [0, 0, 2, 2], [5, 5, 6, 6]])
    iou = pairwise_iou(a, b)
    expected = torch.tensor([[1 / 7, 1.0, 0.0], [0.0, 0.0, 0.0]])
    assert torch.allclose(iou, expected)


def _three_frames():
    # frame 0: A, B; frame 1: C, D; frame 2: E, F (F equals A, two frames later)
    boxes = torch.tensor([[[[0.0, 0, 2, 2], [10, 10, 12, 12]],
                           [[1.0, 1, 3, 3], [0, 0, 2, 2]],
                           [[100.0, 100, 101, 101], [0, 0, 2, 2]]]])
    return boxes


def test_front_and_back_graphs_are_row_normalised_iou_between_consecutive_frames_only():
    front, back = temporal_iou_graphs(_three_frames())
    gf, gb = front.dense()[0], back.dense()[0]
    assert gf.shape == (6, 6)
    ef = torch.zeros(6, 6)
    # A (node 0) -> C, D: IoU 1/7 and 1, normalised by 8/7
    ef[0, 2], ef[0, 3] = 1 / 8, 7 / 8
    # B (node 1) overlaps nothing in frame 1: zero row. C (2) -> E, F: IoU 0, 1/7 -> [0, 1]; D (3) -> F: 1
    ef[2, 5], ef[3, 5] = 1.0, 1.0
    assert torch.allclose(gf, ef)
    eb = torch.zeros(6, 6)
    # C (2) -> A, B: 1/7, 0; D (3) -> A: 1; F (5) -> C, D: 1/7, 1 normalised
    eb[2, 0], eb[3, 0] = 1.0, 1.0
    eb[5, 2], eb[5, 3] = 1 / 8, 7 / 8
    assert torch.allclose(gb, eb)
    # A and F overlap perfectly two frames apart: no edge
    assert gf[0, 5] == 0 and gb[5, 0] == 0


def test_temporal_graph_invalid_boxes_have_no_edges():
    boxes = _three_frames()
    valid = torch.tensor([[[True, True], [True, False], [True, True]]])  # D is padding
    front, back = temporal_iou_graphs(boxes, valid)
    gf = front.dense()[0]
    assert torch.allclose(gf[0], torch.tensor([0, 0, 1.0, 0, 0, 0]))  # A -> C only now
    assert gf[3].abs().sum() == 0 and back.dense()[0][:, 3].abs().sum() == 0


def test_temporal_graph_matmul_equals_the_dense_product():
    torch.manual_seed(0)
    boxes = torch.rand(2, 4, 3, 2) * 10
    boxes = torch.cat([boxes, boxes + torch.rand(2, 4, 3, 2) * 5 + 1], -1)
    front, back = temporal_iou_graphs(boxes)
    x = torch.randn(2, 12, 5)
    for g in (front, back):
        assert torch.allclose(g.matmul(x), torch.bmm(g.dense(), x), atol=1e-6)
    with pytest.raises(ValueError, match="at least 2 frames"):
        temporal_iou_graphs(boxes[:, :1])


def test_similarity_graph_is_a_softmax_over_j_of_phi_dot_phi_prime():
    g = SimilarityGraph(2)
    with torch.no_grad():
        g.phi.weight.copy_(torch.eye(2))
        g.phi_prime.weight.copy_(torch.tensor([[2.0, 0], [0, 1]]))
    x = torch.tensor([[[1.0, 0], [0, 1], [1, 1]]])
    # F_ij = x_i^T diag(2, 1) x_j
    f = torch.tensor([[2.0, 0, 2], [0, 1, 1], [2, 1, 3]])
    expected = torch.exp(f) / torch.exp(f).sum(1, keepdim=True)
    assert torch.allclose(g(x).dense()[0], expected)
    # node 2 invalid: no column 2, and row 2 is zero
    adj = g(x, torch.tensor([[True, True, False]])).dense()[0]
    e = math.e
    assert torch.allclose(adj[0], torch.tensor([e**2 / (e**2 + 1), 1 / (e**2 + 1), 0]))
    assert adj[2].abs().sum() == 0
    # without self-edges the diagonal is excluded
    g.self_edges = False
    adj = g(x).dense()[0]
    assert torch.allclose(adj[1], torch.tensor([1.0, 0, e]) / (1 + e))


def test_similarity_init_is_gaussian_001():
    torch.manual_seed(0)
    g = SimilarityGraph(512)
    assert abs(g.phi.weight.std().item() - 0.01) < 5e-4 and abs(g.phi_prime.weight.std().item() - 0.01) < 5e-4


def test_gcn_layer_starts_as_identity_then_layernorm_relu():
    torch.manual_seed(0)
    layer = GraphConvLayer(4, num_graphs=2)
    assert all(w.weight.abs().sum() == 0 for w in layer.weights)
    x = torch.randn(1, 3, 4)
    adj = DenseGraph(torch.rand(1, 3, 3))
    out = layer(x, [adj, adj])
    assert torch.allclose(out, F.relu(F.layer_norm(x, (4,))), atol=1e-6)


def test_gcn_layer_sums_graphs_with_separate_weights_plus_residual():
    layer = GraphConvLayer(2, num_graphs=2)
    with torch.no_grad():
        layer.weights[0].weight.copy_(torch.eye(2))
        layer.weights[1].weight.copy_(2 * torch.eye(2))
    x = torch.tensor([[[1.0, 0], [0, 3]]])
    g1 = DenseGraph(torch.tensor([[[0.0, 1], [1, 0]]]))  # swap nodes
    g2 = DenseGraph(torch.tensor([[[1.0, 0], [0, 0]]]))
    # z = g1 x I + g2 x 2I + x = [[0,3],[1,0]] + [[2,0],[0,0]] + [[1,0],[0,3]] = [[3,3],[1,3]]
    z = torch.tensor([[[3.0, 3], [1, 3]]])
    assert torch.allclose(layer(x, [g1, g2]), F.relu(F.layer_norm(z, (2,))))
    with pytest.raises(ValueError, match="2 graph weight"):
        layer(x, [g1])


def test_region_gcn_reads_g_of_x_first():
    torch.manual_seed(0)
    gcn = RegionGCN(4, num_graphs=1, num_layers=3)
    x = torch.randn(2, 5, 4)
    adj = DenseGraph(torch.rand(2, 5, 5))
    z = gcn.g(x)
    for _ in range(3):
        z = F.relu(F.layer_norm(z, (4,)))
    assert torch.allclose(gcn(x, [adj]), z, atol=1e-5)


def test_masked_node_mean():
    x = torch.tensor([[[1.0], [3.0], [100.0]]])
    assert masked_node_mean(x, torch.tensor([[True, True, False]])).item() == 2.0
    assert masked_node_mean(x).item() == pytest.approx(104 / 3)


def test_temporal_graph_rejects_bad_shapes():
    with pytest.raises(ValueError, match="B, T-1, K, K"):
        TemporalGraph(torch.zeros(1, 2, 3, 4), "front")
