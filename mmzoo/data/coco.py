"""COCO 2017 instance annotations (detection and segmentation) as a DataModule.

Layout read (``root``), as distributed on cocodataset.org::

    root/annotations/instances_train2017.json
    root/annotations/instances_val2017.json
    root/train2017/<file_name>.jpg
    root/val2017/<file_name>.jpg

Non-local networks (thesis ch. 5, Table 5.4) train Mask R-CNN on ``train2017`` and report box and
mask AP on ``val2017``; ``val`` and ``test`` both read ``val2017`` (test-dev has no public
annotations). The annotation file is the evaluation's ground truth
(:class:`mmzoo.metrics.coco.CocoEvaluation`: pycocotools ``COCOeval``), read as is.

Categories: the 80 COCO category ids (1..90 with gaps) map to contiguous labels ``1..80`` in
increasing id order (0 is the background of torchvision's detection heads);
``self.category_ids[label - 1]`` maps back. ``mmzoo fit`` links ``num_classes`` (80) to the model.

Batch fields (``collate_coco``; ``B`` images of different sizes, so everything is a list):

* ``image``: list of ``B`` float ``3,H,W`` RGB in [0, 1] at the original size (the model resizes
  and normalises, as torchvision's ``GeneralizedRCNNTransform`` does);
* ``image_id``: long ``B``, the COCO image ids;
* training only: ``boxes`` (list of float ``N,4`` xyxy pixels), ``labels`` (list of long ``N`` in
  1..80) and ``masks`` (list of uint8 ``N,H,W``, decoded from the polygons / RLE with
  pycocotools), flipped left-right with ``flip``;
* ``meta``: ``image_id``, ``file_name``, ``size`` (h, w), ``flipped``.

Training drops crowd annotations (``iscrowd=1``; Detectron's and torchvision's recipes; the
evaluation still uses them, as COCOeval does) and, with ``skip_empty_train`` (Detectron's
default), images without a non-crowd annotation: both counted in ``self.counts``. Boxes with zero
width or height are dropped from training targets (``degenerate_boxes="drop"``, counted) or raise
(``"error"``).

Strictness: ``setup()`` checks every image and annotation record of the split and raises a
:class:`~mmzoo.errors.DataError` naming the file and the image / annotation id for a missing image
file, a box outside its image (beyond ``box_tolerance`` pixels), an unknown category id, an
annotation of an unknown image or a malformed record. ``missing_images="skip"`` drops missing
image files instead (counted, warned).
"""
from __future__ import annotations

import json
import logging
import math
import warnings
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from torch.utils.data import Dataset

from mmzoo.data.base import ZooDataModule
from mmzoo.data.collate import collate_dicts
from mmzoo.data.paths import find_path, flag
from mmzoo.data.registry import register_datamodule
from mmzoo.data.video_dataset import LayoutError
from mmzoo.errors import DataError

__all__ = ["COCOFormatError", "CocoDataModule", "CocoDetectionDataset", "collate_coco", "decode_masks", "read_coco_split"]

log = logging.getLogger(__name__)


class COCOFormatError(DataError, ValueError):
    """A malformed COCO annotation file or record; the message names the file and the record."""


