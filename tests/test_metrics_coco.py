"""CocoEvaluation against pycocotools run directly on the same hand-made detections, and its glue
(category id mapping, image ids, score order, mask RLE, partial and empty evaluation, state
merging across ranks)."""
from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_util
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mmzoo.data.coco import decode_masks
from mmzoo.data.synthetic.coco import write_coco
from mmzoo.metrics.coco import COCO_STATS, CocoEvaluation, encode_mask


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    return write_coco(tmp_path_factory.mktemp("coco"), num_images={"val": 4}, crowd=True, seed=11)


def _predictions(coco, seed=0):
    """Per image: detections derived from the ground truth (jittered boxes, shifted masks, some
    false positives and a duplicate with a tied score), as labels 1..K of the sorted category ids."""
    rng = np.random.default_rng(seed)
    cats = sorted(c["id"] for c in coco["categories"])
    preds = {}
    for im in coco["images"]["val"]:
        h, w = im["height"], im["width"]
        gts = [a for a in coco["annotations"]["val"] if a["image_id"] == im["id"] and not a["iscrowd"]]
        boxes, labels, scores, masks = [], [], [], []
        for k, a in enumerate(gts):
            x, y, bw, bh = a["bbox"]
            d = rng.integers(-2, 3, 4)
            boxes.append([x + d[0], y + d[1], x + bw + d[2], y + bh + d[3]])
            labels.append(cats.index(a["category_id"]) + 1 if k % 3 else (cats.index(a["category_id"]) + 1) % len(cats) + 1)
            scores.append(float(rng.choice([0.9, 0.7, 0.5])))
            m = decode_masks([a["segmentation"]], h, w)[0].float()
            masks.append(torch.roll(m, shifts=int(d[0]), dims=1) * 0.8 + 0.1)  # probabilities around 0.5
        boxes.append([1, 1, 20, 15]); labels.append(1); scores.append(0.9)  # false positive tied with a true one
        masks.append(torch.zeros(h, w).index_fill_(0, torch.arange(1, 15), 0.7))
        preds[im["id"]] = {"boxes": torch.tensor(boxes, dtype=torch.float32), "labels": torch.tensor(labels),
                           "scores": torch.tensor(scores), "masks": torch.stack(masks)[:, None]}
    return preds, cats


def _reference(coco, preds, cats, iou_type, img_ids=None):
    """pycocotools run directly on the same detections, written as the evaluation server wants."""
    res = []
    for img, p in preds.items():
        for b, lab, s, m in zip(p["boxes"].tolist(), p["labels"].tolist(), p["scores"].tolist(), p["masks"][:, 0]):
            r = {"image_id": img, "category_id": cats[lab - 1], "score": s}
            if iou_type == "bbox":
                r["bbox"] = [b[0], b[1], b[2] - b[0], b[3] - b[1]]
            else:
                rle = mask_util.encode(np.asfortranarray((m.numpy() >= 0.5).astype(np.uint8)))
                r["segmentation"] = {"size": rle["size"], "counts": rle["counts"].decode()}
            res.append(r)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(coco["json"]["val"])
        ev = COCOeval(gt, gt.loadRes(json.loads(json.dumps(res))), iou_type)
        ev.params.imgIds = sorted(img_ids or preds)
        ev.evaluate(); ev.accumulate(); ev.summarize()
    return ev.stats


def test_equals_pycocotools_run_directly(coco):
    preds, cats = _predictions(coco)
    metric = CocoEvaluation(coco["json"]["val"], cats)
    ids = list(preds)[::-1]  # images in another order, in two batches
    metric.update([preds[i] for i in ids[:2]], torch.tensor(ids[:2]))
    metric.update([preds[i] for i in ids[2:]], ids[2:])
    out = metric.compute()
    for iou_type in ("bbox", "segm"):
        ref = _reference(coco, preds, cats, iou_type)
        assert ref[0] > 0.1, "the hand-made detections should score"
        for name, v in zip(COCO_STATS, ref):
            assert float(out[f"{iou_type}/{name}"]) == pytest.approx(v * 100, abs=1e-9), (iou_type, name)
    assert "Average Precision" in metric.last_summary


def test_glue_category_image_ids_order_and_rle(coco):
    preds, cats = _predictions(coco)
    img = next(iter(preds))
    metric = CocoEvaluation(coco["json"]["val"], cats)
    metric.update([preds[img]], [img])
    images, bbox, segm = metric.results()
    p = preds[img]
    assert images == [img]
    assert [r["image_id"] for r in bbox] == [img] * len(p["labels"])
    assert [r["category_id"] for r in bbox] == [cats[k - 1] for k in p["labels"].tolist()]  # 1..K -> COCO ids
    assert [r["score"] for r in bbox] == pytest.approx(p["scores"].tolist())  # the model's order, ties included
    x1, y1, x2, y2 = p["boxes"][0].tolist()
    assert bbox[0]["bbox"] == pytest.approx([x1, y1, x2 - x1, y2 - y1])
    for r, m in zip(segm, p["masks"][:, 0]):
        assert np.array_equal(mask_util.decode(r["segmentation"]), (m >= 0.5).numpy().astype(np.uint8))
        assert r["segmentation"] == encode_mask((m >= 0.5).numpy())
    # a partial evaluation scores only the images seen
    got = metric.compute()["bbox/AP"]
    assert float(got) == pytest.approx(100 * _reference(coco, {img: p}, cats, "bbox")[0], abs=1e-9)


def test_label_mapping_matters_and_zero_detections_score_zero(coco):
    preds, cats = _predictions(coco)
    right = CocoEvaluation(coco["json"]["val"], cats, iou_types=("bbox",))
    wrong = CocoEvaluation(coco["json"]["val"], cats[::-1], iou_types=("bbox",))
    for m in (right, wrong):
        m.update(list(preds.values()), list(preds))
    assert float(wrong.compute()["bbox/AP"]) < float(right.compute()["bbox/AP"])
    empty = CocoEvaluation(coco["json"]["val"], cats)
    none = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long), "scores": torch.zeros(0),
            "masks": torch.zeros(0, 1, 48, 64)}  # fmt: skip
    empty.update([none, none], list(preds)[:2])
    out = empty.compute()
    assert float(out["bbox/AP"]) == 0.0 and float(out["segm/AR100"]) == 0.0
    with pytest.raises(ValueError, match="label 4 outside 1..3"):
        bad = CocoEvaluation(coco["json"]["val"], cats, iou_types=("bbox",))
        bad.update([{**none, "boxes": torch.ones(1, 4), "labels": torch.tensor([4]), "scores": torch.ones(1)}], [1])
        bad.compute()


def test_states_merged_across_ranks_equal_one_pass(coco):
    preds, cats = _predictions(coco)
    ids = list(preds)
    whole = CocoEvaluation(coco["json"]["val"], cats)
    whole.update([preds[i] for i in ids], ids)
    rank0, rank1 = CocoEvaluation(coco["json"]["val"], cats), CocoEvaluation(coco["json"]["val"], cats)
    rank0.update([preds[i] for i in ids[:1]], ids[:1])
    rank1.update([preds[i] for i in ids[1:]], ids[1:])
    rank0.merge_state(rank1)  # what the "cat" reduction does across processes
    a, b = whole.compute(), rank0.compute()
    assert all(float(a[k]) == float(b[k]) for k in a)
