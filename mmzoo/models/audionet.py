"""Audio-only network of AVSlowFast (Table 4.7, "Ours"): the Audio pathway trained alone.

The thesis gives 14.2 GFLOPs for it; the AVSlowFast Audio pathway at beta_A = 1/2 costs about a
quarter of that, and the full-width pathway (conv1 with 64 channels, res2..res5 with 256 .. 2048
outputs) measures 14.2 GFLOPs on an 80 x 128 spectrogram, so the id defaults to `width=64`.
"""
from __future__ import annotations

from typing import Literal, Optional

import torch

from mmzoo.models.slowfast import PAPER, HeadArg, SlowFastFamilyModule
from mmzoo.nn.resnet3d import ResNetPathway3d
from mmzoo.nn.slowfast import MultiPathwayHead
from mmzoo.registry import register_model

__all__ = ["AudioNet"]


@register_model(
    "audionet-r50",
    defaults={},
    task="audio classification",
    paper=PAPER,
    inputs={"audio": "log-mel B,1,128,80"},
    reported={"k400_top1": 24.8, "k400_top5": 43.3, "k600_top1": 26.5, "k600_top5": 44.7, "gflops": 14.2},
    data={
        "audio": {
            "sample_rate": 16000, "window_ms": 32, "hop_ms": 16, "n_fft": 512, "mel_bins": 80, "frames": 128,
            "mel_scale": "htk", "log_offset": 1e-8, "logmel_mean": -7.03, "logmel_std": 4.66,
        }
    },
)
class AudioNet(SlowFastFamilyModule):
    """ResNet audio pathway with its own classifier.

    Args:
        num_classes / head / num_verbs / num_nouns: as in `SlowFast`.
        depth: 50 or 101.
        width: conv1 channels (64; AVSlowFast's Audio pathway uses 32).
        audio_frames / mel_bins: spectrogram size (128 x 80).
        audio_downsample_from: "res3" (authors' code) or "res2" (thesis text).
        audio_decomposed_stages: leading stages with decomposed time/frequency blocks (2).
        audio_block: their topology, "timefreq" (authors' code) or "timefreq_reduce_sum" (see
            `AVSlowFast`).
        logmel_normalize / logmel_mean / logmel_std: optional in-model normalisation.
        Recipe arguments: as in `SlowFast` (cosine, lr 1.6 at batch 1024, warm-up, wd 1e-4).
    """

    uses_video = False
    uses_audio = True

    def __init__(
        self,
        num_classes: int = 400,
        head: HeadArg = "single",
        num_verbs: int = 125,
        num_nouns: int = 352,
        depth: int = 50,
        width: int = 64,
        audio_frames: int = 128,
        mel_bins: int = 80,
        audio_downsample_from: Literal["res2", "res3"] = "res3",
        audio_decomposed_stages: int = 2,
        audio_block: Literal["timefreq", "timefreq_reduce_sum"] = "timefreq",
        logmel_normalize: bool = False,
        logmel_mean: float = -7.03,
        logmel_std: float = 4.66,
        dropout: float = 0.5,
        mode: Literal["supervised"] = "supervised",
        view_aggregation: Literal["mean", "max"] = "mean",
        base_lr: float = 1.6,
        base_batch_size: int = 1024,
        batch_size: Optional[int] = None,
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        bn_weight_decay: float = 0.0,
        lr_schedule: Literal["cosine", "steps"] = "cosine",
        lr_steps: list[float] = [],  # noqa: B006
        warmup_epochs: float = 34.0,
        warmup_start_factor: float = 0.1,
        recipe_epochs: int = 256,
        freeze_bn: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        s = (1, 2, 2, 2) if audio_downsample_from == "res3" else (2, 2, 2, 2)
        self.audio = ResNetPathway3d(
            1,
            width,
            depth,
            "timefreq",
            stage_temporal_kernels=(1, 1, 1, 1),
            stage_strides=[(x, x, 1) for x in s],
            stage_blocks=[audio_block] * audio_decomposed_stages + ["bottleneck"] * (4 - audio_decomposed_stages),
            kernel_b=(3, 3, 1),
        )
        self.head = MultiPathwayHead([self.audio.out_channels[-1]], head, num_classes, num_verbs, num_nouns, dropout)
        self._setup_common()

    def _prepare_audio(self, audio: Optional[torch.Tensor]) -> torch.Tensor:
        if audio is None:
            raise ValueError("AudioNet needs batch['audio'] (log-mel B, 1, T, F)")
        if audio.dim() == 3:
            audio = audio.unsqueeze(1)
        if self.hparams.logmel_normalize:
            audio = (audio - self.hparams.logmel_mean) / self.hparams.logmel_std
        return audio

    def extract(self, video=None, audio=None, audio_neg=None):
        return [self.audio(audio.unsqueeze(-1))], {}

    def forward(self, audio=None, video=None):
        """Logits from a log-mel spectrogram `B, 1, T, F`."""
        return self.head(self.extract(None, self._prepare_audio(audio))[0])

    def features(self, audio=None, video=None) -> torch.Tensor:
        return self.head.pool(self.extract(None, self._prepare_audio(audio))[0])

    def example_input(self, batch_size: int = 1) -> dict:
        return {"audio": torch.randn(batch_size, 1, self.hparams.audio_frames, self.hparams.mel_bins)}