def collate_coco(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Images and per-image targets stay lists (sizes differ); ``image_id`` becomes long ``B``."""
    return collate_dicts(samples, keep_as_list={"image", "boxes", "labels", "masks", "meta"})


def decode_masks(segmentations: list[Any], height: int, width: int) -> torch.Tensor:
    """uint8 ``N,H,W`` masks of COCO ``segmentation`` fields (polygon lists, uncompressed RLE
    with a ``counts`` list, or compressed RLE), decoded with pycocotools as ``COCO.annToMask``
    does."""
    import numpy as np
    from pycocotools import mask as mask_util

    out = np.zeros((len(segmentations), height, width), dtype=np.uint8)
    for i, seg in enumerate(segmentations):
        if isinstance(seg, list):
            rle = mask_util.merge(mask_util.frPyObjects(seg, height, width))
        elif isinstance(seg.get("counts"), list):
            rle = mask_util.frPyObjects(seg, height, width)
        else:
            rle = seg
        out[i] = mask_util.decode(rle)
    return torch.from_numpy(out)


def _need(path: Path, rec: dict, keys: tuple[str, ...], what: str) -> None:
    missing = [k for k in keys if k not in rec]
    if missing:
        raise COCOFormatError(f"{path}: {what} {rec.get('id', '?')} lacks field(s) {missing}")


def read_coco_split(path: Path, image_dir: Path, box_tolerance: float = 1.0,
                    missing_images: Literal["error", "skip"] = "error") -> dict[str, Any]:
    """Read and check one ``instances_*.json``: ``{"images": {id: record}, "anns": {image id:
    [annotation]}, "categories": [sorted ids], "missing": [messages]}``. Errors name the file and
    the image / annotation id (module docstring)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise COCOFormatError(f"{path}: not valid JSON ({e})") from None
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise COCOFormatError(f"{path}: no '{key}' list")
    categories = []
    for c in data["categories"]:
        _need(path, c, ("id", "name"), "category")
        categories.append(int(c["id"]))
    if len(set(categories)) != len(categories):
        raise COCOFormatError(f"{path}: repeated category ids")
    images: dict[int, dict] = {}
    missing: list[str] = []
    for im in data["images"]:
        _need(path, im, ("id", "file_name", "height", "width"), "image")
        iid = int(im["id"])
        if iid in images:
            raise COCOFormatError(f"{path}: image id {iid} listed twice")
        f = image_dir / im["file_name"]
        if not f.is_file():
            msg = f"{path}: image id {iid}: image file {f} not found"
            if missing_images == "error":
                raise LayoutError(msg + f" ({flag('missing_images')} skip drops missing images with a warning)")
            missing.append(msg)
            continue
        images[iid] = im
    known = set(categories)
    anns: dict[int, list[dict]] = {i: [] for i in images}
    all_ids = {int(im["id"]) for im in data["images"]}
    for a in data["annotations"]:
        _need(path, a, ("id", "image_id", "category_id", "bbox"), "annotation")
        aid, iid = a["id"], int(a["image_id"])
        if int(a["category_id"]) not in known:
            raise COCOFormatError(f"{path}: annotation id {aid}: unknown category id {a['category_id']} "
                                  f"(categories: {sorted(known)[:10]}...)")
        if iid not in all_ids:
            raise COCOFormatError(f"{path}: annotation id {aid}: image id {iid} is not in 'images'")
        bbox = a["bbox"]
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) and math.isfinite(v) for v in bbox)):
            raise COCOFormatError(f"{path}: annotation id {aid}: bbox {bbox!r} is not [x, y, w, h]")
        if iid not in images:
            continue  # its image file is missing and was skipped (counted above)
        im = images[iid]
        x, y, w, h = bbox
        t = box_tolerance
        if w < 0 or h < 0 or x < -t or y < -t or x + w > im["width"] + t or y + h > im["height"] + t:
            raise COCOFormatError(f"{path}: annotation id {aid}: bbox {bbox} lies outside image id {iid} "
                                  f"({im['file_name']}, {im['width']}x{im['height']})")
        if not a.get("iscrowd", 0) and "segmentation" not in a:
            raise COCOFormatError(f"{path}: annotation id {aid} has no 'segmentation'")
        anns[iid].append(a)
    return {"images": images, "anns": anns, "categories": sorted(categories), "missing": missing}


