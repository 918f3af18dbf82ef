"""The frame recognisers of PSN (Wang 2021, thesis ch. 5, Sec. 5.3.2): ImageNet ResNets (timm)
applied to single frames, trained with the TSN strategy or frame by frame.

Ids: `tsn-r50`, `tsn-r101`, `tsn-r152` (TSN strategy: the logits of the video's sampled frames
are averaged, the segmental consensus, before the softmax loss; batch 32, lr 0.002) and
`frame-r101` (frame-based, after AdaFrame: every sampled frame is its own training example with
the video's label; batch 64, lr 0.001). Both recipes: SGD, momentum 0.9, weight decay 1e-4, 50
epochs, lr / 10 every 20 epochs (the step schedule at 20 and 40 of 50 epochs).

At test time every recogniser scores the frames it is given (25 centre frames of 25 equal
segments by default: the "Uniform" rows of Tables 5.4-5.5, 195.8 GFLOPs for R-101) and averages
their logits. `mmzoo test` logs `test/gflops_per_video`, measured with torch's FLOP counter on
the test batches (multiply-adds), beside `test/mAP`, `test/hit@3` and `test/top1`.

This module also holds what PSN shares with the recognisers: `FrameClassifier` (backbone +
dropout + classifier, the recogniser PSN freezes), the targets of a batch and the evaluation
logic (`VideoRecognizerBase`).
"""
from __future__ import annotations

from typing import Any, ClassVar, Literal, Optional

import torch
from torch import nn
from torchmetrics import MeanMetric

from mmzoo.data.constants import IMAGENET_MEAN, IMAGENET_STD
from mmzoo.metrics.activitynet import ActivityNetClassification, multi_hot
from mmzoo.models.base import ZooModule
from mmzoo.models.recipe import Recipe, global_batch_size, total_training_steps
from mmzoo.nn.timm_backbone import create_timm_model
from mmzoo.registry import InputConfig, register_model

__all__ = [
    "PAPER",
    "FrameClassifier",
    "TSNRecognizer",
    "VideoRecognizerBase",
    "count_macs",
    "untrimmed_input",
    "video_targets",
]

PAPER = "Xiaohan Wang, Collaborative Dual-Stream Modeling for Video Understanding (PhD thesis UTS 2021, ch. 5)"

#: timm names of the recogniser backbones.
BACKBONES = {"resnet50": "resnet50", "resnet101": "resnet101", "resnet152": "resnet152"}


def count_macs(fn, *args: Any, **kwargs: Any) -> int:
    """Multiply-adds of ``fn(*args, **kwargs)`` (torch.utils.flop_counter counts 2 per MAC)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn(*args, **kwargs)
    return counter.get_total_flops() // 2


def video_targets(batch: dict, num_classes: int, device: torch.device) -> torch.Tensor:
    """(B, K) float 0/1 targets: ``video_label`` (multi-hot, ActivityNet / FCVID) when the batch has
    it, else the one-hot ``label`` (Kinetics)."""
    if "video_label" in batch:
        t = torch.as_tensor(batch["video_label"], device=device).float()
        if t.dim() != 2 or t.shape[1] != num_classes:
            raise ValueError(f"batch['video_label'] must be (B, {num_classes}) multi-hot, got {tuple(t.shape)} "
                             f"(does --model.num_classes match the dataset?)")
        return t
    return multi_hot(torch.as_tensor(batch["label"], device=device), num_classes).float()


def soft_target_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``-E[y^T log softmax(l)]`` (thesis Eq. 5.5) for one-hot or multi-hot ``y`` (B, K)."""
    return -(target * logits.log_softmax(-1)).sum(-1).mean()


def frames_of(video: torch.Tensor) -> torch.Tensor:
    """(B, 3, T, H, W) -> (B * T, 3, H, W), frame-major within each video."""
    if video.dim() != 5:
        raise ValueError(f"expected video (B, 3, T, H, W), got shape {tuple(video.shape)}")
    b, c, t, h, w = video.shape
    return video.transpose(1, 2).reshape(b * t, c, h, w)


