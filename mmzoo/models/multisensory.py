"""Multisensory: an early-fused audio-visual network trained to tell aligned from misaligned audio
(Owens & Efros, "Audio-Visual Scene Analysis with Self-Supervised Multisensory Features", ECCV
2018; seed 004, slides B.3).

The slides give the design bullets: early fusion; an audio subnet on the raw waveform; a video
subnet "similar to ResNet3D-18"; negatives made by shifting the audio by a few seconds; class
activation maps (Zhou et al., CVPR 2016) for sound localisation. Everything else is [SILENT] in
the slides; the defaults below follow the ECCV paper's network figure as the zoo recalls it
([PAPER, not checkable offline]: each is an argument):

* video: ``conv1`` 5x7x7, 64, stride 2 (time and space) -> max-pool 1x3x3 stride (1, 2, 2) ->
  ``layer1``: 2 residual 3x3x3 blocks of 64;
* audio (``audio_input="waveform"``): 1-D convolutions on the mono waveform: 65 taps stride 4,
  64 -> max-pool 4 -> 15 taps stride 4, 128 -> 15 / 4, 128 -> 15 / 4, 256 (BN + ReLU after each),
  then average-pooled to the video's time steps at the fusion;
  ``audio_input="spectrogram"`` (the "spectrogram" ablation row): 2-D 3x3 convs on a log-mel
  ``(B, 1, T, F)`` (64, 128, 256, each + 2x2 max-pool), the frequency axis averaged;
* early fusion: the audio features tiled over the video feature map's H x W and concatenated with
  its 64 channels, a 1x1x1 conv to ``fusion_channels`` (128) + BN + ReLU;
* after fusion: residual stages of 128 (stride 1), 256 (stride 2), 512 (stride 2) 3x3x3 blocks
  (2 each: ResNet3D-18-like), global average pooling, one logit "aligned".

Pretext: every clip gives an aligned pair (its own audio) and a misaligned one: the same video's
audio shifted in time (``negatives="shift"``: the DataModule's ``audio_shifted``, set with
``--data.audio_shift_sec``; the paper draws the shift between 2.0 and 5.8 s [PAPER, from memory],
the DataModule shifts by a fixed amount in a random direction: zoo default 3.9 s, that range's
midpoint) or, for the "random pairing" ablation, the audio of another video (``negatives="random"``);
binary cross-entropy on the logit. Clips of 4.2 s ([PAPER]): 64 frames at stride 2 of 30 fps video,
224 crops, 21 kHz audio (88,200 samples).

Sound localisation: :meth:`Multisensory.sound_localization_map` applies the classifier at every
position of the last feature map (its mean over positions is the logit) and upsamples it to the
input frames; :mod:`mmzoo.predict.multisensory` writes it over the frames as images.

Ablations of the slides' UCF101 table: "full" (this model, waveform), "spectrogram"
(``audio_input="spectrogram"``), "random pairing" (``negatives="random"``), "vision only"
([INF]: the same network fine-tuned without audio: ``features(video)`` with no audio puts zeros in
place of the audio features), "scratch" (no pretext weights).
"""
from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import BinaryAccuracy
from torchvision.models.video.resnet import BasicBlock, Conv3DSimple

from mmzoo.data.constants import IMAGENET_MEAN, IMAGENET_STD
from mmzoo.models.base import ZooModule
from mmzoo.models.recipe import Recipe, global_batch_size, total_training_steps
from mmzoo.models.sync_pretext import SyncAccuracyHooks
from mmzoo.nn.av_contrastive import easy_negative_indices
from mmzoo.registry import AudioInput, InputConfig, register_model

__all__ = ["MULTISENSORY_UCF101", "Multisensory", "RawAudioNet", "SpectrogramAudioNet"]

PAPER = ("Owens & Efros, Audio-Visual Scene Analysis with Self-Supervised Multisensory Features (ECCV 2018); "
         "seed 004 slides B.3")

#: The slides' UCF101 fine-tuning table (top-1 %), Multisensory rows.
MULTISENSORY_UCF101: dict[str, float] = {
    "full": 82.1, "spectrogram": 81.1, "random_pairing": 78.7, "vision_only": 77.6, "scratch": 68.1,
}  # fmt: skip


