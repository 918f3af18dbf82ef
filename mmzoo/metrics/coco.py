"""COCO box and mask AP with the official evaluation code (pycocotools ``COCOeval``).

:class:`CocoEvaluation` collects detections as tensors (so that torchmetrics gathers them across
ranks with ``dist_reduce_fx="cat"``), turns them into the result format of the COCO evaluation
server, and runs ``COCOeval`` (``iouType="bbox"`` and ``"segm"``) on the images seen, against the
split's ``instances_*.json`` as distributed. The glue it adds, and what it follows:

* labels ``1..K`` (contiguous, 0 = background) map back to COCO category ids through
  ``category_ids`` (``category_ids[label - 1]``, the DataModule's sorted ids);
* boxes ``x1, y1, x2, y2`` become ``[x, y, w, h]`` (``w = x2 - x1``, torchvision's and Detectron2's
  conversion for results in the original image's pixels; Detectron v1 added 1);
* masks (probabilities ``N,1,H,W`` or ``N,H,W`` at the image size, as torchvision's Mask R-CNN
  pastes them) are binarised as ``mask > mask_threshold`` (0.5, as Detectron and torchvision's
  COCO evaluation do) and RLE-encoded with
  ``pycocotools.mask.encode`` (column-major, the ``counts`` string is stored as ASCII);
* detections keep the model's order within an image (``COCOeval`` sorts them by score itself,
  with a stable sort, and keeps ``maxDets`` = 100 per image); images with no detection still
  count (their ground truth is missed);
* ``COCOeval.params.imgIds`` = the images seen, so a partial evaluation (a few batches) scores
  only those;
* an image scored more than once (a padding ``DistributedSampler`` repeats the first images of
  the split to even out the ranks) counts once: only the detections of its first occurrence (the
  lowest occurrence number, ``local count x world size + rank``) are kept, so repeated images
  never duplicate detections.

``compute()`` returns the twelve ``COCOeval.stats`` of each type in percent, as Table 5.4 reports
them: ``bbox/AP``, ``bbox/AP50``, ``bbox/AP75``, ``bbox/APs``, ``bbox/APm``, ``bbox/APl``,
``bbox/AR1``, ``bbox/AR10``, ``bbox/AR100``, ``bbox/ARs``, ``bbox/ARm``, ``bbox/ARl`` and the
same under ``segm/``; a value of -100 is COCOeval's -1 (no ground truth in that area range).
"""
from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchmetrics import Metric

__all__ = ["COCO_STATS", "CocoEvaluation", "detections_to_results", "encode_mask"]

