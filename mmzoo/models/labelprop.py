"""Label propagation: mmzoo's correspondence benchmark for any dense feature extractor (thesis
ch. 2, Sec. 2.4 and Tables 2.1-2.3).

`LabelPropagationModule` is the evaluation half shared by every model that exposes dense
features (`dense_features(frames) -> (N, c, h, w)`): `mmzoo test --model <id> --data davis2017`
propagates the first frame's instance masks through the sequence
(:func:`mmzoo.nn.label_propagation.propagate_labels`: top-5 neighbours, the first frame + 7
previous frames, the authors' temperature and per-channel min-max normalisation), upsamples the
soft labels to the annotation size and takes the argmax per pixel, then scores DAVIS J / F
(:class:`mmzoo.metrics.davis.DavisJF`). With JHMDB batches (``keypoints``) it propagates one
map per joint, takes the maximum-score pixel per joint and scores PCK
(:class:`mmzoo.metrics.pck.PCK`). With VIP batches (``parts``) it propagates part ids and scores
the part mIoU (:class:`mmzoo.metrics.vip.PartMeanIoU`); when they also carry ``instances`` it propagates the
first frame's instance parts the same way and scores AP^r_vol
(:class:`mmzoo.metrics.vip.InstancePartAP`, see :meth:`LabelPropagationModule.segment_instances`).

`FeaturePropagation` registers the thesis's baseline rows:

- ``labelprop-identity``: raw pixels, each 8 x 8 block of the normalised frame as one feature
  vector (the "Identity" row; stride 8 like the learned encoders);
- ``labelprop-imagenet-r50``: ImageNet ResNet-50 up to res4 with res4's stride removed (the
  same trunk as TimeCycle's encoder; weights from timm ``resnet50.tv_in1k``, the torchvision
  weights of the thesis era, Hub repo ``timm/resnet50.tv_in1k``), the "ImageNet R50" row;
- ``labelprop-random-r50``: the same trunk with a seeded random initialisation ("Random").
"""
from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F

from mmzoo.data.constants import IMAGENET_MEAN, IMAGENET_STD
from mmzoo.errors import NotSupportedError
from mmzoo.metrics.davis import DavisJF
from mmzoo.metrics.pck import PCK
from mmzoo.metrics.reconstruction import FrameReconstructionL1
from mmzoo.metrics.vip import InstancePartAP, PartMeanIoU
from mmzoo.models.base import ZooModule
from mmzoo.nn.label_propagation import (
    keypoint_maps,
    keypoints_from_maps,
    labels_to_onehot,
    propagate_labels,
    upsample_labels,
)
from mmzoo.nn.reconstruction import denormalize_frames, frame_pairs, reconstruct_frame
from mmzoo.nn.timecycle import Res4Encoder
from mmzoo.nn.timm_backbone import create_timm_model
from mmzoo.registry import InputConfig, register_model

__all__ = ["FeaturePropagation", "LabelPropagationModule", "propagation_input", "reconstruction_error"]

#: Frames of `example_input` (a TimeCycle training clip: k = 4 past frames + the target).
EXAMPLE_FRAMES = 5

PAPER = "Wang, Jabri & Efros, Learning Correspondence from the Cycle-consistency of Time (CVPR 2019; thesis 003 ch. 2)"