def _stage(cin: int, cout: int, blocks: int, stride: int) -> nn.Sequential:
    down = None
    if stride != 1 or cin != cout:
        down = nn.Sequential(nn.Conv3d(cin, cout, 1, stride, bias=False), nn.BatchNorm3d(cout))
    return nn.Sequential(BasicBlock(cin, cout, Conv3DSimple, stride, down),
                         *[BasicBlock(cout, cout, Conv3DSimple) for _ in range(blocks - 1)])


class RawAudioNet(nn.Module):
    """1-D conv stack on a mono waveform ``(B, S)`` -> ``(B, C, S / 1024)``."""

    def __init__(self, widths: tuple[int, ...] = (64, 128, 128, 256)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 1
        for i, w in enumerate(widths):
            k = 65 if i == 0 else 15
            layers += [nn.Conv1d(cin, w, k, 4, k // 2, bias=False), nn.BatchNorm1d(w), nn.ReLU(inplace=True)]
            if i == 0:
                layers.append(nn.MaxPool1d(4, 4))
            cin = w
        self.net = nn.Sequential(*layers)
        self.out_dim = cin

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.net(wave.unsqueeze(1))


class SpectrogramAudioNet(nn.Module):
    """2-D conv stack on a log-mel ``(B, 1, T, F)`` -> ``(B, C, T / 2^n)`` (frequency averaged)."""

    def __init__(self, widths: tuple[int, ...] = (64, 128, 256)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 1
        for w in widths:
            layers += [nn.Conv2d(cin, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2, 2)]
            cin = w
        self.net = nn.Sequential(*layers)
        self.out_dim = cin

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        return self.net(spec).mean(dim=3)


class Multisensory(SyncAccuracyHooks, ZooModule):
    """Early-fused aligned / misaligned classifier (module docstring).

    Args:
        audio_input: ``"waveform"`` (the full model) or ``"spectrogram"`` (the ablation).
        audio_widths: the audio subnet's widths ((64, 128, 128, 256) waveform; the spectrogram
            variant uses its first three... entries as its 2-D blocks when given 3 values).
        video_width: channels of conv1 / layer1 (64).
        fusion_channels: width of the fused map (128).
        stage_widths / stage_blocks: the stages after fusion ((128, 256, 512), (2, 2, 2)).
        frames / crop_size: video of ``example_input`` (64, 224).
        audio_samples: waveform length of ``example_input`` (88,200 = 4.2 s at 21 kHz).
        audio_frames / mel_bins: log-mel of ``example_input`` for the spectrogram variant (416 x 64).
        negatives: ``"shift"`` (same video, shifted audio) or ``"random"`` (another video's audio).
        num_classes: 1 = the aligned logit (pretext).
        base_lr / base_batch_size / momentum / weight_decay / lr_schedule: the recipe ([SILENT]
            in the slides; zoo default SGD 0.01 at batch 32, momentum 0.9, wd 1e-5, constant).
    """

    def __init__(
        self,
        audio_input: Literal["waveform", "spectrogram"] = "waveform",
        audio_widths: list[int] | None = None,
        video_width: int = 64,
        fusion_channels: int = 128,
        stage_widths: list[int] = [128, 256, 512],  # noqa: B006 - JSON-serialisable defaults
        stage_blocks: list[int] = [2, 2, 2],  # noqa: B006
        frames: int = 64,
        crop_size: int = 224,
        audio_samples: int = 88200,
        audio_frames: int = 416,
        mel_bins: int = 64,
        negatives: Literal["shift", "random"] = "shift",
        base_lr: float = 0.01,
        base_batch_size: int | None = 32,
        momentum: float = 0.9,
        weight_decay: float = 1e-5,
        lr_schedule: Literal["constant", "cosine", "steps"] = "constant",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if audio_input not in ("waveform", "spectrogram"):
            raise ValueError(f"audio_input must be waveform/spectrogram, got {audio_input!r}")
        if negatives not in ("shift", "random"):
            raise ValueError(f"negatives must be shift/random, got {negatives!r}")
        if len(stage_widths) != len(stage_blocks):
            raise ValueError(f"stage_widths and stage_blocks differ in length: {stage_widths}, {stage_blocks}")
        if audio_input == "waveform":
            self.audio_net: nn.Module = RawAudioNet(tuple(audio_widths or (64, 128, 128, 256)))
        else:
            self.audio_net = SpectrogramAudioNet(tuple(audio_widths or (64, 128, 256)))
        self.stem = nn.Sequential(
            nn.Conv3d(3, video_width, (5, 7, 7), 2, (2, 3, 3), bias=False),
            nn.BatchNorm3d(video_width),
            nn.ReLU(inplace=True),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
        )
        self.layer1 = _stage(video_width, video_width, 2, 1)
        self.fusion = nn.Sequential(
            nn.Conv3d(video_width + self.audio_net.out_dim, fusion_channels, 1, bias=False),
            nn.BatchNorm3d(fusion_channels),
            nn.ReLU(inplace=True),
        )
        cin, stages = fusion_channels, []
        for i, (w, n) in enumerate(zip(stage_widths, stage_blocks)):
            stages.append(_stage(cin, w, n, 1 if i == 0 else 2))
            cin = w
        self.stages = nn.Sequential(*stages)
        self.feature_dim = cin
        self.fc = nn.Linear(cin, 1)
        self.after_fusion_prefixes = ("fusion.", "stages.")
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        self.val_acc = BinaryAccuracy()
        self.test_acc = BinaryAccuracy()

    # ------------------------------------------------------------------ network
    def _audio_tensor(self, audio: torch.Tensor) -> torch.Tensor:
        if self.hparams.audio_input == "waveform":
            if audio.dim() == 4 and audio.shape[1] == 1 and audio.shape[3] == 1:  # B,1,S,1 (DataModule layout)
                audio = audio[:, 0, :, 0]
            elif audio.dim() == 3 and audio.shape[1] == 1:
                audio = audio[:, 0]
            if audio.dim() != 2:
                raise ValueError(f"waveform audio must be (B, S), (B, 1, S) or (B, 1, S, 1); got {tuple(audio.shape)}")
        elif audio.dim() != 4 or audio.shape[1] != 1:
            raise ValueError(f"spectrogram audio must be a log-mel (B, 1, T, F); got {tuple(audio.shape)}")
        return audio

    def embed_audio(self, audio: torch.Tensor) -> torch.Tensor:
        """Time-averaged audio subnet features ``(B, C)`` (the audio-only representation)."""
        return self.audio_net(self._audio_tensor(audio)).mean(dim=-1)

    def _video_early(self, video: torch.Tensor) -> torch.Tensor:
        return self.layer1(self.stem(video))

    def embed_video(self, video: torch.Tensor) -> torch.Tensor:
        """Pooled features ``(B, 512)`` of the video alone (zeros in place of the audio)."""
        return self.features(video)

    def feature_maps(self, video: torch.Tensor, audio: torch.Tensor | None) -> torch.Tensor:
        """Last feature map ``(B, 512, t, h, w)`` of the fused network; ``audio=None``: zero audio features."""
        v = self._video_early(video)
        b, _, t, h, w = v.shape
        if audio is None:
            a = v.new_zeros(b, self.audio_net.out_dim, t)
        else:
            a = F.adaptive_avg_pool1d(self.audio_net(self._audio_tensor(audio)), t)
        x = torch.cat([v, a[..., None, None].expand(-1, -1, t, h, w)], dim=1)
        return self.stages(self.fusion(x))

    def features(self, video: torch.Tensor, audio: torch.Tensor | None = None) -> torch.Tensor:
        """Globally pooled fused features ``(B, 512)`` (the transfer protocol's input)."""
        return self.feature_maps(video, audio).mean(dim=(2, 3, 4))

    def forward_features(self, video: torch.Tensor, audio: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named features: ``pooled`` (the fused map pooled, B x 512; what ``mmzoo extract`` writes by
        default), ``audio`` (B x 256), ``video`` (no audio), ``logit``."""
        fused = self.features(video, audio)
        return {"pooled": fused, "audio": self.embed_audio(audio), "video": self.features(video),
                "logit": self.fc(fused)[:, 0]}

    def forward(self, video: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """Logit ``(B,)`` that the audio is aligned with the video."""
        return self.fc(self.features(video, audio))[:, 0]

    def sound_localization_map(self, video: torch.Tensor, audio: torch.Tensor, upsample: bool = True) -> torch.Tensor:
        """Class activation map of "aligned" ``(B, T, H, W)`` (``upsample``) or ``(B, t, h, w)``:
        the classifier at every position of the last feature map; its mean is the logit."""
        maps = self.feature_maps(video, audio)
        cam = torch.einsum("c,bcthw->bthw", self.fc.weight[0], maps) + self.fc.bias[0]
        if upsample:
            cam = F.interpolate(cam[:, None], size=tuple(video.shape[2:]), mode="trilinear", align_corners=False)[:, 0]
        return cam

    def layer_depth(self, name: str) -> int:
        """stem / audio -> 0, layer1 -> 1, fusion -> 2, stage i -> 3 + i, fc -> 6."""
        head = name.split(".")[0]
        if head in ("stem", "audio_net"):
            return 0
        if head == "layer1":
            return 1
        if head == "fusion":
            return 2
        if head == "stages":
            return 3 + int(name.split(".")[1])
        return 6

    def example_input(self, batch_size: int = 1) -> dict[str, Any]:
        hp = self.hparams
        video = torch.randn(batch_size, 3, hp.frames, hp.crop_size, hp.crop_size)
        if hp.audio_input == "waveform":
            audio = torch.randn(batch_size, hp.audio_samples) * 0.1
        else:
            audio = torch.randn(batch_size, 1, hp.audio_frames, hp.mel_bins)
        return {"video": video, "audio": audio}

    # ------------------------------------------------------------------ steps
    def negative_audio(self, batch: dict, generator: torch.Generator | None = None) -> torch.Tensor:
        """The misaligned audio of every clip: ``audio_shifted`` (``"shift"``) or another video's audio."""
        if self.hparams.negatives == "shift":
            if batch.get("audio_shifted") is None:
                raise ValueError("negatives='shift' needs the batch field 'audio_shifted': set --data.audio_shift_sec "
                                 "(3.9 s by default for Multisensory) on the DataModule")
            return batch["audio_shifted"]
        b = batch["video"].shape[0]
        vi = batch.get("video_index")
        vi = torch.arange(b) if vi is None else torch.as_tensor(vi).view(-1)
        return batch["audio"][easy_negative_indices(vi, generator).to(batch["audio"].device)]

    def _pairs(self, batch: dict, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        video = batch["video"]
        neg = self.negative_audio(batch, generator)
        # one forward of the B aligned then the B misaligned pairs: BatchNorm sees both in one batch
        # (separate batches would let their statistics tell the two apart)
        logits = self(torch.cat([video, video]), torch.cat([batch["audio"], neg]))
        y = torch.cat([torch.ones(video.shape[0]), torch.zeros(video.shape[0])]).to(logits.device)
        return logits, y

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        logits, y = self._pairs(batch)
        loss = F.binary_cross_entropy_with_logits(logits, y)
        self.log("train/loss", loss, batch_size=batch["video"].shape[0])
        return loss

    def _eval(self, batch: dict, batch_idx: int, metric: BinaryAccuracy, prefix: str) -> torch.Tensor:
        logits, y = self._pairs(batch, torch.Generator().manual_seed(batch_idx))
        self.log(f"{prefix}/loss", F.binary_cross_entropy_with_logits(logits, y), batch_size=batch["video"].shape[0],
                 sync_dist=True)
        metric.update((logits > 0).long(), y.long())
        return logits

    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        """Probability that each clip's own audio is aligned with its video."""
        return torch.sigmoid(self(batch["video"], batch["audio"]))

    # ------------------------------------------------------------------ recipe
    @property
    def recipe(self) -> Recipe:
        hp = self.hparams
        return Recipe(base_lr=hp.base_lr, base_batch_size=hp.base_batch_size, optimizer="sgd", momentum=hp.momentum,
                      weight_decay=hp.weight_decay, norm_weight_decay=0.0, schedule=hp.lr_schedule)

    def configure_optimizers(self):
        return self.recipe.configure(self, global_batch_size(self), total_training_steps(self))


register_model(
    "multisensory-av",
    task="audio-visual alignment (self-supervised), sound localisation",
    paper=PAPER,
    input=InputConfig(
        shapes={"video": "B,3,64,224,224", "audio": "B,88200 (mono waveform, 21 kHz, 4.2 s)"},
        frames=64, sampling_rate=2, train_crop=224, test_crop=224, short_side=256, train_scale=(256, 320),
        mean=IMAGENET_MEAN, std=IMAGENET_STD, test_views=(1, 1),
        audio=AudioInput(kind="waveform", sample_rate=21000, num_frames=88200),
        datamodules=("kinetics",),
        notes="Raw-waveform audio (the Kinetics DataModule produces log-mel only: use audio_input='spectrogram' "
              "with it); negatives need --data.audio_shift_sec (3.9).",
    ),
    reported={f"ucf101_{k}": v for k, v in MULTISENSORY_UCF101.items()},
)(Multisensory)
