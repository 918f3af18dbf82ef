"""UCF101 read as distributed (UCF-101/<Class>/*.avi + ucfTrainTestlist/), every split, clear
errors naming file and line for broken split files, multi-view test batches."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from mmzoo.data import get_datamodule
from mmzoo.data.synthetic.ucf101 import write_ucf101
from mmzoo.data.ucf101 import UCF101DataModule
from mmzoo.data.video_dataset import AnnotationError, LayoutError

TINY = {"num_frames": 4, "stride": 1, "crop_size": 32, "train_scale": (32, 32), "test_scale": 32, "test_crop_size": 32,
            "num_clips": 2, "num_crops": 1, "batch_size": 3, "num_workers": 0}


@pytest.fixture(scope="module")
def ucf(tmp_path_factory):
    return write_ucf101(tmp_path_factory.mktemp("ucf") / "UCF101", groups=3, clips_per_group=1, num_frames=6)


@pytest.fixture
def copy(ucf, tmp_path):
    root = tmp_path / "UCF101"
    shutil.copytree(ucf["root"], root)
    return root


def _lists(root: Path) -> Path:
    return root / "ucfTrainTestlist"


@pytest.mark.parametrize("split", [1, 2, 3])
def test_every_split_reads_the_official_lists(ucf, split):
    dm = UCF101DataModule(ucf["root"], split=split, **TINY)
    dm.setup()
    assert get_datamodule("ucf101") is UCF101DataModule
    assert dm.classes == list(ucf["classes"]) and dm.num_classes == 3
    train = [r.meta["video_id"] for r in dm.datasets["train"].records]
    test = [r.meta["video_id"] for r in dm.datasets["test"].records]
    assert train == ucf["splits"][split]["train"] and test == ucf["splits"][split]["test"]
    assert {r.meta["group"] for r in dm.datasets["test"].records} == {split}
    # labels come from classInd (1-based) minus one, folders and the release's file-name spelling
    for r in dm.datasets["train"].records:
        assert r.targets["label"] == ucf["classes"].index(r.meta["video_id"].split("/")[0])
    assert any("v_HandStandPushups_" in v for v in train)


def test_release_line_ends_are_crlf(ucf):
    assert b"\r\n" in (_lists(Path(ucf["root"])) / "trainlist01.txt").read_bytes()


def test_batches_carry_labels_and_test_views_share_video_index(ucf):
    dm = UCF101DataModule(ucf["root"], split=1, **TINY)
    dm.setup("fit")
    b = dm.finish_batch(next(iter(dm.train_dataloader())))
    assert b["video"].shape == (3, 3, 4, 32, 32) and b["label"].dtype == torch.int64
    dm.setup("test")
    views = [v for batch in dm.test_dataloader() for v in zip(batch["video_index"].tolist(), batch["label"].tolist())]
    assert len(views) == 2 * 3  # 3 test videos x 2 clips
    assert sorted(views) == sorted([(i, lab) for i, lab in enumerate([0, 1, 2]) for _ in range(2)])
    assert dm.val_split == "test"  # no validation list in the release


@pytest.mark.parametrize("edit, where, message", [
    (lambda t: t.replace("1 ApplyEyeMakeup", "1 ApplyEyeMakeup extra"), ("classInd.txt", 1), "expected '<index> <ClassName>'"),
    (lambda t: t.replace("2 HandstandPushups", "3 HandstandPushups"), ("classInd.txt", 2), "class index 3, expected 2"),
])
def test_broken_class_index_names_file_and_line(copy, edit, where, message):
    path = _lists(copy) / where[0]
    path.write_bytes(edit(path.read_bytes().decode()).encode())
    with pytest.raises(AnnotationError, match=rf"{where[0]}:{where[1]}: .*{message}"):
        UCF101DataModule(str(copy), split=1, **TINY).setup()


def _edit_line(path: Path, line: int, new: str) -> None:
    lines = path.read_bytes().decode().split("\r\n")
    lines[line - 1] = new
    path.write_bytes("\r\n".join(lines).encode())


@pytest.mark.parametrize("name, line, new, message", [
    ("trainlist01.txt", 2, "ApplyEyeMakeup/v_ApplyEyeMakeup_g03_c01.avi 2", "label 2, but classInd.txt gives 'ApplyEyeMakeup' index 1"),
    ("trainlist01.txt", 1, "Juggling/v_Juggling_g02_c01.avi 1", "class folder 'Juggling' is not in classInd.txt"),
    ("trainlist01.txt", 1, "ApplyEyeMakeup/v_ApplyEyeMakeup_g02_c01.avi", "expected '<Class>/<video>.avi <label>'"),
    ("trainlist01.txt", 1, "ApplyEyeMakeup/v_YoYo_g02_c01.avi 1", "filed under class 'ApplyEyeMakeup'"),
    ("trainlist01.txt", 2, "ApplyEyeMakeup/v_ApplyEyeMakeup_g02_c01.avi 1", "already listed on line 1"),
    ("testlist01.txt", 1, "ApplyEyeMakeup/clip.avi", "does not match v_<Class>_gXX_cYY.avi"),
])
def test_broken_split_lists_name_file_and_line(copy, name, line, new, message):
    _edit_line(_lists(copy) / name, line, new)
    dm = UCF101DataModule(str(copy), split=1, **TINY)
    with pytest.raises(AnnotationError, match=rf"{name}:{line}: .*{message}"):
        dm.setup()


def test_a_video_in_both_lists_of_a_split(copy):
    _edit_line(_lists(copy) / "testlist01.txt", 1, "ApplyEyeMakeup/v_ApplyEyeMakeup_g02_c01.avi")
    with pytest.raises(AnnotationError, match=r"trainlist01.txt:1: .* is also in testlist01.txt \(line 1\)"):
        UCF101DataModule(str(copy), split=1, **TINY).setup()


def test_missing_video_is_an_error_or_an_explicit_counted_skip(copy):
    (copy / "UCF-101" / "YoYo" / "v_YoYo_g02_c01.avi").unlink()
    with pytest.raises(LayoutError, match=r"1 video\(s\) of UCF101 trainlist01 are missing.*trainlist01.txt:5"):
        UCF101DataModule(str(copy), split=1, **TINY).setup()
    dm = UCF101DataModule(str(copy), split=1, missing_videos="skip", **TINY)
    with pytest.warns(UserWarning, match="1 listed video"):
        dm.setup("fit")
    assert len(dm.datasets["train"]) == 5 and len(dm.missing_videos) == 1


def test_missing_split_files_and_bad_split_argument(copy):
    (_lists(copy) / "testlist02.txt").unlink()
    with pytest.raises(LayoutError, match="testlist02.txt"):
        UCF101DataModule(str(copy), split=2, **TINY).setup()
    with pytest.raises(ValueError, match="--data.split must be 1, 2 or 3"):
        UCF101DataModule(str(copy), split=4, **TINY)
