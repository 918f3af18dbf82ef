"""IPL (thesis ch. 4, Eqs. 4.2-4.5) on hand-computed cases: assignment with the background
prototype, grouping with the residual, top-K verb-to-noun selection, f_w, cosine classifiers; and
the full-size ids' parameter counts."""
from __future__ import annotations

import math

import pytest
import torch

import mmzoo
from mmzoo.nn.ipl import (
    CosineClassifier,
    FusionFw,
    IPLHead,
    group_residuals,
    prototype_assignment,
    select_top_k,
)


def test_assignment_is_a_dot_product_softmax_over_prototypes_and_background():
    z = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])  # B=1, two features
    p = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[0.0, 0.0]])
    e = math.e
    # z1 . (p1, p2, b) = (1, 0, 0); z2 . (p1, p2, b) = (0, 2, 0); the background column is dropped
    want = torch.tensor([[[e / (e + 2), 1 / (e + 2)], [1 / (e**2 + 2), e**2 / (e**2 + 2)]]])
    torch.testing.assert_close(prototype_assignment(z, p, b), want)
    # without the background prototype the softmax runs over the M prototypes only
    want_nobg = torch.tensor([[[e / (e + 1), 1 / (e + 1)], [1 / (e**2 + 1), e**2 / (e**2 + 1)]]])
    torch.testing.assert_close(prototype_assignment(z, p, None), want_nobg)


def test_grouping_subtracts_the_assigned_mass_times_the_prototype():
    z = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])
    a = torch.tensor([[[0.75, 0.25], [0.5, 0.5]]])
    p = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    # g1 = 0.75 z1 + 0.5 z2 = (0.75, 1); g2 = 0.25 z1 + 0.5 z2 = (0.25, 1); masses 1.25 and 0.75
    # Eq. 4.5: g1 - 1.25 p1 = (0.75 - 2.5, 1) ; g2 - 0.75 p2 = (0.25, 0.25)
    torch.testing.assert_close(group_residuals(z, a, p), torch.tensor([[[-1.75, 1.0], [0.25, 0.25]]]))
    # with the normalised prototype (p1 / |p1| = (1, 0)): g1 - 1.25 (1, 0)
    torch.testing.assert_close(group_residuals(z, a, p, normalize_prototypes=True),
                               torch.tensor([[[-0.5, 1.0], [0.25, 0.25]]]))


