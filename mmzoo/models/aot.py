"""Arrow of Time: the T-CAM classifier (Wei, Lim, Zisserman, Freeman, "Learning and Using the
Arrow of Time", CVPR 2018; seed 004, slides B.4).

T-CAM: a VGG-16 convolutional trunk applied to the stacked optical flow of each of ``T``
segments (shared weights), the conv5 features of the segments concatenated along channels
("concatenating conv5 VGG features computed over T segments"), a fusion of convolutions, global
average pooling (so that class activation maps, Zhou et al. CVPR 2016, localise the evidence) and
a forward / backward classifier.

The slides give only this design; the points they leave open follow the authors' Torch code
(github.com/donglaiw/AoT_TCAM, ``models/vggbn_tcam_pair2_cudnn.lua`` and the README's UCF101
command), and each is a constructor argument:

* T = 2 segments of 10 flow fields (x, y: 20 input channels per segment; ``vnF=20``, ``vnC=2``,
  ``pair2``);
* VGG-16 configuration "D" with BatchNorm *after* each ReLU (eps 1e-3), the fifth max-pool
  removed (conv5 at 1/16 of the input: 14 x 14 for 224 crops);
* fusion: two 3x3 convs of ``T x 512 = 1024`` channels, each + ReLU + BN + dropout 0.5;
* GAP, one linear unit and a sigmoid (binary cross-entropy): ``num_classes=1``; with
  ``num_classes > 1`` a softmax classifier (action recognition, the fine-tuning rows);
* Kaiming-normal conv initialisation (``wInit=kaiming``), classifier N(0, 0.01);
* SGD, momentum 0.9, weight decay 5e-4, lr 0.01 for the first epoch then 0.001 (``paramId
  5.1``; 20 epochs), batch 32.

Inputs: ``flow`` ``(B, T * 2 * L, H, W)`` segment-major (the ``arrow-of-time`` DataModule's batch
field), flow in pixels / 20.
"""
from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from mmzoo.metrics.classification import MultiViewAccuracy
from mmzoo.models.base import ZooModule
from mmzoo.models.recipe import Recipe, global_batch_size, total_training_steps
from mmzoo.models.slowfast import video_indices
from mmzoo.registry import InputConfig, register_model

__all__ = ["AOT_FINETUNE_ROWS", "TCAM", "VGG16_BLOCKS"]

PAPER = "Wei, Lim, Zisserman, Freeman, Learning and Using the Arrow of Time (CVPR 2018); seed 004 slides B.4"

#: VGG-16 ("D"): convs per block; the widths are the ``widths`` argument.
VGG16_BLOCKS = (2, 2, 3, 3, 3)

#: The slides' UCF101 fine-tuning table (top-1 %, UCF101) as `transfer` configurations of the
#: `aot-tcam-vgg16` source: initialisation x trained layers. The "[24]" rows of the table (an
#: unidentified reference) are not T-CAM and are left out. Initialisations: "random" (no
#: `source_weights`), "imagenet" (an ImageNet VGG-16 adapted to flow: no such weights in mmzoo),
#: "aot-ucf101" / "aot-flickr" / "aot-kinetics" (an `aot-tcam-vgg16` trained on that set's arrow of time).
AOT_FINETUNE_ROWS: dict[str, dict[str, Any]] = {
    f"{init} / {proto}": {"init": init, "protocol": proto, "ucf101": acc}
    for init, accs in {
        "random": (38.0, 53.1, 79.3),
        "imagenet": (47.9, 68.3, 84.1),
        "aot-ucf101": (58.6, 81.2, 86.3),
        "aot-flickr": (57.2, 79.2, 84.1),
        "aot-kinetics": (55.3, 74.3, 79.4),
    }.items()
    for proto, acc in zip(("finetune-last", "finetune-after-fusion", "finetune-all"), accs)
}


def _vgg_block(cin: int, cout: int, convs: int, eps: float, pool: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(convs):
        layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True), nn.BatchNorm2d(cout, eps=eps)]
        cin = cout
    if pool:
        layers.append(nn.MaxPool2d(2, 2))
    return nn.Sequential(*layers)


