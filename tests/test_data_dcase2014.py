"""DCASE scene classification read as distributed (scenes_stereo/*.wav, fold lists, test set)."""
from __future__ import annotations

import shutil

import pytest

from mmzoo.data.dcase2014 import DCASE2014DataModule, stratified_fold
from mmzoo.data.synthetic.dcase2014 import write_dcase2014
from mmzoo.data.synthetic.esc50 import class_tone, write_wav
from mmzoo.data.video_dataset import AnnotationError, LayoutError


@pytest.fixture(scope="module")
def dc(tmp_path_factory):
    return write_dcase2014(tmp_path_factory.mktemp("dcase"), per_scene=5, seconds=2.0, test_per_scene=1,
                           fold_lists=True)


def test_stratified_folds_by_hand():
    names = [f"bus{n:02d}.wav" for n in (1, 3, 5, 7, 9, 11, 13, 15, 17, 19)] + ["park02.wav", "park04.wav"]
    folds = stratified_fold(names)
    assert [folds[f"bus{n:02d}.wav"] for n in (1, 3, 5, 7, 9, 11)] == [1, 2, 3, 4, 5, 1]
    assert folds["park02.wav"] == 1 and folds["park04.wav"] == 2


def test_stratified_protocol(dc):
    dm = DCASE2014DataModule(dc["root"], folds="stratified", fold=3, num_windows=2, num_workers=0)
    dm.setup()
    assert dm.classes == ["bus", "office", "park"] and not dm.use_lists
    test = [r.meta["video_id"] for r in dm.datasets["test"].records]
    assert test == ["bus05.wav", "office05.wav", "park05.wav"]  # the 3rd recording of each scene
    assert len(dm.datasets["train"]) == 12 and len(dm.datasets["test"]) == 3 * 2
    item = dm.datasets["test"][3]
    assert item["label"] == 1 and item["audio"].shape == (48000,) and item["meta"]["start_sec"] == pytest.approx(1.0)


def test_fold_lists_read_when_present(dc):
    dm = DCASE2014DataModule(dc["root"], fold=2, num_workers=0)
    dm.setup("test")
    _train, test = dc["lists"][2]
    assert dm.use_lists
    assert [r.meta["video_id"] for r in dm.datasets["test"].records] == test
    assert dm.datasets["test"].records[0].meta["line"] == 1


def test_challenge_protocol_uses_test_set(dc):
    dm = DCASE2014DataModule(dc["root"], protocol="challenge", num_workers=0)
    dm.setup()
    assert len(dm.datasets["train"].records) == 15
    assert sorted(r.meta["video_id"] for r in dm.datasets["test"].records) == ["bus01.wav", "office01.wav", "park01.wav"]


def _copy(dc, tmp_path):
    root = tmp_path / "dc"
    shutil.copytree(dc["root"], root)
    return root


def test_broken_list_lines(dc, tmp_path):
    root = _copy(dc, tmp_path)
    lst = root / "evaluation_setup" / "fold1_evaluate.txt"
    lines = lst.read_text().splitlines()
    lines[1] = lines[1].split("\t")[0]  # no scene column
    lst.write_text("\n".join(lines) + "\n")
    with pytest.raises(AnnotationError, match=r"fold1_evaluate\.txt:2: expected '<audio path><TAB><scene>'"):
        DCASE2014DataModule(str(root), num_workers=0).setup("test")
    lines[1] = "scenes_stereo/bus03.wav\tpark"
    lst.write_text("\n".join(lines) + "\n")
    with pytest.raises(AnnotationError, match=r"fold1_evaluate\.txt:2: scene 'park' disagrees"):
        DCASE2014DataModule(str(root), num_workers=0).setup("test")


def test_train_test_overlap_and_missing(dc, tmp_path):
    root = _copy(dc, tmp_path)
    ev = root / "evaluation_setup" / "fold1_evaluate.txt"
    tr = root / "evaluation_setup" / "fold1_train.txt"
    tr.write_text(tr.read_text() + ev.read_text().splitlines()[0] + "\n")
    with pytest.raises(AnnotationError, match=r"fold1_evaluate\.txt:1: .* is also in fold1_train\.txt"):
        DCASE2014DataModule(str(root), num_workers=0).setup("test")
    root2 = _copy(dc, tmp_path / "b")
    first = (root2 / "evaluation_setup" / "fold1_evaluate.txt").read_text().split("\t")[0]
    (root2 / first).unlink()
    with pytest.raises(LayoutError, match=r"1 video\(s\) of DCASE fold 1 test are missing"):
        DCASE2014DataModule(str(root2), num_workers=0).setup("test")


def test_bad_file_name(dc, tmp_path):
    root = _copy(dc, tmp_path)
    write_wav(root / "scenes_stereo" / "bus_a.wav", class_tone(0, 1.0, 8000), 8000)
    with pytest.raises(LayoutError, match=r"bus_a\.wav: DCASE scene file names are <scene><NN>\.wav"):
        DCASE2014DataModule(str(root), folds="stratified", num_workers=0).setup("test")