def test_top_k_selection_takes_the_highest_predicted_verbs_groups_normalised():
    groups = torch.tensor([[[3.0, 4.0], [1.0, 0.0], [0.0, 5.0], [6.0, 8.0]]])
    scores = torch.tensor([[0.1, 0.4, 0.3, 0.2]])
    picked, idx = select_top_k(groups, scores, 3)
    assert idx.tolist() == [[1, 2, 3]]  # decreasing verb score, not index order
    torch.testing.assert_close(picked, torch.tensor([[[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]]))
    with pytest.raises(ValueError, match="top_k"):
        select_top_k(groups, scores, 5)


def test_cosine_classifier():
    clf = CosineClassifier(2, 2, tau=0.5)
    with torch.no_grad():
        clf.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
    # cos((3, 4), (1, 0)) = 0.6, cos((3, 4), (0, 1)) = 0.8, over tau = 0.5
    torch.testing.assert_close(clf(torch.tensor([[3.0, 4.0]])), torch.tensor([[1.2, 1.6]]))


def test_fw_is_a_conv_over_the_k_groups_then_bn_relu():
    fw = FusionFw(2, 3).eval()
    with torch.no_grad():
        fw.conv.weight.copy_(torch.tensor([[[2.0], [-1.0]]]))
    n = torch.tensor([[[1.0, 0.0, 1.0], [0.0, 1.0, 3.0]]])  # K=2, C=3
    # relu(2 n1 - n2) = (2, 0 (from -1), 0 (from -1)); BN in eval with mean 0 / var 1
    torch.testing.assert_close(fw(n), torch.tensor([[2.0, 0.0, 0.0]]) / math.sqrt(1 + 1e-5))
    assert sum(p.numel() for p in fw.parameters()) == 2 + 2  # "negligible parameters"


def test_head_shares_the_verb_prototypes_between_branches():
    torch.manual_seed(0)
    head = IPLHead(8, num_verbs=6, num_nouns=4, top_k=3).eval()
    names = [n for n, _ in head.named_parameters()]
    assert names.count("prototypes") == 1 and not any("verb_classifier" in n for n in names)
    fmap = torch.randn(2, 8, 2, 3, 3)
    out = head(fmap)
    # the verb logits are the cosine of the pooled feature with the prototypes over tau (Eq. 4.2)
    v = fmap.flatten(2).mean(-1)
    want = torch.nn.functional.normalize(v, dim=-1) @ torch.nn.functional.normalize(head.prototypes, dim=-1).t() / 0.05
    torch.testing.assert_close(out["verb"], want)
    # the selected groups are those of the top-3 predicted verbs
    assert torch.equal(out["selected"], out["verb"].topk(3, dim=1).indices)
    # the noun loss reaches the prototypes through the assignment / residual (the interaction)
    head.train()
    head(fmap)["noun"].sum().backward()
    assert head.prototypes.grad is not None and head.prototypes.grad.abs().sum() > 0


def test_head_noun_feature_follows_the_hand_computed_pipeline():
    torch.manual_seed(1)
    head = IPLHead(4, num_verbs=3, num_nouns=2, top_k=2).eval()
    fmap = torch.randn(1, 4, 1, 2, 2)
    z = fmap.flatten(2).transpose(1, 2)[0]  # 4 features
    centres = torch.cat([head.prototypes, head.background])
    a = torch.softmax(z @ centres.t(), dim=1)[:, :3]
    g = torch.stack([(a[:, i:i + 1] * z).sum(0) - a[:, i].sum() * head.prototypes[i] for i in range(3)])
    out = head(fmap)
    top = out["verb"][0].argsort(descending=True)[:2]
    n = torch.stack([g[i] / g[i].norm() for i in top])
    w = head.fw.conv.weight[0, :, 0]
    bn = head.fw.bn
    feat = torch.relu(((w[0] * n[0] + w[1] * n[1]) - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias)
    nw = head.noun_classifier.weight
    want = (feat / feat.norm()) @ (nw / nw.norm(dim=1, keepdim=True)).t() / 0.05
    torch.testing.assert_close(out["noun"][0], want)


def test_ablation_arguments():
    torch.manual_seed(0)
    fmap = torch.randn(2, 8, 1, 2, 2)
    nobg = IPLHead(8, 5, 4, background=False)
    assert nobg.background is None
    torch.testing.assert_close(nobg(fmap)["assignment"].sum(-1), torch.ones(2, 4))
    assert (IPLHead(8, 5, 4)(fmap)["assignment"].sum(-1) < 1).all()  # the background takes a share
    independent = IPLHead(8, 5, 4, shared_prototypes=False, selection="all")
    assert independent.noun_centres is not None and independent.fw.conv.in_channels == 5
    assert independent(fmap)["selected"].tolist() == [list(range(5))] * 2
    for k in (1, 3, 5):
        assert IPLHead(8, 5, 4, top_k=k).fw.conv.in_channels == k


@pytest.mark.parametrize("model_id, backbone_params", [("ipl-i3d-rgb", 12_287_264), ("ipl-r2plus1d-34", 63_491_975)])
def test_full_size_ipl_head_overhead(model_id, backbone_params):
    with torch.device("meta"):
        m = mmzoo.create(model_id)
    hp = m.hparams
    dim = m.backbone.out_channels
    assert sum(p.numel() for p in m.backbone.parameters()) == backbone_params
    # prototypes (M x C), background (C), noun cosine weights (N x C), f_w (K conv weights + 2 BN)
    head = (hp.num_verbs + 1 + hp.num_nouns) * dim + hp.top_k + 2
    assert m.num_parameters() == backbone_params + head


def test_baseline_ids_have_linear_heads():
    with torch.device("meta"):
        m = mmzoo.create("i3d-epic")
    assert m.num_parameters() == 12_287_264 + 1024 * (97 + 300) + 97 + 300
    assert mmzoo.create("r2plus1d-34-epic", width_multiplier=0.125, frames=8, crop_size=32).hparams.num_verbs == 125


def test_backbone_init_reads_the_released_checkpoints(tmp_path):
    from mmzoo.nn.i3d_inception import InceptionI3d
    from mmzoo.nn.r2plus1d import R2Plus1dResNet

    torch.manual_seed(0)
    i3d = InceptionI3d(2, 400, width_divisor=8)  # a flow_imagenet.pt of the tiny width
    torch.save(i3d.state_dict(), tmp_path / "flow_imagenet.pt", _use_new_zipfile_serialization=False)
    m = mmzoo.create("ipl-i3d-flow", width_multiplier=0.125, backbone_init=str(tmp_path / "flow_imagenet.pt"))
    src = i3d.state_dict()
    for k, v in m.backbone.state_dict().items():
        assert torch.equal(v, src[k]), k
    vmz = R2Plus1dResNet(34, 359, width=8)
    torch.save(vmz.state_dict(), tmp_path / "ig65m.pth")
    m = mmzoo.create("r2plus1d-34-epic", width_multiplier=0.125, backbone_init=str(tmp_path / "ig65m.pth"))
    assert torch.equal(m.backbone.layer4[2].conv2[0][3].weight, vmz.layer4[2].conv2[0][3].weight)
    # a file of the other backbone does not load silently
    with pytest.raises(KeyError, match="not an R\\(2\\+1\\)D-34"):
        mmzoo.create("r2plus1d-34-epic", width_multiplier=0.125, backbone_init=str(tmp_path / "flow_imagenet.pt"))


def test_head_learns_verb_and_noun_from_the_feature_map():
    """The whole head trains end to end (a wrong sign or a detached path would stall it): verbs are
    given by which of 4 channels is active everywhere, nouns by a second channel active at a
    single location of the map."""
    g = torch.Generator().manual_seed(0)
    n, dim = 256, 16
    verb = torch.randint(0, 4, (n,), generator=g)
    noun = torch.randint(0, 3, (n,), generator=g)
    fmap = 0.1 * torch.randn(n, dim, 1, 2, 2, generator=g)
    fmap[torch.arange(n), verb] += 1.0  # verb channel, everywhere
    for i in range(n):  # noun: channel 8 + noun at one location
        fmap[i, 8 + noun[i], 0, 0, 0] += 2.0
    torch.manual_seed(0)
    head = IPLHead(dim, num_verbs=4, num_nouns=3, tau=0.1, top_k=2)
    opt = torch.optim.Adam(head.parameters(), lr=0.03)
    for _ in range(150):
        out = head(fmap)
        loss = torch.nn.functional.cross_entropy(out["verb"], verb) + torch.nn.functional.cross_entropy(out["noun"], noun)
        opt.zero_grad()
        loss.backward()
        opt.step()
    head.eval()
    with torch.no_grad():
        out = head(fmap)
    assert (out["verb"].argmax(1) == verb).float().mean() > 0.95
    assert (out["noun"].argmax(1) == noun).float().mean() > 0.9
