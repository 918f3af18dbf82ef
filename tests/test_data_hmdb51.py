"""HMDB51 read as distributed (<class>/<video>.avi + testTrainMulti_7030_splits/), splits 1-3
with 1 = train, 2 = test, 0 = unused, and errors naming file and line."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mmzoo.data import get_datamodule
from mmzoo.data.hmdb51 import HMDB51DataModule
from mmzoo.data.synthetic.hmdb51 import write_hmdb51
from mmzoo.data.video_dataset import AnnotationError, LayoutError

TINY = {"num_frames": 4, "stride": 1, "crop_size": 32, "train_scale": (32, 32), "test_scale": 32, "test_crop_size": 32,
            "num_clips": 1, "num_crops": 1, "batch_size": 2, "num_workers": 0}


@pytest.fixture(scope="module")
def hmdb(tmp_path_factory):
    return write_hmdb51(tmp_path_factory.mktemp("hmdb") / "hmdb51", per_class=4, num_frames=6)


@pytest.fixture
def copy(hmdb, tmp_path):
    root = tmp_path / "hmdb51"
    shutil.copytree(hmdb["root"], root)
    return root


def _split_file(root: Path, cls: str, k: int) -> Path:
    return root / "testTrainMulti_7030_splits" / f"{cls}_test_split{k}.txt"


@pytest.mark.parametrize("split", [1, 2, 3])
def test_every_split_uses_ids_1_train_2_test_0_unused(hmdb, split):
    dm = HMDB51DataModule(hmdb["root"], split=split, **TINY)
    dm.setup()
    assert get_datamodule("hmdb51") is HMDB51DataModule
    assert dm.classes == sorted(hmdb["classes"]) and dm.num_classes == 3
    got = {s: sorted(r.meta["video_id"] for r in dm.datasets[s].records) for s in ("train", "test")}
    assert got["train"] == sorted(hmdb["splits"][split]["train"])
    assert got["test"] == sorted(hmdb["splits"][split]["test"])
    unused = set(hmdb["splits"][split]["unused"])
    assert unused and not unused & set(got["train"] + got["test"])
    for r in dm.datasets["test"].records:
        assert r.targets["label"] == dm.classes.index(r.meta["video_id"].split("/")[0])
    b = next(iter(dm.test_dataloader()))
    assert b["video"].shape[1:] == (3, 4, 32, 32) and b["label"].tolist() == [r.targets["label"] for r in dm.datasets["test"].records[:2]]


@pytest.mark.parametrize("text, line, message", [
    ("a.avi 1 \nb.avi 3 \n", 2, "split id '3' is not 0 .unused., 1 .train. or 2 .test."),
    ("a.avi\n", 1, "expected '<video>.avi <0|1|2>'"),
    ("a.mp4 1\n", 1, "video name .a.mp4. is not an .avi file"),
    ("a.avi 1\n\na.avi 2\n", 3, "a.avi already listed on line 1"),
])
def test_broken_split_file_names_file_and_line(copy, text, line, message):
    path = _split_file(copy, "cartwheel", 1)
    path.write_text(text)
    with pytest.raises(AnnotationError, match=rf"cartwheel_test_split1.txt:{line}: {message}"):
        HMDB51DataModule(str(copy), split=1, **TINY).setup()


def test_video_listed_in_two_classes(copy):
    other = _split_file(copy, "brush_hair", 1).read_text().splitlines()[0]
    path = _split_file(copy, "ride_bike", 1)
    path.write_text(path.read_text() + other + "\n")
    with pytest.raises(AnnotationError, match=r"ride_bike_test_split1.txt:5: .* is also listed in .*brush_hair_test_split1.txt:1"):
        HMDB51DataModule(str(copy), split=1, **TINY).setup()


def test_layout_errors(copy):
    with pytest.raises(AnnotationError, match="70 / 30 per class"):
        HMDB51DataModule(str(copy), split=3, strict_counts=True, **TINY).setup()
    shutil.move(copy / "ride_bike", copy.parent / "ride_bike")
    with pytest.raises(LayoutError, match="class folder .*ride_bike not found"):
        HMDB51DataModule(str(copy), split=3, **TINY).setup()
    shutil.move(copy.parent / "ride_bike", copy / "ride_bike")
    _split_file(copy, "cartwheel", 2).unlink()
    with pytest.raises(LayoutError, match="split 2 has no file for class.*cartwheel_test_split2.txt"):
        HMDB51DataModule(str(copy), split=1, **TINY).setup()


def test_missing_video_error_or_counted_skip(copy, hmdb):
    victim = hmdb["splits"][1]["train"][0]
    (copy / victim).unlink()
    with pytest.raises(LayoutError, match=r"1 video\(s\) of HMDB51 split 1 \(train\) are missing"):
        HMDB51DataModule(str(copy), split=1, **TINY).setup()
    dm = HMDB51DataModule(str(copy), split=1, missing_videos="skip", **TINY)
    with pytest.warns(UserWarning, match="1 listed video"):
        dm.setup("fit")
    assert len(dm.missing_videos) == 1 and victim not in [r.meta["video_id"] for r in dm.datasets["train"].records]
