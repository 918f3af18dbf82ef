"""JHMDB PCK on hand-computed cases, and pose propagation with pixel features on a known pan."""
from __future__ import annotations

import pytest
import torch

import mmzoo
from mmzoo.data import get_datamodule
from mmzoo.data.synthetic.jhmdb import write_jhmdb
from mmzoo.metrics.pck import PCK, person_scale


def test_person_scale_is_0_6_of_the_joint_box_diagonal():
    kp = torch.tensor([[[10.0, 20.0], [40.0, 25.0], [12.0, 60.0]]])  # box 30 x 40, diagonal 50
    assert person_scale(kp).tolist() == [pytest.approx(30.0)]
    assert person_scale(kp, mode="max_side").tolist() == [40.0]
    vis = torch.tensor([[True, True, False]])
    assert person_scale(kp, vis).tolist() == [pytest.approx(0.6 * (30 ** 2 + 5 ** 2) ** 0.5)]


def test_pck_is_the_mean_over_joint_types_of_per_joint_pck():
    gt = torch.tensor([[[0.0, 0.0], [100.0, 0.0], [0.0, 50.0], [100.0, 50.0]]])
    scale = torch.tensor([100.0])
    pred = gt + torch.tensor([[[5.0, 0.0], [0.0, 10.0], [15.0, 0.0], [0.0, 30.0]]])  # errors 5, 10, 15, 30
    m = PCK(num_joints=4)
    m.update(pred, gt, scale)
    out = m.compute()
    assert out["pck@0.1"].item() == pytest.approx(50.0)  # 5 and 10 (<= 10: the threshold is inclusive)
    assert out["pck@0.2"].item() == pytest.approx(75.0)
    # a second frame where only joint 0 is visible, and wrong: joint 0 is 1/2, the others as before
    m.update(gt + 50.0, gt, scale, visible=torch.tensor([[True, False, False, False]]))
    assert m.compute()["pck@0.1"].item() == pytest.approx(100 * (0.5 + 1 + 0 + 0) / 4)
    pooled = PCK(num_joints=4, average="all")
    pooled.update(pred, gt, scale)
    pooled.update(gt + 50.0, gt, scale, visible=torch.tensor([[True, False, False, False]]))
    assert pooled.compute()["pck@0.1"].item() == pytest.approx(100 * 2 / 5)


def test_pck_defaults_to_the_person_scale_of_the_target():
    gt = torch.tensor([[[0.0, 0.0], [30.0, 40.0]]])  # scale 0.6 x 50 = 30
    m = PCK(thresholds=(0.1,), num_joints=2)
    m.update(gt + torch.tensor([[[3.0, 0.0], [3.1, 0.0]]]), gt)
    assert m.compute()["pck@0.1"].item() == pytest.approx(50.0)


def test_pck_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match=r"\(N, K, 2\)"):
        PCK().update(torch.zeros(1, 15, 2), torch.zeros(1, 14, 2))


def test_pixel_features_track_joints_of_a_known_pan(tmp_path):
    write_jhmdb(tmp_path, {"pan": {"pan_a": 2}}, num_frames=5, velocity=(8, 0))
    dm = get_datamodule("jhmdb")(root=str(tmp_path), frame_size=None, num_workers=0)
    dm.setup("test")
    s = dm.dataset("test")[0]
    model = mmzoo.create("labelprop-identity", keypoint_sigma=0.5).eval()
    pred = model.track_keypoints(s["video"], s["keypoints"][0], tuple(s["image_size"].tolist()))
    m = PCK()
    m.update(pred[1:], s["keypoints"][1:], s["keypoint_scale"][1:])
    good = m.compute()["pck@0.2"].item()
    shuffled = model.track_keypoints(s["video"][:, [0, 4, 3, 1, 2]], s["keypoints"][0], tuple(s["image_size"].tolist()))
    m = PCK()
    m.update(shuffled[1:], s["keypoints"][1:], s["keypoint_scale"][1:])
    bad = m.compute()["pck@0.2"].item()
    print(f"identity PCK@0.2: {good:.1f} in order, {bad:.1f} shuffled")
    assert good > 90.0 and bad < good - 30.0


def test_trainer_test_on_jhmdb_reports_pck(tmp_path):
    import pytorch_lightning as pl

    write_jhmdb(tmp_path, {"pan": {"pan_a": 2, "pan_b": 2}}, num_frames=4, velocity=(8, 0))
    dm = get_datamodule("jhmdb")(root=str(tmp_path), frame_size=None, num_workers=0)
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    res = trainer.test(mmzoo.create("labelprop-identity"), datamodule=dm, verbose=False)[0]
    assert res["test/pck@0.1"] > 90.0 and "test/J_mean" not in res