class CocoDetectionDataset(Dataset):
    """One item per image (module docstring); ``train`` adds targets and random flips."""

    def __init__(self, split: dict[str, Any], image_dir: Path, label_of: dict[int, int], train: bool,
                 flip: bool = True, skip_empty: bool = True, degenerate_boxes: str = "drop"):
        self.image_dir, self.label_of, self.train, self.flip = image_dir, label_of, train, flip
        self.images = split["images"]
        self.anns = split["anns"]
        self.counts = {"crowd_annotations": 0, "degenerate_boxes": 0, "empty_images": 0}
        ids = sorted(self.images)
        if train:
            kept = []
            for iid in ids:
                good = []
                for a in self.anns[iid]:
                    if a.get("iscrowd", 0):
                        self.counts["crowd_annotations"] += 1
                        continue
                    if a["bbox"][2] <= 0 or a["bbox"][3] <= 0:
                        if degenerate_boxes == "error":
                            raise COCOFormatError(f"annotation id {a['id']} (image id {iid}): degenerate bbox {a['bbox']}")
                        self.counts["degenerate_boxes"] += 1
                        continue
                    good.append(a)
                self.anns[iid] = good
                if good or not skip_empty:
                    kept.append(iid)
                else:
                    self.counts["empty_images"] += 1
            ids = kept
        if not ids:
            raise LayoutError(f"no usable image under {image_dir}")
        self.ids = ids

    def __len__(self) -> int:
        return len(self.ids)

    def _read(self, im: dict) -> torch.Tensor:
        from torchvision.io import ImageReadMode, decode_image

        p = self.image_dir / im["file_name"]
        data = torch.frombuffer(bytearray(p.read_bytes()), dtype=torch.uint8)
        try:
            img = decode_image(data, mode=ImageReadMode.RGB)
        except RuntimeError as e:
            raise DataError(f"{p}: cannot decode image ({e})") from e
        if tuple(img.shape[1:]) != (im["height"], im["width"]):
            raise DataError(f"{p}: image is {img.shape[2]}x{img.shape[1]}, the annotation file says "
                            f"{im['width']}x{im['height']} (image id {im['id']})")
        return img

    def __getitem__(self, i: int) -> dict[str, Any]:
        iid = self.ids[i]
        im = self.images[iid]
        img = self._read(im).float().div_(255)
        flipped = self.train and self.flip and bool(torch.rand(()) < 0.5)
        out: dict[str, Any] = {"image": img.flip(-1) if flipped else img, "image_id": int(iid)}
        if self.train:
            anns = self.anns[iid]
            h, w = im["height"], im["width"]
            boxes = torch.tensor([a["bbox"] for a in anns], dtype=torch.float32).view(-1, 4)
            boxes[:, 2:] += boxes[:, :2]
            boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
            boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
            masks = decode_masks([a["segmentation"] for a in anns], h, w)
            if flipped:
                boxes = torch.stack([w - boxes[:, 2], boxes[:, 1], w - boxes[:, 0], boxes[:, 3]], 1)
                masks = masks.flip(-1)
            out.update(boxes=boxes, labels=torch.tensor([self.label_of[int(a["category_id"])] for a in anns],
                                                        dtype=torch.long), masks=masks)  # fmt: skip
        out["meta"] = {"image_id": int(iid), "file_name": im["file_name"], "size": (im["height"], im["width"]),
                       "flipped": flipped}  # fmt: skip
        return out


