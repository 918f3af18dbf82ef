"""TimeCycle: correspondence learned from the cycle-consistency of time (Wang, Jabri & Efros,
CVPR 2019; thesis 003 ch. 2).

Ids: `timecycle-r50` (Tables 2.1-2.4 "Ours R50") and `timecycle-r18` ("Ours R18"). The encoder
phi is a ResNet up to res4 with res4's stride removed (feature stride 8), the authors' 1x1 conv
to c = 512 and ReLU, l2-normalised over channels (Sec. 2.3.1). Training follows Sec. 2.3: a
patch of the target frame is tracked backward through the k = 4 previous frames and forward
again by the weak tracker T = h(x_I, g(f(x_I, x_p))) (`mmzoo.nn.timecycle`), with the long-cycle,
skip-cycle and similarity losses (Sec. 2.3.2). Evaluation is label propagation
(`mmzoo.models.labelprop.LabelPropagationModule`): DAVIS-2017 J / F, JHMDB PCK.

Training batches: ``video`` ``(B, 3, k + 1, 240, 240)``: the k past frames in temporal order,
then the target frame t (`video_folder` / `kinetics` DataModules). The 80 x 80 patch and its
ground-truth transform are drawn here, per clip, as the authors' loader does (a rotated patch
at a third of the frame's scale, placed among the 10 highest-motion cells; or uniformly).
"""
from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F

from mmzoo.data.constants import IMAGENET_MEAN, IMAGENET_STD
from mmzoo.models.labelprop import PAPER, LabelPropagationModule
from mmzoo.nn.timecycle import (
    TRANSLATION_FACTOR,
    Localizer,
    Res4Encoder,
    affinity,
    frobenius_similarity_loss,
    grid_loss,
    inlier_loss,
    rigid_theta,
    sample_patch,
)
from mmzoo.registry import InputConfig, Weights, register_model

__all__ = ["TimeCycle", "timecycle_input"]

PATCH_SCALE = 1.0 / 3.0


