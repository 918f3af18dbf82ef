"""The davis2017 DataModule reads DAVIS-2017 as distributed and fails clearly on broken layouts."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mmzoo.data import get_datamodule
from mmzoo.data.synthetic.davis import write_davis
from mmzoo.errors import DataError


@pytest.fixture(scope="module")
def davis(tmp_path_factory):
    root = tmp_path_factory.mktemp("davis")
    ids = write_davis(root, {"val": ["a", "b"], "train": ["c"]}, num_frames=4, num_objects=2)
    return root, ids


def _dm(root, **kw):
    return get_datamodule("davis2017")(root=str(root), num_workers=0, **kw)


def test_reads_sequences_palette_masks_and_resizes_frames(davis):
    root, ids = davis
    mask = Image.open(root / "Annotations" / "480p" / "a" / "00000.png")
    assert mask.mode == "P"  # written as DAVIS distributes them
    dm = _dm(root, frame_size=32, batch_size=4)
    dm.setup("test")
    batches = list(dm.test_dataloader())
    assert [b["video_id"] for b in batches] == [["a"], ["b"]]  # one whole sequence per batch
    b = batches[0]
    assert b["video"].shape == (1, 3, 4, 32, 32)
    assert b["label"].shape == (1, 4, 64, 96)  # annotations keep their resolution
    assert np.array_equal(b["label"][0].numpy(), ids["a"])
    assert sorted(b["label"].unique().tolist()) == [0, 1, 2]
    native = _dm(root, frame_size=None)
    native.setup("test")
    assert native.dataset("test")[0]["video"].shape == (3, 4, 64, 96)
    assert abs(float(native.dataset("test")[0]["video"].mean())) < 1.0  # ImageNet-normalised


def test_missing_split_list_is_named(tmp_path):
    (tmp_path / "JPEGImages").mkdir()
    with pytest.raises(DataError, match=r"ImageSets/2017/val.txt"):
        _dm(tmp_path).setup("test")


def test_missing_annotation_is_named(tmp_path):
    write_davis(tmp_path, {"val": ["a"]}, num_frames=3)
    (tmp_path / "Annotations" / "480p" / "a" / "00002.png").unlink()
    with pytest.raises(DataError, match=r"val.txt:1: sequence 'a'.*missing: \['00002'\]"):
        _dm(tmp_path).setup("test")


def test_rgb_annotation_is_refused_naming_the_file(tmp_path):
    write_davis(tmp_path, {"val": ["a"]}, num_frames=3)
    p = tmp_path / "Annotations" / "480p" / "a" / "00001.png"
    Image.open(p).convert("RGB").save(p)
    dm = _dm(tmp_path)
    dm.setup("test")
    with pytest.raises(DataError, match=r"00001.png: a DAVIS annotation must be a palette"):
        dm.dataset("test")[0]


def test_unknown_sequence_is_named_with_its_line(tmp_path):
    write_davis(tmp_path, {"val": ["a"]}, num_frames=3)
    (tmp_path / "ImageSets" / "2017" / "val.txt").write_text("a\nghost\n")
    with pytest.raises(DataError, match=r"val.txt:2: sequence 'ghost' has no frames"):
        _dm(tmp_path).setup("test")
