"""Class-agnostic region proposals for STRG (X. Wang, PhD thesis CMU 2019, ch. 6, section 6.3.1):
the Region Proposal Network of torchvision's Faster R-CNN ResNet-50-FPN, COCO-pretrained, sharing
no weight with the video backbone, run frame by frame.

:class:`RegionProposer` takes frames in ``[0, 1]`` RGB (``N, 3, H, W``) and returns the top
``proposals_per_frame`` boxes of each frame in that frame's pixel coordinates (``x1, y1, x2, y2``),
padded with all-zero boxes when the RPN keeps fewer (a zero box is how the STRG model and the
proposals file mark padding). The RPN is frozen (always in eval mode, no gradients).

Thesis gaps ("how the RPN score threshold and NMS are set") and the choices here: torchvision's
COCO model's own RPN test settings (NMS IoU 0.7, 1000 boxes per FPN level before NMS, score
threshold 0) and its input scale (short side 800, long side at most 1333); all are arguments.
"""
from __future__ import annotations

import torch
from torch import nn

from mmzoo.errors import OfflineNotCachedError

__all__ = ["RegionProposer", "pad_boxes"]


def pad_boxes(boxes: list[torch.Tensor], k: int) -> torch.Tensor:
    """Stack per-frame boxes (each ``<= k, 4``, best first) into ``len(boxes), k, 4``, keeping
    the first ``k`` and padding with zero boxes."""
    out = torch.zeros(len(boxes), k, 4, dtype=torch.float32,
                      device=boxes[0].device if boxes else None)
    for i, b in enumerate(boxes):
        n = min(k, b.shape[0])
        out[i, :n] = b[:n].to(out.dtype)
    return out


class RegionProposer(nn.Module):
    """torchvision's Faster R-CNN R50-FPN RPN as a frozen proposal generator.

    Args:
        proposals_per_frame: boxes kept per frame after NMS (50 Charades, 10 Something-Something).
        pretrained: load torchvision's COCO weights (``FasterRCNN_ResNet50_FPN_Weights.COCO_V1``,
            downloaded into the torch hub cache on first use); False: random weights (tests only:
            a random RPN proposes random boxes).
        min_size / max_size: the RPN's input scale (torchvision's COCO model: 800 / 1333).
        nms_thresh / pre_nms_top_n / score_thresh: RPN test settings (0.7 / 1000 / 0.0).
    """

    def __init__(self, proposals_per_frame: int = 50, pretrained: bool = True, min_size: int = 800,
                 max_size: int = 1333, nms_thresh: float = 0.7, pre_nms_top_n: int = 1000,
                 score_thresh: float = 0.0) -> None:
        super().__init__()
        from torchvision.models.detection import (
            FasterRCNN_ResNet50_FPN_Weights,
            fasterrcnn_resnet50_fpn,
        )

        self.proposals_per_frame = int(proposals_per_frame)
        weights = FasterRCNN_ResNet50_FPN_Weights.COCO_V1 if pretrained else None
        kwargs = {"weights_backbone": None, "min_size": min_size, "max_size": max_size, "rpn_nms_thresh": nms_thresh,
                      "rpn_pre_nms_top_n_test": pre_nms_top_n, "rpn_post_nms_top_n_test": self.proposals_per_frame,
                      "rpn_score_thresh": score_thresh}  # fmt: skip
        try:
            det = fasterrcnn_resnet50_fpn(weights=weights, **kwargs)
        except (OSError, RuntimeError) as e:  # URLError is an OSError
            raise OfflineNotCachedError(
                f"could not obtain torchvision's COCO Faster R-CNN weights for the STRG region proposals ({e}). "
                "Connect once so torch.hub caches them, precompute proposals elsewhere with `mmzoo propose` and "
                "read them with --data.proposals, or pass rpn_pretrained=False (random proposals; tests only)."
            ) from e
        self.transform, self.backbone, self.rpn = det.transform, det.backbone, det.rpn
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> RegionProposer:
        return super().train(False)

    @torch.no_grad()
    def forward(self, frames: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
        """Proposals of ``frames`` (``N, 3, H, W`` in [0, 1]): ``N, proposals_per_frame, 4`` in
        input pixels, zero-padded. ``chunk`` frames go through the RPN at a time (None: all)."""
        if frames.dim() != 4 or frames.shape[1] != 3:
            raise ValueError(f"RegionProposer takes N, 3, H, W frames in [0, 1]; got {tuple(frames.shape)}")
        step = chunk or frames.shape[0]
        out = []
        for i in range(0, frames.shape[0], step):
            part = frames[i:i + step]
            images, _ = self.transform(list(part))
            feats = self.backbone(images.tensors)
            boxes, _ = self.rpn(images, feats)
            sizes = [tuple(part.shape[-2:])] * part.shape[0]
            boxes = [d["boxes"] for d in self.transform.postprocess([{"boxes": b} for b in boxes], images.image_sizes,
                                                                    sizes)]  # fmt: skip
            out.append(pad_boxes(boxes, self.proposals_per_frame).to(frames.device))
        return torch.cat(out, 0)
