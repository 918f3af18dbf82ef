"""SlowFast networks (Feichtenhofer et al.), the visual baselines of AVSlowFast (thesis ch. 4).

Ids: `slowfast-r50-4x16`, `slowfast-r50-8x8`, `slowfast-r101-8x8`. `T x tau` names the Slow
pathway's frames and stride; the Fast pathway sees alpha x T frames (alpha = 8 for 4x16, 4 for
the 8x8 models, so the Fast pathway always samples every second frame).

This module also holds `SlowFastFamilyModule`, the Lightning logic and the constructor arguments
shared with AVSlowFast and the audio-only network: batch handling, the three heads (single-label,
EPIC verb+noun, multi-label), the recipe of section 4.3.1 (`mmzoo.models.recipe.Recipe`: SGD,
lr scaled to the global batch, warm-up + half-period cosine or steps, no weight decay on BN,
frozen BN for fine-tuning) and multi-view testing (scores averaged per video, max-pooled for
multi-label). `SlowFast` adds the visual pathways and the self-supervised rotation task.
"""
from __future__ import annotations

from typing import Any, Literal, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from mmzoo.data.constants import KINETICS_MEAN, KINETICS_STD
from mmzoo.errors import NotSupportedError
from mmzoo.metrics.classification import (
    EpicActionAccuracy,
    MultiLabelMeanAP,
    MultiViewAccuracy,
)
from mmzoo.models.base import ZooModule
from mmzoo.models.recipe import Recipe, global_batch_size, total_training_steps
from mmzoo.nn.resnet3d import init_resnet_weights
from mmzoo.nn.slowfast import MultiPathwayHead, SlowFastBackbone, pack_pathways
from mmzoo.registry import InputConfig, Weights, register_model

__all__ = ["SlowFastFamilyModule", "SlowFast", "video_indices", "res4_temporal_kernels", "kinetics_input",
           "CHARADES_RECIPE", "charades_flags"]

PAPER = "Xiao, Audiovisual SlowFast Networks (PhD thesis UC Davis 2020, ch. 4; arXiv 2001.08740)"

#: The Charades fine-tuning recipe of section 4.3.1 / Table 4.4 as constructor overrides of any
#: SlowFast / AVSlowFast / AudioNet id: per-class sigmoid head, dropout 0.7, lr 0.07 at batch 8
#: (8 GPUs x 1 clip), x0.1 after 32k of 40k iterations, no warm-up (none is stated). `num_classes`
#: is not listed: `--data charades` links it from the class list (157). Train for 40k steps
#: with `--trainer.max_steps 40000`; test views are max-pooled (`MultiLabelMeanAP`).
CHARADES_RECIPE: dict[str, Any] = {
    "head": "multilabel", "dropout": 0.7, "base_lr": 0.07, "base_batch_size": 8, "lr_schedule": "steps",
    "lr_steps": [0.8], "warmup_epochs": 0.0,
}


def charades_flags() -> list[str]:
    """`CHARADES_RECIPE` as `mmzoo fit` flags (`--model.head multilabel ...`)."""
    out = []
    for k, v in CHARADES_RECIPE.items():
        out += [f"--model.{k}", "[" + ",".join(map(str, v)) + "]" if isinstance(v, list) else str(v)]
    return out


def video_indices(batch: dict, device: torch.device) -> Optional[torch.Tensor]:
    """`batch["video_index"]` (the `mmzoo.batch.Batch` field naming the video of each view) as a
    long tensor on `device`; None when the batch has no such field."""
    if "video_index" not in batch:
        return None
    return torch.as_tensor(batch["video_index"], device=device).long().view(-1)


def _views_hint(batch: dict, datamodule: Any, stage: str) -> Optional[str]:
    """Why `batch` looks like one of several views of a video (None when it does not)."""
    meta = batch.get("meta")
    rows = [meta] if isinstance(meta, dict) else list(meta or [])
    if any(isinstance(m, dict) and ("clip_index" in m or "crop_index" in m or "video_index" in m) for m in rows):
        return "its meta carries clip / crop / video indices"
    hp = getattr(datamodule, "hparams", None) or {}
    prefix = "val_" if stage == "val" else ""
    views = (hp.get(f"{prefix}num_clips") or 1) * (hp.get(f"{prefix}num_crops") or 1)
    if views > 1:
        return f"the DataModule makes {views} views per video"
    return None


