"""A tiny ImageNet VID (ILSVRC2015) dataset in the official layout, for tests and the demo.

Written layout (as the ILSVRC2015 VID release; devkit readme Sec. 4)::

    <root>/Data/VID/train/ILSVRC2015_VID_train_0000/ILSVRC2015_train_0000000{k}/%06d.JPEG
    <root>/Data/VID/val/ILSVRC2015_val_0000000{k}/%06d.JPEG
    <root>/Annotations/VID/{train,val}/<same>/%06d.xml      PASCAL-style XML, WNID names
    <root>/ImageSets/VID/train_{1..30}.txt                  "<snippet_id> 1" per positive snippet
    <root>/ImageSets/VID/val.txt                            "<snippet_id>/%06d <frame_index>"

and, with ``det_images > 0``, ImageNet DET still images of the same classes::

    <root>/Data/DET/train/ILSVRC2014_train_0000/ILSVRC2014_train_%08d.JPEG
    <root>/Annotations/DET/train/ILSVRC2014_train_0000/ILSVRC2014_train_%08d.xml
    <root>/ImageSets/DET/train_vid30.txt                    "<image_id> 1"

Each snippet shows solid coloured rectangles (one colour per class) moving linearly over a
textured grey background, so a detector can learn them in a few steps.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence
from xml.sax.saxutils import escape

import numpy as np

from mmzoo.data.media import write_jpeg_frames

__all__ = ["write_vid", "CLASS_COLOURS"]

#: RGB colour drawn for the synthetic objects of the first few classes (1-based VID ids).
CLASS_COLOURS = {1: (220, 30, 30), 2: (30, 200, 30), 3: (40, 60, 230), 4: (230, 220, 30), 5: (200, 40, 220)}


def _xml(folder: str, filename: str, width: int, height: int, objects: Sequence[dict], database: str) -> str:
    parts = [
        "<annotation>",
        f"\t<folder>{escape(folder)}</folder>",
        f"\t<filename>{escape(filename)}</filename>",
        f"\t<source>\n\t\t<database>{database}</database>\n\t</source>",
        f"\t<size>\n\t\t<width>{width}</width>\n\t\t<height>{height}</height>\n\t</size>",
    ]
    for o in objects:
        x1, y1, x2, y2 = o["box"]
        parts.append("\t<object>")
        if "trackid" in o:
            parts.append(f"\t\t<trackid>{o['trackid']}</trackid>")
        parts.append(f"\t\t<name>{o['wnid']}</name>")
        parts.append(
            f"\t\t<bndbox>\n\t\t\t<xmax>{x2}</xmax>\n\t\t\t<xmin>{x1}</xmin>\n\t\t\t<ymax>{y2}</ymax>\n\t\t\t<ymin>{y1}</ymin>\n\t\t</bndbox>")
        if "trackid" in o:
            parts.append("\t\t<occluded>0</occluded>\n\t\t<generated>0</generated>")
        parts.append("\t</object>")
    parts.append("</annotation>")
    return "\n".join(parts) + "\n"


def _draw(rng: np.random.Generator, height: int, width: int, objects: Sequence[dict]) -> np.ndarray:
    img = (110 + rng.integers(-12, 13, size=(height, width, 3))).astype(np.uint8)
    for o in objects:
        x1, y1, x2, y2 = o["box"]
        img[y1 : y2 + 1, x1 : x2 + 1] = CLASS_COLOURS[o["label"]]
    return img


def _snippet_objects(rng, n_frames, height, width, classes, max_objects):
    n_obj = int(rng.integers(1, max_objects + 1))
    tracks = []
    for k in range(n_obj):
        label = int(rng.choice(classes))
        bw = int(rng.integers(width // 5, width // 2.5))
        bh = int(rng.integers(height // 5, height // 2.5))
        x0 = float(rng.uniform(0, width - bw - 1))
        y0 = float(rng.uniform(0, height - bh - 1))
        vx, vy = rng.uniform(-1.5, 1.5, size=2)
        tracks.append((k, label, bw, bh, x0, y0, vx, vy))
    frames = []
    for t in range(n_frames):
        objs = []
        for k, label, bw, bh, x0, y0, vx, vy in tracks:
            x = int(np.clip(x0 + vx * t, 0, width - bw - 1))
            y = int(np.clip(y0 + vy * t, 0, height - bh - 1))
            objs.append({"trackid": k, "label": label, "box": (x, y, x + bw - 1, y + bh - 1)})
        frames.append(objs)
    return frames


def write_vid(
    root: str | Path,
    num_train: int = 3,
    num_val: int = 2,
    num_frames: int = 24,
    size: tuple[int, int] = (64, 96),
    classes: Sequence[int] = (1, 2, 3),
    max_objects: int = 2,
    det_images: int = 0,
    seed: int = 0,
) -> dict:
    """Write the dataset under ``root``; returns the ground truth written, as
    ``{"train": {snippet_id: [[{trackid, label, box}, ...] per frame]}, "val": {...}, "det": {...}}``
    with boxes in the devkit's inclusive pixel coordinates."""
    from mmzoo.data.vid import VID_WNIDS

    root = Path(root)
    rng = np.random.default_rng(seed)
    height, width = size
    truth: dict = {"train": {}, "val": {}, "det": {}}
    per_class: dict[int, list[str]] = {c: [] for c in range(1, 31)}
    for split, n in (("train", num_train), ("val", num_val)):
        for i in range(n):
            if split == "train":
                sid = f"ILSVRC2015_VID_train_0000/ILSVRC2015_train_{i:05d}000"
            else:
                sid = f"ILSVRC2015_val_{i:08d}"
            frames = _snippet_objects(rng, num_frames, height, width, list(classes), max_objects)
            images = np.stack([_draw(rng, height, width, f) for f in frames])
            write_jpeg_frames(root / "Data/VID" / split / sid, images, pattern="{:06d}.JPEG", start=0, quality=95)
            ann = root / "Annotations/VID" / split / sid
            ann.mkdir(parents=True, exist_ok=True)
            for t, objs in enumerate(frames):
                for o in objs:
                    o["wnid"] = VID_WNIDS[o["label"] - 1]
                (ann / f"{t:06d}.xml").write_text(
                    _xml(f"{split}/{sid}" if split == "train" else sid, f"{t:06d}", width, height, objs, "ILSVRC_2015"))
            truth[split][sid] = frames
            if split == "train":
                for c in sorted({o["label"] for f in frames for o in f}):
                    per_class[c].append(sid)
    sets = root / "ImageSets/VID"
    sets.mkdir(parents=True, exist_ok=True)
    for c in range(1, 31):
        (sets / f"train_{c}.txt").write_text("".join(f"{sid} 1\n" for sid in per_class[c]))
    lines, idx = [], 1
    for sid in truth["val"]:
        for t in range(num_frames):
            lines.append(f"{sid}/{t:06d} {idx}\n")
            idx += 1
    (sets / "val.txt").write_text("".join(lines))
    if det_images:
        det_lines = []
        for i in range(det_images):
            iid = f"ILSVRC2014_train_0000/ILSVRC2014_train_{i:08d}"
            objs = _snippet_objects(rng, 1, height, width, list(classes), max_objects)[0]
            for o in objs:
                o.pop("trackid")
                o["wnid"] = VID_WNIDS[o["label"] - 1]
            img = _draw(rng, height, width, objs)
            p = root / "Data/DET/train" / f"{iid}.JPEG"
            p.parent.mkdir(parents=True, exist_ok=True)
            from PIL import Image

            Image.fromarray(img).save(p, format="JPEG", quality=95)
            a = root / "Annotations/DET/train" / f"{iid}.xml"
            a.parent.mkdir(parents=True, exist_ok=True)
            a.write_text(_xml("ILSVRC2014_train_0000", iid.rsplit("/", 1)[1], width, height, objs, "ILSVRC_2014"))
            truth["det"][iid] = objs
            det_lines.append(f"{iid} 1\n")
        (root / "ImageSets/DET").mkdir(parents=True, exist_ok=True)
        (root / "ImageSets/DET/train_vid30.txt").write_text("".join(det_lines))
    return truth
