"""STMN family: full-size construction (meta device) and the layers the thesis specifies."""
import pytest
import torch

import mmzoo
from mmzoo.models.stmn import STMN
from mmzoo.nn.stmm import STMM
from mmzoo.registry import get_spec

IDS = ["stmn-r101", "rfcn-r101", "stmn-vgg16", "fastrcnn-vgg16", "stmn-vgg16-nomatchtrans", "convgru-vgg16"]


def _stmm_params(d, m, k=3):
    return 3 * (d * m * k * k + m) + 3 * m * m * k * k


def _count(mod):
    return sum(p.numel() for p in mod.parameters())


@pytest.fixture(scope="module")
def full_models():
    out = {}
    with torch.device("meta"):
        for i in IDS:
            out[i] = get_spec(i).build(pretrained_backbone=False)
    return out


def test_all_ids_registered_and_construct(full_models):
    assert set(IDS) <= set(mmzoo.list_models("*"))
    counts = {i: _count(m) for i, m in full_models.items()}
    print("params:", counts)
    # timm ResNet-101 trunk without fc: 42.5M; VGG-16 conv1_1..conv5_2: 12.35M + conv5_3 2.36M + fc6/fc7 119.5M
    r101 = full_models["rfcn-r101"]
    assert 42.0e6 < _count(r101.backbone) < 43.0e6
    assert _count(r101.reduce) == 2048 * 512 * 9 + 512  # 3x3 dilated 2048 -> 512
    assert _count(r101.temporal) == 1024 * 1024 * 9 + 1024  # the conv the STMM replaces
    stmn = full_models["stmn-r101"]
    # two STMMs 1024 -> 512 with 3x3 W / U, U without bias; 1x1 1024 -> 512 after the concat
    assert _count(stmn.temporal) == 2 * _stmm_params(1024, 512)
    assert _count(stmn.post) == 1024 * 512 + 512
    # the R-FCN head: 7x7 position-sensitive maps for 31 classes + class-agnostic 4-d boxes
    assert _count(stmn.head) == 512 * 49 * 31 + 49 * 31 + 512 * 49 * 4 + 49 * 4
    assert stmn.ensemble_branch is not None and r101.ensemble_branch is None
    vgg = full_models["fastrcnn-vgg16"]
    assert _count(vgg.temporal) == 512 * 512 * 9 + 512  # conv5_3
    assert _count(vgg.head.fc6) == 512 * 49 * 4096 + 4096
    assert vgg.head.box.out_features == 4 * 31  # Fast R-CNN: per-class boxes
    assert _count(full_models["stmn-vgg16"].temporal) == 2 * _stmm_params(512, 512)
    nomt = full_models["stmn-vgg16-nomatchtrans"]
    assert nomt.temporal.forward_cell.align is None
    assert full_models["stmn-vgg16"].temporal.forward_cell.align.k == 2
    gru = full_models["convgru-vgg16"]
    assert type(gru.temporal.forward_cell).__name__ == "ConvGRUCell"


def test_silent_points_are_arguments():
    spec = get_spec("stmn-r101")
    for arg in ("u_init", "w_init", "bn_stats", "ensemble", "seq_nms_link_iou", "seq_nms_nms_iou", "w_scale",
                "affinity_grad", "anchor_sizes"):
        assert arg in STMN.__init__.__code__.co_varnames
    assert spec.defaults["w_scale"] == 20.0 and spec.build.__self__ is spec
    info = spec.weights_for("vid")
    assert not info.available and "drive.google.com" in info.notes


def test_stmm_initialised_from_replaced_conv():
    torch.manual_seed(0)
    m = STMN(backbone="resnet18", pretrained_backbone=False, head_channels=16, embed_channels=24, mem_channels=8,
             ensemble="score_avg")
    conv = m.ensemble_branch["conv"][0]  # a copy of the conv the memory replaced
    for cell, sl in ((m.temporal.forward_cell, slice(0, 8)), (m.temporal.backward_cell, slice(8, 16))):
        assert isinstance(cell, STMM)
        assert torch.equal(cell.w.weight, conv.weight[sl]) and torch.equal(cell.w_z.bias, conv.bias[sl])
    assert m.temporal.out_channels == 16


