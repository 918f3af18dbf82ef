"""Symbiotic Attention with Object-centric feature Alignment (SAOA) and its earlier variant SAP:
Wang 2021, PhD thesis (UTS), chapter 3 (spec digest 002, section 1).

Ids (EPIC-Kitchens-55 verb / noun / action; ``reported`` = Table 3.5, validation top-1):

* ``saoa-r50-rgb`` / ``saoa-r50-flow``: VerbNet and NounNet are ResNet-50-3D (Hara et al.,
  :class:`~mmzoo.nn.resnet3d_hara.HaraResNet3d`, C = 2048) on RGB / 2-channel flow.
* ``saoa-i3d-rgb`` / ``saoa-i3d-flow``: I3D (Inception-v1, C = 1024), with the I3D feature
  normalisation of section 3.3.
* ``sap-r50-rgb``: SAP (AAAI'20), global alignment for the verb branch too (Table 3.3).
* The two-stream rows are the ``ensemble`` model of an RGB and a flow id (equal weights: the
  fusion weights are [SILENT]).

Two stages (section 3.3), each one ``mmzoo fit`` (``--model.stage``):

1. ``stage=1``: VerbNet is trained with verb labels and NounNet with noun labels (a linear head on
   each backbone's pooled feature); 64 frames at stride 2 (60 fps frames), SGD momentum 0.9,
   weight decay 1e-4, lr 0.003 at batch 32, x0.1 for the last 5 of 35 epochs.
2. ``stage=2`` (``--model.stage1_checkpoint`` = the stage-1 ``.ckpt``): both backbones frozen
   (eval mode, no gradients), the SAOA blocks trained with the same CE objectives; I3D: 15 epochs
   at lr 0.001, x0.1 for the last 5; R-50: 15 epochs at a constant 1e-4. The thesis caches the
   frozen backbones' features; here they are recomputed each step (same result, more compute).

Every ablation row of Tables 3.1-3.3 is a constructor argument (``verb_mode`` / ``noun_mode``,
``verb_alignment`` / ``noun_alignment``, ``gating`` / ``cross_stream`` / ``arm``); see
docs/saoa.md for the row -> flags table.

Action scores (Eq. 3.14): ``P(v, n) = mu(v, n) P(v) P(n)`` with ``mu`` the training-split pair
frequency (read from the DataModule's ``action_counts()`` when fitting, kept in the checkpoint as
the ``action_counts`` buffer); ``val/action_prior_top{1,5}`` are those, ``val/action_top{1,5}``
the EPIC toolkit's product rule (``mu = 1``).
"""
from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn
from torchmetrics import MeanMetric

from mmzoo.errors import NotSupportedError
from mmzoo.metrics.classification import EpicActionAccuracy
from mmzoo.models.base import ZooModule
from mmzoo.models.ipl import (
    FLOW_MEAN,
    FLOW_STD,
    I3D_MEAN,
    I3D_STD,
    check_labelled,
    epic_accuracy,
    verb_noun_loss,
)
from mmzoo.models.recipe import Recipe, global_batch_size, total_training_steps
from mmzoo.nn.i3d_inception import InceptionI3d
from mmzoo.nn.resnet3d_hara import HaraResNet3d
from mmzoo.nn.saoa import (
    ActionAttendedRelation,
    CrossStreamGating,
    GlobalAlignment,
    LocalAlignment,
    action_prior,
    action_scores,
    masked_pool,
)
from mmzoo.registry import InputConfig, register_model

__all__ = ["SAOA"]

PAPER = "Wang, Collaborative Dual-Stream Modeling for Video Understanding (PhD thesis UTS 2021, ch. 3: SAOA)"
#: Hara et al.'s Kinetics statistics (3D-ResNets-PyTorch ``get_mean`` / ``get_std``, / 255).
HARA_MEAN = (110.63666788 / 255, 103.16065604 / 255, 96.29023126 / 255)
HARA_STD = (38.7568578 / 255, 37.88248729 / 255, 40.02898126 / 255)

