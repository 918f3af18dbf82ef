"""Downstream audio classification on the frozen audio features of an audio-visual self-supervised model
(the AVTS audio table, seed 004 digest part B.2: ESC-50 and DCASE2014 accuracy of "our AVTS features",
L3-Net and SoundNet).

One registered id, ``audio-probe``, wraps a *source* zoo model (``source``: any registered id that has
``embed_audio(audio) -> (B, D)``, built with ``source_kwargs``; its weights from ``source_weights``,
loaded by ``mmzoo fit`` as for ``transfer``) and trains a classifier of ``num_classes`` on its frozen
features. The seed leaves the protocol [SILENT] ("which layer's features, the classifier (linear?
SVM?), ESC-50 fold protocol, DCASE2014 protocol"); the defaults follow the papers the table compares
with:

* features: what the source's ``embed_audio`` returns. ``l3net-avc`` / ``openl3-audio-*``: conv4_2 of
  the audio subnet before BN / ReLU, max-pooled to a 4 x 3 grid (6144-d; L3-Net paper section 4.2);
  the AVTS and Multisensory ids document their own layer and pooling;
* classifier: linear (``classifier="linear"``) with a one-vs-rest squared hinge loss and L2 weight
  decay (``loss="svm"``: the linear SVM of L3-Net / SoundNet / AVTS, liblinear's default
  formulation), or softmax cross-entropy (``loss="ce"``), or a one-hidden-layer MLP
  (``classifier="mlp"``); features standardised by a BatchNorm without affine parameters
  (``feature_norm="batchnorm"``; "none" to switch off) ([SILENT]);
* windows: the DataModule cuts 1-s windows (``esc50`` / ``dcase2014``, module
  :mod:`mmzoo.data.audio_clips`); training sees one random window per clip, evaluation averages the
  scores of all windows of a clip (``top1``: clip accuracy, %) and also reports ``window_top1``;
* folds: one run per held-out fold (``--data.fold k``); :func:`summarise_folds` gives the per-fold
  and mean accuracies the literature reports (ESC-50: 5 folds; DCASE: 5).

The source stays in eval mode and receives no gradient (frozen BN statistics included).
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from mmzoo.errors import MmzooError, NotSupportedError
from mmzoo.metrics.classification import MultiViewAccuracy
from mmzoo.models.base import ZooModule
from mmzoo.models.l3net import PAPER as L3_PAPER
from mmzoo.models.recipe import Recipe, global_batch_size, total_training_steps
from mmzoo.models.slowfast import video_indices
from mmzoo.models.transfer import _build_source
from mmzoo.registry import AudioInput, InputConfig, register_model

__all__ = ["AudioProbe", "multiclass_squared_hinge", "summarise_folds"]


def multiclass_squared_hinge(scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """One-vs-rest squared hinge: mean over samples of ``sum_c max(0, 1 - y_c s_c)^2`` with
    ``y_c = +1`` for the true class and ``-1`` otherwise (liblinear's L2-loss SVM, summed over classes)."""
    y = -torch.ones_like(scores)
    y.scatter_(1, target.view(-1, 1), 1.0)
    return F.relu(1 - y * scores).pow(2).sum(1).mean()


def summarise_folds(results: Mapping[int, Mapping[str, float] | str | os.PathLike], num_folds: int = 5,
                    keys: Sequence[str] = ("test/top1",)) -> dict[str, Any]:
    """Per-fold results (a metrics dict or the ``results_test.json`` of ``mmzoo test``) -> ``{"folds":
    {k: {metric: value}}, "mean": {metric: mean}}``; the mean needs every fold 1..num_folds."""
    per: dict[int, dict[str, float]] = {}
    for fold, res in results.items():
        if isinstance(res, (str, os.PathLike)):
            res = json.loads(Path(res).read_text())["metrics"]
        missing = [k for k in keys if k not in res]
        if missing:
            raise MmzooError(f"fold {fold}: results lack {missing} (have {sorted(res)})")
        per[int(fold)] = {k: float(res[k]) for k in keys}
    if sorted(per) != list(range(1, num_folds + 1)):
        raise MmzooError(f"the mean over folds needs folds 1..{num_folds}, got {sorted(per)}")
    return {"folds": per, "mean": {k: sum(v[k] for v in per.values()) / num_folds for k in keys}}


class AudioProbe(ZooModule):
    """A classifier on the frozen ``embed_audio`` features of a source model (module docstring).

    Args:
        source: registered id with ``embed_audio`` (default ``l3net-avc``).
        source_kwargs: constructor overrides of the source (tiny widths in tests).
        source_weights: a tag of ``source``, a name ``mmzoo.load`` accepts, or a ``.ckpt``; loaded by
            ``mmzoo fit`` (None: random source, the "from scratch" baseline).
        num_classes: 50 (ESC-50); 10 for ESC-10 and DCASE (linked from the DataModule by ``mmzoo fit``).
        classifier: ``"linear"`` or ``"mlp"`` (one hidden layer of ``mlp_hidden``, ReLU, dropout).
        loss: ``"svm"`` (one-vs-rest squared hinge) or ``"ce"`` (softmax cross-entropy).
        feature_norm: ``"batchnorm"`` (standardise features, no affine) or ``"none"``.
        mlp_hidden / dropout: MLP width (512) and dropout (0.5) before the last layer.
        base_lr / base_batch_size / weight_decay: Adam, 1e-3 at batch 64, L2 1e-4 ([SILENT]).
    """

    def __init__(
        self,
        source: str = "l3net-avc",
        source_kwargs: dict[str, Any] | None = None,
        source_weights: str | None = None,
        num_classes: int = 50,
        classifier: Literal["linear", "mlp"] = "linear",
        loss: Literal["svm", "ce"] = "svm",
        feature_norm: Literal["batchnorm", "none"] = "batchnorm",
        mlp_hidden: int = 512,
        dropout: float = 0.5,
        base_lr: float = 1e-3,
        base_batch_size: int | None = 64,
        weight_decay: float = 1e-4,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if classifier not in ("linear", "mlp") or loss not in ("svm", "ce") or feature_norm not in ("batchnorm", "none"):
            raise ValueError(f"classifier linear/mlp, loss svm/ce, feature_norm batchnorm/none; got "
                             f"{classifier!r}, {loss!r}, {feature_norm!r}")
        self.source = _build_source(source, source_kwargs)
        if not callable(getattr(self.source, "embed_audio", None)):
            raise ValueError(f"source {source!r} ({type(self.source).__name__}) has no embed_audio(audio); "
                             "an audio probe needs an audio-visual model with an audio subnet")
        self.source.requires_grad_(False)
        self.source.eval()
        self.source_weights_loaded = False
        with torch.no_grad():
            dim = int(self.source.embed_audio(self._example_audio(1)).shape[1])  # shape only (meta-safe)
        self.feature_dim = dim
        self.norm = nn.BatchNorm1d(dim, affine=False) if feature_norm == "batchnorm" else nn.Identity()
        if classifier == "linear":
            self.head = nn.Linear(dim, num_classes)
        else:
            self.head = nn.Sequential(nn.Linear(dim, mlp_hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                      nn.Linear(mlp_hidden, num_classes))
        self.val_metric = MultiViewAccuracy(top_k=(1, 5))
        self.test_metric = MultiViewAccuracy(top_k=(1, 5))
        self.val_window = MultiViewAccuracy(top_k=(1,))
        self.test_window = MultiViewAccuracy(top_k=(1,))

    def _example_audio(self, batch_size: int) -> torch.Tensor:
        audio = self.source.example_input(batch_size).get("audio")
        if audio is None:
            raise ValueError(f"source {self.hparams.source!r} has no audio input in its example_input()")
        return audio

    def train(self, mode: bool = True) -> AudioProbe:
        super().train(mode)
        self.source.eval()  # frozen, BN statistics included
        return self

    def features(self, audio: torch.Tensor) -> torch.Tensor:
        """The source's frozen ``embed_audio`` features ``(B, D)``."""
        with torch.no_grad():
            return self.source.embed_audio(audio).float()

    def forward_features(self, audio: torch.Tensor) -> dict[str, torch.Tensor]:
        """``pooled``: the source's frozen ``embed_audio`` vector; ``normalized``: what the head reads."""
        pooled = self.features(audio)
        return {"pooled": pooled, "normalized": self.norm(pooled)}

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """Class scores ``(B, num_classes)`` of audio windows in the source's input format."""
        return self.head(self.forward_features(audio)["normalized"])

    def example_input(self, batch_size: int = 1) -> dict[str, Any]:
        return {"audio": self._example_audio(batch_size)}

    def setup(self, stage: str) -> None:
        """Refuse a DataModule with multi-hot labels (AudioSet): the probe is the single-label
        classifier of the ESC-50 / DCASE 2014 protocols."""
        super().setup(stage)
        dm = getattr(getattr(self, "_trainer", None), "datamodule", None)
        if stage != "predict" and dm is not None and getattr(dm, "multilabel", False):
            name = getattr(dm, "datamodule_name", type(dm).__name__)
            raise NotSupportedError(f"audio-probe trains a single-label classifier (esc50, dcase2014), but {name!r} batches "
                             "carry multi-hot labels")

    def _loss(self, scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.hparams.loss == "svm":
            return multiclass_squared_hinge(scores, target)
        return F.cross_entropy(scores, target)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        scores = self(batch["audio"])
        loss = self._loss(scores, batch["label"].long())
        self.log("train/loss", loss, batch_size=scores.shape[0])
        return loss

    def _eval(self, batch: dict, metric, window_metric, prefix: str) -> torch.Tensor:
        scores = self(batch["audio"])
        target = batch["label"].long()
        self.log(f"{prefix}/loss", self._loss(scores, target), batch_size=scores.shape[0], sync_dist=True)
        probs = scores if self.hparams.loss == "svm" else scores.softmax(1)
        metric.update(probs, target, video_indices(batch, scores.device))
        window_metric.update(probs, target)
        return probs

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval(batch, self.val_metric, self.val_window, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval(batch, self.test_metric, self.test_window, "test")

    def _log(self, metric, window_metric, prefix: str) -> None:
        res = metric.compute()
        out = {f"{prefix}/{k}": v for k, v in res.items()}
        out[f"{prefix}/window_top1"] = window_metric.compute()["top1"]
        self.log_dict(out)
        metric.reset()
        window_metric.reset()

    def on_validation_epoch_end(self) -> None:
        self._log(self.val_metric, self.val_window, "val")

    def on_test_epoch_end(self) -> None:
        self._log(self.test_metric, self.test_window, "test")

    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        return self(batch["audio"])

    @property
    def recipe(self) -> Recipe:
        hp = self.hparams
        return Recipe(base_lr=hp.base_lr, base_batch_size=hp.base_batch_size, optimizer="adam",
                      weight_decay=hp.weight_decay, norm_weight_decay=0.0, schedule="constant")

    def configure_optimizers(self):
        trainable = nn.ModuleDict({"norm": self.norm, "head": self.head})
        return self.recipe.configure(trainable, global_batch_size(self), total_training_steps(self))


register_model(
    "audio-probe",
    task="audio classification (frozen audio-visual features)",
    paper=L3_PAPER + "; AVTS audio table (seed 004 slides B.2)",
    input=InputConfig(shapes={"audio": "B,48000 (1-s windows at 48 kHz; the source's input format)"},
                      audio=AudioInput(kind="waveform", sample_rate=48000, num_frames=48000),
                      datamodules=("esc50", "dcase2014"),
                      notes="Input contract of the default source l3net-avc; for a log-mel source set "
                            "--data.audio_format logmel and its --data.audio_* front end."),
    reported={"esc50_l3net": 79.3, "dcase2014_l3net": 93.0},
    family="l3net",
)(AudioProbe)