def test_vgg_merge_initialised_to_average():
    m = STMN(backbone="vgg16", detector="fastrcnn", temporal="stmm", pretrained_backbone=False, w_scale=1.0,
             ensemble="none", seq_nms=False)
    x = torch.rand(1, 1024, 2, 2)
    y = m.post(x)
    assert torch.allclose(y, (x[:, :512] + x[:, 512:]) / 2, atol=1e-6)


def test_forward_windows_and_external_proposals():
    torch.manual_seed(0)
    m = STMN(backbone="resnet18", pretrained_backbone=False, head_channels=16, embed_channels=24, mem_channels=8,
             test_window=3, ensemble="concat", test_score_thresh=0.0, max_dets=1000, test_nms=1.0).eval()
    video = torch.randn(1, 3, 5, 64, 96)
    props = [torch.tensor([[4.0, 4, 40, 40], [30, 10, 90, 60]]) for _ in range(5)]
    with torch.no_grad():
        out = m(video, proposals=props)
        assert len(out) == 5
        # every detection comes from one of the two given proposals after box regression: 2 RoIs x 30
        # classes x 2 heads
        assert all(len(d["boxes"]) == 2 * 30 * 2 for d in out)
        # windows of 3: frames 3-4 do not depend on frames 0-2
        out2 = m(video[:, :, 3:], proposals=props[3:])
        assert torch.allclose(out[3]["scores"].sort().values, out2[0]["scores"].sort().values, atol=1e-5)
        # a window's frames depend on each other (the memory): changing frame 0 changes frame 2
        v2 = video.clone()
        v2[:, :, 0] += 1
        out3 = m(v2, proposals=props)
        assert not torch.allclose(out[2]["scores"].sort().values, out3[2]["scores"].sort().values)


def test_flops_difference_is_the_memory(full_models):
    """GMACs on the 11 x 337x600 example window: the two STMMs replace conv5_3 (VGG-16, 21x37 map)."""
    with torch.device("meta"):
        a = full_models["stmn-vgg16-nomatchtrans"].count_flops()
        b = full_models["fastrcnn-vgg16"].count_flops()
        r = full_models["rfcn-r101"].count_flops()
        s = full_models["stmn-r101"].count_flops()
    pos = 21 * 37
    per_frame = pos * (2 * 6 * 512 * 512 * 9 + 1024 * 512 - 512 * 512 * 9)
    assert a - b == 11 * per_frame
    # R-101 (22x38 map): STMMs 1024->512 + post 1024->512 instead of the 3x3 1024->1024 + post,
    # plus the ensemble branch (3x3 1024->1024, post, PS maps)
    pos = 22 * 38
    stmm = 2 * (3 * 1024 * 512 * 9 + 3 * 512 * 512 * 9)
    branch = 1024 * 1024 * 9 + 1024 * 512 + 512 * 49 * 35
    assert s - r == 11 * pos * (stmm - 1024 * 1024 * 9 + branch)


def test_stmm_placement_append_keeps_the_conv():
    torch.manual_seed(0)
    kw = dict(backbone="resnet18", pretrained_backbone=False, head_channels=16, embed_channels=24, mem_channels=8,
              ensemble="none")
    rep = STMN(**kw)
    app = STMN(stmm_placement="append", **kw)
    assert rep.pre_temporal is None and isinstance(app.pre_temporal[0], torch.nn.Conv2d)
    assert _count(app) - _count(rep) == 24 * 24 * 9 + 24
    emb = torch.randn(2, 24, 4, 6)
    with torch.no_grad():
        out = app._temporal(emb, 1, 2)
        manual = app.post(app.temporal(torch.relu(app.pre_temporal[0](emb)).view(1, 2, 24, 4, 6)).flatten(0, 1))
    assert torch.allclose(out, manual, atol=1e-6)