def res4_temporal_kernels(depth: int, kernel: int, temporal_blocks: Optional[int]) -> Union[int, list[int]]:
    """conv_a temporal kernels of res4: `kernel` for the first `temporal_blocks` blocks, 1 after
    (PySlowFast's "R101_50_50" pattern uses 6 of the 23 blocks); None = every block."""
    from mmzoo.nn.resnet3d import STAGE_DEPTHS

    n = STAGE_DEPTHS[depth][2]
    if temporal_blocks is None or temporal_blocks >= n:
        return kernel
    return [kernel] * temporal_blocks + [1] * (n - temporal_blocks)


HeadArg = Literal["single", "verb_noun", "multilabel"]


class SlowFastFamilyModule(ZooModule):
    """Shared training / evaluation logic and constructor arguments of SlowFast, AVSlowFast and
    the audio-only network; subclasses build `self.head` (and their pathways), then call
    `self._setup_common()`.

    Subclasses set `uses_video` / `uses_audio`, implement `extract(video, audio, audio_neg)`
    returning (pathway feature maps, auxiliary losses) and `example_input`. They take their own
    arguments and pass the rest on with `**kwargs`, so each argument is declared once.

    Args:
        num_classes: classes of the "single" / "multilabel" heads (400 for Kinetics-400).
        head: "single" (softmax, Kinetics), "verb_noun" (EPIC-Kitchens verb and noun
            classifiers; action = verb x noun at evaluation) or "multilabel" (sigmoid, Charades).
        num_verbs / num_nouns: EPIC-Kitchens-55 class counts (125 / 352) for "verb_noun".
        depth: 50 or 101 (14 = one block per stage, a tiny variant for tests).
        width: conv1 channels of the first pathway (64 = ResNet; smaller only for tiny variants).
        dropout: dropout before the classifier (0.5).
        view_aggregation: how test views of one video are combined: "mean" (Kinetics, EPIC);
            the multilabel head always uses "max" (Charades).
        base_lr / base_batch_size: lr 1.6 at batch 1024, scaled linearly to the global batch
            (section 4.3.1).
        batch_size: per-device batch used for the scaling when the DataModule exposes none.
        momentum / weight_decay / bn_weight_decay: SGD momentum 0.9, wd 1e-4, no wd on BN.
        lr_schedule: "cosine" (half-period cosine) or "steps" (x0.1 at each `lr_steps` fraction).
        lr_steps: fractions of training at which "steps" divides the lr by 10.
        warmup_epochs: linear warm-up length in epochs (34 = the thesis' 8k iterations at batch
            1024; converted to steps with the trainer's max_epochs or `recipe_epochs`).
        warmup_start_factor: warm-up start lr as a fraction of the scaled lr (0.1; not stated in
            the thesis, 0.01 at base lr 0.1 in the authors' config).
        recipe_epochs: the paper's schedule length (256 epochs when T <= 4, 196 otherwise); set
            `--trainer.max_epochs` to it to train the paper's schedule.
        freeze_bn: BN statistics and affine parameters frozen (EPIC-Kitchens fine-tuning).
    """

    uses_video = True
    uses_audio = False

    def __init__(
        self,
        num_classes: int = 400,
        head: HeadArg = "single",
        num_verbs: int = 125,
        num_nouns: int = 352,
        depth: int = 50,
        width: int = 64,
        dropout: float = 0.5,
        view_aggregation: Literal["mean", "max"] = "mean",
        base_lr: float = 1.6,
        base_batch_size: int = 1024,
        batch_size: Optional[int] = None,
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        bn_weight_decay: float = 0.0,
        lr_schedule: Literal["cosine", "steps"] = "cosine",
        lr_steps: list[float] = [],  # noqa: B006 - JSON-serialisable default
        warmup_epochs: float = 34.0,
        warmup_start_factor: float = 0.1,
        recipe_epochs: int = 256,
        freeze_bn: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()  # collects the arguments of every subclass __init__ too

    # ------------------------------------------------------------------ setup helpers
    def _make_head(self, widths: Sequence[int]) -> MultiPathwayHead:
        hp = self.hparams
        return MultiPathwayHead(list(widths), hp.head, hp.num_classes, hp.num_verbs, hp.num_nouns, hp.dropout)

    def _setup_common(self) -> None:
        hp = self.hparams
        init_resnet_weights(self, fc_std=0.01, zero_init_final_bn=True)
        if hp.freeze_bn:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    for p in m.parameters():
                        p.requires_grad_(False)
        agg = "max" if hp.head == "multilabel" else hp.view_aggregation
        metric = {"single": lambda: MultiViewAccuracy(top_k=(1, 5), aggregate=agg),
                  "verb_noun": lambda: EpicActionAccuracy(top_k=(1, 5), aggregate=agg),
                  "multilabel": lambda: MultiLabelMeanAP(aggregate=agg)}[hp.head]  # fmt: skip
        self.val_metric = metric()
        self.test_metric = metric()

    def setup(self, stage: str) -> None:
        """With the EPIC head, rebuild the metrics with the DataModule's evaluation subsets (its
        `metric_subsets()`: tail classes, EPIC-55 many-shot classes), so that evaluation reports
        them next to the overall accuracies; unseen-participant accuracies follow from the
        batches' `unseen` field."""
        super().setup(stage)
        trainer = getattr(self, "_trainer", None)
        dm = getattr(trainer, "datamodule", None)
        targets = getattr(dm, "targets", None)
        multilabel_data = bool(getattr(dm, "multilabel", False))
        if stage != "predict" and dm is not None and multilabel_data != (self.hparams.head == "multilabel"):
            name = getattr(dm, "datamodule_name", type(dm).__name__)
            if multilabel_data:
                raise NotSupportedError(
                    f"{name!r} batches carry multi-hot labels, which the {self.hparams.head!r} head cannot train on: "
                    f"pass the Charades recipe of Table 4.4: {' '.join(charades_flags())}")
            if targets is not None:
                raise NotSupportedError(
                    f"the 'multilabel' head trains on multi-hot labels, but {name!r} batches carry one class per "
                    "sample: pass --model.head single (or verb_noun)")
        if stage != "predict" and targets is not None:
            needed = ("verb", "noun") if self.hparams.head == "verb_noun" else ("label",)
            if not set(needed) <= set(targets):
                hint = ("--model.head verb_noun --model.num_verbs V --model.num_nouns N" if "verb" in targets
                        else "--model.head single (or multilabel)")
                raise NotSupportedError(
                    f"the {self.hparams.head!r} head trains on batch field(s) {list(needed)}, but "
                    f"{getattr(dm, 'datamodule_name', type(dm).__name__)!r} batches carry {list(targets)}: pass {hint}")
        subsets = getattr(dm, "metric_subsets", None)
        if self.hparams.head != "verb_noun" or not callable(subsets):
            return
        kwargs = subsets()
        if kwargs:
            agg = self.hparams.view_aggregation
            self.val_metric = EpicActionAccuracy(top_k=(1, 5), aggregate=agg, **kwargs).to(self.device)
            self.test_metric = EpicActionAccuracy(top_k=(1, 5), aggregate=agg, **kwargs).to(self.device)

    def train(self, mode: bool = True):  # noqa: D401 - keep frozen BN in eval mode
        super().train(mode)
        if getattr(self.hparams, "freeze_bn", False):
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    # ------------------------------------------------------------------ inputs
    def _pathways(self, video: Union[torch.Tensor, Sequence[torch.Tensor]]) -> list[torch.Tensor]:
        raise NotSupportedError(f"{type(self).__name__} takes no video input (it is an audio-only model)")

    def _prepare_audio(self, audio):
        return audio

    def _batch_inputs(self, batch: dict) -> tuple[Optional[list[torch.Tensor]], Optional[torch.Tensor]]:
        """(video pathways, audio) of a batch, each None when this model does not use it."""
        video = self._pathways(batch["video"]) if self.uses_video else None
        audio = self._prepare_audio(batch.get("audio")) if self.uses_audio else None
        return video, audio

    def extract(self, video, audio=None, audio_neg=None) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
        raise NotImplementedError  # pragma: no cover - every subclass defines it

    def forward(self, video=None, audio=None) -> Union[torch.Tensor, dict[str, torch.Tensor]]:
        """Logits (`B, classes`), or {"verb", "noun"} logits for the EPIC head."""
        feats, _ = self.extract(video, audio)
        return self.head(feats)

    def features(self, video=None, audio=None) -> torch.Tensor:
        """Pooled, concatenated pathway features (`B, sum of widths`), e.g. for linear probes."""
        feats, _ = self.extract(video, audio)
        return self.head.pool(feats)

    #: Names of the pathways' last-stage maps in `forward_features` (subclasses name their own).
    pathway_names: tuple[str, ...] = ("slow", "fast")

    def forward_features(self, video=None, audio=None) -> dict[str, torch.Tensor]:
        """Named features (`mmzoo extract`): each pathway's res5 map (`B, C, T, H, W`, or the
        audio pathway's `B, C, T, F, 1`), named by `pathway_names`, and "pooled": the head's
        pooled, concatenated vector (`B, sum of widths`, what the classifier sees)."""
        feats, _ = self.extract(video, None if audio is None else self._prepare_audio(audio))
        names = self.pathway_names if len(self.pathway_names) == len(feats) else tuple(
            f"pathway{i}" for i in range(len(feats)))
        return {**dict(zip(names, feats)), "pooled": self.head.pool(feats)}

    # ------------------------------------------------------------------ losses
    def training_progress(self) -> float:
        """Fraction of training done (0..1), from the trainer's step count."""
        total = total_training_steps(self)
        if total is None:
            return 0.0
        return min(1.0, self._trainer.global_step / total)

    def is_ssl(self) -> bool:
        """True when training without labels (no classification loss at evaluation)."""
        return False

    def _classification_loss(self, out, batch) -> torch.Tensor:
        hp = self.hparams
        if hp.head == "verb_noun":
            return F.cross_entropy(out["verb"], batch["verb"].long()) + F.cross_entropy(out["noun"], batch["noun"].long())
        if hp.head == "multilabel":
            return F.binary_cross_entropy_with_logits(out, batch["label"].float())
        return F.cross_entropy(out, batch["label"].long())

    def _audio_negatives(self, batch) -> Optional[torch.Tensor]:
        return None

    def _training_loss(self, batch, video, audio, audio_neg):
        """(features, auxiliary losses, main loss, logs) of one training batch; supervised here."""
        feats, aux = self.extract(video, audio, audio_neg)
        loss = self._classification_loss(self.head(feats), batch)
        return feats, aux, loss, {"train/cls_loss": loss}

    def _aux_loss(self, aux: dict[str, torch.Tensor]) -> torch.Tensor:
        """The auxiliary losses' contribution to the training loss (their sum)."""
        return sum(aux.values())

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        video, audio = self._batch_inputs(batch)
        audio_neg = self._audio_negatives(batch) if self.uses_audio else None
        feats, aux, loss, logs = self._training_loss(batch, video, audio, audio_neg)
        if aux:
            logs.update({f"train/{k}": v for k, v in aux.items()})
            loss = loss + self._aux_loss(aux)
        logs["train/loss"] = loss
        self.log_dict(logs, prog_bar=False, batch_size=feats[0].shape[0])
        return loss

    # ------------------------------------------------------------------ evaluation
    def _scores(self, out) -> Union[torch.Tensor, dict[str, torch.Tensor]]:
        if self.hparams.head == "verb_noun":
            return {"verb": out["verb"].softmax(-1), "noun": out["noun"].softmax(-1)}
        if self.hparams.head == "multilabel":
            return out.sigmoid()
        return out.softmax(-1)

    def _video_indices(self, batch: dict, device: torch.device, stage: str) -> Optional[torch.Tensor]:
        vid = video_indices(batch, device)
        if vid is None:
            trainer = getattr(self, "_trainer", None)
            hint = _views_hint(batch, getattr(trainer, "datamodule", None) if trainer is not None else None, stage)
            if hint is not None:
                raise KeyError(
                    f"multi-view {stage} batch without the 'video_index' field ({hint}): the DataModule must put "
                    "the video of each view in batch['video_index'] (int64, B; see mmzoo.batch.Batch) so that "
                    "scores are averaged per video"
                )
        return vid

    def _eval_step(self, batch: dict, metric, prefix: str) -> dict:
        video, audio = self._batch_inputs(batch)
        feats, _ = self.extract(video, audio)
        out = self.head(feats)
        scores = self._scores(out)
        vid = self._video_indices(batch, feats[0].device, prefix)
        if not self.is_ssl():
            self.log(f"{prefix}/loss", self._classification_loss(out, batch), batch_size=feats[0].shape[0], sync_dist=True)
        if self.hparams.head == "verb_noun":
            metric.update(scores["verb"], scores["noun"], batch["verb"], batch["noun"], vid, unseen=batch.get("unseen"))
        else:
            metric.update(scores, batch["label"], vid)
        return {"scores": scores, "video_index": vid}

    def validation_step(self, batch: dict, batch_idx: int) -> dict:
        return self._eval_step(batch, self.val_metric, "val")

    def test_step(self, batch: dict, batch_idx: int) -> dict:
        return self._eval_step(batch, self.test_metric, "test")

    def _log_metric(self, metric, prefix: str) -> None:
        res = metric.compute()
        self.log_dict({f"{prefix}/{k}": v for k, v in res.items()}, sync_dist=False)
        metric.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_metric(self.val_metric, "val")

    def on_test_epoch_end(self) -> None:
        self._log_metric(self.test_metric, "test")

    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0):
        feats, _ = self.extract(*self._batch_inputs(batch))
        return self._scores(self.head(feats))

    # ------------------------------------------------------------------ recipe
    @property
    def recipe(self) -> Recipe:
        """The training recipe of section 4.3.1, from this model's constructor arguments."""
        hp = self.hparams
        return Recipe(
            base_lr=hp.base_lr,
            base_batch_size=hp.base_batch_size,
            optimizer="sgd",
            momentum=hp.momentum,
            weight_decay=hp.weight_decay,
            norm_weight_decay=hp.bn_weight_decay,
            schedule=hp.lr_schedule,
            lr_steps=tuple(hp.lr_steps),
            warmup_epochs=hp.warmup_epochs,
            warmup_start_factor=hp.warmup_start_factor,
            epochs=hp.recipe_epochs,
        )

    def _max_epochs(self) -> Optional[int]:
        trainer = getattr(self, "_trainer", None)
        return trainer.max_epochs if trainer is not None else None

    def scaled_lr(self) -> float:
        """base_lr x (global batch / base_batch_size), global batch = devices x nodes x batch x
        gradient accumulation; base_lr unchanged when the batch size is unknown."""
        return self.recipe.scaled_lr(global_batch_size(self, self.hparams.batch_size))

    def lr_factor(self, step: int, total: int) -> float:
        """Multiplier of the scaled lr at optimizer step `step` of `total`."""
        recipe = self.recipe
        return recipe.lr_factor(step, total, recipe.warmup_steps(total, self._max_epochs()))

    def configure_optimizers(self):
        return self.recipe.configure(
            self, global_batch_size(self, self.hparams.batch_size), total_training_steps(self), self._max_epochs()
        )


