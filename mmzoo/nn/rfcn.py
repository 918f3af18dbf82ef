"""Region-based detection parts of the STMN family: backbones, RPN, R-FCN and Fast R-CNN heads.

* :func:`build_backbone`: timm ResNet (res5 dilated, stride 16, stem + res2 frozen, frozen BN) or
  VGG-16 conv1_1..conv5_2 (stride 16, pool5 dropped; conv5_3 returned separately because the
  STMN of the VGG variant replaces it).
* :func:`build_rpn`: torchvision's ``RegionProposalNetwork`` on the stride-16 features.
* :class:`PSRoIHead`: R-FCN position-sensitive score maps (k x k x C for classes, k x k x 4 for
  class-agnostic boxes) pooled with ``torchvision.ops.ps_roi_align`` / ``ps_roi_pool`` and
  averaged (vote) over the k x k bins, as in the authors' ``rfcn.PSROIPooling`` + average pool.
* :class:`FastRCNNHead`: RoI max pooling 7x7 + the pretrained VGG fc6 / fc7 (timm's ``ConvMlp``
  convs), class scores and class-specific box deltas.
* :class:`RoILoss`: RoI labelling, R-FCN / Fast R-CNN losses (softmax cross-entropy +
  smooth-L1) with online hard example mining as the authors' code does ("balanced" OHEM: all
  proposals are scored, the hardest ``roi_batch_size`` are kept with at most ``fg_fraction``
  foreground).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Literal, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection._utils import BoxCoder
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead
from torchvision.ops import (
    batched_nms,
    box_iou,
    clip_boxes_to_image,
    ps_roi_align,
    ps_roi_pool,
    roi_align,
    roi_pool,
)

from mmzoo.nn.timm_backbone import create_timm_model

__all__ = ["build_backbone", "build_rpn", "run_rpn", "PSRoIHead", "FastRCNNHead", "RoILoss", "BOX_CODER", "postprocess",
           "merge_detections"]

#: Box coder shared by the heads: R-FCN / Fast R-CNN normalise targets by (0.1, 0.1, 0.2, 0.2).
BOX_CODER = BoxCoder(weights=(10.0, 10.0, 5.0, 5.0))


class ResNetTrunk(nn.Module):
    """timm ResNet to res5 with output stride 16 (res5 dilated); early stages frozen."""

    def __init__(self, name: str = "resnet101", pretrained: bool = True, frozen_stages: int = 1):
        super().__init__()
        from timm.layers import freeze_batch_norm_2d

        self.body, _ = create_timm_model(name, pretrained, features_only=True, out_indices=(4,), output_stride=16)
        self.body = freeze_batch_norm_2d(self.body)
        self.out_channels = self.body.feature_info.channels()[-1]
        stages = ["conv1", "bn1", "layer1", "layer2", "layer3", "layer4"]
        frozen = stages[: 2 + frozen_stages] if frozen_stages > 0 else []
        for n, p in self.body.named_parameters():
            if n.split(".")[0] in frozen:
                p.requires_grad_(False)

    def forward(self, x):
        return self.body(x)[-1]


class VGGTrunk(nn.Module):
    """timm VGG-16 conv1_1 .. conv5_2 (+ReLU); ``conv5_3`` kept apart (the layer STMN replaces)."""

    def __init__(self, pretrained: bool = True, frozen_convs: int = 4):
        super().__init__()
        vgg, _ = create_timm_model("vgg16.tv_in1k", pretrained)
        feats = vgg.features
        self.body = nn.Sequential(*list(feats.children())[:28])  # .. conv5_2, relu
        self.conv5_3 = feats[28]
        self.fc6, self.fc7 = vgg.pre_logits.fc1, vgg.pre_logits.fc2
        self.out_channels = 512
        convs = [m for m in self.body if isinstance(m, nn.Conv2d)]
        for m in convs[:frozen_convs]:  # Fast R-CNN freezes conv1_x, conv2_x
            for p in m.parameters():
                p.requires_grad_(False)

    def forward(self, x):
        return self.body(x)


def build_backbone(name: str, pretrained: bool) -> nn.Module:
    if name.startswith("resnet"):
        return ResNetTrunk(name, pretrained)
    if name == "vgg16":
        return VGGTrunk(pretrained)
    raise ValueError(f"unknown backbone {name!r} (resnet18/34/50/101, vgg16)")


def build_rpn(in_channels: int, anchor_sizes: Sequence[int], aspect_ratios: Sequence[float], pre_nms_train: int,
              pre_nms_test: int, post_nms_train: int, post_nms_test: int, nms_thresh: float = 0.7) -> RegionProposalNetwork:
    gen = AnchorGenerator(sizes=(tuple(anchor_sizes),), aspect_ratios=(tuple(aspect_ratios),))
    head = RPNHead(in_channels, gen.num_anchors_per_location()[0])
    return RegionProposalNetwork(
        gen, head, fg_iou_thresh=0.7, bg_iou_thresh=0.3, batch_size_per_image=256, positive_fraction=0.5,
        pre_nms_top_n={"training": pre_nms_train, "testing": pre_nms_test},
        post_nms_top_n={"training": post_nms_train, "testing": post_nms_test}, nms_thresh=nms_thresh)


def run_rpn(rpn: RegionProposalNetwork, images: torch.Tensor, sizes: list, feats: torch.Tensor,
            gt_boxes: Optional[list] = None):
    """Proposals per frame (+ RPN losses when ``gt_boxes`` is given)."""
    il = ImageList(images, [tuple(s) for s in sizes])
    targets = [{"boxes": b} for b in gt_boxes] if gt_boxes is not None else None
    return rpn(il, OrderedDict([("0", feats)]), targets)


class PSRoIHead(nn.Module):
    """R-FCN head: position-sensitive class and box maps, pooled per RoI and averaged."""

    def __init__(self, in_channels: int = 512, num_classes: int = 31, grid: int = 7, spatial_scale: float = 1 / 16,
                 pool: Literal["align", "max"] = "align", class_agnostic: bool = True):
        super().__init__()
        self.num_classes, self.grid, self.scale, self.pool = num_classes, grid, spatial_scale, pool
        self.box_dim = 4 if class_agnostic else 4 * num_classes
        self.cls_conv = nn.Conv2d(in_channels, grid * grid * num_classes, 1)
        self.box_conv = nn.Conv2d(in_channels, grid * grid * self.box_dim, 1)
        for c in (self.cls_conv, self.box_conv):
            nn.init.normal_(c.weight, std=0.01)
            nn.init.zeros_(c.bias)

    def _pool(self, maps, rois):
        if self.pool == "align":
            return ps_roi_align(maps, rois, self.grid, self.scale, sampling_ratio=2)
        return ps_roi_pool(maps, rois, self.grid, self.scale)

    def forward(self, feats: torch.Tensor, rois: torch.Tensor):
        """``rois`` [K, 5] (frame index, x1, y1, x2, y2) -> logits [K, C], deltas [K, box_dim]."""
        cls = self._pool(self.cls_conv(feats), rois).mean(dim=(2, 3))
        box = self._pool(self.box_conv(feats), rois).mean(dim=(2, 3))
        return cls, box


class FastRCNNHead(nn.Module):
    """Fast R-CNN head on VGG-16: RoI pool 7x7, fc6 / fc7 (pretrained), class + per-class boxes."""

    def __init__(self, fc6: nn.Conv2d, fc7: nn.Conv2d, num_classes: int = 31, spatial_scale: float = 1 / 16,
                 dropout: float = 0.5, pool: Literal["max", "align"] = "max", in_channels: int = 512):
        super().__init__()
        self.fc6, self.fc7 = fc6, fc7
        self.scale, self.pool, self.dropout = spatial_scale, pool, dropout
        self.cls = nn.Linear(fc7.out_channels, num_classes)
        self.box = nn.Linear(fc7.out_channels, 4 * num_classes)
        self.box_dim = 4 * num_classes
        nn.init.normal_(self.cls.weight, std=0.01)
        nn.init.normal_(self.box.weight, std=0.001)
        nn.init.zeros_(self.cls.bias)
        nn.init.zeros_(self.box.bias)

    def forward(self, feats, rois):
        if self.pool == "max":
            x = roi_pool(feats, rois, 7, self.scale)
        else:
            x = roi_align(feats, rois, 7, self.scale, sampling_ratio=2)
        x = F.dropout(F.relu(self.fc6(x)), self.dropout, self.training)
        x = F.dropout(F.relu(self.fc7(x)), self.dropout, self.training).flatten(1)
        return self.cls(x), self.box(x)

    def reset_parameters(self) -> None:
        """Fresh fc6 / fc7 / predictors (the ConvGRU-FreshFC ablation)."""
        for m in (self.fc6, self.fc7):
            nn.init.normal_(m.weight, std=0.01)
            nn.init.zeros_(m.bias)
        nn.init.normal_(self.cls.weight, std=0.01)
        nn.init.normal_(self.box.weight, std=0.001)
        nn.init.zeros_(self.cls.bias)
        nn.init.zeros_(self.box.bias)


def _select_deltas(deltas: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    if deltas.shape[1] == 4:
        return deltas
    return deltas.view(len(deltas), -1, 4)[torch.arange(len(deltas), device=deltas.device), labels]


class RoILoss(nn.Module):
    """RoI labelling + classification / smooth-L1 losses with OHEM.

    Args:
        fg_iou: IoU for a foreground RoI (0.5); RoIs in ``[bg_iou_lo, fg_iou)`` are background.
        roi_batch_size: RoIs back-propagated per frame (authors: 128 of 300).
        fg_fraction: at most this share of them foreground (authors: 0.25).
        ohem: "balanced" (hardest RoIs, foreground capped; authors) or "none" (random sampling).
    """

    def __init__(self, fg_iou: float = 0.5, bg_iou_lo: float = 0.0, roi_batch_size: int = 128,
                 fg_fraction: float = 0.25, ohem: Literal["balanced", "none"] = "balanced"):
        super().__init__()
        self.fg_iou, self.bg_iou_lo = fg_iou, bg_iou_lo
        self.roi_batch_size, self.fg_fraction, self.ohem = roi_batch_size, fg_fraction, ohem

    @torch.no_grad()
    def label(self, proposals: list, gt_boxes: list, gt_labels: list):
        """Add the GT boxes to each frame's proposals; return rois [K,5], labels [K], targets [K,4]."""
        rois, labels, targets = [], [], []
        for i, (p, gb, gl) in enumerate(zip(proposals, gt_boxes, gt_labels)):
            p = torch.cat([p, gb]) if len(gb) else p
            if len(gb):
                iou = box_iou(p, gb)
                best, idx = iou.max(dim=1)
                lab = torch.where(best >= self.fg_iou, gl[idx], torch.zeros_like(idx))
                keep = best >= self.bg_iou_lo
                tgt = BOX_CODER.encode_single(gb[idx], p)
            else:
                lab = torch.zeros(len(p), dtype=torch.long, device=p.device)
                keep = torch.ones(len(p), dtype=torch.bool, device=p.device)
                tgt = torch.zeros(len(p), 4, device=p.device)
            rois.append(torch.cat([torch.full((len(p), 1), float(i), device=p.device), p], 1)[keep])
            labels.append(lab[keep])
            targets.append(tgt[keep])
        return torch.cat(rois), torch.cat(labels), torch.cat(targets)

    def forward(self, logits, deltas, labels, targets, frame_ids):
        cls_each = F.cross_entropy(logits, labels, reduction="none")
        fg = labels > 0
        box_each = torch.zeros_like(cls_each)
        if fg.any():
            d = _select_deltas(deltas[fg], labels[fg])
            box_each[fg] = F.smooth_l1_loss(d, targets[fg], beta=1.0, reduction="none").sum(1)
        keep = self._choose(cls_each.detach() + box_each.detach(), fg, frame_ids)
        n = max(int(keep.sum()), 1)
        return {"loss_cls": cls_each[keep].sum() / n, "loss_box": box_each[keep].sum() / n}

    @torch.no_grad()
    def _choose(self, loss, fg, frame_ids):
        keep = torch.zeros_like(fg)
        n_fg_max = int(round(self.roi_batch_size * self.fg_fraction))
        for f in torch.unique(frame_ids):
            idx = torch.nonzero(frame_ids == f).flatten()
            fgi, bgi = idx[fg[idx]], idx[~fg[idx]]
            if self.ohem == "balanced":
                fgi = fgi[torch.argsort(loss[fgi], descending=True)]
                bgi = bgi[torch.argsort(loss[bgi], descending=True)]
            else:
                fgi = fgi[torch.randperm(len(fgi), device=fgi.device)]
                bgi = bgi[torch.randperm(len(bgi), device=bgi.device)]
            fgi = fgi[:n_fg_max]
            bgi = bgi[: self.roi_batch_size - len(fgi)]
            keep[fgi] = True
            keep[bgi] = True
        return keep