class LabelPropagationModule(ZooModule):
    """Evaluation by label propagation, for subclasses that define `dense_features`.

    Args:
        topk: neighbours per target position (5, thesis Sec. 2.4).
        context: previous frames propagated from besides the first one (K = 7 for DAVIS, JHMDB).
        prop_temperature: affinity softmax temperature at test time (the authors' 512^-0.5).
        normalize_labels: per-channel min-max normalisation of propagated labels (authors' code).
        frame_size: inference frame size of `example_input` (the authors' 320 for DAVIS; their
            README also reports 400); the DataModule resizes frames to it.
        keypoint_sigma: std (in feature cells) of the Gaussian put on each joint of the first
            frame for pose propagation (0 = a one-hot cell); not stated in the thesis.
        feature_chunk: frames encoded at once during evaluation (memory only).
    """

    def __init__(
        self,
        topk: int = 5,
        context: int = 7,
        prop_temperature: float = 512 ** -0.5,
        normalize_labels: bool = True,
        frame_size: int = 320,
        keypoint_sigma: float = 0.5,
        feature_chunk: int = 8,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.test_seg, self.test_pck, self.test_parts = DavisJF(), PCK(), PartMeanIoU()
        self.val_seg, self.val_pck, self.val_parts = DavisJF(), PCK(), PartMeanIoU()
        self.test_inst_ap, self.val_inst_ap = InstancePartAP(), InstancePartAP()

    # ------------------------------------------------------------------ features
    def dense_features(self, frames: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """``(N, 3, H, W)`` normalised frames -> ``(N, c, h, w)`` features."""
        raise NotImplementedError

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """l2-normalised dense features ``(B, c, T, h, w)`` of a clip ``(B, 3, T, H, W)``."""
        b, _, t, h, w = video.shape
        feats = self.dense_features(video.transpose(1, 2).reshape(b * t, 3, h, w))
        feats = F.normalize(feats, dim=1)
        return feats.reshape(b, t, *feats.shape[1:]).transpose(1, 2)

    def forward_features(self, video: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named features (`mmzoo extract`): "dense" (``B, c, T, h, w``, the l2-normalised
        features ``forward`` returns) and "pooled" (``B, c``, their average over frames and
        positions)."""
        dense = self(video)
        return {"dense": dense, "pooled": dense.mean(dim=(2, 3, 4))}

    @torch.no_grad()
    def sequence_features(self, video: torch.Tensor) -> torch.Tensor:
        """``(T, c, h, w)`` normalised features of one sequence ``(3, T, H, W)``, in chunks."""
        frames = video.transpose(0, 1)
        chunk = max(1, int(self.hparams.feature_chunk))
        out = [F.normalize(self.dense_features(frames[i : i + chunk]), dim=1) for i in range(0, frames.shape[0], chunk)]
        return torch.cat(out)

    def example_input(self, batch_size: int = 1) -> dict[str, Any]:
        """A 5-frame clip at ``frame_size`` (FLOPs are per 5 frames: 5 x the per-frame cost)."""
        s = self.hparams.frame_size
        return {"video": torch.randn(batch_size, 3, EXAMPLE_FRAMES, s, s)}

    # ------------------------------------------------------------------ propagation
    def _propagate(self, feats: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
        hp = self.hparams
        return propagate_labels(feats, first, topk=hp.topk, context=hp.context, temperature=hp.prop_temperature,
                                normalize_labels=hp.normalize_labels, normalized=True)

    def _propagate_ids(self, feats: torch.Tensor, first_ids: torch.Tensor, n: int) -> torch.Tensor:
        """Soft labels ``(T, n, h, w)`` of first-frame ids ``(H, W)`` in ``0..n-1`` (one-hot on the
        feature grid, then `_propagate`): the one path of part, mask and instance-part labels."""
        return self._propagate(feats, labels_to_onehot(first_ids, n, tuple(feats.shape[-2:])))

    @torch.no_grad()
    def segment(self, video: torch.Tensor, first_mask: torch.Tensor, out_size: tuple[int, int] | None = None,
                feats: torch.Tensor | None = None) -> torch.Tensor:
        """Instance ids ``(T, H, W)`` for a sequence ``(3, T, H', W')`` given the first frame's
        ids ``(H, W)`` (0 background, 1..n objects; void 255 counts as background). ``feats``:
        the sequence's `sequence_features`, when already computed."""
        first_mask = torch.where(first_mask == 255, torch.zeros_like(first_mask), first_mask).long()
        out_size = out_size or tuple(first_mask.shape[-2:])
        feats = self.sequence_features(video) if feats is None else feats
        soft = self._propagate_ids(feats, first_mask, int(first_mask.max()) + 1)
        ids = upsample_labels(soft, out_size).argmax(1)
        ids[0] = first_mask if tuple(first_mask.shape) == tuple(out_size) else ids[0]
        return ids

    @torch.no_grad()
    def segment_instances(self, video: torch.Tensor, first_instances: torch.Tensor, first_table: torch.Tensor,
                          out_size: tuple[int, int] | None = None, feats: torch.Tensor | None = None
                          ) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Instance-part predictions of frames 1..T-1 for `InstancePartAP`, from the first frame's
        instance-part map ``(H, W)`` and its table ``(N, 2)`` rows (instance id, part id) (``-1``
        padding rows are skipped).

        The instances are the ids of the map listed in the table (others, e.g. void, count as
        background, as they are "not instances" to the official evaluation); their one-hot maps
        (background first) go through exactly the part labels' propagation (`_propagate_ids`:
        same references, top-k, temperature, normalisation) and are upsampled to ``out_size``
        likewise; a pixel belongs to the argmax instance, or to none where background wins.
        Neither the thesis nor the authors' code says how TimeCycle produced scored instance parts;
        our choices, [SILENT]:

        * a predicted instance keeps the part class of its first-frame instance (table of frame 0);
        * its score is the mean, over its predicted pixels, of its propagated label (the upsampled
          value the argmax compares: after the per-channel min-max normalisation when
          ``normalize_labels``, not renormalised across instances);
        * instances with no predicted pixel in a frame are not listed for that frame.

        Returns per frame t = 1..T-1 ``(pred (H, W) 0 / 1-based index, classes (M,), scores (M,))``.
        """
        out_size = out_size or tuple(first_instances.shape[-2:])
        rows = first_table[(first_table[:, 0] > 0) & (first_table[:, 1] > 0)].long().cpu()
        rows = rows[torch.isin(rows[:, 0], torch.unique(first_instances).long().cpu())]
        ids, classes = rows[:, 0].to(first_instances.device), rows[:, 1]
        # channel of each pixel: 1 + the row of its instance id, 0 (background) for unlisted ids
        match = first_instances.long().unsqueeze(-1) == ids.view(1, 1, -1)
        first = torch.where(match.any(-1), match.float().argmax(-1) + 1, torch.zeros_like(first_instances)).long()
        feats = self.sequence_features(video) if feats is None else feats
        soft = self._propagate_ids(feats, first, len(rows) + 1)
        out = []
        for t in range(1, soft.shape[0]):  # frame by frame: the upsampled maps can be large
            prob = upsample_labels(soft[t : t + 1], out_size)[0]
            arg = prob.argmax(0)
            kept = [int(c) for c in torch.unique(arg).tolist() if c > 0]
            lut = torch.zeros(len(rows) + 1, dtype=torch.long, device=arg.device)
            lut[kept] = torch.arange(1, len(kept) + 1, device=arg.device)
            scores = torch.stack([prob[c][arg == c].mean() for c in kept]) if kept else prob.new_zeros(0)
            out.append((lut[arg], classes[torch.tensor(kept, dtype=torch.long) - 1], scores.double().cpu()))
        return out

    @torch.no_grad()
    def track_keypoints(self, video: torch.Tensor, first_kp: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        """Joint positions ``(T, K, 2)`` (x, y pixels of the frames as annotated, ``image_size``
        = (H, W)) from the first frame's ``(K, 2)``; each joint is the maximum of its map."""
        feats = self.sequence_features(video)
        h, w = feats.shape[-2:]
        first = keypoint_maps(first_kp, image_size, (h, w), self.hparams.keypoint_sigma).to(feats)
        soft = self._propagate(feats, first)
        kp = keypoints_from_maps(upsample_labels(soft, image_size))
        kp[0] = first_kp.to(kp)
        return kp

    def reconstruction_error(self, video: torch.Tensor, gaps: tuple[int, ...] = (5, 10), **kwargs: Any
                             ) -> dict[str, float]:
        """Frame reconstruction L1 errors ``{"l1@5", "l1@10"}`` of a sequence ``(3, T, H, W)``
        (thesis Sec. 2.3.6, Table 2.5 of the seed): :func:`reconstruction_error`
        with this model's features, ``topk`` and ``prop_temperature``."""
        return reconstruction_error(self, video, gaps, **kwargs)

    def unlabelled_eval_step(self, batch: dict, prefix: str) -> None:
        """Evaluation on batches without labels (a video folder): nothing to propagate."""
        raise NotSupportedError(
            f"{type(self).__name__} evaluates by label propagation, which needs first-frame labels: the {prefix} "
            "batches carry no per-pixel 'label' maps (davis2017), 'keypoints' (jhmdb) or 'parts' (vip)")

    def _eval_step(self, batch: dict, seg: DavisJF, pck: PCK, parts: PartMeanIoU, prefix: str,
                   inst_ap: InstancePartAP | None = None) -> None:
        masks = "label" in batch and batch["label"].dim() == 4  # (B, T, H, W) id maps, not class labels
        if not masks and "keypoints" not in batch and "parts" not in batch:
            self.unlabelled_eval_step(batch, prefix)
            return
        video = batch["video"]
        for b in range(video.shape[0]):
            name = (batch.get("video_id") or [None] * video.shape[0])[b]
            if "parts" in batch:
                gt = batch["parts"][b]
                feats = self.sequence_features(video[b])
                pred = self.segment(video[b], gt[0], tuple(gt.shape[-2:]), feats=feats)
                parts.update(pred[1:], gt[1:])  # the first frame is given
                if "instances" in batch and inst_ap is not None:
                    self._update_instance_ap(inst_ap, video[b], batch["instances"][b], batch["instance_table"][b],
                                             name, feats)
            elif "keypoints" in batch:
                kp = batch["keypoints"][b]
                size = tuple(int(s) for s in batch["image_size"][b])
                pred = self.track_keypoints(video[b], kp[0], size)
                pck.update(pred[1:], kp[1:], batch["keypoint_scale"][b][1:], batch["keypoint_visible"][b][1:])
            else:
                gt = batch["label"][b]
                seg.update(self.segment(video[b], gt[0], tuple(gt.shape[-2:])), gt, name)

    def _update_instance_ap(self, metric: InstancePartAP, video: torch.Tensor, instances: torch.Tensor,
                            table: torch.Tensor, name: str | None, feats: torch.Tensor) -> None:
        """AP^r_vol of one VIP video over the frames the part mIoU scores (all but the first);
        ground truth: each frame's instance map and table. ``frame_key`` = crc32(video id) << 20 | t,
        unique per (video, frame) and the same on every DDP rank layout."""
        preds = self.segment_instances(video, instances[0], table[0], tuple(instances.shape[-2:]), feats=feats)
        base = None if name is None else zlib.crc32(str(name).encode()) << 20
        for t, (pred, classes, scores) in enumerate(preds, 1):
            rows = table[t][table[t][:, 0] >= 0]
            metric.update(pred, classes, scores, instances[t], rows[:, 0], rows[:, 1],
                          frame_key=None if base is None else base | t)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, self.val_seg, self.val_pck, self.val_parts, "val", self.val_inst_ap)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, self.test_seg, self.test_pck, self.test_parts, "test", self.test_inst_ap)

    def _log_metrics(self, prefix: str, *metrics) -> None:
        for metric in metrics:
            if metric.update_called:
                self.log_dict({f"{prefix}/{k}": v for k, v in metric.compute().items()})
                metric.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val", self.val_seg, self.val_pck, self.val_parts, self.val_inst_ap)

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test", self.test_seg, self.test_pck, self.test_parts, self.test_inst_ap)

    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0):
        return self(batch["video"])


