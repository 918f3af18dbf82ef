"""The COCO DataModule on a tiny COCO in the official layout (instances_*.json + JPEG folders):
targets (contiguous labels of non-contiguous category ids, xyxy boxes, pycocotools masks, flips,
crowd handling) and errors naming the file and the image / annotation id."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO

from mmzoo.data.coco import CocoDataModule
from mmzoo.data.synthetic.coco import write_coco
from mmzoo.errors import DataError


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    return write_coco(tmp_path_factory.mktemp("coco"), num_images={"train": 4, "val": 2}, crowd=True, seed=2)


def _train_items(coco, flip):
    dm = CocoDataModule(root=coco["root"], batch_size=2, num_workers=0, flip=flip)
    dm.setup("fit")
    return dm, [dm.datasets["train"][i] for i in range(len(dm.datasets["train"]))]


def test_targets_follow_the_annotation_file(coco):
    dm, items = _train_items(coco, flip=False)
    assert dm.category_ids == [1, 3, 7] and dm.num_classes == 3
    gt = COCO(coco["json"]["train"])
    crowd = 0
    for item in items:
        anns = [a for a in gt.imgToAnns[item["image_id"]] if not a["iscrowd"]]
        crowd += len(gt.imgToAnns[item["image_id"]]) - len(anns)
        assert item["image"].shape == (3, 48, 64) and 0 <= item["image"].min() and item["image"].max() <= 1
        assert item["labels"].tolist() == [[1, 3, 7].index(a["category_id"]) + 1 for a in anns]
        want = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)], dtype=torch.float32)
        assert torch.equal(item["boxes"], want)
        assert item["masks"].dtype == torch.uint8
        for m, a in zip(item["masks"], anns):
            assert np.array_equal(m.numpy(), gt.annToMask(a))
    assert crowd == 1 and dm.counts["train"]["crowd_annotations"] == 1
    batch = next(iter(dm.val_dataloader()))
    assert set(batch) == {"image", "image_id", "meta"} and batch["image_id"].dtype == torch.long
    assert isinstance(batch["image"], list) and len(batch["image"]) == 2


def test_flips_move_boxes_and_masks_together(coco):
    torch.manual_seed(0)
    _, plain = _train_items(coco, flip=False)
    flipped = 0
    for _ in range(3):
        _, items = _train_items(coco, flip=True)
        for a, b in zip(plain, items):
            if not b["meta"]["flipped"]:
                assert torch.equal(a["boxes"], b["boxes"])
                continue
            flipped += 1
            assert torch.equal(b["image"], a["image"].flip(-1)) and torch.equal(b["masks"], a["masks"].flip(-1))
            w = a["image"].shape[-1]
            assert torch.equal(b["boxes"][:, [0, 2]], w - a["boxes"][:, [2, 0]])
            for m, box in zip(b["masks"], b["boxes"]):  # the mask lies inside its flipped box
                _, xs = m.nonzero(as_tuple=True)
                assert xs.min() >= box[0] - 1 and xs.max() <= box[2]
    assert flipped


def _copy(coco, tmp_path) -> Path:
    dst = tmp_path / "coco"
    shutil.copytree(coco["root"], dst)
    return dst


def _edit(path: Path, fn) -> None:
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


def test_bad_annotations_name_the_file_and_record(coco, tmp_path):
    dst = _copy(coco, tmp_path)
    ann = dst / "annotations" / "instances_train2017.json"
    first = coco["annotations"]["train"][0]

    def setup():
        CocoDataModule(root=str(dst), num_workers=0).setup("fit")

    _edit(ann, lambda d: d["annotations"][0].update(category_id=99))
    with pytest.raises(DataError, match=rf"instances_train2017.json: annotation id {first['id']}: unknown category id 99"):
        setup()
    shutil.copy(coco["json"]["train"], ann)
    _edit(ann, lambda d: d["annotations"][0].update(bbox=[50, 10, 30, 10]))  # x + w = 80 > 64
    with pytest.raises(DataError, match=rf"annotation id {first['id']}: bbox \[50, 10, 30, 10\] lies outside image id"):
        setup()
    shutil.copy(coco["json"]["train"], ann)
    _edit(ann, lambda d: d["annotations"][0].update(image_id=12345))
    with pytest.raises(DataError, match=rf"annotation id {first['id']}: image id 12345 is not in 'images'"):
        setup()
    shutil.copy(coco["json"]["train"], ann)
    ann.write_text("{not json")
    with pytest.raises(DataError, match="instances_train2017.json: not valid JSON"):
        setup()
    shutil.copy(coco["json"]["train"], ann)
    _edit(ann, lambda d: d["annotations"][0].update(bbox=[5, 5, 0, 4]))
    dm = CocoDataModule(root=str(dst), num_workers=0)
    dm.setup("fit")
    assert dm.counts["train"]["degenerate_boxes"] == 1
    with pytest.raises(DataError, match=rf"annotation id {first['id']} .*degenerate bbox"):
        CocoDataModule(root=str(dst), num_workers=0, degenerate_boxes="error").setup("fit")


def test_missing_and_mismatched_images(coco, tmp_path):
    dst = _copy(coco, tmp_path)
    im = coco["images"]["train"][1]
    (dst / "train2017" / im["file_name"]).unlink()
    with pytest.raises(DataError, match=rf"image id {im['id']}: image file .*train2017/{im['file_name']} not found"):
        CocoDataModule(root=str(dst), num_workers=0).setup("fit")
    with pytest.warns(UserWarning, match="1 image file"):
        dm = CocoDataModule(root=str(dst), num_workers=0, missing_images="skip")
        dm.setup("fit")
    assert len(dm.missing) == 1 and im["id"] not in dm.datasets["train"].ids
    other = coco["images"]["train"][2]
    _edit(dst / "annotations" / "instances_train2017.json", lambda d: d["images"][2].update(width=100))
    dm = CocoDataModule(root=str(dst), num_workers=0, missing_images="skip")
    dm.setup("fit")
    with pytest.raises(DataError, match=rf"{other['file_name']}: image is 64x48, the annotation file says 100x48"):
        dm.datasets["train"][dm.datasets["train"].ids.index(other["id"])]
    with pytest.raises(DataError, match="COCO root not found"):
        CocoDataModule(root=str(tmp_path / "none")).setup("fit")
