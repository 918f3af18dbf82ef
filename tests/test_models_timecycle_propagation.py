"""Label propagation (thesis Sec. 2.4), the benchmark for any backbone: the procedure, the
baseline ids, and `mmzoo test --data davis2017` end to end on a synthetic DAVIS."""
from __future__ import annotations

import json
import warnings

import pytest
import pytorch_lightning as pl
import safetensors.torch
import timm
import torch

import mmzoo
from mmzoo.cli import main
from mmzoo.data import get_datamodule
from mmzoo.data.synthetic.davis import write_davis
from mmzoo.metrics.davis import DavisJF
from mmzoo.nn.label_propagation import propagate_labels, reference_frames


@pytest.fixture(scope="module")
def davis(tmp_path_factory):
    root = tmp_path_factory.mktemp("davis")
    write_davis(root, {"val": ["pan"], "train": ["pan-train"]}, num_frames=8, num_objects=2, velocity=(8, 0))
    return root


def _sequence(root):
    dm = get_datamodule("davis2017")(root=str(root), frame_size=None, num_workers=0)
    dm.setup("test")
    return dm.dataset("test")[0]


def _j(model, video, gt):
    m = DavisJF()
    m.update(model.segment(video, gt[0]), gt)
    return m.compute()["J_mean"].item()


def test_reference_frames_are_the_first_and_the_k_previous():
    assert reference_frames(1, 7) == [0]
    assert reference_frames(3, 7) == [0, 1, 2]
    assert reference_frames(10, 7) == [0, 3, 4, 5, 6, 7, 8, 9]


def test_propagation_takes_the_top_k_softmax_weights_hand_case():
    # 1D "images" of 3 positions with one-hot features: target position i looks like source (i - 1) % 3
    src = torch.eye(3)
    tgt = torch.eye(3)[[1, 2, 0]]
    feats = torch.stack([src, tgt]).view(2, 3, 1, 3)  # T, c, h=1, w=3
    labels = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]).view(2, 1, 3)
    out = propagate_labels(feats, labels, topk=1, context=7, temperature=0.1, normalize_labels=False)
    w = torch.softmax(torch.tensor([10.0, 0.0, 0.0]), 0)[0]  # the kept (best) softmax weight
    assert torch.allclose(out[1, 0, 0], torch.tensor([0.0, 1.0, 0.0]) * w, atol=1e-6)
    assert torch.allclose(out[1, 1, 0], torch.tensor([1.0, 0.0, 1.0]) * w, atol=1e-6)
    normed = propagate_labels(feats, labels, topk=1, temperature=0.1)  # authors' min-max per channel
    assert torch.allclose(normed[1, 0, 0], torch.tensor([0.0, 1.0, 0.0]))


def test_identity_features_recover_a_known_translation_and_fail_on_shuffled_frames(davis):
    sample = _sequence(davis)
    model = mmzoo.create("labelprop-identity").eval()
    video, gt = sample["video"], sample["label"]
    j = _j(model, video, gt)
    assert j > 90.0, j
    perm = torch.tensor([0, 5, 2, 7, 1, 6, 3, 4])  # frames shuffled against their annotations
    j_shuffled = _j(model, video[:, perm], gt)
    assert j_shuffled < 50.0, j_shuffled
    print(f"identity J: {j:.1f} in order, {j_shuffled:.1f} shuffled")


