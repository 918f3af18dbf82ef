"""ActivityNet v1.3 DataModule on a synthetic release (real JSON, real mp4 / mkv files): classes
from the taxonomy, video-level multi-hot targets, 1-fps TSN segment sampling, missing / malformed
entries."""
from __future__ import annotations

import json

import pytest
import torch

from mmzoo.data.activitynet import ActivityNetDataModule
from mmzoo.data.synthetic.activitynet import write_activitynet
from mmzoo.data.untrimmed import grid_positions
from mmzoo.data.video_dataset import AnnotationError, LayoutError

SMALL = dict(batch_size=3, num_workers=0, crop_size=32, train_scale=(32, 32), test_scale=32, test_crop_size=32)


@pytest.fixture(scope="module")
def anet(tmp_path_factory):
    return write_activitynet(tmp_path_factory.mktemp("anet"), per_class={"training": 1, "validation": 1},
                             num_seconds=10, fps=3, seed=0)


def test_grid_positions_keep_one_frame_per_second():
    assert grid_positions(30, 3.0, 1.0).tolist() == list(range(0, 30, 3))
    assert grid_positions(31, 3.0, 1.0).tolist() == list(range(0, 31, 3))
    assert grid_positions(299, 29.97, 1.0)[:3].tolist() == [0, 30, 60]
    assert grid_positions(5, 25.0, 1.0).tolist() == [0]
    assert grid_positions(7, 3.0, None).tolist() == list(range(7))


def test_batches_follow_the_release(anet):
    dm = ActivityNetDataModule(root=str(anet["root"]), num_frames=5, **SMALL)
    dm.setup("test")
    assert dm.classes == anet["classes"] and dm.num_classes == 3
    batch = next(iter(dm.test_dataloader()))
    assert batch["video"].shape == (3, 3, 5, 32, 32)
    for i, vid in enumerate(batch["video_id"]):
        truth = anet["videos"][vid]
        assert truth["subset"] == "validation"
        k = anet["classes"].index(truth["label"])
        assert int(batch["label"][i]) == k
        assert batch["video_label"][i].tolist() == [1.0 if c == k else 0.0 for c in range(3)]
        # 10 s at 3 fps: the 1-fps grid is frames 0, 3, ..., 27; 5 segments of 2 grid frames, the
        # middle one at test (position (2 - 1) // 2 = 0 of each, mmzoo.data.samplers.segment_indices)
        assert batch["meta"][i]["frame_indices"] == [0, 6, 12, 18, 24]
        # the decoded frame shows the evidence colour exactly on evidence seconds
        seconds = [0, 2, 4, 6, 8]
        means = batch["video"][i].mean((2, 3))  # 3, T
        coloured = (means.std(0) > 0.8).tolist()
        assert coloured == [s in truth["evidence"] for s in seconds]


def test_training_samples_a_random_grid_frame_per_segment(anet):
    dm = ActivityNetDataModule(root=str(anet["root"]), num_frames=5, **SMALL)
    dm.setup("fit")
    torch.manual_seed(0)
    seen = set()
    for _ in range(4):
        sample = dm.datasets["train"][0]
        idx = sample["meta"]["frame_indices"]
        assert all(i % 3 == 0 and 6 * j <= i < 6 * (j + 1) for j, i in enumerate(idx))
        seen.add(tuple(idx))
    assert len(seen) > 1


def test_multi_label_videos_and_mkv_files(tmp_path):
    truth = write_activitynet(tmp_path, per_class={"validation": 1}, num_seconds=4, ext=".mkv", seed=1)
    path = truth["json"]
    data = json.loads(path.read_text())
    vid = next(iter(data["database"]))
    other = next(c for c in truth["classes"] if c != truth["videos"][vid]["label"])
    data["database"][vid]["annotations"].append({"segment": [0.0, 1.0], "label": other})
    data["database"][vid]["annotations"].append({"segment": [1.0, 2.0], "label": other})  # repeated: one class
    path.write_text(json.dumps(data))
    dm = ActivityNetDataModule(root=str(tmp_path), num_frames=4, **SMALL)
    dm.setup("test")
    ds = dm.datasets["test"]
    i = [r.meta["video_id"] for r in ds.records].index(vid)
    sample = ds[i]
    assert sample["video_label"].sum() == 2
    assert sample["video_label"][truth["classes"].index(other)] == 1
    assert sample["meta"]["source"].endswith(f"v_{vid}.mkv")


def test_missing_videos_raise_or_are_skipped_and_counted(tmp_path):
    truth = write_activitynet(tmp_path, per_class={"validation": 1}, num_seconds=3, missing=1, seed=2)
    with pytest.raises(LayoutError, match="1 video"):
        ActivityNetDataModule(root=str(tmp_path), num_frames=3, **SMALL).setup("test")
    dm = ActivityNetDataModule(root=str(tmp_path), num_frames=3, missing_videos="skip", **SMALL)
    with pytest.warns(UserWarning, match="1 annotated video"):
        dm.setup("test")
    assert len(dm.missing_videos) == 1 and truth["missing"][0] in dm.missing_videos[0]
    assert len(dm.datasets["test"]) == 2


def test_malformed_annotations_name_the_file_and_video(tmp_path):
    truth = write_activitynet(tmp_path, per_class={"validation": 1}, num_seconds=3, seed=3)
    data = json.loads(truth["json"].read_text())
    vid = next(iter(data["database"]))
    data["database"][vid]["annotations"][0]["label"] = "Not a class"
    truth["json"].write_text(json.dumps(data))
    with pytest.raises(AnnotationError, match=rf"activity_net.v1-3.min.json.*{vid}"):
        ActivityNetDataModule(root=str(tmp_path), **SMALL).setup("test")
    truth["json"].write_text("{not json")
    with pytest.raises(AnnotationError, match="not valid JSON"):
        ActivityNetDataModule(root=str(tmp_path), **SMALL).setup("test")
    truth["json"].write_text(json.dumps({"database": {}}))
    with pytest.raises(AnnotationError, match="taxonomy"):
        ActivityNetDataModule(root=str(tmp_path), **SMALL).setup("test")
    with pytest.raises(LayoutError, match="--data.annotation_file"):
        ActivityNetDataModule(root=str(tmp_path), annotation_file="absent.json", **SMALL).setup("test")


def test_corrupt_video_is_skipped_and_reported_when_asked(tmp_path):
    truth = write_activitynet(tmp_path, per_class={"validation": 1}, num_seconds=3, seed=4)
    bad = next(v for v in truth["videos"].values())
    with open(bad["path"], "wb") as f:
        f.write(b"\x00garbage" * 10)
    dm = ActivityNetDataModule(root=str(tmp_path), num_frames=3, skip_corrupt=True, **SMALL)
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    assert len(batch["skipped"]) == 1 and bad["path"] in batch["skipped"][0]
