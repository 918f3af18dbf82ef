"""FCVID DataModule on a synthetic release (the materials' split and label files, category
folders of real mp4): multi-label targets, splits, checks of every line, missing videos."""
from __future__ import annotations

import pytest

from mmzoo.data.fcvid import FCVIDDataModule
from mmzoo.data.synthetic.fcvid import write_fcvid
from mmzoo.data.video_dataset import AnnotationError, LayoutError

SMALL = dict(batch_size=4, num_workers=0, crop_size=32, train_scale=(32, 32), test_scale=32, test_crop_size=32)


@pytest.fixture(scope="module")
def fcvid(tmp_path_factory):
    return write_fcvid(tmp_path_factory.mktemp("fcvid"), per_class={"train": 1, "test": 1}, num_seconds=6,
                       multi_label=1, seed=0)


def test_splits_and_multi_label_targets(fcvid):
    dm = FCVIDDataModule(root=str(fcvid["root"]), num_frames=3, category_file="FCVID_Category.txt", **SMALL)
    dm.setup("fit")
    dm.setup("test")
    assert dm.classes == fcvid["classes"] and dm.num_classes == 3
    train_ids = {r.meta["video_id"] for r in dm.datasets["train"].records}
    test_ids = {r.meta["video_id"] for r in dm.datasets["test"].records}
    truth = {rel.rsplit(".", 1)[0]: v for rel, v in fcvid["videos"].items()}
    assert train_ids == {k for k, v in truth.items() if v["split"] == "train"}
    assert test_ids == {k for k, v in truth.items() if v["split"] == "test"}
    multi = [k for k, v in truth.items() if len(v["classes"]) > 1]
    assert len(multi) == 1 and multi[0] in train_ids
    ds = dm.datasets["train"]
    sample = ds[[r.meta["video_id"] for r in ds.records].index(multi[0])]
    assert sorted(sample["video_label"].nonzero().view(-1).tolist()) == sorted(truth[multi[0]]["classes"])
    assert sample["label"] == truth[multi[0]]["classes"][0]
    batch = next(iter(dm.test_dataloader()))
    assert batch["video"].shape == (3, 3, 3, 32, 32) and batch["video_label"].shape == (3, 3)
    # 6 s at 1 fps in 3 segments of 2 s: frames 0, 2, 4 at test
    assert all(m["frame_indices"] == [0, 2, 4] for m in batch["meta"])


def test_bad_lines_name_file_and_line(tmp_path):
    write_fcvid(tmp_path, per_class={"train": 1, "test": 1}, num_seconds=3, seed=1)
    labels = tmp_path / "materials" / "FCVID_Label.txt"
    rows = labels.read_text().splitlines()
    labels.write_text("\n".join(rows[:-1] + ["0 2 0"]) + "\n")
    with pytest.raises(AnnotationError, match=rf"FCVID_Label.txt:{len(rows)}: labels must be 0 or 1"):
        FCVIDDataModule(root=str(tmp_path), **SMALL).setup("test")
    labels.write_text("\n".join(rows[:-1]) + "\n")
    with pytest.raises(AnnotationError, match=f"{len(rows) - 1} label lines for the {len(rows)} videos"):
        FCVIDDataModule(root=str(tmp_path), **SMALL).setup("test")
    labels.write_text("\n".join(rows) + "\n")
    split = tmp_path / "materials" / "FCVID_VideoName_TrainTestSplit.txt"
    lines = split.read_text().splitlines()
    split.write_text("\n".join(lines[:1] + [lines[1].replace(" train", " validation")] + lines[2:]) + "\n")
    with pytest.raises(AnnotationError, match="TrainTestSplit.txt:2: expected"):
        FCVIDDataModule(root=str(tmp_path), **SMALL).setup("test")


def test_missing_videos_raise_or_are_skipped_and_counted(tmp_path):
    truth = write_fcvid(tmp_path, per_class={"train": 1, "test": 1}, num_seconds=3, missing=1, seed=2)
    with pytest.raises(LayoutError, match="1 video"):
        FCVIDDataModule(root=str(tmp_path), **SMALL).setup("test")
    dm = FCVIDDataModule(root=str(tmp_path), missing_videos="skip", num_frames=3, **SMALL)
    with pytest.warns(UserWarning, match="1 listed video"):
        dm.setup("test")
    assert len(dm.missing_videos) == 1 and truth["missing"][0] in dm.missing_videos[0]
    assert len(dm.datasets["test"]) == 2
