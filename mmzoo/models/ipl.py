"""Interactive Prototype Learning (IPL) and its shared-backbone baselines: Wang 2021, PhD thesis
(UTS), chapter 4 (spec digest 002, section 2).

Ids:

* ``ipl-i3d-rgb`` / ``ipl-i3d-flow``: IPL on an I3D (Inception-v1) backbone, RGB or 2-channel
  optical flow, EPIC-Kitchens-100 classes by default (Table 4.1; EGTEA Table 4.4 with
  ``--model.num_verbs 19 --model.num_nouns 51``); the two-stream rows are the ``ensemble`` model
  of both (:mod:`mmzoo.models.ensemble`).
* ``ipl-r2plus1d-34``: IPL on R(2+1)D-34 (IG-65M init), EPIC-55 classes (Tables 4.2-4.3, 4.5-4.7).
* ``i3d-epic`` / ``r2plus1d-34-epic``: the thesis's baselines, a shared backbone with two linear
  heads (verb, noun) ("I3D*" of Table 4.1, "R(2+1)D-34 (shared backbone)" of Table 4.2).

Action scores: verb and noun probabilities are combined by the EPIC toolkit's product rule in
:class:`~mmzoo.metrics.classification.EpicActionAccuracy` ([SILENT] in the thesis, which only says
the action is "combined" from them); on EGTEA the action classes are the (verb, noun) pairs of
``action_idx.txt`` scored the same way (:class:`~mmzoo.metrics.egtea.EgteaAccuracy`).

Recipes (section 2.2 of the digest): I3D: SGD momentum 0.9, wd 5e-4, lr 0.006 at batch 32 (scaled
linearly to the global batch), x0.1 for the last 10 of 30 epochs, 64 frames, 224 crops; test 10
clips at 256 x 256 without a crop. R(2+1)D-34: lr 0.0004, x0.1 every 9 of 20 epochs, 32 frames at
112 (train) / 128 (test); batch [SILENT], 32 assumed.
"""
from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from mmzoo.errors import NotSupportedError
from mmzoo.metrics.classification import EpicActionAccuracy
from mmzoo.metrics.egtea import EgteaAccuracy
from mmzoo.models.base import ZooModule
from mmzoo.models.recipe import Recipe, global_batch_size, total_training_steps
from mmzoo.nn.i3d_inception import InceptionI3d, i3d_state_from_pytorch_i3d
from mmzoo.nn.ipl import IPLHead
from mmzoo.nn.r2plus1d import R2Plus1dResNet, r2plus1d_state_from_vmz
from mmzoo.registry import InputConfig, register_model

__all__ = ["FLOW_MEAN", "FLOW_STD", "I3D_MEAN", "I3D_STD", "IPL", "VMZ_MEAN", "VMZ_STD"]

PAPER = "Wang, Collaborative Dual-Stream Modeling for Video Understanding (PhD thesis UTS 2021, ch. 4: IPL)"

#: I3D inputs are scaled to [-1, 1] (pytorch-i3d: x / 255 * 2 - 1).
I3D_MEAN, I3D_STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
#: Flow JPEGs (x, y) are scaled to [-1, 1] the same way.
FLOW_MEAN, FLOW_STD = (0.5, 0.5), (0.5, 0.5)
#: The IG-65M R(2+1)D normalisation (VMZ / ig65m-pytorch).
VMZ_MEAN, VMZ_STD = (0.43216, 0.394666, 0.37645), (0.22803, 0.22145, 0.216989)


def check_labelled(batch: dict) -> None:
    """Refuse to score a batch of an unlabelled test split (targets -1) instead of reporting 0 %."""
    if (torch.as_tensor(batch["verb"]) < 0).any() or (torch.as_tensor(batch["noun"]) < 0).any():
        raise NotSupportedError("this split has no labels (EPIC test sets: targets -1): evaluate on a labelled split, "
                                "or write the challenge submission with `mmzoo predict` and "
                                "mmzoo.predict.epic.EpicSubmissionWriter")


def epic_accuracy(dm: Any) -> EpicActionAccuracy:
    """EPIC verb / noun / action top-1/5 accuracy with the DataModule's evaluation subsets
    (``metric_subsets()``: unseen participants, tail or many-shot classes) when it has them."""
    subsets = getattr(dm, "metric_subsets", None)
    return EpicActionAccuracy(top_k=(1, 5), **(subsets() if callable(subsets) else {}))