@torch.no_grad()
def postprocess(logits: torch.Tensor, deltas: torch.Tensor, rois: torch.Tensor, sizes: list, num_frames: int,
                score_thresh: float = 1e-3, nms_thresh: float = 0.3, max_dets: int = 300, probs: bool = False):
    """Per-frame detections from RoI outputs: softmax, decode, clip, per-class NMS, top-``max_dets``."""
    scores = logits if probs else F.softmax(logits, dim=1)
    c = scores.shape[1]
    out = []
    for f in range(num_frames):
        m = rois[:, 0] == f
        r, s, d = rois[m, 1:], scores[m], deltas[m]
        h, w = sizes[f]
        if d.shape[1] == 4:
            boxes = BOX_CODER.decode_single(d, r)
            boxes = clip_boxes_to_image(boxes, (h, w))[:, None, :].expand(-1, c - 1, 4)
        else:
            boxes = BOX_CODER.decode_single(d.reshape(-1, 4), r.repeat_interleave(c, 0)).view(-1, c, 4)[:, 1:]
            boxes = clip_boxes_to_image(boxes.reshape(-1, 4), (h, w)).view(-1, c - 1, 4)
        sc = s[:, 1:]
        labels = torch.arange(1, c, device=sc.device).expand_as(sc)
        boxes, sc, labels = boxes.reshape(-1, 4), sc.reshape(-1), labels.reshape(-1)
        k = sc > score_thresh
        boxes, sc, labels = boxes[k], sc[k], labels[k]
        keep = batched_nms(boxes, sc, labels, nms_thresh)[:max_dets]
        out.append({"boxes": boxes[keep], "scores": sc[keep], "labels": labels[keep]})
    return out


def merge_detections(dets: list, nms_thresh: float = 0.3, max_dets: int = 300) -> dict:
    """One detection set for a frame detected in several overlapping test windows: the windows'
    detections pooled, then per-class NMS and the ``max_dets`` best (the authors' test code pools
    a frame's detections over all the sliding windows that contain it before NMS)."""
    if len(dets) == 1:
        return dets[0]
    bx, sc, lb = (torch.cat([d[k] for d in dets]) for k in ("boxes", "scores", "labels"))
    keep = batched_nms(bx, sc, lb, nms_thresh)[:max_dets]
    return {"boxes": bx[keep], "scores": sc[keep], "labels": lb[keep]}