@register_datamodule("coco")
class CocoDataModule(ZooDataModule):
    """COCO 2017 instances (layout, fields and policies in the module docstring).

    Args:
        root: dataset folder.
        year: ``"2017"`` (the split names ``train2017`` / ``val2017`` and their annotation files).
        train_annotations / val_annotations: annotation files as given or under ``root``
            (``annotations/instances_{train,val}<year>.json``).
        flip: random horizontal flips in training (Detectron's default).
        skip_empty_train: leave out training images without a non-crowd annotation (counted).
        degenerate_boxes: zero-width / zero-height boxes in training: ``"drop"`` (counted) or
            ``"error"``.
        box_tolerance: pixels a box may exceed its image before it is an error (1.0).
        missing_images: ``"error"`` or ``"skip"`` (drop images whose file is absent, warned).
        **kwargs: loader settings of :class:`~mmzoo.data.base.ZooDataModule` (``batch_size``: 2
            images per GPU in Detectron's recipe).
    """

    collate_fn = staticmethod(collate_coco)
    model_links = ("num_classes",)
    targets: ClassVar[tuple[str, ...]] = ("boxes", "labels", "masks")

    def __init__(
        self,
        root: str,
        year: str = "2017",
        train_annotations: str | None = None,
        val_annotations: str | None = None,
        flip: bool = True,
        skip_empty_train: bool = True,
        degenerate_boxes: Literal["drop", "error"] = "drop",
        box_tolerance: float = 1.0,
        missing_images: Literal["error", "skip"] = "error",
        batch_size: int = 2,
        **kwargs: Any,
    ) -> None:
        super().__init__(batch_size=batch_size, **kwargs)
        for name, value, allowed in (("degenerate_boxes", degenerate_boxes, ("drop", "error")),
                                     ("missing_images", missing_images, ("error", "skip"))):  # fmt: skip
            if value not in allowed:
                raise ValueError(f"{flag(name)} must be one of {list(allowed)}, got {value!r}")
        self.root = Path(root)
        self.year = year
        self.ann_args = {"train": train_annotations, "val": val_annotations}
        self.flip, self.skip_empty_train, self.degenerate_boxes = flip, skip_empty_train, degenerate_boxes
        self.box_tolerance, self.missing_images = box_tolerance, missing_images
        self._splits: dict[str, dict[str, Any]] = {}
        self.category_ids: list[int] | None = None
        self.missing: list[str] = []
        self.counts: dict[str, dict[str, int]] = {}

    # ------------------------------------------------------------------ files
    def image_dir(self, split: str) -> Path:
        d = self.root / f"{'train' if split == 'train' else 'val'}{self.year}"
        if not d.is_dir():
            raise LayoutError(f"COCO image folder not found: {d} ({flag('root')}, {flag('year')})")
        return d

    def annotation_path(self, split: str) -> Path:
        """The ``instances_*.json`` of ``split`` (``val`` and ``test``: the val file)."""
        key = "train" if split == "train" else "val"
        return find_path(f"{key}_annotations", self.ann_args[key], self.root,
                         defaults=(f"annotations/instances_{key}{self.year}.json",),
                         what=f"COCO {key} annotation file")  # fmt: skip

    def _split(self, split: str) -> dict[str, Any]:
        key = "train" if split == "train" else "val"
        if key not in self._splits:
            data = read_coco_split(self.annotation_path(key), self.image_dir(key), self.box_tolerance, self.missing_images)
            if data["missing"]:
                msg = f"[coco] {key}: {len(data['missing'])} image file(s) missing and skipped, e.g. {data['missing'][0]}"
                log.warning(msg)
                warnings.warn(msg, stacklevel=2)
                self.missing.extend(data["missing"])
            if self.category_ids is None:
                self.category_ids = data["categories"]
            elif data["categories"] != self.category_ids:
                raise COCOFormatError(f"{self.annotation_path(key)}: category ids differ from the other split's "
                                      f"({data['categories'][:5]}... vs {self.category_ids[:5]}...)")
            self._splits[key] = data
        return self._splits[key]

    @property
    def num_classes(self) -> int:
        """Object categories (80 for COCO), without the background."""
        if self.category_ids is None:
            self._split("val")
        return len(self.category_ids)

    # ------------------------------------------------------------------ Lightning
    def setup(self, stage: str | None = None) -> None:
        if not self.root.is_dir():
            raise LayoutError(f"COCO root not found: {self.root} ({flag('root')})")
        wanted = {"fit": ["train", "val"], "validate": ["val"], "test": ["test"], "predict": ["test"]}
        for name in [n for st in ([stage] if stage else ["fit", "test"]) for n in wanted[st]]:
            if name in self.datasets:
                continue
            split = self._split(name)
            label_of = {c: i + 1 for i, c in enumerate(self.category_ids)}
            ds = CocoDetectionDataset(split, self.image_dir(name), label_of, train=name == "train", flip=self.flip,
                                      skip_empty=self.skip_empty_train, degenerate_boxes=self.degenerate_boxes)
            self.counts[name] = ds.counts
            if any(ds.counts.values()):
                log.info("[coco] %s: %s", name, ds.counts)
            self.datasets[name] = ds