def verb_noun_loss(out: dict[str, torch.Tensor], batch: dict) -> torch.Tensor:
    """CE(verb) + CE(noun) of verb / noun logits against a batch's labels."""
    return F.cross_entropy(out["verb"], batch["verb"].long()) + F.cross_entropy(out["noun"], batch["noun"].long())


class IPL(ZooModule):
    """A shared 3D CNN with the IPL verb / noun head (``head="ipl"``) or two linear heads
    (``head="linear"``, the baselines).

    Args:
        backbone: ``"i3d"`` (Inception-v1 I3D, C = 1024) or ``"r2plus1d_34"`` (C = 512).
        in_channels: 3 (RGB) or 2 (optical flow x / y; I3D's flow stream).
        head: ``"ipl"`` or ``"linear"``.
        num_verbs / num_nouns: classes (EPIC-100 97 / 300; EPIC-55 125 / 352, the release's class
            files (the thesis says 321 nouns); EGTEA 19 / 51).
        tau / noun_tau / top_k / background / shared_prototypes / selection /
            normalize_residual_prototype / fw_kernel / fw_norm: the IPL head's arguments,
            documented with the reason for each default in :class:`mmzoo.nn.ipl.IPLHead`.
        dropout: dropout before the classifiers (0.5 on the baselines' pooled feature, as the
            pytorch-i3d logits; 0 in the IPL head: the thesis mentions none).
        width_multiplier: scales every backbone width (1 = the paper's network; smaller values
            only build small networks for tests and demos).
        backbone_init: path of an original backbone checkpoint to start from: pytorch-i3d's
            ``rgb_imagenet.pt`` / ``flow_imagenet.pt`` (Kinetics+ImageNet) or an IG-65M R(2+1)D-34
            ``.pth`` (VMZ / ig65m-pytorch); read with torch's weights-only loader, its classifier
            dropped. None: random init.
        frames / crop_size: the clip of ``example_input`` (FLOPs): the test view, 64 x 256 x 256
            for I3D, 32 x 128 x 128 for R(2+1)D-34.
        base_lr / base_batch_size / momentum / weight_decay / lr_steps / recipe_epochs: the recipe
            (lr scaled linearly from ``base_batch_size`` to the global batch, x0.1 at each
            ``lr_steps`` fraction of training).
    """

    def __init__(
        self,
        backbone: Literal["i3d", "r2plus1d_34"] = "i3d",
        in_channels: int = 3,
        head: Literal["ipl", "linear"] = "ipl",
        num_verbs: int = 97,
        num_nouns: int = 300,
        tau: float = 0.05,
        noun_tau: float | None = None,
        top_k: int = 5,
        background: bool = True,
        shared_prototypes: bool = True,
        selection: Literal["top_k", "all"] = "top_k",
        normalize_residual_prototype: bool = False,
        fw_kernel: int = 1,
        fw_norm: Literal["channel", "feature"] = "channel",
        dropout: float = 0.0,
        width_multiplier: float = 1.0,
        backbone_init: str | None = None,
        frames: int = 64,
        crop_size: int = 256,
        base_lr: float = 0.006,
        base_batch_size: int = 32,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        lr_steps: list[float] = [2 / 3],  # noqa: B006 - JSON-serialisable default
        recipe_epochs: int = 30,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if backbone == "i3d":
            self.backbone: nn.Module = InceptionI3d(in_channels, num_classes=0, width_divisor=round(1 / width_multiplier))
        elif backbone == "r2plus1d_34":
            self.backbone = R2Plus1dResNet(34, num_classes=0, width=max(int(64 * width_multiplier), 1), in_channels=in_channels)
        else:
            raise ValueError(f"backbone must be 'i3d' or 'r2plus1d_34', got {backbone!r}")
        dim = self.backbone.out_channels
        if head == "ipl":
            self.head: nn.Module = IPLHead(dim, num_verbs, num_nouns, tau, noun_tau, top_k, background, shared_prototypes,
                                           selection, normalize_residual_prototype, fw_kernel, fw_norm, dropout)
        elif head == "linear":
            self.head = nn.ModuleDict({"dropout": nn.Dropout(dropout), "verb": nn.Linear(dim, num_verbs),
                                       "noun": nn.Linear(dim, num_nouns)})
        else:
            raise ValueError(f"head must be 'ipl' or 'linear', got {head!r}")
        if backbone_init:
            self.load_backbone_file(backbone_init)
        self.val_metric: nn.Module = EpicActionAccuracy(top_k=(1, 5))
        self.test_metric: nn.Module = EpicActionAccuracy(top_k=(1, 5))

    # ------------------------------------------------------------------ weights
    def load_backbone_file(self, path: str) -> None:
        """Initialise the backbone from an original checkpoint (see ``backbone_init``)."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
        self.load_backbone(state)

    def load_backbone(self, original_state: dict[str, torch.Tensor]) -> None:
        """Load a pytorch-i3d / VMZ state dict (keys as released) into the backbone, strictly
        except for the released classifier, which is dropped."""
        if self.hparams.backbone == "i3d":
            state = i3d_state_from_pytorch_i3d(original_state, keep_logits=False)
        else:
            state = r2plus1d_state_from_vmz(original_state, keep_fc=False)
        self.backbone.load_state_dict(state, strict=True)

    # ------------------------------------------------------------------ forward
    def forward_features(self, video: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named features (`mmzoo extract`): "res5" (``B, C, T, H, W``, the backbone's last map)
        and "pooled" (``B, C``, its global average)."""
        fmap = self.backbone.features(video)
        return {"res5": fmap, "pooled": fmap.mean(dim=(2, 3, 4))}

    def forward(self, video: torch.Tensor) -> dict[str, torch.Tensor]:
        """``video`` (``B, in_channels, T, H, W``) -> {"verb", "noun"} logits."""
        fmap = self.backbone.features(video)
        if self.hparams.head == "ipl":
            out = self.head(fmap)
            return {"verb": out["verb"], "noun": out["noun"]}
        v = self.head["dropout"](fmap.mean(dim=(2, 3, 4)))
        return {"verb": self.head["verb"](v), "noun": self.head["noun"](v)}

    def example_input(self, batch_size: int = 1) -> dict[str, Any]:
        hp = self.hparams
        return {"video": torch.randn(batch_size, hp.in_channels, hp.frames, hp.crop_size, hp.crop_size)}

    # ------------------------------------------------------------------ Lightning
    def setup(self, stage: str) -> None:
        """Pick the evaluation metric from the DataModule: EGTEA (it exposes ``action_pairs``)
        gets mean class accuracy, EPIC the toolkit's accuracies with its subsets."""
        super().setup(stage)
        trainer = getattr(self, "_trainer", None)
        dm = getattr(trainer, "datamodule", None)
        if dm is None or stage == "predict":
            return
        targets = getattr(dm, "targets", ())
        if not {"verb", "noun"} <= set(targets):
            raise NotSupportedError(f"{type(self).__name__} trains on verb / noun labels, but "
                                    f"{getattr(dm, 'datamodule_name', type(dm).__name__)!r} batches carry {list(targets)}")
        pairs = getattr(dm, "action_pairs", None)
        if pairs is not None:
            self.val_metric = EgteaAccuracy(pairs).to(self.device)
            self.test_metric = EgteaAccuracy(pairs).to(self.device)
            return
        self.val_metric = epic_accuracy(dm).to(self.device)
        self.test_metric = epic_accuracy(dm).to(self.device)

    def _loss(self, out: dict[str, torch.Tensor], batch: dict) -> torch.Tensor:
        """CE(verb) + CE(noun) (section 2.1)."""
        return verb_noun_loss(out, batch)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        out = self(batch["video"])
        loss = self._loss(out, batch)
        self.log("train/loss", loss, batch_size=out["verb"].shape[0])
        return loss

    @staticmethod
    def _scores(out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"verb": out["verb"].softmax(-1), "noun": out["noun"].softmax(-1)}

    def _eval_step(self, batch: dict, metric, prefix: str) -> None:
        check_labelled(batch)
        out = self(batch["video"])
        scores = self._scores(out)
        vid = batch.get("video_index")
        n = out["verb"].shape[0]
        if isinstance(metric, EgteaAccuracy):
            metric.update(scores["verb"], scores["noun"], batch["verb"], batch["noun"], batch["action"], vid)
        else:
            metric.update(scores["verb"], scores["noun"], batch["verb"], batch["noun"], vid, unseen=batch.get("unseen"))
        self.log(f"{prefix}/loss", self._loss(out, batch), batch_size=n, sync_dist=True)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, self.val_metric, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, self.test_metric, "test")

    def _log_metric(self, metric, prefix: str) -> None:
        self.log_dict({f"{prefix}/{k}": v for k, v in metric.compute().items()})
        metric.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_metric(self.val_metric, "val")

    def on_test_epoch_end(self) -> None:
        self._log_metric(self.test_metric, "test")

    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> dict[str, torch.Tensor]:
        """Verb / noun probabilities (what :class:`mmzoo.predict.epic.EpicSubmissionWriter` writes)."""
        return self._scores(self(batch["video"]))

    # ------------------------------------------------------------------ recipe
    @property
    def recipe(self) -> Recipe:
        hp = self.hparams
        return Recipe(base_lr=hp.base_lr, base_batch_size=hp.base_batch_size, optimizer="sgd", momentum=hp.momentum,
                      weight_decay=hp.weight_decay, norm_weight_decay=hp.weight_decay, schedule="steps",
                      lr_steps=tuple(hp.lr_steps), epochs=hp.recipe_epochs)

    def configure_optimizers(self):
        trainer = getattr(self, "_trainer", None)
        return self.recipe.configure(self, global_batch_size(self), total_training_steps(self),
                                     trainer.max_epochs if trainer is not None else None)


