"""Something-Something v1 / v2 as released, left / right flips, and the proposals file of STRG."""
from __future__ import annotations

import json

import pytest
import torch

from mmzoo.data.proposals import ProposalFile, propose, read_proposals, write_proposals
from mmzoo.data.something_something import SomethingSomethingDataModule, flip_label_map
from mmzoo.data.synthetic.something_something import (
    TEMPLATES,
    write_something_something,
)
from mmzoo.data.video_dataset import AnnotationError, LayoutError
from mmzoo.errors import DataError

_TINY = {"num_frames": 4, "stride": 2, "crop_size": 32, "train_scale": (32, 40), "test_scale": 32, "test_crop_size": 32,
             "batch_size": 2, "num_workers": 0}


@pytest.fixture(scope="module")
def v1(tmp_path_factory):
    root = tmp_path_factory.mktemp("sth") / "v1"
    return write_something_something(root, "v1", num_videos={"train": 4, "validation": 2, "test": 1},
                                     labels={"train": [0, 7, 4, 2], "validation": [1, 3]}, num_frames=12)


@pytest.fixture(scope="module")
def v2(tmp_path_factory):
    root = tmp_path_factory.mktemp("sth") / "v2"
    return write_something_something(root, "v2", num_videos={"train": 2, "validation": 1, "test": 1},
                                     labels={"train": [0, 5], "validation": [3]}, num_frames=12)


@pytest.mark.parametrize("which", ["v1", "v2"])
def test_reads_both_releases(which, v1, v2):
    d = {"v1": v1, "v2": v2}[which]
    dm = SomethingSomethingDataModule(d["root"], **_TINY)
    dm.setup("fit")
    assert dm.version == which and dm.num_classes == 174 and dm.classes[:len(TEMPLATES)] == TEMPLATES
    train = dm.datasets["train"]
    assert [r.meta["id"] for r in train.records] == [r["id"] for r in d["rows"]["train"]]
    assert [r.targets["label"] for r in train.records] == [r["label"] for r in d["rows"]["train"]]
    s = dm.datasets["val"][0]
    assert s["video"].shape == (3, 4, 32, 32) and s["label"] == d["rows"]["validation"][0]["label"]
    # frame t carries grey level 8 t in its top-left block: the test clip's frames are decoded in order
    assert s["meta"]["frame_indices"] == sorted(s["meta"]["frame_indices"])


def test_v1_errors_name_file_and_line(tmp_path):
    d = write_something_something(tmp_path, "v1", num_videos={"train": 2, "validation": 1}, num_frames=4)
    csv = tmp_path / "something-something-v1-train.csv"
    rows = csv.read_text().splitlines()
    csv.write_text(rows[0] + "\n" + rows[1].split(";")[0] + ";Juggling something\n")
    with pytest.raises(AnnotationError, match=r"v1-train.csv:2: line 2: template 'Juggling something'"):
        SomethingSomethingDataModule(str(tmp_path), **_TINY).setup("fit")
    csv.write_text(rows[0] + "\n" + rows[0] + "\n")
    with pytest.raises(AnnotationError, match=r"train.csv:2: .*already listed \(line 1\)"):
        SomethingSomethingDataModule(str(tmp_path), **_TINY).setup("fit")
    csv.write_text("\n".join(rows) + "\n")
    gone = d["rows"]["train"][1]["id"]
    folder = tmp_path / "20bn-something-something-v1" / gone
    folder.rename(folder.with_name("moved"))
    with pytest.raises(LayoutError, match="1 video"):
        SomethingSomethingDataModule(str(tmp_path), **_TINY).setup("fit")
    dm = SomethingSomethingDataModule(str(tmp_path), missing_videos="skip", **_TINY)
    with pytest.warns(UserWarning, match="missing and skipped"):
        dm.setup("fit")
    assert len(dm.missing_videos) == 1 and gone in dm.missing_videos[0]


def test_v2_unknown_template_is_an_error(tmp_path):
    write_something_something(tmp_path, "v2", num_videos={"train": 1, "validation": 1}, num_frames=4)
    path = tmp_path / "something-something-v2-train.json"
    items = json.loads(path.read_text())
    items[0]["template"] = "Juggling [something]"
    path.write_text(json.dumps(items))
    with pytest.raises(AnnotationError, match="entry 0: template 'Juggling something'"):
        SomethingSomethingDataModule(str(tmp_path), **_TINY).setup("fit")


def test_flip_label_map_by_hand():
    m = flip_label_map(TEMPLATES)
    assert m[:8] == [1, 0, 3, 2, 4, 5, 6, None]


