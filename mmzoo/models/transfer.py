"""Transfer protocols: linear probing and fine-tuning any zoo model on a classification dataset.

Self-supervised methods are judged by transfer to UCF101 and HMDB51 (AVSlowFast thesis ch. 4,
Tables 4.9-4.10; the AoT, AVTS and Multisensory tables of seed 004). One registered id,
``transfer``, wraps a *source* zoo model (``source``: any registered id, built with
``source_kwargs``) and puts a new linear classifier of ``num_classes`` on its pooled features
(the source's ``features()``, e.g. SlowFast's concatenated pool5 of every pathway). The protocol
says what trains:

* ``"linear-probe"``: only the new classifier, on frozen features (Table 4.9: "only the last fc
  is trained"). The BatchNorm layers of the frozen network follow ``bn_mode``: ``"precise"``
  (default) recomputes their population statistics on ``precise_bn_batches`` training batches of
  the *target* data before the probe trains (the authors' config sets
  ``BN.USE_PRECISE_STATS`` with ``NUM_BATCHES_PRECISE: 200``; the thesis does not say how BN was
  handled for the probe), then keeps them fixed; ``"frozen"`` keeps the pre-training statistics;
  ``"train"`` normalises with batch statistics while the probe trains (running statistics
  updated, weights frozen). ``head_bn`` adds a BatchNorm without affine parameters before the fc
  (a common probe normaliser, e.g. MAE's; off by default: not in the thesis).
* ``"finetune-last"``: the new classifier only, frozen BN (the AoT table's "fine-tune last
  layer").
* ``"finetune-after-fusion"``: the classifier and the layers after the source's fusion (sources
  that declare ``after_fusion_prefixes``, e.g. AoT's T-CAM: the fusion convs).
* ``"finetune-all"``: every layer (Table 4.10; the AoT table's "all layers"), with optional
  ``freeze_bn`` (BN statistics and affine parameters fixed) and layer-wise lr decay
  (``layer_decay``: the lr of a parameter at depth ``d`` of ``D`` is multiplied by
  ``layer_decay ** (D + 1 - d)``, the new classifier gets the full lr; depth = the stem 0, res2-res5
  (SlowFast stages) 1-4, their fusion laterals the stage they follow, or what the source's
  ``layer_depth(name)`` says).

The source's own classifiers (``head.*``, ``rotation_head.*``, ``fc.*``) stay in the state dict
(so a source checkpoint loads strictly) but never train. Weights of the source are loaded by
:func:`mmzoo.transfer.load_source_weights` from ``source_weights`` (``mmzoo fit`` does it when it
builds a ``transfer`` model; ``None`` = random initialisation, the "from scratch" rows).

The recipe (SGD, lr scaled linearly from ``base_batch_size``, ``lr_schedule``) defaults to Table
4.9's probe: lr 0.01 at batch 64, cosine, 320k iterations (``--trainer.max_steps``); Table 4.10 is
lr 0.005 (UCF101, 80k iterations) / 0.01 (HMDB51, 30k) at batch 16, cosine. Every row of those
tables is in :data:`PROTOCOL_ROWS`.

Evaluation logs video-level accuracy (views of one video averaged: ``top1`` / ``top5``) and
clip-level accuracy (every view on its own: ``clip_top1`` / ``clip_top5``), in %.
"""
from __future__ import annotations

import dataclasses
import inspect
import re
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from mmzoo.data.transforms import finish_deferred_clips
from mmzoo.errors import NotSupportedError
from mmzoo.metrics.classification import MultiViewAccuracy
from mmzoo.models.audionet import logmel_input
from mmzoo.models.base import ZooModule
from mmzoo.models.recipe import Recipe, global_batch_size, total_training_steps
from mmzoo.models.slowfast import kinetics_input, video_indices
from mmzoo.registry import get_spec, register_model

__all__ = ["PROTOCOLS", "PROTOCOL_ROWS", "TransferModule", "layer_depth"]

