"""PSN: Parallel Sampling Network with Context Relation Mining (Wang 2021, thesis ch. 5).

Ids: `psn-r101-anet`, `psn-r50-anet`, `psn-r152-anet` (ActivityNet v1.3), `psn-r101-fcvid`
(FCVID), `psn-r50-minik` (Mini-Kinetics, ARNet split). Each is a sampler (ShuffleNet-V2 on the N
pre-sampled frames + CRM + a score layer) in front of a frozen frame recogniser (the TSN ResNets
of :mod:`mmzoo.models.tsn`, trained first and loaded with `recognizer_checkpoint`).

Pre-sampling (Sec. 5.2.1): N = 25 equal segments, a random frame of each in training and its
centre frame in testing; the DataModules do it (`temporal="tsn"`, `num_frames=25`).

Sampler (Sec. 5.2.2): torchvision's ShuffleNet-V2 (width `sampler_width`) turns each frame into a
1024-d pooled feature, the CRM variant `crm` (:mod:`mmzoo.nn.crm`) relates the N features, and
``q = sigmoid(p W_s)`` (Eq. 5.3) gives one score per frame.

Training (Sec. 5.2.3; 15 epochs, SGD lr 0.002 -> 0.0002 after epoch 10, momentum 0.9, weight
decay 1e-4): the frozen recogniser scores all N frames, ``l_c = softmax(sum_i q_i l_i)``
(Eq. 5.4; `weighting="mean"` divides by N, the prose's "average"), ``L_c = -E[y^T log l_c]``,
``L_r = max(sum_i q_i - M, 0)`` and ``L = L_c + lambda L_r`` with lambda = 0.1 (Eqs. 5.5-5.7).
Only the sampler learns.

Inference (Sec. 5.2.4): the sampler scores the N frames, the recogniser runs on the top-M only,
and the output is the q-weighted sum of their logits (`inference_scores="probs"` weights the
probabilities instead; the thesis does not say which). `inference` selects the Table 5.3 rows:
"sample_weight" (both, default), "sample" (top-M, plain average), "weight" (M uniformly spaced
frames weighted by q), "uniform" (M uniformly spaced frames, plain average: the TSN baseline).

M per id ([SILENT]; inferred from the GFLOPs columns, checked by the tests against a hand count):
R-101: 10 frames (82.3 GFLOPs = 25 x ShuffleNet-V2 + 10 x R-101), R-50: 6 frames (28.6 GFLOPs on
ActivityNet and Mini-Kinetics); the R-50 FCVID row (36.8 GFLOPs) is M = 8 (`--model.num_selected 8`).

Cost: `mmzoo test` logs `test/gflops_per_video`, counted by torch's FLOP counter while each test
batch runs (sampler on N frames + recogniser on the M selected), and `cost_breakdown()` gives the
per-component numbers `mmzoo info` can print.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, ClassVar, Literal, Optional

import torch
from torch import nn

from mmzoo.errors import CorruptWeightsError, MissingKeysError, NotSupportedError
from mmzoo.models.tsn import (
    PAPER,
    FrameClassifier,
    VideoRecognizerBase,
    count_macs,
    frames_of,
    soft_target_loss,
    untrimmed_input,
    video_targets,
)
from mmzoo.nn.crm import ContextRelationMining
from mmzoo.offline import hf_offline
from mmzoo.registry import register_model

__all__ = ["PSN", "SHUFFLENET_WIDTHS", "FrameSampler", "load_recognizer_state", "uniform_positions"]

#: torchvision ShuffleNet-V2 stage widths per width multiplier (stem, 3 stages, conv5).
SHUFFLENET_WIDTHS = {
    0.5: [24, 48, 96, 192, 1024],
    1.0: [24, 116, 232, 464, 1024],
    1.5: [24, 176, 352, 704, 1024],
    2.0: [24, 244, 488, 976, 2048],
}
_SHUFFLENET_WEIGHTS = {0.5: "ShuffleNet_V2_X0_5_Weights", 1.0: "ShuffleNet_V2_X1_0_Weights",
                       1.5: "ShuffleNet_V2_X1_5_Weights", 2.0: "ShuffleNet_V2_X2_0_Weights"}  # fmt: skip


def _on_meta() -> bool:
    return torch.get_default_device().type == "meta"


def _shufflenet(width: float, pretrained: bool, repeats: Optional[list[int]], channels: Optional[list[int]]) -> nn.Module:
    """torchvision ShuffleNet-V2 without its classifier (pooled conv5 features). ImageNet weights
    when `pretrained` and they can be had (offline: torch's hub cache only), else a warning and a
    random initialisation."""
    from torchvision.models import shufflenetv2 as shufflenet
    from torchvision.models.shufflenetv2 import ShuffleNetV2

    if width not in SHUFFLENET_WIDTHS:
        raise ValueError(f"sampler_width must be one of {sorted(SHUFFLENET_WIDTHS)}, got {width}")
    tiny = repeats is not None or channels is not None
    net = ShuffleNetV2(list(repeats or [4, 8, 4]), list(channels or SHUFFLENET_WIDTHS[width]))
    if pretrained and not tiny and not _on_meta():
        weights = getattr(shufflenet, _SHUFFLENET_WEIGHTS[width]).IMAGENET1K_V1
        try:
            cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)
            if cached.is_file():
                state = torch.load(cached, map_location="cpu", weights_only=True)
            elif hf_offline():
                raise FileNotFoundError(f"HF_HUB_OFFLINE is set and {cached} is not in torch's hub cache")
            else:
                state = weights.get_state_dict(progress=False)
            net.load_state_dict(state)
        except Exception as e:  # noqa: BLE001 - offline / unreachable: say so, fall back
            warnings.warn(f"ImageNet weights of ShuffleNet-V2 x{width} unreachable ({type(e).__name__}: {e}); "
                          "using a RANDOMLY INITIALISED sampler backbone.", stacklevel=3)
    net.fc = nn.Identity()
    return net


class FrameSampler(nn.Module):
    """ShuffleNet-V2 on every frame -> CRM over the N features -> q = sigmoid(p W_s): (B, 3, N, H, W) -> (B, N)."""

    def __init__(self, width: float, pretrained: bool, repeats: Optional[list[int]], channels: Optional[list[int]],
                 crm: str, crm_filters: list[int], crm_out_dim: int, crm_kernel: int, crm_decoder_norm: bool,
                 score_bias: bool) -> None:
        super().__init__()
        self.backbone = _shufflenet(width, pretrained, repeats, channels)
        dim = (channels or SHUFFLENET_WIDTHS[width])[-1]
        self.crm = ContextRelationMining(crm, dim, crm_filters, crm_out_dim, crm_kernel, crm_decoder_norm)  # type: ignore[arg-type]
        self.score = nn.Linear(crm_out_dim, 1, bias=score_bias)

    def frame_features(self, video: torch.Tensor) -> torch.Tensor:
        """(B, 3, N, H, W) -> (B, D, N)."""
        b, n = video.shape[0], video.shape[2]
        return self.backbone(frames_of(video)).view(b, n, -1).transpose(1, 2)

    def scores_from_features(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, D, N) -> q (B, N)."""
        p = self.crm(feats).transpose(1, 2)  # B, N, C
        return torch.sigmoid(self.score(p)).squeeze(-1)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.scores_from_features(self.frame_features(video))


def uniform_positions(n: int, m: int, device=None) -> torch.Tensor:
    """Centres of `m` equal parts of `n` positions (the TSN frames among the N pre-samples)."""
    if not 1 <= m <= n:
        raise ValueError(f"need 1 <= M <= N, got M={m}, N={n}")
    return ((torch.arange(m, device=device) * 2 + 1) * n // (2 * m)).long()


def load_recognizer_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The recogniser (`net.*` of a TSN model) from a Lightning `.ckpt` of `mmzoo fit` (read with
    torch's `weights_only` loader), an exported folder or a `model.safetensors` file; keys
    without the `net.` prefix."""
    p = Path(path)
    if p.is_dir():
        p = p / "model.safetensors"
    if not p.is_file():
        raise FileNotFoundError(f"recognizer_checkpoint: no checkpoint at {path} (--model.recognizer_checkpoint)")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(p))
    else:
        try:
            ckpt = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as err:
            raise CorruptWeightsError(f"recognizer_checkpoint {p} is not readable as a checkpoint: {err}") from err
        if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
            raise CorruptWeightsError(f"recognizer_checkpoint {p} has no 'state_dict' entry")
        state = ckpt["state_dict"]
    net = {k[len("net."):]: v for k, v in state.items() if k.startswith("net.")}
    if not net:
        prefix = "recognizer."  # a PSN checkpoint holds its recogniser under this name
        net = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not net:
        raise MissingKeysError(f"recognizer_checkpoint {p} holds no recogniser weights ('net.*' of a tsn-*/frame-* "
                               "model or 'recognizer.*' of a PSN model)")
    return net


class PSN(VideoRecognizerBase):
    """Parallel Sampling Network (module docstring).

    Args:
        num_classes: 200 (ActivityNet, Mini-Kinetics) or 239 (FCVID); linked from the DataModule.
        num_segments: N pre-sampled frames (25).
        num_selected: M frames the recogniser sees at inference (10 for R-101, 6 for R-50 ids).
        recognizer_backbone: "resnet50" / "resnet101" / "resnet152" of the frozen recogniser.
        recognizer_checkpoint: the trained recogniser (`mmzoo fit --model tsn-*` checkpoint, an
            exported folder or a model.safetensors); required to train the sampler. A PSN
            checkpoint holds its recogniser too: to rebuild one where that file is gone, pass
            `recognizer_checkpoint=None` (`PSN.load_from_checkpoint(path, recognizer_checkpoint=None)`).
        recognizer_pretrained_backbone: ImageNet backbone when no checkpoint is given (False).
        recognizer_layers / recognizer_channels / recognizer_stem_width / recognizer_dropout:
            must match the recogniser's own arguments (tiny test variants only, dropout 0.5).
        sampler_width: ShuffleNet-V2 width multiplier ([SILENT]; 1.0, which gives the thesis's
            82.3 - 10 x 7.83 = 4 GFLOPs for 25 frames).
        sampler_pretrained: ImageNet-initialised ShuffleNet ([SILENT]; True, as SCSampler, the
            thesis's "same ShuffleNet" baseline).
        sampler_repeats / sampler_channels: tiny test variants only (None = torchvision's).
        crm: "ed_tcn" (default), "tcn", "nonlocal" or "none" (Table 5.1 rows).
        crm_filters / crm_out_dim / crm_kernel / crm_decoder_norm: CRM sizes ([SILENT]; 256 each,
            kernel 3, BN + ReLU in the decoder); see :mod:`mmzoo.nn.crm`.
        score_bias: a bias in W_s (Eq. 5.3 has none: False).
        budget_weight: lambda of Eq. 5.7 (0.1; Table 5.2 sweeps 0-0.15).
        budget: the M of L_r (None = `num_selected`).
        weighting: "sum" (Eq. 5.4) or "mean" (the prose's "average") of the q-weighted logits, in
            training and at inference.
        inference: "sample_weight", "sample", "weight" or "uniform" (Table 5.3 rows).
        inference_scores: "logits" or "probs" weighted at inference ([SILENT]; logits, as Eq. 5.4).
        base_lr / base_batch_size: 0.002; the batch size is [SILENT] (None: no scaling).
        momentum / weight_decay / lr_steps / recipe_epochs: 0.9, 1e-4, x0.1 after 10 of 15 epochs.
        crop_size: frame size of `example_input` (224).
    """

    init_without_download: ClassVar[dict[str, Any]] = {"sampler_pretrained": False, "recognizer_pretrained_backbone": False,
                             "recognizer_checkpoint": None}  # fmt: skip

    def __init__(
        self,
        num_classes: int = 200,
        num_segments: int = 25,
        num_selected: int = 10,
        recognizer_backbone: Literal["resnet50", "resnet101", "resnet152"] = "resnet101",
        recognizer_checkpoint: Optional[str] = None,
        recognizer_pretrained_backbone: bool = False,
        recognizer_layers: Optional[list[int]] = None,
        recognizer_channels: Optional[list[int]] = None,
        recognizer_stem_width: Optional[int] = None,
        recognizer_dropout: float = 0.5,
        sampler_width: float = 1.0,
        sampler_pretrained: bool = True,
        sampler_repeats: Optional[list[int]] = None,
        sampler_channels: Optional[list[int]] = None,
        crm: Literal["ed_tcn", "tcn", "nonlocal", "none"] = "ed_tcn",
        crm_filters: list[int] = [256, 256, 256],  # noqa: B006 - JSON-serialisable default
        crm_out_dim: int = 256,
        crm_kernel: int = 3,
        crm_decoder_norm: bool = True,
        score_bias: bool = False,
        budget_weight: float = 0.1,
        budget: Optional[float] = None,
        weighting: Literal["sum", "mean"] = "sum",
        inference: Literal["sample_weight", "sample", "weight", "uniform"] = "sample_weight",
        inference_scores: Literal["logits", "probs"] = "logits",
        base_lr: float = 0.002,
        base_batch_size: Optional[int] = None,
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        lr_steps: list[float] = [10 / 15],  # noqa: B006
        recipe_epochs: int = 15,
        crop_size: int = 224,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if not 1 <= num_selected <= num_segments:
            raise ValueError(f"num_selected (M={num_selected}) must be in [1, num_segments={num_segments}]")
        for name, value, allowed in (("weighting", weighting, ("sum", "mean")),
                                     ("inference", inference, ("sample_weight", "sample", "weight", "uniform")),
                                     ("inference_scores", inference_scores, ("logits", "probs"))):  # fmt: skip
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        self.sampler = FrameSampler(sampler_width, sampler_pretrained, sampler_repeats, sampler_channels, crm,
                                    list(crm_filters), crm_out_dim, crm_kernel, crm_decoder_norm, score_bias)
        self.recognizer = FrameClassifier(recognizer_backbone, num_classes, recognizer_dropout,
                                          recognizer_pretrained_backbone and recognizer_checkpoint is None,
                                          recognizer_layers, recognizer_channels, recognizer_stem_width)
        self.recognizer_loaded = False
        if recognizer_checkpoint is not None and not _on_meta():
            self.load_recognizer(recognizer_checkpoint)
        for p in self.recognizer.parameters():
            p.requires_grad_(False)
        self._setup_metrics(num_classes)

    # ------------------------------------------------------------------ recogniser
    def load_recognizer(self, path: str | os.PathLike) -> None:
        """Load the trained recogniser (see `load_recognizer_state`); names and shapes must match."""
        state = load_recognizer_state(path)
        own = self.recognizer.state_dict()
        missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        bad = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
        if missing or unexpected or bad:
            raise MissingKeysError(
                f"recognizer_checkpoint {path} does not fit this PSN's recogniser (check recognizer_backbone, "
                f"num_classes and the recognizer_* sizes): missing {missing[:5]}, unexpected {unexpected[:5]}, "
                f"shape mismatch {bad[:5]}")
        self.recognizer.load_state_dict(state)
        self.recognizer_loaded = True

    def train(self, mode: bool = True):
        super().train(mode)
        self.recognizer.eval()
        return self

    def on_fit_start(self) -> None:
        if not self.recognizer_loaded:
            raise NotSupportedError(
                "PSN trains its sampler against a trained, frozen recogniser: train one first "
                "(`mmzoo fit --model tsn-r101 ...`) and pass --model.recognizer_checkpoint <its .ckpt>")

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.recognizer_loaded = True  # a PSN checkpoint holds its recogniser

    # ------------------------------------------------------------------ inference
    @property
    def budget_value(self) -> float:
        hp = self.hparams
        return float(hp.budget if hp.budget is not None else hp.num_selected)

    def select(self, video: torch.Tensor) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """(indices (B, M) of the frames the recogniser sees, in temporal order; their q (B, M),
        None for "uniform")."""
        hp = self.hparams
        b, n = video.shape[0], video.shape[2]
        if n != hp.num_segments:
            raise ValueError(f"PSN expects {hp.num_segments} pre-sampled frames, the video has {n} "
                             f"(set --data.num_frames {hp.num_segments})")
        m = hp.num_selected
        if hp.inference == "uniform":
            return uniform_positions(n, m, video.device).expand(b, m), None
        q = self.sampler(video)
        if hp.inference == "weight":
            idx = uniform_positions(n, m, video.device).expand(b, m)
        else:
            idx = q.topk(m, dim=1).indices.sort(dim=1).values
        return idx, q.gather(1, idx)

    def combine(self, logits: torch.Tensor, weights: Optional[torch.Tensor]) -> torch.Tensor:
        """(B, M, K) frame logits and (B, M) weights (None: plain average) -> (B, K) video logits."""
        hp = self.hparams
        if weights is None or hp.inference == "sample":
            return logits.mean(1)
        w = weights[..., None]
        if hp.inference_scores == "probs":
            probs = (w * logits.softmax(-1)).sum(1) / w.sum(1).clamp_min(1e-12)
            return probs.clamp_min(1e-12).log()
        out = (w * logits).sum(1)
        return out / logits.shape[1] if hp.weighting == "mean" else out

    def forward_features(self, video: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named features (`mmzoo extract`): "frames" (``B, M, D``: the recogniser backbone's
        pooled vector of each of the M frames the sampler selects), "weights" (``B, M``, their
        sampler weights, None-free: ones for ``inference="sample"``) and "pooled" (``B, D``, the
        unweighted mean of the selected frames)."""
        idx, w = self.select(video)
        b, c, _, h, wd = video.shape
        chosen = video.gather(2, idx[:, None, :, None, None].expand(b, c, idx.shape[1], h, wd))
        frames = self.recognizer.backbone(frames_of(chosen)).view(b, idx.shape[1], -1)
        weights = torch.ones_like(frames[..., 0]) if w is None else w
        return {"frames": frames, "weights": weights, "pooled": frames.mean(1)}

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """(B, 3, N, H, W) -> (B, K): sampler on N frames, recogniser on the top-M, weighted."""
        idx, w = self.select(video)
        b, c, _, h, wd = video.shape
        chosen = video.gather(2, idx[:, None, :, None, None].expand(b, c, idx.shape[1], h, wd))
        return self.combine(self.recognizer.video_logits(chosen), w)

    # ------------------------------------------------------------------ training
    def sampler_loss(self, q: torch.Tensor, frame_logits: torch.Tensor, target: torch.Tensor
                     ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """L = L_c + lambda L_r (Eqs. 5.4-5.7) from q (B, N), frame logits (B, N, K), targets (B, K)."""
        hp = self.hparams
        weighted = (q[..., None] * frame_logits).sum(1)
        if hp.weighting == "mean":
            weighted = weighted / q.shape[1]
        l_c = soft_target_loss(weighted, target)
        l_r = (q.sum(1) - self.budget_value).clamp_min(0).mean()
        loss = l_c + hp.budget_weight * l_r
        return loss, {"train/cls_loss": l_c, "train/budget_loss": l_r, "train/q_sum": q.sum(1).mean().detach()}

    def _train_loss(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        video = batch["video"]
        q = self.sampler(video)
        with torch.no_grad():
            frame_logits = self.recognizer.video_logits(video)
        target = video_targets(batch, frame_logits.shape[-1], video.device)
        return self.sampler_loss(q, frame_logits, target)

    # ------------------------------------------------------------------ cost
    def cost_breakdown(self, crop_size: Optional[int] = None) -> dict[str, float]:
        """GFLOPs (multiply-adds) of one video at `crop_size`: ShuffleNet on N frames, CRM + score
        layer, recogniser per frame and on the M selected; `total` is what `forward` costs."""
        hp = self.hparams
        s = crop_size or hp.crop_size
        p = next(self.parameters())
        frame = torch.zeros(1, 3, s, s, device=p.device, dtype=p.dtype)
        was = self.training
        self.eval()
        try:
            with torch.no_grad():
                shuffle = count_macs(self.sampler.backbone, frame)
                feats = torch.zeros(1, _crm_in(self.sampler), hp.num_segments, device=p.device, dtype=p.dtype)
                crm = count_macs(self.sampler.scores_from_features, feats)
                rec = count_macs(self.recognizer, frame)
        finally:
            self.train(was)
        n, m = hp.num_segments, hp.num_selected
        sampler = 0 if hp.inference == "uniform" else n * shuffle + crm
        out = {"sampler_backbone_per_frame": shuffle / 1e9, "sampler_frames": float(n if sampler else 0),
               "crm_and_score": (crm if sampler else 0) / 1e9, "sampler": sampler / 1e9,
               "recognizer_per_frame": rec / 1e9, "recognizer_frames": float(m), "recognizer": m * rec / 1e9}
        out["total"] = out["sampler"] + out["recognizer"]
        return out

    # ------------------------------------------------------------------ recipe
    def _optimized(self) -> nn.Module:
        """Stage 2 trains the sampler; the recogniser of stage 1 stays frozen."""
        return self.sampler

    def example_input(self, batch_size: int = 1) -> dict[str, Any]:
        s = self.hparams.crop_size
        return {"video": torch.randn(batch_size, 3, self.hparams.num_segments, s, s)}


def _crm_in(sampler: FrameSampler) -> int:
    """Feature width entering the CRM (the ShuffleNet's conv5 channels)."""
    return sampler.backbone.conv5[0].out_channels


#: Per id: recogniser, M and the thesis numbers (mAP %, top-1 %, GFLOPs; Tables 5.1-5.7).
_IDS: dict[str, dict] = {
    "psn-r101-anet": dict(
        defaults={"recognizer_backbone": "resnet101", "num_selected": 10},
        input=untrimmed_input(datamodules=("activitynet",)),
        reported={"anet_map_tsn": 82.3, "anet_map_frame_based": 73.5, "gflops": 82.3, "anet_map_table5_1": 82.28,
                  "anet_map_wo_crm": 78.93, "anet_map_nonlocal": 78.44, "anet_map_tcn": 82.01,
                  "anet_map_sampling_only": 81.70, "anet_map_weighting_only": 80.00},
    ),
    "psn-r50-anet": dict(
        defaults={"recognizer_backbone": "resnet50", "num_selected": 6},
        input=untrimmed_input(datamodules=("activitynet",)),
        reported={"anet_map_tsn": 78.3, "gflops": 28.6},
    ),
    "psn-r152-anet": dict(
        defaults={"recognizer_backbone": "resnet152", "num_selected": 10},
        input=untrimmed_input(datamodules=("activitynet",)),
        reported={"anet_map": 84.76},
    ),
    "psn-r101-fcvid": dict(
        defaults={"recognizer_backbone": "resnet101", "num_selected": 10, "num_classes": 239},
        input=untrimmed_input(datamodules=("fcvid",)),
        reported={"fcvid_map_tsn": 82.8, "fcvid_map_frame_based": 81.1, "gflops": 82.3},
    ),
    "psn-r50-minik": dict(
        defaults={"recognizer_backbone": "resnet50", "num_selected": 6},
        input=untrimmed_input(datamodules=("kinetics",)),
        reported={"minik_top1": 72.7, "gflops": 28.6},
    ),
}

for _id, _cfg in _IDS.items():
    register_model(_id, task="efficient video classification (frame sampling)", paper=PAPER, weights=[],
                   **_cfg)(PSN)