def _i3d_input(channels: int) -> InputConfig:
    rgb = channels == 3
    # EGTEA is released without optical flow: the flow stream pairs with EPIC-Kitchens only
    datamodules = ("epic-kitchens", "egtea") if rgb else ("epic-kitchens",)
    return InputConfig(
        shapes={"video": f"B,{channels},64,256,256"}, frames=64, sampling_rate=2, train_crop=224, test_crop=256,
        short_side=256, train_scale=(256, 320), mean=I3D_MEAN if rgb else FLOW_MEAN, std=I3D_STD if rgb else FLOW_STD,
        test_views=(10, 1), datamodules=datamodules,
        notes=("64 frames at stride 2 (stride [SILENT] in ch. 4; ch. 3: stride 2 at 60 fps); 224 crops of a short "
               "side in [256, 320] for training; 10 clips at 256 x 256, no crop, for testing"
               + ("" if rgb else "; flow frames (x, y) of the release, indexed from the RGB frame numbers")),
    )  # fmt: skip


_R2P1D_INPUT = InputConfig(
    shapes={"video": "B,3,32,128,128"}, frames=32, sampling_rate=2, train_crop=112, test_crop=128, short_side=128,
    train_scale=(128, 160), mean=VMZ_MEAN, std=VMZ_STD, test_views=(10, 1), datamodules=("epic-kitchens",),
    notes="32 frames (stride [SILENT], 2 assumed), 112 training crops, 10 clips at 128 x 128 for testing",
)  # fmt: skip