NounMode = Literal["sa", "baseline", "det_avg", "det_max", "det_only", "concat"]
VerbMode = Literal["sa", "baseline", "concat"]


class _Branch(nn.Module):
    """One branch's SA: alignment, Cross-Stream Gating, ARM (or a pool), classifier."""

    def __init__(self, dim: int, object_dim: int, classes: int, alignment: str, hp: Any, use_video: bool = True) -> None:
        super().__init__()
        if alignment == "local":
            self.align: nn.Module = LocalAlignment(dim, object_dim, hp.roi_size, hp.roi_temporal, hp.roi_pool,
                                                   normalize=hp.normalize_features)
        elif alignment == "global":
            self.align = GlobalAlignment(dim, object_dim, use_video=use_video, normalize=hp.normalize_features)
        else:
            raise ValueError(f"alignment must be 'local' or 'global', got {alignment!r}")
        self.local = alignment == "local"
        self.gate = CrossStreamGating(dim) if hp.gating else None
        self.arm = ActionAttendedRelation(dim, hp.arm_reduction) if hp.arm else None
        self.pool = hp.no_arm_pool
        self.dropout = nn.Dropout(hp.dropout)
        self.fc = nn.Linear(dim, classes)

    def features(self, own_map, own_g, query, objs, boxes, mask, frame_size) -> dict[str, torch.Tensor]:
        if self.local:
            aligned = self.align(own_map, objs, boxes, frame_size, mask)
        else:
            aligned = self.align(own_g, objs, mask)
        gated = self.gate(query, aligned) if self.gate is not None else aligned
        attended = self.arm(query, gated, mask) if self.arm is not None else masked_pool(gated, mask, self.pool)
        return {"aligned": aligned, "gated": gated, "attended": attended}