PROTOCOLS = ("linear-probe", "finetune-last", "finetune-after-fusion", "finetune-all")
_SOURCE_HEADS = ("head.", "rotation_head.", "fc.")
_BN = nn.modules.batchnorm._BatchNorm

#: The transfer rows of the theses as `transfer` constructor arguments (+ the reported top-1, %,
#: UCF101 / HMDB51, mean over the 3 splits unless `note` says otherwise). Rendered in docs/transfer.md.
PROTOCOL_ROWS: dict[str, dict[str, Any]] = {
    "Table 4.9 AVSlowFast 4x16 linear": {
        "kwargs": {"source": "avslowfast-r50-4x16", "source_kwargs": {"mode": "ssl"}, "protocol": "linear-probe",
                       "base_lr": 0.01, "base_batch_size": 64}, "iterations": 320_000, "ucf101": 76.8, "hmdb51": 41.0},
    "Table 4.9 AVSlowFast 8x8 linear": {
        "kwargs": {"source": "avslowfast-r50-8x8", "source_kwargs": {"mode": "ssl"}, "protocol": "linear-probe",
                       "base_lr": 0.01, "base_batch_size": 64}, "iterations": 320_000, "ucf101": 77.4, "hmdb51": 42.2},
    "Table 4.9 AVSlowFast 16x4 linear": {
        "kwargs": {"source": "avslowfast-r50-16x4", "source_kwargs": {"mode": "ssl"}, "protocol": "linear-probe",
                       "base_lr": 0.01, "base_batch_size": 64}, "iterations": 320_000, "ucf101": 77.4, "hmdb51": 44.1},
    "Table 4.9 split-1 SlowFast 4x16 ROT": {
        "kwargs": {"source": "slowfast-r50-4x16", "source_kwargs": {"mode": "ssl"}, "protocol": "linear-probe",
                       "base_lr": 0.01, "base_batch_size": 64}, "iterations": 320_000, "ucf101": 71.9, "hmdb51": 42.0,
        "note": "split 1 only"},
    "Table 4.9 split-1 AVSlowFast 4x16 AVS only": {
        "kwargs": {"source": "avslowfast-r50-4x16", "source_kwargs": {"mode": "supervised"}, "protocol": "linear-probe",
                       "base_lr": 0.01, "base_batch_size": 64}, "iterations": 320_000, "ucf101": 73.2, "hmdb51": 39.5,
        "note": "split 1 only; pre-trained with the AVS losses and no rotation head"},
    "Table 4.10 AVSlowFast 16x4 fine-tune UCF101": {
        "kwargs": {"source": "avslowfast-r50-16x4", "source_kwargs": {"mode": "ssl"}, "protocol": "finetune-all",
                       "num_classes": 101, "base_lr": 0.005, "base_batch_size": 16}, "iterations": 80_000, "ucf101": 87.0},
    "Table 4.10 AVSlowFast 16x4 fine-tune HMDB51": {
        "kwargs": {"source": "avslowfast-r50-16x4", "source_kwargs": {"mode": "ssl"}, "protocol": "finetune-all",
                       "num_classes": 51, "base_lr": 0.01, "base_batch_size": 16}, "iterations": 30_000, "hmdb51": 54.6},
}

_STAGE = re.compile(r"(?:^|\.)stages\.(\d+)\.")
_LATERAL = re.compile(r"(?:^|\.)(?:f2s|afs|a2f|avnl|avs)\.(\d+)\.")


def layer_depth(source: nn.Module, name: str) -> int:
    """Depth of parameter ``name`` of ``source`` for layer-wise lr decay: the source's own
    ``layer_depth(name)`` when it defines one, else SlowFast-style names (stem 0, ``stages.i``
    i + 1, a fusion lateral after stage j: j), else 0."""
    own = getattr(source, "layer_depth", None)
    if callable(own):
        return int(own(name))
    m = _STAGE.search(name)
    if m:
        return int(m.group(1)) + 1
    m = _LATERAL.search(name)
    if m:
        return int(m.group(1))
    return 0