_R2P1D = {"backbone": "r2plus1d_34", "num_verbs": 125, "num_nouns": 352, "frames": 32, "crop_size": 128,
          "base_lr": 0.0004, "lr_steps": [9 / 20, 18 / 20], "recipe_epochs": 20}

#: The registered ids: constructor defaults, input contract and the thesis's numbers.
_IDS: dict[str, dict] = {
    "ipl-i3d-rgb": dict(
        defaults={}, input=_i3d_input(3),
        # Table 4.2 (stream not stated; RGB assumed). Tables 4.1 / 4.4 are two-stream: ipl-i3d-2stream
        reported={"epic55_val_action_top1": 24.5, "epic55_val_verb_top1": 59.8, "epic55_val_noun_top1": 33.2},
    ),
    "ipl-i3d-flow": dict(defaults={"in_channels": 2}, input=_i3d_input(2), reported={}),
    "ipl-r2plus1d-34": dict(
        defaults=dict(_R2P1D), input=_R2P1D_INPUT,
        reported={"epic55_val_action_top1": 25.4, "epic55_val_verb_top1": 60.7, "epic55_val_noun_top1": 35.5},
    ),
    "i3d-epic": dict(
        defaults={"head": "linear", "dropout": 0.5}, input=_i3d_input(3),
        # Table 4.2; Table 4.1's "I3D*" (EPIC-100, streams not stated) is quoted in the card
        reported={"epic55_val_action_top1": 23.5, "epic55_val_verb_top1": 59.6, "epic55_val_noun_top1": 31.3},
    ),
    "r2plus1d-34-epic": dict(
        defaults={**_R2P1D, "head": "linear", "dropout": 0.5}, input=_R2P1D_INPUT,
        reported={"epic55_val_action_top1": 23.6, "epic55_val_verb_top1": 60.5, "epic55_val_noun_top1": 31.1},
    ),
}

for _id, _cfg in _IDS.items():
    register_model(_id, task="egocentric action recognition", paper=PAPER, **_cfg)(IPL)