def _left_coloured(video: torch.Tensor) -> bool:
    """The synthetic clips colour the left half and leave the right half black."""
    x = video[:, 0]
    w = x.shape[-1]
    return bool(x[..., : w // 4].mean() > x[..., -w // 4:].mean())


def test_default_augmentation_never_flips(v1):
    dm = SomethingSomethingDataModule(v1["root"], **_TINY)
    dm.setup("fit")
    torch.manual_seed(0)
    for _ in range(3):
        for i in range(len(dm.datasets["train"])):
            s = dm.datasets["train"][i]
            assert not s["meta"]["flipped"] and _left_coloured(s["video"])
            assert s["label"] == v1["rows"]["train"][i]["label"]


def test_flip_swaps_left_right_labels_or_is_undone(v1):
    dm = SomethingSomethingDataModule(v1["root"], flip=True, **_TINY)
    dm.setup("fit")
    ds = dm.datasets["train"]
    torch.manual_seed(0)
    seen = {0: set(), 7: set(), 4: set()}
    for _ in range(12):
        for i, row in enumerate(v1["rows"]["train"]):
            s = ds[i]
            flipped = s["meta"]["flipped"]
            assert _left_coloured(s["video"]) != flipped  # pixels and meta agree
            expected = flip_label_map(dm.classes)[row["label"]] if flipped else row["label"]
            assert s["label"] == expected
            if row["label"] in seen:
                seen[row["label"]].add(flipped)
    assert seen[0] == {True, False}  # "left to right" is flipped into "right to left" (label 1)
    assert seen[4] == {True, False}
    assert seen[7] == {False}  # a side without a mirrored template: never returned flipped


def _box_file(tmp_path, rows, layout, numbers):
    """Every frame: box 0 covers the coloured left half, box 1 is padding."""
    videos = {}
    for r in rows:
        boxes = torch.zeros(len(numbers), 2, 4)
        boxes[:, 0] = torch.tensor([0.0, 0.0, 0.5, 1.0])
        videos[r["id"]] = (torch.tensor(numbers), boxes)
    return write_proposals(tmp_path / "boxes.safetensors", ProposalFile(videos, "something-something", layout, 2))


def test_proposal_boxes_follow_scale_crop_and_flip(v1, tmp_path):
    rows = v1["rows"]["train"] + v1["rows"]["validation"]
    path = _box_file(tmp_path, rows, "frames", list(range(1, 13)))
    dm = SomethingSomethingDataModule(v1["root"], flip=True, proposals=str(path), proposal_frames=2,
                                      **{**_TINY, "train_scale": (40, 56)})
    dm.setup("fit")
    torch.manual_seed(1)
    flips = set()
    for _ in range(6):
        for i in range(len(dm.datasets["train"])):
            s = dm.datasets["train"][i]
            boxes, video = s["boxes"], s["video"]
            assert boxes.shape == (2, 2, 4) and boxes[:, 1].abs().sum() == 0  # padding stays padding
            # coloured columns of the first frame: where the box must be
            col = (video[:, 0] - video[:, 0, :, -1:].mean()).abs().mean(dim=(0, 1)) > 0.5
            if video[:, 0, :, 0].mean() < video[:, 0, :, -1].mean():
                col = (video[:, 0] - video[:, 0, :, :1].mean()).abs().mean(dim=(0, 1)) > 0.5
            xs = torch.nonzero(col).flatten()
            flips.add(s["meta"]["flipped"])
            if len(xs) == 0:  # the crop missed the coloured half: the box is cut to nothing
                assert boxes[0, 0].abs().sum() == 0
                continue
            x1, x2 = boxes[0, 0, 0].item(), boxes[0, 0, 2].item()
            assert abs(x1 - xs.min().item()) <= 1.5 and abs(x2 - (xs.max().item() + 1)) <= 1.5
            assert boxes[0, 0, 1] == 0 and boxes[0, 0, 3] == 32
    assert flips == {True, False}


def test_proposals_file_round_trip_and_nearest_frame(tmp_path):
    boxes = torch.rand(3, 2, 4)
    pf = ProposalFile({"abc": (torch.tensor([0, 4, 8]), boxes)}, "charades", "video", 2, 4, "hand")
    read = read_proposals(write_proposals(tmp_path / "p.safetensors", pf))
    assert read.layout == "video" and read.proposals_per_frame == 2 and read.frame_step == 4
    got = read.boxes_at("abc", [0, 1, 3, 5, 7, 20])
    assert torch.equal(got, boxes[[0, 0, 1, 1, 2, 2]])
    with pytest.raises(DataError, match="no proposals for video 'xyz'"):
        read.boxes_at("xyz", [0])
    bad = tmp_path / "bad.safetensors"
    from safetensors.torch import save_file

    save_file({"abc/frames": torch.tensor([0])}, str(bad), metadata={"format": "something-else"})
    with pytest.raises(DataError, match="format is 'something-else'"):
        read_proposals(bad)
    with pytest.raises(ValueError, match="increasing"):
        write_proposals(tmp_path / "x.safetensors", ProposalFile({"a": (torch.tensor([2, 1]), torch.zeros(2, 2, 4))},
                                                                  "d", "video", 2))


def test_propose_runs_the_rpn_over_every_frame(v2, tmp_path):
    dm = SomethingSomethingDataModule(v2["root"], **_TINY)
    torch.manual_seed(0)
    path = propose(dm, tmp_path / "p.safetensors", splits=("val",), proposals_per_frame=3, frame_step=5,
                   pretrained=False, min_size=48, max_size=64, progress=False)
    pf = read_proposals(path)
    assert set(pf.videos) == {r["id"] for r in v2["rows"]["validation"]}
    frames, boxes = pf.videos[v2["rows"]["validation"][0]["id"]]
    assert frames.tolist() == [0, 5, 10] and boxes.shape == (3, 3, 4)
    assert pf.layout == "video" and pf.dataset == "something-something"
    real = boxes[(boxes[..., 2] > boxes[..., 0])]
    assert len(real) > 0 and float(real.min()) >= 0.0 and float(real.max()) <= 1.0 + 1e-6
    # a file computed on the v2 videos is refused for the v1 frame layout
    dm1 = SomethingSomethingDataModule(v2["root"], proposals=str(path), **_TINY)
    dm1._validate_layout()
    with pytest.raises(DataError, match="'video' layout"):
        from mmzoo.data.something_something import SomethingClipDataset

        ds = SomethingClipDataset(dm1._records("val"), dm1.eval_cfg, flip_map=[0] * 174)
        ds.attach_proposals(pf, 2, None, "frames")