class FrameClassifier(nn.Module):
    """A timm ResNet on single frames: pooled features, dropout, linear classifier.

    ``layers`` / ``channels`` / ``stem_width`` override the ResNet's depth and widths (tiny test
    configurations only; None = the named network)."""

    def __init__(self, backbone: str, num_classes: int, dropout: float, pretrained: bool,
                 layers: Optional[list[int]] = None, channels: Optional[list[int]] = None,
                 stem_width: Optional[int] = None) -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"unknown recogniser backbone {backbone!r}; choose one of {sorted(BACKBONES)}")
        extra: dict[str, Any] = {}
        if layers is not None:
            extra["layers"] = tuple(layers)
        if channels is not None:
            extra["channels"] = tuple(channels)
        if stem_width is not None:
            extra["stem_width"] = stem_width
        tiny = bool(extra)
        self.backbone, _ = create_timm_model(BACKBONES[backbone], pretrained=pretrained and not tiny, num_classes=0,
                                             fallback_hint="Train the recogniser before relying on it.", **extra)
        self.dim = self.backbone.num_features
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(self.dim, num_classes)
        nn.init.normal_(self.fc.weight, std=0.001)
        nn.init.zeros_(self.fc.bias)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """(F, 3, H, W) frames -> (F, K) logits."""
        return self.fc(self.dropout(self.backbone(frames)))

    def video_logits(self, video: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) -> (B, T, K) per-frame logits."""
        b, t = video.shape[0], video.shape[2]
        return self(frames_of(video)).view(b, t, -1)


def untrimmed_input(frames: int = 25, datamodules: tuple[str, ...] = ("activitynet", "fcvid", "kinetics")) -> InputConfig:
    """PSN's input: ``frames`` centre frames of as many equal segments (random frame per segment in
    training), 224 crops, ImageNet normalisation (thesis Sec. 5.3.2)."""
    return InputConfig(
        shapes={"video": f"B,3,{frames},224,224"}, frames=frames, sampling_rate=1, train_crop=224, test_crop=224,
        short_side=256, train_scale=(256, 320), mean=IMAGENET_MEAN, std=IMAGENET_STD, test_views=(1, 1),
        datamodules=datamodules,
        notes="one frame from each of `frames` equal segments (TSN sampling; ActivityNet / FCVID decoded at 1 fps, "
              "Mini-Kinetics at 30 fps with --data.temporal tsn)",
    )  # fmt: skip


class VideoRecognizerBase(ZooModule):
    """Evaluation shared by the recognisers and PSN: per-video scores -> the official ActivityNet
    metrics (mAP, hit@3, top-1; FCVID mAP and Mini-Kinetics top-1 are the same numbers), the loss,
    and the measured cost `gflops_per_video` (multiply-adds counted by torch's FLOP counter while
    the test batch runs, divided by the batch size). Subclasses implement `forward(video)` (B, K)
    logits and `_train_loss(batch)`."""

    def _setup_metrics(self, num_classes: int) -> None:
        self.val_metric = ActivityNetClassification(num_classes)
        self.test_metric = ActivityNetClassification(num_classes)
        self.test_gflops = MeanMetric()

    def _eval_step(self, batch: dict, metric, prefix: str, measure: bool) -> torch.Tensor:
        video = batch["video"]
        b = video.shape[0]
        if measure:
            from torch.utils.flop_counter import FlopCounterMode

            with FlopCounterMode(display=False) as counter:
                logits = self(video)
            self.test_gflops.update(torch.tensor(counter.get_total_flops() / 2 / b / 1e9, device=video.device),
                                    weight=b)
        else:
            logits = self(video)
        target = video_targets(batch, logits.shape[-1], logits.device)
        self.log(f"{prefix}/loss", soft_target_loss(logits, target), batch_size=b, sync_dist=True)
        vid = batch.get("video_index")
        metric.update(logits.softmax(-1), target.long(), None if vid is None else torch.as_tensor(vid, device=logits.device))
        return logits

    def validation_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._eval_step(batch, self.val_metric, "val", measure=False)

    def test_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._eval_step(batch, self.test_metric, "test", measure=True)

    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        return self(batch["video"]).softmax(-1)

    def _log_metric(self, metric, prefix: str) -> None:
        self.log_dict({f"{prefix}/{k}": v.float() for k, v in metric.compute().items()})
        metric.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_metric(self.val_metric, "val")

    def on_test_epoch_end(self) -> None:
        self._log_metric(self.test_metric, "test")
        self.log("test/gflops_per_video", self.test_gflops.compute())
        self.test_gflops.reset()

    def _train_loss(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError  # pragma: no cover - every subclass defines it

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss, logs = self._train_loss(batch)
        self.log_dict({"train/loss": loss, **logs}, batch_size=batch["video"].shape[0])
        return loss


    def _optimized(self) -> nn.Module:
        """The module the optimizer trains: the whole model (PSN: only its sampler)."""
        return self

    @property
    def recipe(self) -> Recipe:
        """SGD with momentum, step decay at ``lr_steps`` of ``recipe_epochs`` (the constructor's
        ``base_lr`` at ``base_batch_size``, scaled linearly with the global batch)."""
        hp = self.hparams
        return Recipe(base_lr=hp.base_lr, base_batch_size=hp.base_batch_size, optimizer="sgd", momentum=hp.momentum,
                      weight_decay=hp.weight_decay, norm_weight_decay=hp.weight_decay, schedule="steps",
                      lr_steps=tuple(hp.lr_steps), epochs=hp.recipe_epochs)  # fmt: skip

    def configure_optimizers(self):
        trainer = getattr(self, "_trainer", None)
        return self.recipe.configure(self._optimized(), global_batch_size(self), total_training_steps(self),
                                     trainer.max_epochs if trainer is not None else None)


class TSNRecognizer(VideoRecognizerBase):
    """A ResNet frame recogniser trained with the TSN strategy or frame by frame (module docstring).

    Args:
        num_classes: 200 (ActivityNet, Mini-Kinetics) or 239 (FCVID); linked from the DataModule.
        backbone: "resnet50", "resnet101" or "resnet152" (timm).
        pretrained_backbone: start from timm's ImageNet weights (thesis: ImageNet-pretrained);
            offline without them in the cache, a loud random initialisation.
        backbone_layers / backbone_channels / stem_width: tiny test variants only (None = the
            named ResNet).
        dropout: before the classifier ([SILENT]; 0.5).
        training_mode: "tsn" (logits of the T frames averaged, then softmax loss) or "frame"
            (every frame a training example with the video's label).
        base_lr: 0.002 (TSN, batch 32) / 0.001 (frame-based, batch 64); `base_batch_size` is
            the batch it is stated for (lr scaled linearly to the global batch).
        momentum / weight_decay: 0.9 / 1e-4.
        lr_steps: fractions of training at which the lr is divided by 10 (20 and 40 of 50 epochs).
        recipe_epochs: 50.
        crop_size: frame size of `example_input` (224).
        num_frames: frames of `example_input` (25: the Uniform baseline of Tables 5.4-5.5).
    """

    def __init__(
        self,
        num_classes: int = 200,
        backbone: Literal["resnet50", "resnet101", "resnet152"] = "resnet101",
        pretrained_backbone: bool = True,
        backbone_layers: Optional[list[int]] = None,
        backbone_channels: Optional[list[int]] = None,
        stem_width: Optional[int] = None,
        dropout: float = 0.5,
        training_mode: Literal["tsn", "frame"] = "tsn",
        base_lr: float = 0.002,
        base_batch_size: int = 32,
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        lr_steps: list[float] = [0.4, 0.8],  # noqa: B006 - JSON-serialisable default
        recipe_epochs: int = 50,
        crop_size: int = 224,
        num_frames: int = 25,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if training_mode not in ("tsn", "frame"):
            raise ValueError(f"training_mode must be 'tsn' or 'frame', got {training_mode!r}")
        self.net = FrameClassifier(backbone, num_classes, dropout, pretrained_backbone, backbone_layers,
                                   backbone_channels, stem_width)
        self._setup_metrics(num_classes)

    init_without_download: ClassVar[dict[str, Any]] = {"pretrained_backbone": False}

    def forward_features(self, video: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named features (`mmzoo extract`): "frames" (``B, T, D``, the backbone's pooled vector of
        each frame, before dropout and the classifier) and "pooled" (``B, D``, their mean, as the
        segmental consensus averages the frames)."""
        b, t = video.shape[0], video.shape[2]
        frames = self.net.backbone(frames_of(video)).view(b, t, -1)
        return {"frames": frames, "pooled": frames.mean(1)}

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) -> (B, K): the average of the T frames' logits."""
        return self.net.video_logits(video).mean(1)

    def _train_loss(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        video = batch["video"]
        logits = self.net.video_logits(video)  # B, T, K
        target = video_targets(batch, logits.shape[-1], logits.device)
        if self.hparams.training_mode == "tsn":
            loss = soft_target_loss(logits.mean(1), target)
        else:
            t = logits.shape[1]
            loss = soft_target_loss(logits.flatten(0, 1), target.repeat_interleave(t, 0))
        return loss, {"train/cls_loss": loss}

    def frame_macs(self, crop_size: Optional[int] = None) -> int:
        """Multiply-adds of the recogniser on one frame at `crop_size` (default: `crop_size`)."""
        s = crop_size or self.hparams.crop_size
        p = next(self.parameters())
        x = torch.zeros(1, 3, s, s, device=p.device, dtype=p.dtype)
        with torch.no_grad():
            return count_macs(self.net, x)

    def cost_breakdown(self) -> dict[str, float]:
        """GFLOPs (multiply-adds) per video of `example_input`: the recogniser on every frame."""
        per = self.frame_macs() / 1e9
        n = self.hparams.num_frames
        return {"recognizer_per_frame": per, "recognizer_frames": n, "total": per * n}


    def example_input(self, batch_size: int = 1) -> dict[str, Any]:
        s = self.hparams.crop_size
        return {"video": torch.randn(batch_size, 3, self.hparams.num_frames, s, s)}


#: Reported numbers: (FCVID mAP, ActivityNet mAP, GFLOPs) of the Uniform rows, Tables 5.4-5.5.
_IDS: dict[str, dict] = {
    "tsn-r50": dict(defaults={"backbone": "resnet50"}, reported={}),
    "tsn-r101": dict(defaults={"backbone": "resnet101"},
                     reported={"fcvid_map_uniform25": 82.2, "anet_map_uniform25": 81.3, "gflops_uniform25": 195.8,
                               "anet_map_tsn_10frames": 79.06}),
    "tsn-r152": dict(defaults={"backbone": "resnet152"}, reported={}),
    "frame-r101": dict(defaults={"backbone": "resnet101", "training_mode": "frame", "base_lr": 0.001,
                                 "base_batch_size": 64},
                       reported={"fcvid_map_uniform25": 80.4, "anet_map_uniform25": 70.2, "gflops_uniform25": 195.8}),
}

for _id, _cfg in _IDS.items():
    register_model(_id, task="video classification (frame recogniser)", paper=PAPER, input=untrimmed_input(),
                   weights=[], **_cfg)(TSNRecognizer)
