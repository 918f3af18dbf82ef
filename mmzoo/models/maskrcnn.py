"""Mask R-CNN with FPN and non-local blocks in the backbone (thesis ch. 5, section 5.4, Table 5.4).

Ids: ``maskrcnn-r50-fpn`` (the baseline) and ``maskrcnn-r50-fpn-nl`` (one non-local block just
before the last residual block of res4, "+1 NL"). The detector is torchvision's Mask R-CNN
(``torchvision.models.detection.MaskRCNN``: ResNet + FPN backbone with frozen BatchNorm, RPN,
RoIAlign box head of two 1024-d fc layers, 4-conv mask head, 28x28 masks), whose settings match
Detectron's ``e2e_mask_rcnn_R-50-FPN`` configuration that the non-local paper trains. The
non-local block (``mmzoo.nn.nonlocal_block.NonLocal3d``, embedded Gaussian, half-width theta /
phi / g, 2x2 max-pooled phi / g, BN after W_z with gamma = 0) runs on the res4 feature map given a
time axis of length 1; it is a submodule ``nonlocal_before`` of the res4 block it precedes, run by
a forward pre-hook, so the names of the backbone's own parameters stay torchvision's.

Training: ``boxes`` / ``labels`` / ``masks`` of the ``coco`` DataModule (end-to-end, joint RPN
training as in the thesis); evaluation: pycocotools ``COCOeval`` box and mask AP on the
DataModule's annotation file (``mmzoo.metrics.coco.CocoEvaluation``).

Recipe (the thesis gives none, [SILENT]): Detectron's 2x schedule, whose R50-FPN baseline (38.6
box / 34.5 mask AP) is the closest to Table 5.4's (38.0 / 34.6): SGD momentum 0.9, lr 0.02 at 16
images, x0.1 at 2/3 and 8/9 of 180k iterations, linear warm-up from 1/3 over 500 iterations,
weight decay 1e-4 (none on biases, as Detectron; Detectron's doubled bias lr is not applied).
"""
from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from mmzoo.errors import NotSupportedError
from mmzoo.metrics.coco import CocoEvaluation
from mmzoo.models.base import ZooModule
from mmzoo.models.recipe import Recipe, global_batch_size, total_training_steps
from mmzoo.nn.nonlocal_block import NonLocal3d
from mmzoo.registry import InputConfig, register_model

__all__ = ["MaskRCNN", "NonLocal2d"]

PAPER = "Wang, Non-local Neural Networks (X. Wang, PhD thesis CMU 2019, ch. 5; CVPR 2018)"


class NonLocal2d(nn.Module):
    """`NonLocal3d` on a 2D feature map (``B,C,H,W`` seen as ``B,C,1,H,W``)."""

    def __init__(self, dim: int, dim_inner: int, pool: int = 2, mode: str = "softmax") -> None:
        super().__init__()
        self.block = NonLocal3d(dim, dim_inner, pool=(1, pool, pool), mode=mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x.unsqueeze(2)).squeeze(2)


def _nonlocal_before(block: nn.Module, args: tuple) -> tuple:
    return (block.nonlocal_before(args[0]),)