class SAOA(ZooModule):
    """VerbNet + NounNet (+ detector features) with Symbiotic Attention (module docstring).

    Args:
        backbone: ``"r50"`` (ResNet-50-3D, C = 2048) or ``"i3d"`` (C = 1024); C is [SILENT] in the
            thesis, these are the backbones' output widths.
        in_channels: 3 (RGB) or 2 (optical flow).
        stage: 1 (train the backbones with their linear heads) or 2 (frozen backbones, SAOA blocks).
        num_verbs / num_nouns: 125 / 352: the EPIC-55 class files (``EPIC_verb_classes.csv``,
            ``EPIC_noun_classes.csv``, 352 rows) that the DataModule reads; the thesis's "321
            nouns" cannot index them (docs/saoa.md).
        object_dim: C1, the detector's RoI feature width ([SILENT]; 256: the FPN channels of
            :func:`mmzoo.data.epic_objects.build_detector`, max-pooled RoIAlign features).
        verb_alignment: ``"local"`` (SAOA, Eq. 3.2) or ``"global"`` (SAP, Eq. 3.1 on f^v).
        noun_alignment: ``"global"`` (Eq. 3.1) or ``"local"`` (Table 3.2 "SA + Local Alignment").
        verb_mode: ``"sa"``; ``"baseline"`` (VerbNet's own head); ``"concat"`` (Table 3.3
            "Verb+Noun Fusion": a classifier on ``[f_g^v ; f_g^n]``).
        noun_mode: ``"sa"``; ``"baseline"``; ``"det_avg"`` / ``"det_max"`` (Table 3.2: a classifier on
            average / max-pooled detector features); ``"det_only"`` ("SA (Det Feat only)": the
            alignment without the global noun feature); ``"concat"`` ("Noun + Det Feat": ``[f_g^n ;
            max-pooled objects]``).
        gating / cross_stream: Table 3.1: both True = CSG; ``cross_stream=False`` gates and attends
            a branch with its own global feature ("w/o Cross-Stream"); ``gating=False`` drops the
            gate, attending with the other stream ("w/o Gating"); both False = "w/o CSG" (ARM on the
            single stream).
        arm / no_arm_pool: ``arm=False`` ("w/o ARM") pools the gated objects instead (``"max"`` or
            ``"mean"``; [SILENT], max as the better pool of Table 3.2).
        arm_reduction: the ARM bottleneck C / 4 (Eq. 3.9).
        local_window_sec: the local alignment's detections span 4 s (the central objects of the
            6 s window the DataModule gives, selected by ``object_times``).
        roi_size / roi_temporal / roi_pool: RoIAlign of f^v ([SILENT]: 7 x 7, mean over time, max
            over the grid; :class:`~mmzoo.nn.saoa.LocalAlignment`).
        normalize_features: the I3D rule of section 3.3 (True on the I3D ids, False on R-50).
        prior_unseen: mu of pairs absent from training ([SILENT]; 0: frequency taken literally).
        dropout / stage1_dropout: before the SA classifiers / the stage-1 heads ([SILENT]; 0).
        width_multiplier: scales the backbone widths (1 = the paper's; smaller for tests).
        stage1_checkpoint: a stage-1 Lightning checkpoint (or state dict) whose backbones and heads
            stage 2 starts from (weights-only loader); None: as built.
        frames / crop_size: the clip of ``example_input`` (64 frames; 256 x 256: the un-cropped
            stage-2 view).
        num_objects: N of ``example_input`` (12 frames x top-5 = 60).
        lr / lr_steps / recipe_epochs: None = the thesis's recipe for the stage and backbone;
        base_batch_size / momentum / weight_decay: batch 32, 0.9, 1e-4 (lr scaled linearly to the
            global batch).
    """

    def __init__(
        self,
        backbone: Literal["r50", "i3d"] = "r50",
        in_channels: int = 3,
        stage: int = 2,
        num_verbs: int = 125,
        num_nouns: int = 352,
        object_dim: int = 256,
        verb_alignment: Literal["local", "global"] = "local",
        noun_alignment: Literal["global", "local"] = "global",
        verb_mode: VerbMode = "sa",
        noun_mode: NounMode = "sa",
        gating: bool = True,
        cross_stream: bool = True,
        arm: bool = True,
        no_arm_pool: Literal["max", "mean"] = "max",
        arm_reduction: int = 4,
        local_window_sec: float = 4.0,
        roi_size: int = 7,
        roi_temporal: Literal["mean", "max"] = "mean",
        roi_pool: Literal["max", "mean"] = "max",
        normalize_features: bool = False,
        prior_unseen: float = 0.0,
        dropout: float = 0.0,
        stage1_dropout: float = 0.0,
        width_multiplier: float = 1.0,
        stage1_checkpoint: str | None = None,
        frames: int = 64,
        crop_size: int = 256,
        num_objects: int = 60,
        lr: float | None = None,
        lr_steps: list[float] | None = None,
        recipe_epochs: int | None = None,
        base_batch_size: int = 32,
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        hp = self.hparams
        if stage not in (1, 2):
            raise ValueError(f"stage must be 1 or 2, got {stage}")
        if verb_mode not in ("sa", "baseline", "concat"):
            raise ValueError(f"verb_mode must be 'sa', 'baseline' or 'concat', got {verb_mode!r}")
        if noun_mode not in ("sa", "baseline", "det_avg", "det_max", "det_only", "concat"):
            raise ValueError(f"noun_mode {noun_mode!r} is not one of sa, baseline, det_avg, det_max, det_only, concat")
        if noun_mode == "det_only" and noun_alignment != "global":
            raise ValueError("noun_mode='det_only' aligns object features alone: use noun_alignment='global'")
        self.verb_net = self._backbone()
        self.noun_net = self._backbone()
        dim = self.verb_net.out_channels
        self.stage1_drop = nn.Dropout(stage1_dropout)
        self.verb_fc = nn.Linear(dim, num_verbs)  # stage-1 heads (and the "baseline" rows)
        self.noun_fc = nn.Linear(dim, num_nouns)
        self.verb_branch = _Branch(dim, object_dim, num_verbs, verb_alignment, hp) if verb_mode == "sa" else None
        self.noun_branch = (_Branch(dim, object_dim, num_nouns, noun_alignment, hp, use_video=noun_mode != "det_only")
                            if noun_mode in ("sa", "det_only") else None)
        self.verb_concat = nn.Linear(2 * dim, num_verbs) if verb_mode == "concat" else None
        self.noun_other = {"det_avg": nn.Linear(object_dim, num_nouns), "det_max": nn.Linear(object_dim, num_nouns),
                           "concat": nn.Linear(dim + object_dim, num_nouns)}.get(noun_mode)
        self.register_buffer("action_counts", torch.zeros(num_verbs, num_nouns))
        if stage1_checkpoint:
            self.load_stage1(stage1_checkpoint)
        # only what the stage uses is trained (DDP needs every trainable parameter in the loss)
        if stage == 1:
            unused = [self.verb_branch, self.noun_branch, self.verb_concat, self.noun_other]
        else:
            unused = [self.verb_net, self.noun_net, self.verb_fc if verb_mode != "baseline" else None,
                      self.noun_fc if noun_mode != "baseline" else None]
        for module in unused:
            if module is not None:
                module.requires_grad_(False)
        self.val_metric: nn.Module = EpicActionAccuracy(top_k=(1, 5))
        self.test_metric: nn.Module = EpicActionAccuracy(top_k=(1, 5))
        self.prior_metrics = nn.ModuleDict({f"{p}_{k}": MeanMetric() for p in ("val", "test") for k in ("top1", "top5")})

    def _backbone(self) -> nn.Module:
        hp = self.hparams
        if hp.backbone == "r50":
            return HaraResNet3d(50, num_classes=0, in_channels=hp.in_channels, width=max(int(64 * hp.width_multiplier), 1))
        if hp.backbone == "i3d":
            return InceptionI3d(hp.in_channels, num_classes=0, width_divisor=round(1 / hp.width_multiplier))
        raise ValueError(f"backbone must be 'r50' or 'i3d', got {hp.backbone!r}")

    def load_stage1(self, path: str) -> None:
        """Backbones and stage-1 heads from a stage-1 checkpoint (``state_dict`` of a ``.ckpt`` or a
        plain state dict); every backbone / head key must be present."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        prefixes = ("verb_net.", "noun_net.", "verb_fc.", "noun_fc.")
        wanted = {k: v for k, v in state.items() if k.startswith(prefixes)}
        own = {k for k in self.state_dict() if k.startswith(prefixes)}
        missing = sorted(own - set(wanted))
        if missing:
            raise ValueError(f"{path} is not a stage-1 checkpoint of this model: missing {missing[:5]}")
        self.load_state_dict(wanted, strict=False)

    def train(self, mode: bool = True):
        """Stage 2 keeps the frozen backbones in eval mode (their BatchNorm statistics too)."""
        super().train(mode)
        if self.hparams.stage == 2:
            self.verb_net.eval()
            self.noun_net.eval()
        return self

    # ------------------------------------------------------------------ forward
    def forward_features(self, video: torch.Tensor, object_features: torch.Tensor | None = None,
                         object_boxes: torch.Tensor | None = None, object_mask: torch.Tensor | None = None,
                         object_times: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Named features: ``verb_global`` / ``noun_global`` (``B, C``, GAP of f^v / f^n) and, for
        the SA branches, ``{verb,noun}_aligned`` / ``_gated`` (``B, N, C``) and ``_attended``
        (``B, C``); ``logits_verb`` / ``logits_noun``."""
        hp = self.hparams
        with torch.set_grad_enabled(torch.is_grad_enabled() and hp.stage == 1):
            f_v = self.verb_net.features(video)
            f_n = self.noun_net.features(video)
        g_v, g_n = f_v.mean(dim=(2, 3, 4)), f_n.mean(dim=(2, 3, 4))
        out: dict[str, torch.Tensor] = {"verb_global": g_v, "noun_global": g_n}
        if hp.stage == 1:
            out["logits_verb"] = self.verb_fc(self.stage1_drop(g_v))
            out["logits_noun"] = self.noun_fc(self.stage1_drop(g_n))
            return out
        needs_objects = hp.verb_mode == "sa" or hp.noun_mode not in ("baseline",)
        if needs_objects and object_features is None:
            raise ValueError(f"{type(self).__name__} stage 2 ({hp.verb_mode} / {hp.noun_mode}) needs object_features "
                             "(and object_boxes for a local alignment): give the EPIC DataModule --data.objects")
        mask = object_mask
        if object_features is not None and mask is None:
            mask = torch.ones(object_features.shape[:2], dtype=torch.bool, device=object_features.device)
        frame_size = tuple(video.shape[-2:])
        for name, branch, own_map, own_g, other_g in (("verb", self.verb_branch, f_v, g_v, g_n),
                                                      ("noun", self.noun_branch, f_n, g_n, g_v)):
            if branch is None:
                continue
            if branch.local and object_boxes is None:
                raise ValueError(f"the {name} branch's local alignment needs object_boxes")
            m = mask
            if branch.local and object_times is not None:  # the central local_window_sec only
                m = mask & (object_times.abs() <= hp.local_window_sec / 2 + 1e-6)
            query = other_g if hp.cross_stream else own_g
            feats = branch.features(own_map, own_g, query, object_features, object_boxes, m, frame_size)
            out.update({f"{name}_{k}": v for k, v in feats.items()})
            out[f"logits_{name}"] = branch.fc(branch.dropout(feats["attended"]))
        if hp.verb_mode == "baseline":
            out["logits_verb"] = self.verb_fc(g_v)
        elif hp.verb_mode == "concat":
            out["logits_verb"] = self.verb_concat(torch.cat([g_v, g_n], dim=1))
        if hp.noun_mode == "baseline":
            out["logits_noun"] = self.noun_fc(g_n)
        elif hp.noun_mode in ("det_avg", "det_max"):
            out["logits_noun"] = self.noun_other(masked_pool(object_features, mask, "mean" if hp.noun_mode == "det_avg" else "max"))
        elif hp.noun_mode == "concat":
            out["logits_noun"] = self.noun_other(torch.cat([g_n, masked_pool(object_features, mask, "max")], dim=1))
        return out

    def forward(self, video: torch.Tensor, object_features: torch.Tensor | None = None,
                object_boxes: torch.Tensor | None = None, object_mask: torch.Tensor | None = None,
                object_times: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """-> {"verb", "noun"} logits (``video`` ``B, in_channels, T, H, W``; objects from the EPIC
        DataModule's ``objects`` file, needed in stage 2)."""
        out = self.forward_features(video, object_features, object_boxes, object_mask, object_times)
        return {"verb": out["logits_verb"], "noun": out["logits_noun"]}

    def example_input(self, batch_size: int = 1) -> dict[str, Any]:
        hp = self.hparams
        x = {"video": torch.randn(batch_size, hp.in_channels, hp.frames, hp.crop_size, hp.crop_size)}
        if hp.stage == 2:
            n = hp.num_objects
            xy = torch.rand(batch_size, n, 2) * hp.crop_size / 2
            x.update(object_features=torch.randn(batch_size, n, hp.object_dim),
                     object_boxes=torch.cat([xy, xy + hp.crop_size / 2], dim=-1),
                     object_mask=torch.ones(batch_size, n, dtype=torch.bool),
                     object_times=(torch.arange(n) // 5 - ((n + 4) // 5 - 1) / 2).div(2).expand(batch_size, n).clone())
        return x

    # ------------------------------------------------------------------ Lightning
    _INPUTS = ("video", "object_features", "object_boxes", "object_mask", "object_times")

    def _run(self, batch: dict) -> dict[str, torch.Tensor]:
        return self(**{k: batch[k] for k in self._INPUTS if k in batch})

    def setup(self, stage: str) -> None:
        """Take the action prior's counts from the DataModule's training split when fitting, and the
        EPIC evaluation subsets for the metrics."""
        super().setup(stage)
        dm = getattr(getattr(self, "_trainer", None), "datamodule", None)
        if dm is None or stage == "predict":
            return
        if not {"verb", "noun"} <= set(getattr(dm, "targets", ())):
            raise NotSupportedError(f"SAOA trains on verb / noun labels; {type(dm).__name__} batches do not carry them")
        if stage == "fit" and callable(getattr(dm, "action_counts", None)):
            counts = dm.action_counts()
            v, n = counts.shape
            if v > self.action_counts.shape[0] or n > self.action_counts.shape[1]:
                raise ValueError(f"the DataModule has {v} x {n} verb x noun classes, more than the model's "
                                 f"{tuple(self.action_counts.shape)}: pass --model.num_verbs / --model.num_nouns")
            self.action_counts.zero_()
            self.action_counts[:v, :n] = counts.to(self.action_counts)  # classes past the data's: never seen
        self.val_metric = epic_accuracy(dm).to(self.device)
        self.test_metric = epic_accuracy(dm).to(self.device)

    def _loss(self, out: dict[str, torch.Tensor], batch: dict) -> torch.Tensor:
        """CE(verb) + CE(noun) (section 3.2; stage 1: each backbone with its own label)."""
        return verb_noun_loss(out, batch)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        out = self._run(batch)
        loss = self._loss(out, batch)
        self.log("train/loss", loss, batch_size=out["verb"].shape[0])
        return loss

    def action_scores(self, out: dict[str, torch.Tensor]) -> torch.Tensor:
        """Eq. 3.14 action scores ``B, V, N`` (``mu = 1`` before any training counts are known)."""
        prior = action_prior(self.action_counts, self.hparams.prior_unseen) if self.action_counts.sum() > 0 else None
        return action_scores(out["verb"].softmax(-1), out["noun"].softmax(-1), prior)

    def _eval_step(self, batch: dict, metric, prefix: str) -> None:
        check_labelled(batch)
        out = self._run(batch)
        pv, pn = out["verb"].softmax(-1), out["noun"].softmax(-1)
        metric.update(pv, pn, batch["verb"], batch["noun"], batch.get("video_index"), unseen=batch.get("unseen"))
        flat = self.action_scores(out).flatten(1)
        target = batch["verb"].long() * pn.shape[1] + batch["noun"].long()
        top = flat.topk(min(5, flat.shape[1]), dim=1).indices
        hits = top == target[:, None]
        self.prior_metrics[f"{prefix}_top1"].update(hits[:, 0].float() * 100)
        self.prior_metrics[f"{prefix}_top5"].update(hits.any(dim=1).float() * 100)
        self.log(f"{prefix}/loss", self._loss(out, batch), batch_size=pv.shape[0], sync_dist=True)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, self.val_metric, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, self.test_metric, "test")

    def _log_metric(self, metric, prefix: str) -> None:
        values = {f"{prefix}/{k}": v for k, v in metric.compute().items()}
        for k in ("top1", "top5"):
            m = self.prior_metrics[f"{prefix}_{k}"]
            if m.update_count:
                values[f"{prefix}/action_prior_{k}"] = m.compute()
            m.reset()
        self.log_dict(values)
        metric.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_metric(self.val_metric, "val")

    def on_test_epoch_end(self) -> None:
        self._log_metric(self.test_metric, "test")

    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> dict[str, torch.Tensor]:
        """Verb / noun probabilities (:class:`mmzoo.predict.epic.EpicSubmissionWriter` writes them)."""
        out = self._run(batch)
        return {"verb": out["verb"].softmax(-1), "noun": out["noun"].softmax(-1)}

    # ------------------------------------------------------------------ recipe
    @property
    def recipe(self) -> Recipe:
        """Section 3.3: stage 1 lr 0.003, x0.1 for the last 5 of 35 epochs; stage 2 I3D lr 0.001,
        x0.1 for the last 5 of 15; stage 2 R-50 constant 1e-4 for 15 epochs."""
        hp = self.hparams
        if hp.stage == 1:
            lr, steps, epochs = 0.003, [30 / 35], 35
        elif hp.backbone == "i3d":
            lr, steps, epochs = 0.001, [10 / 15], 15
        else:
            lr, steps, epochs = 1e-4, [], 15
        lr = hp.lr if hp.lr is not None else lr
        steps = list(hp.lr_steps) if hp.lr_steps is not None else steps
        epochs = hp.recipe_epochs if hp.recipe_epochs is not None else epochs
        return Recipe(base_lr=lr, base_batch_size=hp.base_batch_size, optimizer="sgd", momentum=hp.momentum,
                      weight_decay=hp.weight_decay, norm_weight_decay=hp.weight_decay,
                      schedule="steps" if steps else "constant", lr_steps=tuple(steps), epochs=epochs)

    def configure_optimizers(self):
        trainer = getattr(self, "_trainer", None)
        return self.recipe.configure(self, global_batch_size(self), total_training_steps(self),
                                     trainer.max_epochs if trainer is not None else None)


def _input(backbone: str, channels: int) -> InputConfig:
    rgb = channels == 3
    mean, std = (I3D_MEAN, I3D_STD) if backbone == "i3d" else (HARA_MEAN, HARA_STD)
    if not rgb:
        mean, std = FLOW_MEAN, FLOW_STD
    return InputConfig(
        shapes={"video": f"B,{channels},64,256,256", "object_features": "B,60,256", "object_boxes": "B,60,4",
                "object_mask": "B,60", "object_times": "B,60"},
        frames=64, sampling_rate=2, train_crop=224, test_crop=256, short_side=256, train_scale=(224, 288),
        mean=mean, std=std, test_views=(1, 1), datamodules=("epic-kitchens",),
        notes=("EPIC-55 frames at 60 fps, 64 frames at stride 2; stage 1: 224 crops of a short side in [224, 288]; "
               "stage 2 and test: one centre clip, short side 256 (the thesis resizes to 256 x 256 without a crop; "
               "here the centre 256 square); objects: --data.objects (mmzoo objects)"
               + ("" if rgb else "; flow frames (u, v) of the release")),
    )  # fmt: skip


_55 = {"num_verbs": 125, "num_nouns": 352}
_IDS: dict[str, dict] = {
    "saoa-r50-rgb": {"defaults": {}, "input": _input("r50", 3), "reported": {
        "epic55_val_action_top1": 25.7, "epic55_val_verb_top1": 57.7, "epic55_val_noun_top1": 34.8,
        "epic55_s1_action_top1": 37.0, "epic55_s2_action_top1": 23.3}},
    "saoa-r50-flow": {"defaults": {"in_channels": 2}, "input": _input("r50", 2), "reported": {
        "epic55_val_action_top1": 24.7, "epic55_val_verb_top1": 56.1, "epic55_val_noun_top1": 33.6}},
    "saoa-i3d-rgb": {"defaults": {"backbone": "i3d", "normalize_features": True}, "input": _input("i3d", 3), "reported": {
        "epic55_val_action_top1": 24.3, "epic55_val_verb_top1": 55.1, "epic55_val_noun_top1": 34.7,
        "epic55_s1_action_top1": 33.8, "epic55_s2_action_top1": 21.9}},
    "saoa-i3d-flow": {"defaults": {"backbone": "i3d", "in_channels": 2, "normalize_features": True},
                          "input": _input("i3d", 2), "reported": {
        "epic55_val_action_top1": 25.2, "epic55_val_verb_top1": 56.9, "epic55_val_noun_top1": 35.0,
        "epic55_s1_action_top1": 33.4, "epic55_s2_action_top1": 23.2}},
    "sap-r50-rgb": {"defaults": {"verb_alignment": "global"}, "input": _input("r50", 3), "reported": {
        "epic55_val_action_top1": 25.0, "epic55_val_verb_top1": 55.9, "epic55_val_noun_top1": 35.0,
        "epic55_s1_action_top1": 34.8, "epic55_s2_action_top1": 23.9}},
}

for _id, _cfg in _IDS.items():
    register_model(_id, task="egocentric action recognition", paper=PAPER, **_cfg)(SAOA)