def _build_source(source: str, source_kwargs: dict[str, Any] | None) -> ZooModule:
    """The source architecture. LightningCLI hands the hyperparameters of the model it
    instantiates to every ``save_hyperparameters`` call made meanwhile (a context variable); the
    source is built outside that context so that it records its own arguments."""
    from pytorch_lightning.core.mixins.hparams_mixin import _given_hyperparameters

    token = _given_hyperparameters.set(None)
    try:
        return get_spec(source).build(**dict(source_kwargs or {}))
    finally:
        _given_hyperparameters.reset(token)


class TransferModule(ZooModule):
    """A source zoo model with a new classifier, trained under a transfer protocol (module
    docstring).

    Args:
        source: registered id of the network to transfer (its architecture; weights come from
            ``source_weights``).
        source_kwargs: constructor overrides of the source (``{"mode": "ssl"}`` for the
            AVSlowFast / SlowFast self-supervised models; tiny widths in tests).
        source_weights: where the source's weights come from, loaded when ``mmzoo fit`` builds the
            model (:func:`mmzoo.transfer.load_source_weights`): a tag of ``source`` (``"k400"``),
            a name ``mmzoo.load`` accepts (``"hf-hub:owner/repo"``, a local folder, a local-hub
            repo id), or a Lightning ``.ckpt`` of the source; ``None``: random initialisation.
        protocol: ``"linear-probe"``, ``"finetune-last"``, ``"finetune-after-fusion"`` or
            ``"finetune-all"``.
        num_classes: classes of the new classifier (101 UCF101, 51 HMDB51; linked from the
            DataModule by ``mmzoo fit``).
        dropout: dropout before the new classifier (0; the thesis does not state one for the probe).
        head_bn: a BatchNorm1d without affine parameters before the classifier (off; not in the thesis).
        bn_mode: BN of the frozen layers: ``"precise"``, ``"frozen"`` or ``"train"`` (module docstring).
        precise_bn_batches: training batches used by ``"precise"`` (200, the authors' config).
        freeze_bn: with the fine-tuning protocols, keep every BN of the source in eval mode with
            frozen affine parameters.
        layer_decay: layer-wise lr decay factor (1.0 = the same lr everywhere).
        base_lr / base_batch_size: lr at that global batch, scaled linearly (Table 4.9: 0.01 at 64;
            Table 4.10: 0.005 / 0.01 at 16).
        momentum / weight_decay: SGD momentum (0.9) and weight decay (1e-4, the authors' config;
            never on BN parameters).
        lr_schedule: ``"cosine"`` (the thesis, both tables), ``"steps"`` or ``"constant"``.
        warmup_epochs: linear warm-up (0; none is stated for transfer).
        view_aggregation: how the test views of a video are combined (``"mean"`` of softmax scores).
    """

    def __init__(
        self,
        source: str = "avslowfast-r50-16x4",
        source_kwargs: dict[str, Any] | None = None,
        source_weights: str | None = None,
        protocol: Literal["linear-probe", "finetune-last", "finetune-after-fusion", "finetune-all"] = "linear-probe",
        num_classes: int = 101,
        dropout: float = 0.0,
        head_bn: bool = False,
        bn_mode: Literal["precise", "frozen", "train"] = "precise",
        precise_bn_batches: int = 200,
        freeze_bn: bool = False,
        layer_decay: float = 1.0,
        base_lr: float = 0.01,
        base_batch_size: int | None = 64,
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        lr_schedule: Literal["cosine", "steps", "constant"] = "cosine",
        warmup_epochs: float = 0.0,
        view_aggregation: Literal["mean", "max"] = "mean",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
        if bn_mode not in ("precise", "frozen", "train"):
            raise ValueError(f"bn_mode must be precise / frozen / train, got {bn_mode!r}")
        self.source = _build_source(source, source_kwargs)
        self.source_weights_loaded = False
        dim = self._feature_dim()
        self.head_norm = nn.BatchNorm1d(dim, affine=False) if head_bn else nn.Identity()
        self.head_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(dim, num_classes)
        nn.init.normal_(self.fc.weight, std=0.01)
        nn.init.zeros_(self.fc.bias)
        self._trainable = self._set_trainable()
        self.val_metric, self.test_metric = self._metric(), self._metric()
        self.val_clip_metric, self.test_clip_metric = self._metric(), self._metric()
        self._precise_done = False
        self.train(True)  # Lightning's fit keeps the modes modules have: put the frozen layers in eval now

    # ------------------------------------------------------------------ construction
    def _feature_dim(self) -> int:
        dim = getattr(self.source, "feature_dim", None)
        if dim is None and hasattr(getattr(self.source, "head", None), "dim"):
            dim = self.source.head.dim
        if dim is None or not callable(getattr(self.source, "features", None)):
            raise NotSupportedError(f"{type(self.source).__name__} ({self.hparams.source}) exposes no pooled "
                                    "features() / feature_dim to transfer from")
        return int(dim)

    def _metric(self) -> MultiViewAccuracy:
        return MultiViewAccuracy(top_k=(1, 5), aggregate=self.hparams.view_aggregation)

    def _set_trainable(self) -> set[str]:
        """requires_grad of the source's parameters per protocol; returns the trainable names."""
        hp = self.hparams
        names = set()
        prefixes: tuple[str, ...] = ()
        if hp.protocol == "finetune-all":
            prefixes = ("",)
        elif hp.protocol == "finetune-after-fusion":
            prefixes = tuple(getattr(self.source, "after_fusion_prefixes", ()))
            if not prefixes:
                raise NotSupportedError(f"{type(self.source).__name__} ({hp.source}) declares no layers after a "
                                        "fusion (after_fusion_prefixes); use finetune-last or finetune-all")
        for name, p in self.source.named_parameters():
            train = any(name.startswith(x) for x in prefixes) and not name.startswith(_SOURCE_HEADS)
            if train and hp.freeze_bn and self._is_bn_param(name):
                train = False
            p.requires_grad_(train)
            if train:
                names.add(name)
        return names

    def _is_bn_param(self, name: str) -> bool:
        module = self.source.get_submodule(name.rpartition(".")[0]) if "." in name else self.source
        return isinstance(module, _BN)

    def _frozen_bn_modules(self) -> list[_BN]:
        """BN layers of the source whose parameters the protocol does not train."""
        out = []
        for name, m in self.source.named_modules():
            if isinstance(m, _BN) and not any(f"{name}.{n}" in self._trainable for n, _ in m.named_parameters(recurse=False)):
                out.append(m)
        return out

    def train(self, mode: bool = True):
        """Frozen layers stay in eval mode (BN statistics, dropout, DropPathway): the whole source
        for the probes (its BN in train mode with ``bn_mode="train"``), all but the layers after
        the fusion for ``finetune-after-fusion``, only BN with ``freeze_bn``."""
        super().train(mode)
        if not mode:
            return self
        hp = self.hparams
        if hp.protocol != "finetune-all":
            self.source.eval()
            for prefix in getattr(self.source, "after_fusion_prefixes", ()) if hp.protocol == "finetune-after-fusion" else ():
                self.source.get_submodule(prefix.rstrip(".")).train()
            if self._is_probe() and hp.bn_mode == "train":
                for m in self.source.modules():
                    if isinstance(m, _BN):
                        m.train()
        if hp.freeze_bn:
            for m in self.source.modules():
                if isinstance(m, _BN):
                    m.eval()
        return self

    def _is_probe(self) -> bool:
        return self.hparams.protocol in ("linear-probe", "finetune-last")

    # ------------------------------------------------------------------ inputs and forward
    def source_inputs(self, batch: dict) -> dict[str, Any]:
        """The source's ``forward`` keyword arguments taken from the batch fields of the same name.
        A ``[slow, fast]`` video packed for another SlowFast ratio is re-packed from its Fast
        clip (all frames) by the source itself."""
        params = inspect.signature(self.source.forward).parameters
        out = {k: batch[k] for k in params if k in batch}
        video = out.get("video")
        alpha = getattr(self.source.hparams, "alpha", None) if hasattr(self.source, "hparams") else None
        if isinstance(video, (list, tuple)) and len(video) == 2 and alpha and video[1].shape[2] != video[0].shape[2] * alpha:
            out["video"] = video[1]
        elif isinstance(video, (list, tuple)) and len(video) == 2 and not alpha:
            out["video"] = video[1]  # a single-pathway source (avts-*, multisensory-*) takes the full-rate clip
        if not out:
            raise NotSupportedError(f"the batch (fields {sorted(batch)}) has none of {type(self.source).__name__}.forward's "
                                    f"inputs {list(params)}")
        return out

    def features(self, **inputs: Any) -> torch.Tensor:
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self._is_probe()):
            return self.source.features(**inputs)

    def forward_features(self, **inputs: Any) -> dict[str, torch.Tensor]:
        """Named features (`mmzoo extract`): the source model's (its ``forward_features``), with
        "pooled" the vector the transfer head reads."""
        return self.source.forward_features(**inputs)

    def forward(self, **inputs: Any) -> torch.Tensor:
        """Logits ``(B, num_classes)`` from the source's inputs (e.g. ``video``, ``audio``)."""
        x = self.features(**inputs)
        return self.fc(self.head_dropout(self.head_norm(x)))

    def example_input(self, batch_size: int = 1) -> dict[str, Any]:
        return self.source.example_input(batch_size)

    # ------------------------------------------------------------------ precise BN
    @torch.no_grad()
    def recompute_bn_statistics(self, batches) -> int:
        """Population statistics of the frozen BN layers over ``batches`` (a cumulative mean of
        the per-batch statistics, as precise BN computes them); returns the batches used."""
        bns = self._frozen_bn_modules()
        if not bns:
            return 0
        momenta = [m.momentum for m in bns]
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative moving average
            m.train()
        n = 0
        try:
            for batch in batches:
                if n >= self.hparams.precise_bn_batches:
                    break
                # the DataModule's on_after_batch_transfer is not called here: finish deferred geometry
                batch = finish_deferred_clips(self.transfer_batch_to_device(batch, self.device, 0))
                self.source.features(**self.source_inputs(batch))
                n += 1
        finally:
            for m, mom in zip(bns, momenta):
                m.momentum = mom
            self.train(self.training)
        return n

    def on_train_start(self) -> None:
        self.train(True)
        if self.hparams.bn_mode != "precise" or self._precise_done or not self._is_probe():
            return
        trainer = self.trainer
        loader = trainer.datamodule.train_dataloader() if trainer.datamodule is not None else trainer.train_dataloader
        self.precise_bn_batches_used = self.recompute_bn_statistics(loader)
        self._precise_done = True

    # ------------------------------------------------------------------ steps
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        logits = self(**self.source_inputs(batch))
        loss = F.cross_entropy(logits, batch["label"].long())
        self.log("train/loss", loss, batch_size=logits.shape[0])
        return loss

    def _eval_step(self, batch: dict, video_metric, clip_metric, prefix: str) -> torch.Tensor:
        logits = self(**self.source_inputs(batch))
        scores = logits.softmax(-1)
        label = batch["label"].long()
        self.log(f"{prefix}/loss", F.cross_entropy(logits, label), batch_size=logits.shape[0], sync_dist=True)
        video_metric.update(scores, label, video_indices(batch, scores.device))
        clip_metric.update(scores, label, None)
        return scores

    def validation_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._eval_step(batch, self.val_metric, self.val_clip_metric, "val")

    def test_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._eval_step(batch, self.test_metric, self.test_clip_metric, "test")

    def _log_metrics(self, video_metric, clip_metric, prefix: str) -> None:
        res = {f"{prefix}/{k}": v for k, v in video_metric.compute().items()}
        res.update({f"{prefix}/clip_{k}": v for k, v in clip_metric.compute().items()})
        self.log_dict(res)
        video_metric.reset()
        clip_metric.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_metrics(self.val_metric, self.val_clip_metric, "val")

    def on_test_epoch_end(self) -> None:
        self._log_metrics(self.test_metric, self.test_clip_metric, "test")

    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        return self(**self.source_inputs(batch)).softmax(-1)

    # ------------------------------------------------------------------ recipe
    @property
    def recipe(self) -> Recipe:
        hp = self.hparams
        return Recipe(base_lr=hp.base_lr, base_batch_size=hp.base_batch_size, optimizer="sgd", momentum=hp.momentum,
                      weight_decay=hp.weight_decay, norm_weight_decay=0.0, schedule=hp.lr_schedule,
                      warmup_epochs=hp.warmup_epochs)

    def lr_multipliers(self) -> dict[str, float]:
        """Parameter name -> lr multiplier of layer-wise decay (trainable parameters only)."""
        decay = self.hparams.layer_decay
        depths = {f"source.{n}": layer_depth(self.source, n) for n in self._trainable}
        top = max(depths.values(), default=0) + 1
        out = {n: decay ** (top - d) for n, d in depths.items()}
        out.update({n: 1.0 for n, p in self.named_parameters() if not n.startswith("source.") and p.requires_grad})
        return out

    def configure_optimizers(self):
        recipe = self.recipe
        lr = recipe.scaled_lr(global_batch_size(self))
        mult = self.lr_multipliers()
        groups: dict[tuple[float, float], list[nn.Parameter]] = {}
        for mname, m in self.named_modules():
            for pname, p in m.named_parameters(recurse=False):
                full = f"{mname}.{pname}" if mname else pname
                if not p.requires_grad:
                    continue
                wd = 0.0 if isinstance(m, (_BN, nn.LayerNorm, nn.GroupNorm)) else recipe.weight_decay
                groups.setdefault((mult[full], wd), []).append(p)
        params = [{"params": ps, "lr": lr * k, "weight_decay": wd} for (k, wd), ps in groups.items()]
        opt = torch.optim.SGD(params, lr=lr, momentum=recipe.momentum)
        total = total_training_steps(self) or 1
        trainer = getattr(self, "_trainer", None)
        warm = recipe.warmup_steps(total, trainer.max_epochs if trainer is not None else None)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: recipe.lr_factor(s, total, warm))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


_TRANSFER_INPUT = dataclasses.replace(
    kinetics_input({"video": "[slow B,3,16,256,256 ; fast B,3,32,256,256]", "audio": "log-mel B,1,128,80"},
                   frames=32, alpha=2, audio=logmel_input(128)),
    datamodules=("ucf101", "hmdb51"),
    notes="The input of the default source (avslowfast-r50-16x4); another --model.source takes its own input "
          "(the DataModule's flags: --data.alpha etc.; a [slow, fast] clip packed for another alpha is re-packed).",
)

register_model(
    "transfer",
    task="video classification (transfer)",
    paper="Xiao, Audiovisual SlowFast Networks (thesis ch. 4, Tables 4.9-4.10); Wei et al., Learning and Using "
          "the Arrow of Time (CVPR 2018), fine-tuning table",
    input=_TRANSFER_INPUT,
    reported={"ssl_linear_ucf101": 77.4, "ssl_linear_hmdb51": 44.1, "ssl_finetune_ucf101": 87.0,
              "ssl_finetune_hmdb51": 54.6},
)(TransferModule)
