"""A tiny COCO 2017 instances dataset in the official layout, read back by ``CocoDataModule``.

:func:`write_coco` writes ``root/annotations/instances_{train,val}2017.json`` and the JPEGs of
``root/train2017/`` / ``root/val2017/`` (``%012d.jpg``, as released). Each image is a grey
background with 1-3 filled axis-aligned rectangles, one colour per category, so a detector can
learn them. Every rectangle is an annotation with a polygon ``segmentation`` (its four corners),
``area``, ``bbox`` ``[x, y, w, h]`` and ``iscrowd=0``; with ``crowd=True`` the first image of
each split also gets a crowd annotation as an uncompressed RLE (``{"counts": [...], "size": [h, w]}``).
Category ids are deliberately not contiguous (``CATEGORY_IDS``: 1, 3, 7 by default), as COCO's
1..90 with gaps are not.
"""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CATEGORY_IDS", "COLOURS", "write_coco"]

CATEGORY_IDS = (1, 3, 7)
COLOURS = ((220, 40, 40), (40, 200, 60), (40, 60, 220), (230, 200, 30), (200, 40, 200))


def _rle_counts(mask: np.ndarray) -> list[int]:
    """Uncompressed COCO RLE counts of a binary mask (column-major runs, starting with zeros)."""
    flat = mask.flatten(order="F").astype(np.uint8)
    counts, cur, run = [], 0, 0
    for v in flat:
        if v == cur:
            run += 1
        else:
            counts.append(run)
            cur, run = int(v), 1
    counts.append(run)
    return counts


def write_coco(
    root: str | Path,
    num_images: dict[str, int] | None = None,
    size: tuple[int, int] = (48, 64),
    category_ids: tuple[int, ...] = CATEGORY_IDS,
    crowd: bool = False,
    seed: int = 0,
) -> dict[str, Any]:
    """Write the dataset; returns ``{"root", "categories", "json": {split: path}, "images": {split:
    [image records]}, "annotations": {split: [annotation records]}}`` (the JSON content).

    Args:
        root: output folder.
        num_images: images per split (``{"train": 4, "val": 2}``).
        size: ``(height, width)`` of every image.
        category_ids: the COCO category ids used (at most ``len(COLOURS)``).
        crowd: add one crowd annotation (uncompressed RLE) to the first image of each split.
    """
    from PIL import Image

    root = Path(root)
    rng = random.Random(seed)
    num_images = dict(num_images or {"train": 4, "val": 2})
    h, w = size
    cats = [{"id": c, "name": f"shape{c}", "supercategory": "shape"} for c in category_ids]
    out: dict[str, Any] = {"root": str(root), "categories": cats, "json": {}, "images": {}, "annotations": {}}
    image_id, ann_id = 1, 1
    for split, n in num_images.items():
        folder = root / f"{split}2017"
        folder.mkdir(parents=True, exist_ok=True)
        images, anns = [], []
        for i in range(n):
            arr = np.full((h, w, 3), 128, dtype=np.uint8)
            name = f"{image_id:012d}.jpg"
            for _ in range(rng.randint(1, 3)):
                k = rng.randrange(len(category_ids))
                bw, bh = rng.randint(w // 5, w // 2), rng.randint(h // 5, h // 2)
                x0, y0 = rng.randint(0, w - bw), rng.randint(0, h - bh)
                arr[y0:y0 + bh, x0:x0 + bw] = COLOURS[k]
                poly = [x0, y0, x0 + bw, y0, x0 + bw, y0 + bh, x0, y0 + bh]
                anns.append({"id": ann_id, "image_id": image_id, "category_id": category_ids[k], "iscrowd": 0,
                             "bbox": [x0, y0, bw, bh], "area": float(bw * bh), "segmentation": [poly]})
                ann_id += 1
            if crowd and i == 0:
                m = np.zeros((h, w), dtype=np.uint8)
                m[: h // 4, : w // 4] = 1
                anns.append({"id": ann_id, "image_id": image_id, "category_id": category_ids[0], "iscrowd": 1,
                             "bbox": [0, 0, w // 4, h // 4], "area": float(m.sum()),
                             "segmentation": {"counts": _rle_counts(m), "size": [h, w]}})
                ann_id += 1
            Image.fromarray(arr).save(folder / name, format="JPEG", quality=95)
            images.append({"id": image_id, "file_name": name, "height": h, "width": w})
            image_id += 1
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        path = root / "annotations" / f"instances_{split}2017.json"
        path.write_text(json.dumps({"info": {"description": "mmzoo synthetic COCO"}, "licenses": [],
                                    "images": images, "annotations": anns, "categories": cats}))
        out["json"][split], out["images"][split], out["annotations"][split] = str(path), images, anns
    return out