def test_mmzoo_test_runs_label_propagation_on_davis(davis, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # Lightning writes config.yaml into the working directory
    out = tmp_path / "results.json"
    main(["test", "--model", "labelprop-identity", "--data", "davis2017", "--data.root", str(davis),
          "--data.frame_size", "null", "--data.num_workers", "0", "--pretrained", "false",
          "--trainer.logger", "false", "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir",
          str(tmp_path), "--results_json", str(out)])
    metrics = json.loads(out.read_text())["metrics"]
    assert metrics["test/J_mean"] > 90.0 and metrics["test/F_mean"] > 80.0


def test_tiny_timecycle_evaluates_through_trainer_test(davis):
    torch.manual_seed(0)
    model = mmzoo.create("timecycle-r18", depth=10, width=8, feature_dim=16, crop_size=72, patch_size=24,
                         localizer_channels=[8, 8], localizer_kernel=2)
    dm = get_datamodule("davis2017")(root=str(davis), frame_size=64, num_workers=0)
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    res = trainer.test(model, datamodule=dm, verbose=False)[0]
    assert {"test/J_mean", "test/F_mean", "test/JF_mean"} <= set(res)
    assert res["test/J_mean"] != pytest.approx(100.0)  # an untrained encoder does not solve it


def test_imagenet_r50_row_loads_timm_weights_from_the_cache_offline(isolated_hub):
    """The "ImageNet R50" baseline takes timm's torchvision weights (Hub repo timm/resnet50.tv_in1k);
    checked here on the ResNet-18 sibling (timm/resnet18.tv_in1k) written into the local HF cache."""
    torch.manual_seed(3)
    reference = timm.create_model("resnet18.tv_in1k", pretrained=False)
    repo = isolated_hub / "hf-home" / "hub" / "models--timm--resnet18.tv_in1k"
    snap = repo / "snapshots" / ("d" * 40)
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("d" * 40)
    safetensors.torch.save_file({k: v.contiguous() for k, v in reference.state_dict().items()},
                                str(snap / "model.safetensors"))
    model = mmzoo.create("labelprop-imagenet-r50", depth=18, timm_name="resnet18.tv_in1k", frame_size=64)
    mine = model.encoder.state_dict()
    assert torch.equal(mine["layer3.1.conv2.weight"], reference.state_dict()["layer3.1.conv2.weight"])
    assert torch.equal(mine["conv1.weight"], reference.state_dict()["conv1.weight"])
    assert model.encoder.layer3[0].conv2.stride == (1, 1)  # res4 stride removed, as TimeCycle's encoder


def test_imagenet_r50_row_without_cached_weights_warns_and_random_row_is_seeded():
    with pytest.warns(UserWarning, match="RANDOMLY INITIALISED"):
        mmzoo.create("labelprop-imagenet-r50", depth=18, timm_name="resnet18.tv_in1k")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = mmzoo.create("labelprop-random-r50", depth=18)
        b = mmzoo.create("labelprop-random-r50", depth=18)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


# ---------------------------------------------------------------- VIP AP^r_vol (instance parts)
@pytest.fixture(scope="module")
def vip_two_people(tmp_path_factory):
    from mmzoo.data.synthetic.vip import write_vip

    root = tmp_path_factory.mktemp("vip2")
    write_vip(root, num_frames=5, people=2)
    return root


def _vip_apr_vol(model, sample, video):
    from mmzoo.metrics.vip import InstancePartAP

    metric = InstancePartAP()
    model._update_instance_ap(metric, video, sample["instances"], sample["instance_table"], sample["video_id"],
                              model.sequence_features(video))
    return metric.compute()["APr_vol"].item()


def test_vip_test_logs_instance_part_ap_and_identity_beats_shuffled_frames(vip_two_people):
    dm = get_datamodule("vip")(root=str(vip_two_people), frame_size=None, num_workers=0)
    model = mmzoo.create("labelprop-identity", context=dm.context).eval()
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    res = trainer.test(model, datamodule=dm, verbose=False)[0]
    assert {"test/mIoU", "test/pixel_acc", "test/APr_vol", "test/APr@0.5", "test/APr@0.1", "test/APr@0.9"} <= set(res)
    # 3 of the 19 part classes occur: a perfect prediction scores 3/19 = 15.8 at every threshold
    assert res["test/APr@0.5"] == pytest.approx(100 * 3 / 19, abs=1e-3), res
    apr = [res[f"test/APr@{t / 10:g}"] for t in range(1, 10)]
    assert res["test/APr_vol"] == pytest.approx(sum(apr) / 9, abs=1e-4)  # the mean over the 9 thresholds
    assert apr[:6] == pytest.approx([100 * 3 / 19] * 6, abs=1e-3), apr  # every part found at IoU > 0.6
    assert all(a >= b for a, b in zip(apr, apr[1:])) and apr[-1] < apr[0], apr  # stricter IoU, fewer hits
    dm.setup("test")
    sample = dm.dataset("test")[0]
    in_order = _vip_apr_vol(model, sample, sample["video"])
    assert in_order == pytest.approx(res["test/APr_vol"], abs=1e-4)
    shuffled = _vip_apr_vol(model, sample, sample["video"][:, [0, 3, 1, 4, 2]])  # frames against their maps
    assert shuffled < in_order - 6.0, (in_order, shuffled)
    # --data.instances false: part mIoU only, as before
    parts_only = get_datamodule("vip")(root=str(vip_two_people), frame_size=None, instances=False, num_workers=0)
    res = trainer.test(model, datamodule=parts_only, verbose=False)[0]
    assert "test/mIoU" in res and not any(k.startswith("test/APr") for k in res)


def test_vip_instances_keep_their_first_frame_part_and_score_the_mean_propagated_label(monkeypatch):
    model = mmzoo.create("labelprop-identity", context=1).eval()
    first = torch.tensor([[0, 7, 7, 9], [200, 0, 9, 9]])  # id 200 is not in the table: background
    table = torch.tensor([[7, 5], [9, 13], [-1, -1]])
    feats = torch.zeros(3, 1, 2, 4)
    bg = torch.tensor([[0.9, 0.1, 0.1, 0.0], [0.9, 0.9, 0.2, 0.9]])
    i7 = torch.tensor([[0.0, 0.8, 0.6, 0.0], [0.0, 0.0, 0.1, 0.0]])
    i9 = torch.tensor([[0.1, 0.1, 0.3, 0.5], [0.1, 0.1, 0.7, 0.1]])
    seen = {}

    def fake_propagate(f, labels):
        seen["feats"], seen["labels"] = f, labels
        return torch.stack([labels, torch.stack([bg, i7, i9]), torch.stack([bg, i7 * 0, i9])])

    monkeypatch.setattr(model, "_propagate", fake_propagate)
    out = model.segment_instances(None, first, table, (2, 4), feats=feats)
    assert seen["feats"] is feats  # the part labels' propagation path, on the same features
    assert torch.equal(seen["labels"].argmax(0), torch.tensor([[0, 1, 1, 2], [0, 0, 2, 2]]))  # bg, id 7, id 9
    assert len(out) == 2  # frames 1..T-1, as the part mIoU
    pred, classes, scores = out[0]
    assert torch.equal(pred, torch.tensor([[0, 1, 1, 2], [0, 0, 2, 0]]))
    assert classes.tolist() == [5, 13]  # each keeps its first-frame part class
    assert torch.allclose(scores, torch.tensor([0.7, 0.6], dtype=torch.float64))  # mean over its predicted pixels
    pred, classes, scores = out[1]  # id 7 lost everywhere: not listed, id 9 renumbered 1
    assert pred.max() == 1 and classes.tolist() == [13]
    assert torch.allclose(scores, torch.tensor([(0.3 + 0.5 + 0.7) / 3], dtype=torch.float64))
