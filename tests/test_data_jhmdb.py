"""The jhmdb DataModule reads JHMDB as distributed (PNG frames, joint_positions.mat via scipy.io,
split files) and fails clearly on broken layouts."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.io
import torch

from mmzoo.data import get_datamodule
from mmzoo.data.synthetic.jhmdb import write_jhmdb
from mmzoo.errors import DataError


@pytest.fixture(scope="module")
def jhmdb(tmp_path_factory):
    root = tmp_path_factory.mktemp("jhmdb")
    joints = write_jhmdb(root, {"wave": {"wave_a": 2, "wave_b": 1}, "run": {"run_a": 2}}, num_frames=5)
    return root, joints


def _dm(root, **kw):
    return get_datamodule("jhmdb")(root=str(root), num_workers=0, **kw)


def test_reads_test_videos_of_the_split_with_0_based_joints(jhmdb):
    root, joints = jhmdb
    mat = scipy.io.loadmat(str(root / "joint_positions" / "wave" / "wave_a" / "joint_positions.mat"))
    assert mat["pos_img"].shape == (2, 15, 5)  # the distributed layout: 2 x 15 x T, 1-based
    dm = _dm(root, frame_size=32)
    dm.setup("test")
    ds = dm.dataset("test")
    assert sorted(s["video_id"] for s in ds) == ["run/run_a", "wave/wave_a"]  # label 2 = test
    s = next(s for s in ds if s["video_id"] == "wave/wave_a")
    assert s["video"].shape == (3, 5, 32, 32)
    assert torch.allclose(s["keypoints"], torch.from_numpy(joints["wave/wave_a"]).float())
    assert torch.allclose(s["keypoints"][0], torch.from_numpy(mat["pos_img"][:, :, 0].T - 1).float())
    kp = s["keypoints"][2]
    diag = float(((kp[:, 0].max() - kp[:, 0].min()) ** 2 + (kp[:, 1].max() - kp[:, 1].min()) ** 2) ** 0.5)
    assert s["keypoint_scale"][2].item() == pytest.approx(0.6 * diag)
    assert s["image_size"].tolist() == [64, 96]
    dm.setup("fit")
    assert [s["video_id"] for s in dm.dataset("train")] == ["wave/wave_b"]
    batch = next(iter(dm.test_dataloader()))
    assert batch["keypoints"].shape == (1, 5, 15, 2)


def test_missing_mat_is_named(tmp_path):
    write_jhmdb(tmp_path, num_frames=3)
    (tmp_path / "joint_positions" / "wave" / "wave_a" / "joint_positions.mat").unlink()
    with pytest.raises(DataError, match=r"wave_a.*joint_positions.mat is missing"):
        _dm(tmp_path).setup("test")


def test_malformed_split_line_is_named(tmp_path):
    write_jhmdb(tmp_path, num_frames=3)
    (tmp_path / "splits" / "wave_test_split1.txt").write_text("wave_a.avi 2\nwave_b.avi\n")
    with pytest.raises(DataError, match=r"wave_test_split1.txt:2: expected"):
        _dm(tmp_path).setup("test")


def test_wrong_pos_img_shape_and_frame_count_are_named(tmp_path):
    write_jhmdb(tmp_path, num_frames=3)
    mat = tmp_path / "joint_positions" / "wave" / "wave_a" / "joint_positions.mat"
    scipy.io.savemat(str(mat), {"pos_img": np.zeros((2, 15, 4))})
    dm = _dm(tmp_path)
    dm.setup("test")
    with pytest.raises(DataError, match=r"pos_img has 4 frames"):
        dm.dataset("test")[0]
    scipy.io.savemat(str(mat), {"pos_img": np.zeros((2, 13, 3))})
    with pytest.raises(DataError, match=r"pos_img must be 2 x 15 x T"):
        dm.dataset("test")[0]


def test_missing_split_files_are_reported(tmp_path):
    with pytest.raises(DataError, match=r"no JHMDB split files"):
        _dm(tmp_path).setup("test")