#: Names of ``COCOeval.stats`` (in order).
COCO_STATS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def encode_mask(mask: np.ndarray) -> dict[str, Any]:
    """COCO RLE (``{"size": [h, w], "counts": str}``) of a binary ``H,W`` mask."""
    from pycocotools import mask as mask_util

    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)[:, :, None]))[0]
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def detections_to_results(image_ids: Sequence[int], labels: Sequence[int], boxes: np.ndarray, scores: Sequence[float],
                          category_ids: Sequence[int], rles: Sequence[dict] | None = None) -> tuple[list, list]:
    """(bbox results, segm results) in the evaluation server's format from per-detection arrays
    (``boxes`` xyxy; ``rles`` None: no segm results)."""
    bbox, segm = [], []
    for i, (img, lab, b, s) in enumerate(zip(image_ids, labels, boxes, scores)):
        if not 1 <= int(lab) <= len(category_ids):
            raise ValueError(f"label {int(lab)} outside 1..{len(category_ids)} (0 is the background)")
        cat = int(category_ids[int(lab) - 1])
        x1, y1, x2, y2 = (float(v) for v in b)
        bbox.append({"image_id": int(img), "category_id": cat, "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(s)})
        if rles is not None:
            segm.append({"image_id": int(img), "category_id": cat, "segmentation": rles[i], "score": float(s)})
    return bbox, segm


class CocoEvaluation(Metric):
    """COCO AP (module docstring).

    Args:
        annotation_file: the ground truth (``instances_val2017.json``).
        category_ids: COCO category id of each label ``1..K`` (``category_ids[label - 1]``).
        iou_types: ``("bbox", "segm")`` or a subset.
        mask_threshold: binarisation threshold of the mask probabilities (0.5).

    ``update(preds, image_ids)``: ``preds`` a list (one per image) of dicts with ``boxes`` (``N,4``
    xyxy), ``labels`` (``N``), ``scores`` (``N``) and, for ``"segm"``, ``masks`` (``N,1,H,W`` or
    ``N,H,W``); ``image_ids`` the COCO ids of those images.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, annotation_file: str | Path, category_ids: Sequence[int],
                 iou_types: Sequence[str] = ("bbox", "segm"), mask_threshold: float = 0.5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        bad = [t for t in iou_types if t not in ("bbox", "segm")]
        if bad or not iou_types:
            raise ValueError(f"iou_types must be 'bbox' and / or 'segm', got {list(iou_types)}")
        self.annotation_file = str(annotation_file)
        self.category_ids = [int(c) for c in category_ids]
        self.iou_types = tuple(iou_types)
        self.mask_threshold = mask_threshold
        self._gt = None
        self.last_summary = ""
        self._occurrences = 0
        for name in ("image_ids", "image_occurrence", "det_image", "det_occurrence", "det_label", "det_boxes",
                     "det_scores", "rle_bytes", "rle_len"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def _ground_truth(self):
        if self._gt is None:
            from pycocotools.coco import COCO

            with contextlib.redirect_stdout(io.StringIO()):
                self._gt = COCO(self.annotation_file)
        return self._gt

    def update(self, preds: Sequence[dict[str, torch.Tensor]], image_ids: torch.Tensor | Sequence[int]) -> None:
        ids = torch.as_tensor(image_ids, dtype=torch.long).view(-1).to(self.device)
        if len(preds) != ids.numel():
            raise ValueError(f"{len(preds)} predictions for {ids.numel()} image ids")
        self.image_ids.append(ids)
        rank, world = 0, 1
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        occ = (torch.arange(self._occurrences, self._occurrences + ids.numel(), device=self.device) * world + rank)
        self._occurrences += ids.numel()
        self.image_occurrence.append(occ)
        for p, img, o in zip(preds, ids, occ):
            n = int(p["boxes"].shape[0])
            self.det_image.append(img.expand(n).clone())
            self.det_occurrence.append(o.expand(n).clone())
            self.det_label.append(p["labels"].detach().long().view(-1).to(self.device))
            self.det_boxes.append(p["boxes"].detach().float().view(-1, 4).to(self.device))
            self.det_scores.append(p["scores"].detach().float().view(-1).to(self.device))
            if "segm" in self.iou_types:
                masks = p["masks"].detach()
                masks = masks[:, 0] if masks.dim() == 4 else masks
                codes = [encode_mask((m > self.mask_threshold).cpu().numpy())["counts"].encode("ascii") for m in masks]
                self.rle_len.append(torch.tensor([len(c) for c in codes], dtype=torch.long, device=self.device).view(-1))
                self.rle_bytes.append(torch.frombuffer(bytearray(b"".join(codes)) or bytearray(1), dtype=torch.uint8)
                                      [: sum(len(c) for c in codes)].to(self.device))  # fmt: skip

    def reset(self) -> None:
        super().reset()
        self._occurrences = 0

    def _first_occurrence_mask(self) -> torch.Tensor:
        """(detections,) bool: the detection belongs to the first occurrence of its image."""
        ids = self._cat(self.image_ids, torch.long).cpu()
        occ = self._cat(self.image_occurrence, torch.long).cpu()
        first: dict[int, int] = {}
        for i, o in zip(ids.tolist(), occ.tolist()):
            first[i] = min(o, first.get(i, o))
        det_image = self._cat(self.det_image, torch.long).cpu().tolist()
        det_occ = self._cat(self.det_occurrence, torch.long).cpu().tolist()
        return torch.tensor([first[i] == o for i, o in zip(det_image, det_occ)], dtype=torch.bool)

    def _cat(self, state, dtype=None) -> torch.Tensor:
        if isinstance(state, list):
            return torch.cat(state) if state else torch.zeros(0, dtype=dtype)
        return state

    def results(self) -> tuple[list[int], list[dict], list[dict]]:
        """(image ids seen, bbox results, segm results) of everything updated so far."""
        images = sorted(set(self._cat(self.image_ids, torch.long).tolist()))
        gt = self._ground_truth()
        sizes = {i: (gt.imgs[i]["height"], gt.imgs[i]["width"]) for i in images if i in gt.imgs}
        unknown = [i for i in images if i not in sizes]
        if unknown:
            raise ValueError(f"image id(s) {unknown[:5]} are not in {self.annotation_file}")
        keep = self._first_occurrence_mask()
        det_image = self._cat(self.det_image, torch.long).cpu()[keep].tolist()
        rles = None
        if "segm" in self.iou_types:
            lens = self._cat(self.rle_len, torch.long).tolist()
            raw = bytes(self._cat(self.rle_bytes, torch.uint8).cpu().numpy().tobytes())
            offsets = np.concatenate([[0], np.cumsum(lens)]).astype(int)
            kept = [k for k, m in enumerate(keep.tolist()) if m]
            rles = [{"size": list(sizes[img]), "counts": raw[offsets[k]:offsets[k + 1]].decode("ascii")}
                    for k, img in zip(kept, det_image)]  # fmt: skip
        bbox, segm = detections_to_results(
            det_image, self._cat(self.det_label, torch.long).cpu()[keep].tolist(),
            self._cat(self.det_boxes).view(-1, 4).cpu()[keep].numpy(), self._cat(self.det_scores).cpu()[keep].tolist(),
            self.category_ids, rles,
        )  # fmt: skip
        return images, bbox, segm

    def _evaluate(self, iou_type: str, results: list[dict], images: list[int]) -> np.ndarray:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        gt = self._ground_truth()
        with contextlib.redirect_stdout(io.StringIO()) as out:
            if results:
                dt = gt.loadRes([dict(r) for r in results])
            else:  # loadRes cannot take an empty list: an empty result set, as COCO builds one
                dt = COCO()
                dt.dataset = {"images": list(gt.dataset["images"]), "categories": list(gt.dataset["categories"]),
                              "annotations": []}  # fmt: skip
                dt.createIndex()
            ev = COCOeval(gt, dt, iou_type)
            ev.params.imgIds = images
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        self.last_summary += f"[{iou_type}]\n{out.getvalue()}"
        return np.asarray(ev.stats, dtype=np.float64)

    def compute(self) -> dict[str, torch.Tensor]:
        images, bbox, segm = self.results()
        if not images:
            raise ValueError("COCO AP over zero images: the evaluation set is empty")
        self.last_summary = ""
        out = {}
        for iou_type in self.iou_types:
            stats = self._evaluate(iou_type, bbox if iou_type == "bbox" else segm, images)
            out.update({f"{iou_type}/{n}": torch.tensor(v * 100, dtype=torch.float64) for n, v in zip(COCO_STATS, stats)})
        return out