class PixelFeatures(torch.nn.Module):
    """The "Identity" features: every ``stride x stride`` block of the frame as one vector."""

    def __init__(self, stride: int = 8) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _n, _c, h, w = x.shape
        s = self.stride
        x = x[..., : h // s * s, : w // s * s]
        return F.pixel_unshuffle(x, s)


class FeaturePropagation(LabelPropagationModule):
    """Label propagation with a fixed feature extractor (the thesis's baseline rows).

    Args (the propagation arguments are `LabelPropagationModule`'s):
        features: "pixels" (Identity) or "resnet" (ResNet up to res4, feature stride 8).
        depth: ResNet depth (50; 10 / 18 for tiny tests).
        width: ResNet conv1 width (64).
        pretrained_backbone: load the ImageNet weights of `timm_name` (offline: from the local
            caches only; a loud random init when they cannot be had).
        timm_name: timm model whose weights are loaded ("resnet50.tv_in1k": the torchvision
            ImageNet weights).
        seed: seed of the random initialisation (the "Random" row is reproducible).
        pixel_stride: block size of the "pixels" features (8, the encoders' stride).
    """

    def __init__(
        self,
        features: Literal["pixels", "resnet"] = "resnet",
        depth: int = 50,
        width: int = 64,
        pretrained_backbone: bool = True,
        timm_name: str = "resnet50.tv_in1k",
        seed: int | None = 0,
        pixel_stride: int = 8,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if features == "pixels":
            self.encoder = PixelFeatures(pixel_stride)
            return
        if seed is not None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                self.encoder = Res4Encoder(depth, width, out_dim=0)
        else:
            self.encoder = Res4Encoder(depth, width, out_dim=0)
        if pretrained_backbone:
            model, loaded = create_timm_model(timm_name, pretrained=True, fallback_hint="(pass --model.pretrained_backbone false "
                                              "to silence this; the 'Random' row is labelprop-random-r50)")
            if loaded:
                mine = self.encoder.state_dict()
                state = {k: v for k, v in model.state_dict().items() if k in mine}
                missing = sorted(set(mine) - set(state))
                if missing:
                    raise ValueError(f"timm '{timm_name}' lacks {len(missing)} res2-res4 tensors, e.g. {missing[:3]}")
                self.encoder.load_state_dict(state)

    init_without_download: ClassVar[dict[str, Any]] = {"pretrained_backbone": False}

    def dense_features(self, frames: torch.Tensor) -> torch.Tensor:
        return self.encoder(frames)


def propagation_input(frame_size: int = 320, datamodules: tuple[str, ...] = ("davis2017", "jhmdb", "vip")) -> InputConfig:
    """Evaluation input of a label-propagation model: whole sequences resized to
    ``frame_size`` squared (the authors' DAVIS loader), ImageNet normalisation."""
    return InputConfig(
        shapes={"video": f"B,3,T,{frame_size},{frame_size} (a whole sequence at test; FLOPs for T = 5)"},
        frames=EXAMPLE_FRAMES, mean=IMAGENET_MEAN, std=IMAGENET_STD, datamodules=datamodules,
        notes="evaluation by label propagation (top-5, first frame + 7 previous frames)",
    )


_IDS: dict[str, dict] = {
    "labelprop-identity": {
        "defaults": {"features": "pixels", "pretrained_backbone": False},
        "reported": {"davis_J": 22.1, "davis_F": 23.6, "jhmdb_pck@0.1": 43.1, "jhmdb_pck@0.2": 64.5,
                  "vip_miou": 13.6, "vip_ap_vol": 4.0},
    },
    "labelprop-imagenet-r50": {
        "defaults": {"features": "resnet", "pretrained_backbone": True},
        "reported": {"davis_J": 50.3, "davis_F": 49.0, "jhmdb_pck@0.1": 58.4, "jhmdb_pck@0.2": 78.4,
                  "vip_miou": 34.7, "vip_ap_vol": 16.1},
    },
    "labelprop-random-r50": {
        "defaults": {"features": "resnet", "pretrained_backbone": False, "seed": 0},
        "reported": {"davis_J": 12.4, "davis_F": 12.5},
    },
}

for _id, _cfg in _IDS.items():
    register_model(_id, task="label propagation (correspondence)", paper=PAPER, input=propagation_input(),
                   **_cfg)(FeaturePropagation)


@torch.no_grad()
def reconstruction_error(model: Any, video: torch.Tensor, gaps: Sequence[int] = (5, 10),
                         rgb: torch.Tensor | None = None, topk: int | None = None,
                         temperature: float | None = None, metric: FrameReconstructionL1 | None = None,
                         mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                         channel_reduction: str = "mean") -> dict[str, float]:
    """Frame reconstruction L1 errors ``{"l1@5": .., "l1@10": ..}`` (0-255 scale, mean over the
    reconstructed frames) of one sequence, or of a batch of sequences.

    Args:
        model: a module with ``sequence_features(video) -> (T, c, h, w)`` l2-normalised features
            (every `LabelPropagationModule`: TimeCycle, the ``labelprop-*`` ids), or None for
            the Identity row (I'_t = I_s).
        video: ``(3, T, H, W)`` model input (normalised frames), or ``(B, 3, T, H, W)``.
        gaps: frame gaps (5 and 10, thesis).
        rgb: the same frames as RGB in [0, 255], ``(3, T, H', W')`` (``B`` first for a batch), at
            any size; default ``video`` de-normalised with ``mean`` / ``std``.
        topk, temperature: default the model's label-propagation ``topk`` / ``prop_temperature``
            (5 and 512^-0.5).
        metric: a `FrameReconstructionL1` (with these gaps) also updated, to accumulate a dataset.
        channel_reduction: "mean" or "sum" over the RGB channels (see the metric).
    """
    local = FrameReconstructionL1(gaps, channel_reduction=channel_reduction).to(video.device)
    hp = getattr(model, "hparams", {}) if model is not None else {}
    topk = int(topk if topk is not None else hp.get("topk", 5))
    temperature = float(temperature if temperature is not None else hp.get("prop_temperature", 512 ** -0.5))
    if video.dim() == 4:
        video, rgb = video[None], None if rgb is None else rgb[None]
    if video.dim() != 5 or video.shape[1] != 3:
        raise ValueError(f"reconstruction_error: video must be (3, T, H, W) or (B, 3, T, H, W), got "
                         f"{tuple(video.shape)}")
    for b in range(video.shape[0]):
        _update_sequence(model, video[b], None if rgb is None else rgb[b], local.gaps, topk, temperature,
                         [local] + ([metric] if metric is not None else []), mean, std)
    return {k: float(v) for k, v in local.compute().items()}


def _update_sequence(model, video, rgb, gaps, topk, temperature, metrics, mean, std) -> None:
    num_frames = video.shape[1]
    too_long = [g for g in gaps if g >= num_frames]
    if too_long:
        raise ValueError(f"reconstruction_error: a {num_frames}-frame sequence has no pair at gap(s) {too_long}")
    rgb = denormalize_frames(video, mean, std) if rgb is None else rgb.float()
    if rgb.shape[:2] != video.shape[:2]:
        raise ValueError(f"rgb {tuple(rgb.shape)} must have the frames of video {tuple(video.shape)}")
    feats = model.sequence_features(video) if model is not None else None
    for gap in gaps:
        pairs = frame_pairs(num_frames, gap)
        preds = torch.stack([
            rgb[:, s] if feats is None else
            reconstruct_frame(rgb[:, s], feats[s], feats[t], topk, temperature, normalized=True)
            for s, t in pairs
        ])
        targets = torch.stack([rgb[:, t] for _s, t in pairs])
        for m in metrics:
            m.update(preds, targets, gap)