def _nonlocal_after(block: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
    return block.nonlocal_after(output)


class MaskRCNN(ZooModule):
    """Mask R-CNN + FPN (torchvision) with optional non-local blocks in res4.

    Args:
        num_classes: object categories without the background (80 for COCO; `--data coco` links it).
        depth: ResNet depth of the backbone (50; 101 for Table 5.4's R101 rows; 18 / 34 only for
            tiny test configurations).
        nonlocal_res4: res4 block indices *followed* by a non-local block; negative indices count
            from the end (``[-2]``: before the last block, the "+1 NL" of Table 5.4).
        nonlocal_mode: ``"softmax"`` (embedded Gaussian, the thesis' default) or ``"dot_product"``.
        nonlocal_pool: spatial max-pool of phi / g (2, the thesis' subsampling).
        trainable_backbone_layers: ResNet stages trained (3: res3-res5; conv1 and res2 frozen, as
            Detectron's FREEZE_AT = 2); BatchNorm is frozen everywhere in the backbone.
        fpn_channels / representation_size / mask_head_channels: FPN width (256), box-head fc
            width (1024) and mask-head conv width (256); smaller only in tiny configurations.
        min_size / max_size: images are resized to short side 800, long side at most 1333.
        box_detections_per_img: detections kept per image (100, COCO's maxDets).
        box_score_thresh: minimum class score of a detection (0.05, Detectron's test setting).
        base_lr / base_batch_size: lr 0.02 at 16 images, scaled linearly to the global batch.
        momentum / weight_decay: 0.9 / 1e-4 (no decay on biases and normalisation parameters).
        lr_steps: fractions of training at which the lr is divided by 10 (2x: 120k and 160k of 180k).
        warmup_fraction / warmup_start_factor: linear warm-up over this fraction of training (500
            of 180k iterations) from 1/3 of the lr.
        mask_threshold: binarisation of the mask probabilities for the mask AP (0.5).
        batch_size: per-device images used for the lr scaling when no trainer is attached.
    """

    def __init__(
        self,
        num_classes: int = 80,
        depth: Literal[18, 34, 50, 101] = 50,
        nonlocal_res4: list[int] = [],  # noqa: B006 - JSON-serialisable default
        nonlocal_mode: Literal["softmax", "dot_product"] = "softmax",
        nonlocal_pool: int = 2,
        trainable_backbone_layers: int = 3,
        fpn_channels: int = 256,
        representation_size: int = 1024,
        mask_head_channels: int = 256,
        min_size: int = 800,
        max_size: int = 1333,
        box_detections_per_img: int = 100,
        box_score_thresh: float = 0.05,
        base_lr: float = 0.02,
        base_batch_size: int = 16,
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        lr_steps: list[float] = [2 / 3, 8 / 9],  # noqa: B006
        warmup_fraction: float = 500 / 180_000,
        warmup_start_factor: float = 1 / 3,
        mask_threshold: float = 0.5,
        batch_size: int | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        from torchvision.models import resnet
        from torchvision.models.detection import MaskRCNN as TVMaskRCNN
        from torchvision.models.detection.backbone_utils import BackboneWithFPN
        from torchvision.models.detection.faster_rcnn import TwoMLPHead
        from torchvision.models.detection.mask_rcnn import (
            MaskRCNNHeads,
            MaskRCNNPredictor,
        )
        from torchvision.ops.misc import FrozenBatchNorm2d

        if depth not in (18, 34, 50, 101):
            raise ValueError(f"depth must be 18, 34, 50 or 101, got {depth}")
        if not 0 <= trainable_backbone_layers <= 5:
            raise ValueError(f"trainable_backbone_layers must be in 0..5, got {trainable_backbone_layers}")
        body = getattr(resnet, f"resnet{depth}")(weights=None, norm_layer=FrozenBatchNorm2d)
        trainable = ["layer4", "layer3", "layer2", "layer1", "conv1"][:trainable_backbone_layers]
        for name, p in body.named_parameters():
            if all(not name.startswith(t) for t in trainable):
                p.requires_grad_(False)
        expansion = 4 if depth >= 50 else 1
        widths = [64 * expansion * 2**i for i in range(4)]
        backbone = BackboneWithFPN(body, {f"layer{i}": str(i - 1) for i in range(1, 5)}, widths, fpn_channels)
        res4 = body.layer3
        n = len(res4)
        positions = sorted({i % n for i in nonlocal_res4}) if nonlocal_res4 else []
        bad = [i for i in nonlocal_res4 if not -n <= i < n]
        if bad:
            raise ValueError(f"nonlocal_res4 {bad} outside res4's {n} blocks")
        # block i is followed by a non-local block: it is a submodule of block i + 1 run by a
        # forward pre-hook (of block i, run by a forward hook, for the last block); the hooks are
        # plain functions of the module they are attached to, so copies of the model stay whole
        for i in positions:
            nl = NonLocal2d(widths[2], widths[2] // 2, nonlocal_pool, nonlocal_mode)
            if i + 1 < n:
                res4[i + 1].nonlocal_before = nl
                res4[i + 1].register_forward_pre_hook(_nonlocal_before)
            else:
                res4[i].nonlocal_after = nl
                res4[i].register_forward_hook(_nonlocal_after)
        from torchvision.models.detection.faster_rcnn import FastRCNNPredictor

        self.detector = TVMaskRCNN(
            backbone, num_classes=None, min_size=min_size, max_size=max_size,
            box_head=TwoMLPHead(fpn_channels * 7 * 7, representation_size),
            box_predictor=FastRCNNPredictor(representation_size, num_classes + 1),
            box_detections_per_img=box_detections_per_img, box_score_thresh=box_score_thresh,
            mask_head=MaskRCNNHeads(fpn_channels, [mask_head_channels] * 4, 1),
            mask_predictor=MaskRCNNPredictor(mask_head_channels, mask_head_channels, num_classes + 1),
        )  # fmt: skip
        self.val_metric: CocoEvaluation | None = None
        self.test_metric: CocoEvaluation | None = None

    @property
    def nonlocal_blocks(self) -> list[NonLocal2d]:
        """The non-local blocks of res4, in order."""
        return [m for m in self.detector.backbone.body.layer3.modules() if isinstance(m, NonLocal2d)]

    # ------------------------------------------------------------------ inference
    @staticmethod
    def _images(images) -> list[torch.Tensor]:
        if isinstance(images, torch.Tensor):
            if images.dim() == 3:
                return [images]
            return list(images.unbind(0))
        return list(images)

    def forward_features(self, image) -> dict[str, torch.Tensor]:
        """Named features (`mmzoo extract`): the FPN levels of the detector's backbone on the
        resized, normalised, padded batch ("fpn0" ... "fpn3", ``B, C, h, w``, and "pool", the
        extra max-pooled level) and "pooled" (``B, C``: the average of the finest level)."""
        images, _ = self.detector.transform(self._images(image))
        fpn = self.detector.backbone(images.tensors)
        out = {(f"fpn{k}" if str(k).isdigit() else str(k)): v for k, v in fpn.items()}
        out["pooled"] = next(iter(fpn.values())).mean(dim=(-2, -1))
        return out

    def forward(self, image) -> list[dict[str, torch.Tensor]]:
        """Detections per image (``boxes`` xyxy in the input image's pixels, ``labels`` 1..K,
        ``scores``, ``masks`` ``N,1,H,W`` probabilities) from RGB images in [0, 1]: the batch's
        ``image`` field (a list of ``3,H,W`` tensors) or a ``B,3,H,W`` tensor."""
        if self.training:
            raise RuntimeError("MaskRCNN.forward is inference; training goes through training_step")
        return self.detector(self._images(image))

    def example_input(self, batch_size: int = 1) -> dict[str, Any]:
        """``batch_size`` images of ``min_size x 1.52 min_size`` (800 x 1216: a COCO image at the
        test scale, padded to a multiple of 32)."""
        s = self.hparams.min_size
        return {"image": [torch.rand(3, s, round(s * 1.52 / 32) * 32) for _ in range(batch_size)]}

    @torch.no_grad()
    def count_flops(self, batch_size: int = 1) -> int:
        """Multiply-adds of the backbone + FPN and the RPN head on `example_input`, the box head on
        1000 proposals and the mask head on 100 detections (Detectron's test settings). RoIAlign,
        NMS and the resizing are not counted (data-dependent, no meta kernels)."""
        from torch.utils.flop_counter import FlopCounterMode

        d = self.detector
        c = self.hparams.fpn_channels
        x = torch.stack(self.example_input(batch_size)["image"])
        was_training = self.training
        self.eval()
        try:
            with FlopCounterMode(display=False) as counter:
                feats = d.backbone(x)
                d.rpn.head(list(feats.values()))
                d.roi_heads.box_predictor(d.roi_heads.box_head(torch.zeros(1000 * batch_size, c, 7, 7)))
                d.roi_heads.mask_predictor(d.roi_heads.mask_head(torch.zeros(100 * batch_size, c, 14, 14)))
        finally:
            self.train(was_training)
        return counter.get_total_flops() // 2

    # ------------------------------------------------------------------ training
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        images = self._images(batch["image"])
        targets = [{"boxes": b, "labels": lab, "masks": m}
                   for b, lab, m in zip(batch["boxes"], batch["labels"], batch["masks"])]  # fmt: skip
        losses = self.detector(images, targets)
        loss = sum(losses.values())
        self.log_dict({f"train/{k}": v for k, v in losses.items()}, batch_size=len(images))
        self.log("train/loss", loss, batch_size=len(images))
        return loss

    # ------------------------------------------------------------------ evaluation
    def setup(self, stage: str) -> None:
        """Build the COCOeval metrics from the DataModule's annotation file and category ids."""
        super().setup(stage)
        if stage == "predict":
            return
        trainer = getattr(self, "_trainer", None)
        dm = getattr(trainer, "datamodule", None)
        if dm is None:
            return
        path = getattr(dm, "annotation_path", None)
        if not callable(path):
            name = getattr(dm, "datamodule_name", type(dm).__name__)
            raise NotSupportedError(f"MaskRCNN evaluates with COCOeval on a COCO annotation file; {name!r} has none "
                                    "(use --data coco)")
        if stage in ("fit", "validate"):
            dm.setup("validate")
            self.val_metric = CocoEvaluation(path("val"), dm.category_ids, mask_threshold=self.hparams.mask_threshold)
        if stage == "test":
            dm.setup("test")
            self.test_metric = CocoEvaluation(path("test"), dm.category_ids, mask_threshold=self.hparams.mask_threshold)

    def _eval_step(self, batch: dict, metric: CocoEvaluation | None) -> list[dict[str, torch.Tensor]]:
        preds = self.detector(self._images(batch["image"]))
        if metric is not None:
            metric.update(preds, batch["image_id"])
        return preds

    def validation_step(self, batch: dict, batch_idx: int):
        return self._eval_step(batch, self.val_metric)

    def test_step(self, batch: dict, batch_idx: int):
        return self._eval_step(batch, self.test_metric)

    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0):
        return self.detector(self._images(batch["image"]))

    def _log_metric(self, metric: CocoEvaluation | None, prefix: str) -> None:
        if metric is None or not metric.image_ids:
            return
        res = metric.compute()
        self.log_dict({f"{prefix}/{k}": v.float() for k, v in res.items()}, sync_dist=False)
        metric.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_metric(self.val_metric, "val")

    def on_test_epoch_end(self) -> None:
        self._log_metric(self.test_metric, "test")

    # ------------------------------------------------------------------ recipe
    @property
    def recipe(self) -> Recipe:
        hp = self.hparams
        return Recipe(base_lr=hp.base_lr, base_batch_size=hp.base_batch_size, optimizer="sgd", momentum=hp.momentum,
                      weight_decay=hp.weight_decay, norm_weight_decay=0.0, bias_weight_decay=0.0, schedule="steps",
                      lr_steps=tuple(hp.lr_steps), warmup_epochs=hp.warmup_fraction,
                      warmup_start_factor=hp.warmup_start_factor, epochs=1)  # fmt: skip

    def configure_optimizers(self):
        # warm-up as a fraction of all steps: the recipe's one "epoch" is the whole run
        return self.recipe.configure(self, global_batch_size(self, self.hparams.batch_size), total_training_steps(self), None)


def _coco_input() -> InputConfig:
    return InputConfig(shapes={"image": "list of B float 3,H,W RGB in [0, 1] (resized to 800 / 1333 inside)"},
                       short_side=800, datamodules=("coco",),
                       notes="COCO train2017 / val2017; box and mask AP with pycocotools COCOeval.")  # fmt: skip


_TABLE_5_4 = {"baseline": (38.0, 34.6, 59.6, 41.0, 56.4, 36.5), "nl": (39.0, 35.5, 61.1, 41.9, 58.0, 37.4)}
_KEYS = ("coco_box_ap", "coco_mask_ap", "coco_box_ap50", "coco_box_ap75", "coco_mask_ap50", "coco_mask_ap75")

#: The registered ids: constructor defaults, input contract and Table 5.4's numbers (R50 rows).
_IDS: dict[str, dict] = {
    "maskrcnn-r50-fpn": dict(defaults={}, input=_coco_input(), weights=[],
                             reported=dict(zip(_KEYS, _TABLE_5_4["baseline"]))),
    "maskrcnn-r50-fpn-nl": dict(defaults={"nonlocal_res4": [-2]}, input=_coco_input(), weights=[],
                                reported=dict(zip(_KEYS, _TABLE_5_4["nl"]))),
}

for _id, _cfg in _IDS.items():
    register_model(_id, task="object detection and instance segmentation", paper=PAPER, **_cfg)(MaskRCNN)