class TCAM(ZooModule):
    """T-CAM arrow-of-time classifier on stacked optical flow (module docstring).

    Args:
        num_segments: T, segments whose conv5 features are concatenated (2, authors' code).
        flow_frames: L, flow fields per segment (10; 2L input channels per segment).
        widths: channels of the five VGG blocks (64, 128, 256, 512, 512 = VGG-16; smaller only for
            tiny test variants).
        fusion_convs: 3x3 convs after the concatenation (2, authors' code).
        fusion_channels: their width (None = T x widths[-1] = 1024, authors' code).
        dropout: dropout after each fusion conv (0.5).
        bn_eps: BatchNorm epsilon (1e-3, authors' code).
        num_classes: 1 = forward / backward with a sigmoid (the pretext); > 1 = softmax classes.
        crop_size: spatial size of ``example_input`` (224).
        base_lr / base_batch_size: lr 0.01 at batch 32 (authors' ``paramId 5.1``), scaled linearly.
        lr_steps: fractions of training where the lr is divided by 10 (0.05 = after the first of
            20 epochs, authors' code).
        momentum / weight_decay: 0.9 / 5e-4 (authors' code).
    """

    def __init__(
        self,
        num_segments: int = 2,
        flow_frames: int = 10,
        widths: list[int] = [64, 128, 256, 512, 512],  # noqa: B006 - JSON-serialisable default
        fusion_convs: int = 2,
        fusion_channels: int | None = None,
        dropout: float = 0.5,
        bn_eps: float = 1e-3,
        num_classes: int = 1,
        crop_size: int = 224,
        base_lr: float = 0.01,
        base_batch_size: int | None = 32,
        lr_steps: list[float] = [0.05],  # noqa: B006
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        lr_schedule: Literal["steps", "cosine", "constant"] = "steps",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if len(widths) != len(VGG16_BLOCKS):
            raise ValueError(f"widths must give the {len(VGG16_BLOCKS)} VGG-16 blocks, got {widths}")
        cin = 2 * flow_frames
        blocks = []
        for i, (n, w) in enumerate(zip(VGG16_BLOCKS, widths)):
            blocks.append(_vgg_block(cin, w, n, bn_eps, pool=i < len(VGG16_BLOCKS) - 1))
            cin = w
        self.vgg = nn.ModuleList(blocks)
        fused = fusion_channels or num_segments * widths[-1]
        layers: list[nn.Module] = []
        cin = num_segments * widths[-1]
        for _ in range(fusion_convs):
            layers += [nn.Conv2d(cin, fused, 3, padding=1), nn.ReLU(inplace=True), nn.BatchNorm2d(fused, eps=bn_eps),
                       nn.Dropout(dropout)]
            cin = fused
        self.fusion = nn.Sequential(*layers)
        self.feature_dim = cin
        self.fc = nn.Linear(cin, num_classes)
        self.after_fusion_prefixes = ("fusion.",)
        for m in self.modules():  # the authors' wInit "kaiming"
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)
        self.val_metric = MultiViewAccuracy(top_k=(1,))
        self.test_metric = MultiViewAccuracy(top_k=(1,))

    # ------------------------------------------------------------------ network
    def fused_maps(self, flow: torch.Tensor) -> torch.Tensor:
        """Fusion output ``(B, C, h, w)`` before pooling."""
        hp = self.hparams
        b, c, h, w = flow.shape
        per = 2 * hp.flow_frames
        if c != hp.num_segments * per:
            raise ValueError(f"flow has {c} channels; this T-CAM takes {hp.num_segments} segments x {per} "
                             f"(2 x {hp.flow_frames} flow fields) = {hp.num_segments * per}")
        x = flow.reshape(b * hp.num_segments, per, h, w)
        for block in self.vgg:
            x = block(x)
        x = x.reshape(b, hp.num_segments * x.shape[1], *x.shape[-2:])
        return self.fusion(x)

    def features(self, flow: torch.Tensor) -> torch.Tensor:
        """Globally average-pooled fusion features ``(B, C)`` (what the classifier sees)."""
        return self.fused_maps(flow).mean(dim=(-2, -1))

    def forward_features(self, flow: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named features (`mmzoo extract`): "fused" (``B, C, h, w``, the fusion maps) and
        "pooled" (``B, C``, their global average: what the classifier sees)."""
        maps = self.fused_maps(flow)
        return {"fused": maps, "pooled": maps.mean(dim=(-2, -1))}

    def forward(self, flow: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes)`` (one logit of "forward" for the pretext)."""
        return self.fc(self.features(flow))

    def cam(self, flow: torch.Tensor) -> torch.Tensor:
        """Class activation maps ``(B, num_classes, h, w)``: the classifier applied at every
        position of the fusion maps, so their spatial mean equals the logits."""
        maps = self.fused_maps(flow)
        return torch.einsum("kc,bchw->bkhw", self.fc.weight, maps) + self.fc.bias[None, :, None, None]

    def layer_depth(self, name: str) -> int:
        """VGG block i -> i, fusion -> 5 (layer-wise lr decay in `transfer`)."""
        if name.startswith("vgg."):
            return int(name.split(".")[1])
        return len(VGG16_BLOCKS)

    def example_input(self, batch_size: int = 1) -> dict[str, Any]:
        hp = self.hparams
        s = hp.crop_size
        return {"flow": torch.randn(batch_size, hp.num_segments * 2 * hp.flow_frames, s, s)}

    # ------------------------------------------------------------------ steps
    def _loss(self, logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        if self.hparams.num_classes == 1:
            return F.binary_cross_entropy_with_logits(logits[:, 0], label.float())
        return F.cross_entropy(logits, label.long())

    def _scores(self, logits: torch.Tensor) -> torch.Tensor:
        if self.hparams.num_classes == 1:
            p = torch.sigmoid(logits)
            return torch.cat([1 - p, p], dim=1)  # [backward, forward]
        return logits.softmax(-1)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        logits = self(batch["flow"])
        loss = self._loss(logits, batch["label"])
        self.log("train/loss", loss, batch_size=logits.shape[0])
        return loss

    def _eval(self, batch: dict, metric, prefix: str) -> torch.Tensor:
        logits = self(batch["flow"])
        self.log(f"{prefix}/loss", self._loss(logits, batch["label"]), batch_size=logits.shape[0], sync_dist=True)
        scores = self._scores(logits)
        metric.update(scores, batch["label"].long(), video_indices(batch, scores.device))
        return scores

    def validation_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._eval(batch, self.val_metric, "val")

    def test_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._eval(batch, self.test_metric, "test")

    def _log(self, metric, prefix: str) -> None:
        self.log_dict({f"{prefix}/{k}": v for k, v in metric.compute().items()})
        metric.reset()

    def on_validation_epoch_end(self) -> None:
        self._log(self.val_metric, "val")

    def on_test_epoch_end(self) -> None:
        self._log(self.test_metric, "test")

    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        return self._scores(self(batch["flow"]))

    # ------------------------------------------------------------------ recipe
    @property
    def recipe(self) -> Recipe:
        hp = self.hparams
        return Recipe(base_lr=hp.base_lr, base_batch_size=hp.base_batch_size, optimizer="sgd", momentum=hp.momentum,
                      weight_decay=hp.weight_decay, norm_weight_decay=0.0, schedule=hp.lr_schedule,
                      lr_steps=tuple(hp.lr_steps))

    def configure_optimizers(self):
        return self.recipe.configure(self, global_batch_size(self), total_training_steps(self))


register_model(
    "aot-tcam-vgg16",
    task="arrow of time (self-supervised)",
    paper=PAPER,
    input=InputConfig(
        shapes={"flow": "B,40,224,224 (2 segments x 10 TV-L1 flow fields x (x, y), / 20)"},
        frames=21, train_crop=224, test_crop=224, short_side=256, datamodules=("arrow-of-time",),
        notes="Stacked TV-L1 optical flow from the arrow-of-time DataModule (any video source).",
    ),
    reported={f"ucf101_{r['init'].replace('-', '_')}_{r['protocol'].replace('-', '_')}": r["ucf101"]
              for r in sorted(AOT_FINETUNE_ROWS.values(), key=lambda r: (r["init"] != "aot-ucf101",  # headline first
                                                                          r["protocol"] == "finetune-last"))},
)(TCAM)