class TimeCycle(LabelPropagationModule):
    """TimeCycle encoder + weak tracker, trained with the cycle losses.

    Args (the label-propagation arguments are `LabelPropagationModule`'s):
        depth: encoder ResNet depth (50 or 18; 10 = a tiny test variant).
        width: ResNet conv1 width (64).
        feature_dim: c, channels of the features (512, the authors' 1x1 conv; not in the thesis).
        crop_size: training frame size (240 -> 30 x 30 features).
        patch_size: training patch size (80 -> 10 x 10 features; a third of `crop_size`).
        video_len: k, past frames per clip (4).
        temperature: affinity softmax temperature in training (the authors' 512^-0.5; the
            thesis states none).
        localizer_channels / localizer_kernel: g's conv widths (128, 64) and kernel (4)
            (authors' code; the thesis gives no sizes).
        similarity: "inlier" (the authors' weak inlier count, which the thesis says L_sim "can
            be formulated as") or "frobenius" (the thesis's -<x_p, x_hat_p>_F).
        skip_weight / long_weight: lambda of L_skip and L_long (0.1, thesis; the authors' code
            weights the long cycle by 0.1 x 0.2 and averages each term over i: pass
            long_weight 0.02 for that balance).
        translation_factor: factor the sampler applies to translations (227/210 in the
            authors' code).
        max_rotation: largest patch rotation drawn in training (pi / 4, authors).
        patch_sampling: "motion" (authors: among the 10 of 49 windows with most change between
            the target and the previous frame) or "uniform".
        flip: random horizontal flip of the clip (authors' loader; the thesis states no
            augmentation).
        lr / betas / weight_decay: Adam 2e-4, (0.5, 0.999), no decay (Sec. 2.3.3).
        grad_clip_norm: gradient-norm clip (10, authors' code).
        patch_seed: None (a fresh patch and flip for every clip of every step, as in the
            paper), or a seed re-applied at every step so a clip always gets the same patch
            (reproducible overfitting checks, e.g. with ``--trainer.overfit_batches 1``).
    """

    def __init__(
        self,
        depth: int = 50,
        width: int = 64,
        feature_dim: int = 512,
        crop_size: int = 240,
        patch_size: int = 80,
        video_len: int = 4,
        temperature: float = 512 ** -0.5,
        localizer_channels: list[int] = [128, 64],  # noqa: B006 - JSON-serialisable default
        localizer_kernel: int = 4,
        similarity: Literal["inlier", "frobenius"] = "inlier",
        skip_weight: float = 0.1,
        long_weight: float = 0.1,
        translation_factor: float = TRANSLATION_FACTOR,
        max_rotation: float = math.pi / 4,
        patch_sampling: Literal["motion", "uniform"] = "motion",
        flip: bool = True,
        lr: float = 2e-4,
        betas: list[float] = [0.5, 0.999],  # noqa: B006
        weight_decay: float = 0.0,
        grad_clip_norm: float = 10.0,
        patch_seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if crop_size % 8 or patch_size % 8:
            raise ValueError(f"crop_size {crop_size} and patch_size {patch_size} must be multiples of the stride 8")
        self.encoder = Res4Encoder(depth, width, feature_dim)
        self.feat_size = crop_size // 8
        self.patch_feat = patch_size // 8
        self.localizer = Localizer(self.feat_size ** 2, self.patch_feat, tuple(localizer_channels), localizer_kernel)

    # ------------------------------------------------------------------ features
    def dense_features(self, frames: torch.Tensor) -> torch.Tensor:
        return self.encoder(frames)

    def example_input(self, batch_size: int = 1) -> dict[str, Any]:
        """A training clip ``(B, 3, k + 1, crop, crop)`` (forward gives its dense features)."""
        s = self.hparams.crop_size
        return {"video": torch.randn(batch_size, 3, self.hparams.video_len + 1, s, s)}

    # ------------------------------------------------------------------ tracker
    def track(self, query: torch.Tensor, frame_norm: torch.Tensor, frame: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step of T: (theta, cropped features (not normalised), affinity) for a normalised
        patch feature ``query`` in a frame (normalised and raw features)."""
        hp = self.hparams
        aff = affinity(query, frame_norm, hp.temperature)
        theta = rigid_theta(self.localizer(aff), PATCH_SCALE)
        crop = sample_patch(frame, theta, self.patch_feat, hp.translation_factor)
        return theta, crop, aff

    def cycle_losses(self, video: torch.Tensor, theta_gt: torch.Tensor) -> dict[str, torch.Tensor]:
        """The per-i losses of Sec. 2.3.2 summed over i = 1..k: ``sim``, ``skip``, ``long``.

        ``video`` ``(B, 3, k + 1, H, W)`` (past frames, then the target), ``theta_gt`` the
        patch's transform in the target frame ``(B, 2, 3)``."""
        hp = self.hparams
        b, _, t_len, h, w = video.shape
        k = t_len - 1
        frames = video.transpose(1, 2).reshape(b * t_len, 3, h, w)
        feats = self.encoder(frames).reshape(b, t_len, hp.feature_dim, h // 8, w // 8)
        norms = F.normalize(feats, dim=2)
        patch_img = sample_patch(video[:, :, -1], theta_gt, hp.patch_size, translation_factor=1.0)
        patch = F.normalize(self.encoder(patch_img), dim=1)
        target, target_n = feats[:, -1], norms[:, -1]
        size = tuple(feats.shape[-2:])
        sim, skip, long = [], [], []
        for i in range(1, k + 1):
            past = k - i  # index of frame t - i
            theta_i, crop_i, aff_i = self.track(patch, norms[:, past], feats[:, past])
            if hp.similarity == "inlier":
                sim.append(inlier_loss(aff_i, theta_i, size, hp.translation_factor))
            else:
                sim.append(frobenius_similarity_loss(patch, F.normalize(crop_i, dim=1)))
            theta_skip, _, _ = self.track(F.normalize(crop_i, dim=1), target_n, target)
            skip.append(grid_loss(theta_skip, theta_gt))
            query = patch
            for idx in list(range(k - 1, past - 1, -1)) + list(range(past + 1, k)):  # back to t-i, forward to t-1
                _, crop, _ = self.track(query, norms[:, idx], feats[:, idx])
                query = F.normalize(crop, dim=1)
            theta_long, _, _ = self.track(query, target_n, target)
            long.append(grid_loss(theta_long, theta_gt))
        return {"sim": torch.stack(sim).sum(), "skip": torch.stack(skip).sum(), "long": torch.stack(long).sum()}

    # ------------------------------------------------------------------ patch sampling
    def sample_theta(self, video: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Ground-truth patch transforms ``(B, 2, 3)`` for a batch of clips (see class doc); the
        random draws come from ``generator`` (CPU) when given."""
        hp = self.hparams
        b = video.shape[0]
        dev = video.device

        def rand(*shape):
            return torch.rand(*shape, generator=generator).to(dev)

        span = 1.0 - PATCH_SCALE  # the patch stays inside the frame
        if hp.patch_sampling == "motion" and video.shape[2] > 1:
            diff = (video[:, :, -1] - video[:, :, -2]).abs().sum(1, keepdim=True)  # B,1,H,W
            box = video.shape[-1] // 9
            scores = F.avg_pool2d(diff[..., : 9 * box, : 9 * box], 3 * box, stride=box).flatten(1)  # B, 49
            top = scores.topk(min(10, scores.shape[1]), dim=1).indices
            pick = top.gather(1, torch.randint(0, top.shape[1], (b, 1), generator=generator).to(dev)).squeeze(1)
            cells = math.isqrt(scores.shape[1])
            loc = torch.stack([pick % cells, pick // cells], -1).float() / max(cells - 1, 1)
            loc = (loc + (rand(b, 2) - 0.5) / 6.0).clamp(0, 1)
            trans = (loc * 2 - 1) * span
        else:
            trans = (rand(b, 2) * 2 - 1) * span
        alpha = (rand(b) * 2 - 1) * hp.max_rotation
        return rigid_theta(torch.stack([trans[:, 0], trans[:, 1], alpha], -1), PATCH_SCALE)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        hp = self.hparams
        video = batch["video"]
        if video.shape[2] < 2:
            raise ValueError(f"TimeCycle trains on clips of k + 1 >= 2 frames, got {video.shape[2]}")
        gen = torch.Generator().manual_seed(hp.patch_seed) if hp.patch_seed is not None else None
        if hp.flip:
            flip = (torch.rand(video.shape[0], generator=gen) < 0.5).to(video.device)
            video = torch.where(flip.view(-1, 1, 1, 1, 1), video.flip(-1), video)
        theta = self.sample_theta(video, gen)
        losses = self.cycle_losses(video, theta)
        loss = losses["sim"] + hp.skip_weight * losses["skip"] + hp.long_weight * losses["long"]
        self.log_dict({f"train/{k}": v for k, v in losses.items()}, batch_size=video.shape[0])
        self.log("train/loss", loss, batch_size=video.shape[0], prog_bar=True)
        return loss

    def unlabelled_eval_step(self, batch: dict, prefix: str) -> None:
        """Validation on unlabelled clips: the training loss with patches drawn from a fixed seed."""
        hp = self.hparams
        video = batch["video"]
        theta = self.sample_theta(video, torch.Generator().manual_seed(0))
        losses = self.cycle_losses(video, theta)
        loss = losses["sim"] + hp.skip_weight * losses["skip"] + hp.long_weight * losses["long"]
        self.log(f"{prefix}/loss", loss, batch_size=video.shape[0], sync_dist=True)

    def configure_optimizers(self):
        hp = self.hparams
        return torch.optim.Adam(self.parameters(), lr=hp.lr, betas=tuple(hp.betas), weight_decay=hp.weight_decay)

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        clip = gradient_clip_val if gradient_clip_val is not None else self.hparams.grad_clip_norm
        if clip:
            self.clip_gradients(optimizer, gradient_clip_val=clip, gradient_clip_algorithm=gradient_clip_algorithm or "norm")


def timecycle_input() -> InputConfig:
    """Training: k + 1 = 5 frames 2 apart, short side 256, random 240 crops; testing: whole
    sequences resized to 320 squared by the DataModule (its `frame_size`); ImageNet
    normalisation (the authors' loaders)."""
    return InputConfig(
        shapes={"video": "B,3,5,240,240 (training clip: 4 past frames + the target); B,3,T,320,320 at test"},
        frames=5, sampling_rate=2, train_crop=240, short_side=256,
        mean=IMAGENET_MEAN, std=IMAGENET_STD, datamodules=("video-folder", "davis2017", "jhmdb", "vip", "kinetics"),
        notes="frames 2 apart (the authors' frame_gap on 12 fps VLOG frames); evaluation by label propagation",
    )


_ORIGINAL = "https://github.com/xiaolonw/TimeCycle (checkpoint_14.pth.tar on Google Drive, linked from the README)"

_IDS: dict[str, dict] = {
    "timecycle-r50": {
        "defaults": {},
        "weights": [Weights("vlog", dataset="vlog", converter="mmzoo.convert.timecycle:convert_timecycle",
                            metrics={"davis_J": 41.9, "davis_F": 39.4},
                            notes=f"the authors' released checkpoint, {_ORIGINAL}; Google Drive has no stable direct "
                                  "URL, so download it yourself and run `mmzoo convert timecycle-r50.vlog <file>`")],
        "reported": {"davis_J": 41.9, "davis_F": 39.4, "davis_J@400": 43.0, "davis_F@400": 42.6,
                     "jhmdb_pck@0.1": 57.7, "jhmdb_pck@0.2": 78.5, "vip_miou": 28.9, "vip_ap_vol": 15.6,
                     "recon_l1_gap5": 60.4, "recon_l1_gap10": 76.4},
    },
    "timecycle-r18": {
        "defaults": {"depth": 18},
        "weights": [],
        "reported": {"davis_J": 40.1, "davis_F": 38.3, "jhmdb_pck@0.1": 57.3, "jhmdb_pck@0.2": 78.1},
    },
}

for _id, _cfg in _IDS.items():
    register_model(_id, task="self-supervised correspondence", paper=PAPER, input=timecycle_input(), **_cfg)(TimeCycle)