def kinetics_input(shapes: dict[str, str], frames: int, alpha: int, train_scale: tuple[int, int] = (256, 320),
                   **extra: Any) -> InputConfig:
    """The Kinetics-style input of the SlowFast family (section 4.3.1): `frames` Fast-pathway
    frames at stride 2, short side scaled to `train_scale` and 224 crops for training, 10 clips x 3
    crops of 256 at short side 256 for testing, Kinetics normalisation. The same input fine-tunes
    on Charades (Table 4.4: 10 x 3 views of 256, max-pooled) with `CHARADES_RECIPE`."""
    return InputConfig(
        shapes=shapes, frames=frames, sampling_rate=2, alpha=alpha, train_crop=224, test_crop=256, short_side=256,
        train_scale=train_scale, mean=KINETICS_MEAN, std=KINETICS_STD, test_views=(10, 3),
        datamodules=("kinetics", "epic-kitchens", "charades"), **extra,
    )  # fmt: skip


def _video_shape(slow: int, fast: int) -> dict[str, str]:
    return {"video": f"[slow B,3,{slow},256,256 ; fast B,3,{fast},256,256]"}


class SlowFast(SlowFastFamilyModule):
    """SlowFast network (Slow + Fast pathways, Fast->Slow time-strided lateral fusion).

    Args (the head, recipe and other shared arguments are `SlowFastFamilyModule`'s):
        slow_frames: T, frames of the Slow pathway (4 for 4x16, 8 for 8x8).
        alpha: Fast / Slow frame ratio (8 for 4x16, 4 for 8x8 as in PySlowFast's configs).
        beta_inv: Slow / Fast channel ratio (8).
        fusion_kernel: temporal kernel of the Fast->Slow convs (5; 7 in PyTorchVideo's 8x8 R50).
        fs_fusion: Fast->Slow connections after pool1, res2, res3, res4.
        res4_temporal_blocks: res4 blocks with temporal kernels (None = all; 6 = PySlowFast's
            "R101_50_50", which gives the thesis' 106 GFLOPs for R101 8x8).
        nonlocal_res4: Slow res4 block indices followed by a non-local block.
        nonlocal_mode / nonlocal_pool: non-local instantiation and its phi/g pooling.
        crop_size: spatial size of `example_input` (256, the thesis' FLOPs resolution).
        mode: "supervised" or "ssl" (rotation prediction, section 4.4; AVSlowFast adds AVS).
        rotation_weight: weight of the rotation loss in "ssl" mode.
    """

    def __init__(
        self,
        slow_frames: int = 4,
        alpha: int = 8,
        beta_inv: int = 8,
        fusion_kernel: int = 5,
        fs_fusion: list[bool] = [True, True, True, True],  # noqa: B006 - JSON-serialisable default
        res4_temporal_blocks: Optional[int] = None,
        nonlocal_res4: list[int] = [],  # noqa: B006
        nonlocal_mode: Literal["softmax", "dot_product"] = "softmax",
        nonlocal_pool: list[int] = [1, 2, 2],  # noqa: B006
        crop_size: int = 256,
        mode: Literal["supervised", "ssl"] = "supervised",
        rotation_weight: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.backbone = SlowFastBackbone(**self._backbone_kwargs())
        self.head = self._make_head(self.backbone.out_channels)
        if mode == "ssl":
            self.rotation_head = nn.Linear(self.head.dim, 4)
        self._setup_common()

    def _backbone_kwargs(self) -> dict[str, Any]:
        """`SlowFastBackbone` arguments of the visual pathways (AVSlowFast adds the audio ones)."""
        hp = self.hparams
        res4 = res4_temporal_kernels(hp.depth, 3, hp.res4_temporal_blocks)
        return dict(
            depth=hp.depth, width=hp.width, alpha=hp.alpha, beta_inv=hp.beta_inv, fusion_kernel=hp.fusion_kernel,
            fs_fusion=hp.fs_fusion, slow_temporal_kernels=(1, 1, res4, 3), fast_temporal_kernels=(3, 3, res4, 3),
            slow_nonlocal=((), (), tuple(hp.nonlocal_res4), ()), nonlocal_mode=hp.nonlocal_mode,
            nonlocal_pool=tuple(hp.nonlocal_pool),
        )  # fmt: skip

    def _pathways(self, video: Union[torch.Tensor, Sequence[torch.Tensor]]) -> list[torch.Tensor]:
        if isinstance(video, torch.Tensor):
            return pack_pathways(video, self.hparams.alpha)
        video = list(video)
        if len(video) != 2:
            raise ValueError(f"expected video as a tensor or [slow, fast], got a list of {len(video)}")
        alpha = self.hparams.alpha
        if video[1].shape[2] != video[0].shape[2] * alpha:
            raise ValueError(
                f"[slow, fast] clips of {video[0].shape[2]} and {video[1].shape[2]} frames do not fit this model's "
                f"alpha={alpha} (fast = alpha x slow frames): set the DataModule's alpha to {alpha}"
            )
        return video

    def extract(self, video, audio=None, audio_neg=None):
        slow, fast = self._pathways(video)
        return self.backbone(slow, fast)

    # ------------------------------------------------------------------ self-supervised rotation
    def is_ssl(self) -> bool:
        return self.hparams.mode == "ssl"

    def _rotate(self, video: list[torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Rotate every clip by k x 90 degrees (k random per clip, the same for both pathways)."""
        b = video[0].shape[0]
        k = torch.randint(0, 4, (b,), device=video[0].device)
        out = []
        for v in video:
            out.append(torch.stack([torch.rot90(v[i], int(k[i]), dims=(-2, -1)) for i in range(b)]))
        return out, k

    def _training_loss(self, batch, video, audio, audio_neg):
        if not self.is_ssl():
            return super()._training_loss(batch, video, audio, audio_neg)
        video, rot = self._rotate(video)
        feats, aux = self.extract(video, audio, audio_neg)
        rot_loss = F.cross_entropy(self.rotation_head(self.head.pool(feats)), rot)
        return feats, aux, self.hparams.rotation_weight * rot_loss, {"train/rot_loss": rot_loss}

    def example_input(self, batch_size: int = 1) -> dict[str, Any]:
        hp = self.hparams
        s = hp.crop_size
        return {
            "video": [
                torch.randn(batch_size, 3, hp.slow_frames, s, s),
                torch.randn(batch_size, 3, hp.slow_frames * hp.alpha, s, s),
            ]
        }


def _k400_original(tag: str, url: str, converter: str, top1: float, top5: float, notes: str) -> Weights:
    """A Kinetics-400 tag converted from an original checkpoint on first use."""
    return Weights(tag, original_url=url, converter=converter, dataset="kinetics-400",
                   metrics={"top1": top1, "top5": top5}, notes=notes)


#: The registered ids: constructor defaults, input contract, weights and the thesis's numbers.
_IDS: dict[str, dict] = {
    "slowfast-r50-4x16": dict(
        defaults={},
        input=kinetics_input(_video_shape(4, 32), frames=32, alpha=8),
        weights=[
            _k400_original("k400", "https://dl.fbaipublicfiles.com/pyslowfast/model_zoo/kinetics400/SLOWFAST_4x16_R50.pkl",
                           "mmzoo.convert.pytorchvideo:convert_pyslowfast_caffe2", 75.6, 92.0,
                           "PySlowFast model zoo (Caffe2 pickle); original_sha256 unknown (no public checksum)."),
        ],
        reported={"k400_top1": 75.6, "k400_top5": 92.0, "kinetics_sounds_top1": 80.5, "gflops_per_view": 36.1, "views": 30},
    ),
    "slowfast-r50-8x8": dict(
        defaults={"slow_frames": 8, "alpha": 4, "fusion_kernel": 7, "recipe_epochs": 196},
        input=kinetics_input(_video_shape(8, 32), frames=32, alpha=4),
        weights=[
            _k400_original("k400", "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics/SLOWFAST_8x8_R50.pyth",
                           "mmzoo.convert.pytorchvideo:convert_pytorchvideo_slowfast", 76.94, 92.69,
                           "PyTorchVideo model zoo checkpoint ({'model_state': ...}); original_sha256 unknown (no public checksum)."),
            _k400_original("k400-pyslowfast", "https://dl.fbaipublicfiles.com/pyslowfast/model_zoo/kinetics400/SLOWFAST_8x8_R50.pkl",
                           "mmzoo.convert.pytorchvideo:convert_pyslowfast_caffe2", 77.0, 92.6,
                           "PySlowFast model zoo Caffe2 pickle (config Kinetics/c2/SLOWFAST_8x8_R50: alpha 4, fusion kernel 7); original_sha256 unknown."),
        ],
        reported={},
    ),
    "slowfast-r101-8x8": dict(
        defaults={"depth": 101, "slow_frames": 8, "alpha": 4, "fusion_kernel": 5, "res4_temporal_blocks": 6, "recipe_epochs": 196},
        input=kinetics_input(_video_shape(8, 32), frames=32, alpha=4, train_scale=(256, 340)),
        weights=[],
        reported={"k400_top1": 77.9, "k400_top5": 93.2, "kinetics_sounds_top1": 82.7, "gflops_per_view": 106, "views": 30},
    ),
}

for _id, _cfg in _IDS.items():
    register_model(_id, task="video classification", paper=PAPER, **_cfg)(SlowFast)