def test_vgg_fastrcnn_stmn_trains_and_detects():
    """The Fast R-CNN + VGG-16 path (real size, few RoIs): losses, gradients into the STMMs, detections."""
    torch.manual_seed(0)
    m = STMN(backbone="vgg16", detector="fastrcnn", temporal="stmm", pretrained_backbone=False, w_scale=1.0,
             rpn_post_nms_train=8, rpn_post_nms_test=8, rpn_pre_nms_train=100, rpn_pre_nms_test=100, roi_batch_size=8,
             anchor_sizes=(16, 32))
    video = torch.randn(1, 3, 2, 64, 96)
    batch = {"video": video, "boxes": [torch.tensor([[10.0, 10, 40, 40]])] * 2, "labels": [torch.tensor([3])] * 2,
             "meta": [{"size": (64, 96)}] * 2}
    m.train()
    losses = m._losses(batch)
    assert set(losses) >= {"loss_cls", "loss_box", "ens_loss_cls", "loss_rpn_cls"}
    sum(losses.values()).backward()
    assert m.temporal.forward_cell.w.weight.grad.abs().sum() > 0
    assert m.temporal.backward_cell.u.weight.grad.abs().sum() > 0
    m.eval()
    with torch.no_grad():
        out = m(video)
    assert len(out) == 2 and out[0]["boxes"].shape[1] == 4
    assert int(out[0]["labels"].min()) >= 1 and int(out[0]["labels"].max()) <= 30


def test_init_from_single_frame_detector():
    torch.manual_seed(0)
    kw = dict(backbone="resnet18", pretrained_backbone=False, head_channels=16, embed_channels=24, mem_channels=12)
    base = STMN(temporal="none", ensemble="none", **kw)
    stmn = STMN(temporal="stmm", ensemble="score_avg", **kw)
    stmn.init_from_single_frame(base)
    conv = base.temporal[0]
    for cell, sl in ((stmn.temporal.forward_cell, slice(0, 12)), (stmn.temporal.backward_cell, slice(12, 24))):
        assert torch.equal(cell.w_r.weight, conv.weight[sl])
    assert torch.equal(stmn.post.weight, base.post.weight) and torch.equal(stmn.head.cls_conv.weight, base.head.cls_conv.weight)
    assert torch.equal(stmn.ensemble_branch["conv"][0].weight, conv.weight)
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        _, emb = stmn._trunk(x)
        _, emb0 = base._trunk(x)
        assert torch.allclose(emb, emb0)
        # the ensemble branch is the single-frame detector's tower
        assert torch.allclose(stmn._branch(emb), base._temporal(emb0, 1, 1), atol=1e-6)
    with pytest.raises(ValueError):
        stmn.init_from_single_frame(stmn)


def test_frozen_ensemble_branch_has_no_loss_and_no_grad():
    kw = dict(backbone="resnet18", pretrained_backbone=False, head_channels=16, embed_channels=24, mem_channels=8,
              anchor_sizes=(16, 32), rpn_post_nms_train=16, roi_batch_size=8)
    m = STMN(train_ensemble_branch=False, **kw)
    assert not any(p.requires_grad for p in m.ensemble_branch.parameters())
    batch = {"video": torch.randn(1, 3, 2, 64, 96), "boxes": [torch.tensor([[10.0, 10, 40, 40]])] * 2,
             "labels": [torch.tensor([3])] * 2, "meta": [{"size": (64, 96)}] * 2}
    losses = m.train()._losses(batch)
    assert not any(k.startswith("ens_") for k in losses)
    assert any(k.startswith("ens_") for k in STMN(**kw).train()._losses(batch))


def test_offline_backbone_weights_warn_and_fall_back():
    with pytest.warns(UserWarning, match="unreachable"):
        m = STMN(backbone="resnet18", pretrained_backbone=True, head_channels=16, embed_channels=24, mem_channels=8)
    assert m.backbone.out_channels == 512
