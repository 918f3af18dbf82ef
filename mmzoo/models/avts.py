"""AVTS: audio-video temporal synchronisation (Korbar, Tran, Torresani, "Cooperative Learning of
Audio and Video Models from Self-Supervised Synchronization", NeurIPS 2018; seed 004, slides B.2).

Two networks embed a 1-s video clip and a 1-s audio clip; a contrastive loss pulls in-sync pairs
together and pushes out-of-sync pairs beyond a margin (:mod:`mmzoo.nn.av_contrastive`: the loss
in both forms, the easy / hard / mixed negatives and the curriculum).

* ``f_v``: MC3 (Tran et al., CVPR 2018, "mixed convolutions": 3x3x3 convolutions in the stem and
  the first stage, 1x3x3 in the three others), at depth 18 as torchvision's ``mc3_18`` builds it.
  The module names and shapes are torchvision's, so ``torchvision.models.video.mc3_18()``'s state
  dict without ``fc.*`` loads into ``model.video_net`` unchanged. [SILENT] the slides say "MC3"
  without a depth; 18 is the depth torchvision distributes.
* ``f_a``: a VGG-style 2D CNN on a 1-s log-mel spectrogram. [SILENT] its configuration: the zoo
  default is the convolutional trunk of VGGish (Hershey et al., ICASSP 2017: 64 | 128 | 256, 256 |
  512, 512, 3x3 convolutions, a 2x2 max-pool after each block), with BatchNorm after every
  convolution, then global average pooling to 512.
* Embeddings: both pooled features (512-d) directly, L2-normalised and halved in the loss
  (``normalize`` / ``scale``); ``embed_dim`` adds a linear projection of each.

Input contract ([SILENT] in the slides; zoo defaults, each an argument): video 16 frames at
stride 2 (about 1 s at 30 fps) and 112 x 112 crops (the MC3 paper's resolution), ImageNet
mean/std; audio 16 kHz mono, 25 ms Hann window, 10 ms hop, 64 HTK mel bins (VGGish's front end),
FFT of the window length (400; a 512-point FFT would need a longer waveform for the same frame
count with :class:`mmzoo.data.audio.LogMel`), 98 frames (0.995 s), ``log(mel + 0.01)``. The hard
negatives are the Kinetics DataModule's ``audio_shifted`` (``--data.audio_shift_sec 1.0``: see
:mod:`mmzoo.nn.av_contrastive`).

Recipe ([SILENT]; zoo defaults): SGD, momentum 0.9, lr 0.01 at batch 64 scaled linearly, weight
decay 1e-4 (none on BN), constant lr, 90 epochs with the curriculum switch at epoch 50.

Validation / test: the slides' pretext accuracy, on easy negatives only ("test set includes easy
negatives only"): every clip contributes its in-sync pair and one pair with the audio of another
video of the batch; a pair is called in sync when its distance is below ``sync_threshold``
(default ``margin / 2``).
"""
from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn
from torchmetrics.classification import BinaryAccuracy
from torchvision.models.video.resnet import BasicBlock, Conv3DNoTemporal, Conv3DSimple

from mmzoo.data.constants import IMAGENET_MEAN, IMAGENET_STD
from mmzoo.models.base import ZooModule
from mmzoo.models.recipe import Recipe, global_batch_size, total_training_steps
from mmzoo.models.sync_pretext import SyncAccuracyHooks
from mmzoo.nn.av_contrastive import (
    AVTSContrastiveLoss,
    NegativeCurriculum,
    contrastive_loss,
    easy_negative_indices,
    hard_negative_mask,
    sync_decisions,
)
from mmzoo.registry import AudioInput, InputConfig, register_model

__all__ = ["AVTS", "AVTS_DOWNSTREAM", "AVTS_PRETEXT", "MC3", "VGGMelNet"]

PAPER = ("Korbar, Tran, Torresani, Cooperative Learning of Audio and Video Models from Self-Supervised "
         "Synchronization (NeurIPS 2018); seed 004 slides B.2")

#: The slides' pretext table: sync accuracy (%) on Kinetics, easy-negative test set.
AVTS_PRETEXT: dict[str, float] = {
    "easy": 69.0, "mixed": 58.9, "hard": 52.3, "curriculum_stage1_easy": 67.2,
    "curriculum_mixed": 78.4, "curriculum_hard": 65.7,
}  # fmt: skip
#: The slides' transfer rows (top-1 %): MC3 fine-tuned on UCF101 / HMDB51 after each pretraining.
AVTS_DOWNSTREAM: dict[str, dict[str, float]] = {
    "scratch": {"ucf101": 69.1, "hmdb51": 43.9},
    "avts-kinetics": {"ucf101": 85.8, "hmdb51": 56.9},
    "avts-audioset": {"ucf101": 89.0, "hmdb51": 61.6},
    "supervised-kinetics": {"ucf101": 90.5, "hmdb51": 66.8},
}

#: torchvision MC3-18: blocks per stage and the conv of each stage (3x3x3 then 1x3x3).
MC3_CONVS = (Conv3DSimple, Conv3DNoTemporal, Conv3DNoTemporal, Conv3DNoTemporal)


class MC3(nn.Module):
    """MC3 video ResNet with torchvision's module names (``stem``, ``layer1`` .. ``layer4``).

    Args:
        layers: BasicBlocks per stage ((2, 2, 2, 2) = MC3-18).
        widths: stage widths ((64, 128, 256, 512); the stem has ``widths[0]`` channels).
    """

    def __init__(self, layers: tuple[int, ...] = (2, 2, 2, 2), widths: tuple[int, ...] = (64, 128, 256, 512)) -> None:
        super().__init__()
        if len(layers) != 4 or len(widths) != 4:
            raise ValueError(f"MC3 has 4 stages: got layers={list(layers)}, widths={list(widths)}")
        self.stem = nn.Sequential(
            nn.Conv3d(3, widths[0], (3, 7, 7), (1, 2, 2), (1, 3, 3), bias=False),
            nn.BatchNorm3d(widths[0]),
            nn.ReLU(inplace=True),
        )
        cin = widths[0]
        for i, (n, w, conv) in enumerate(zip(layers, widths, MC3_CONVS)):
            stride = 1 if i == 0 else 2
            down = None
            if stride != 1 or cin != w:
                down = nn.Sequential(nn.Conv3d(cin, w, 1, conv.get_downsample_stride(stride), bias=False),
                                     nn.BatchNorm3d(w))
            blocks = [BasicBlock(cin, w, conv, stride, down)] + [BasicBlock(w, w, conv) for _ in range(n - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            cin = w
        self.out_dim = cin
        for m in self.modules():  # torchvision VideoResNet's initialisation
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, T, H, W)`` -> conv5 map ``(B, C, T, H/16, W/16)``."""
        x = self.stem(x)
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        return x


class VGGMelNet(nn.Module):
    """VGG-style log-mel CNN: blocks of ``convs[i]`` 3x3 conv + BN + ReLU of ``widths[i]``
    channels, each followed by a 2x2 max-pool (defaults: VGGish's convolutional trunk)."""

    def __init__(self, widths: tuple[int, ...] = (64, 128, 256, 512), convs: tuple[int, ...] = (1, 1, 2, 2)) -> None:
        super().__init__()
        if len(widths) != len(convs):
            raise ValueError(f"audio_widths and audio_convs must have one entry per block: {list(widths)}, "
                             f"{list(convs)}")
        blocks, cin = [], 1
        for w, n in zip(widths, convs):
            layers: list[nn.Module] = []
            for _ in range(n):
                layers += [nn.Conv2d(cin, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
                cin = w
            layers.append(nn.MaxPool2d(2, 2))
            blocks.append(nn.Sequential(*layers))
        self.blocks = nn.Sequential(*blocks)
        self.out_dim = cin
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, T, F)`` log-mel -> ``(B, C, T/16, F/16)``."""
        return self.blocks(x)


class AVTS(SyncAccuracyHooks, ZooModule):
    """AVTS pretext model (module docstring).

    Args:
        video_layers / video_widths: MC3 depth and widths ((2, 2, 2, 2), (64, 128, 256, 512) = MC3-18).
        audio_widths / audio_convs: the VGG audio blocks (VGGish trunk).
        embed_dim: None = the pooled features are the embeddings (needs equal video and audio
            widths); an int adds a linear projection of each to that size.
        frames / crop_size: video clip of ``example_input`` (16 frames, 112).
        audio_frames / mel_bins: log-mel of ``example_input`` (98 x 64).
        margin / positive_power / normalize / scale: the contrastive loss
            (:class:`~mmzoo.nn.av_contrastive.AVTSContrastiveLoss`; 0.99, 2, True, 0.5).
        negatives / switch_epoch / stage2 / hard_share: the negatives
            (:class:`~mmzoo.nn.av_contrastive.NegativeCurriculum`; curriculum, 50, mixed, 0.25).
        sync_threshold: distance below which a pair is called in sync (None = margin / 2).
        base_lr / base_batch_size / momentum / weight_decay / lr_schedule: the recipe.
    """

    def __init__(
        self,
        video_layers: list[int] = [2, 2, 2, 2],  # noqa: B006 - JSON-serialisable defaults
        video_widths: list[int] = [64, 128, 256, 512],  # noqa: B006
        audio_widths: list[int] = [64, 128, 256, 512],  # noqa: B006
        audio_convs: list[int] = [1, 1, 2, 2],  # noqa: B006
        embed_dim: int | None = None,
        frames: int = 16,
        crop_size: int = 112,
        audio_frames: int = 98,
        mel_bins: int = 64,
        margin: float = 0.99,
        positive_power: Literal[1, 2] = 2,
        normalize: bool = True,
        scale: float = 0.5,
        negatives: Literal["easy", "hard", "mixed", "curriculum"] = "curriculum",
        switch_epoch: int = 50,
        stage2: Literal["mixed", "hard"] = "mixed",
        hard_share: float = 0.25,
        sync_threshold: float | None = None,
        base_lr: float = 0.01,
        base_batch_size: int | None = 64,
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        lr_schedule: Literal["constant", "cosine", "steps"] = "constant",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.video_net = MC3(tuple(video_layers), tuple(video_widths))
        self.audio_net = VGGMelNet(tuple(audio_widths), tuple(audio_convs))
        if embed_dim is None:
            if self.video_net.out_dim != self.audio_net.out_dim:
                raise ValueError(f"video ({self.video_net.out_dim}) and audio ({self.audio_net.out_dim}) widths "
                                 "differ: set embed_dim to project both")
            self.video_proj: nn.Module = nn.Identity()
            self.audio_proj: nn.Module = nn.Identity()
            self.embed_dim = self.video_net.out_dim
        else:
            self.video_proj = nn.Linear(self.video_net.out_dim, embed_dim)
            self.audio_proj = nn.Linear(self.audio_net.out_dim, embed_dim)
            self.embed_dim = embed_dim
        self.feature_dim = self.video_net.out_dim  # what `transfer` puts its classifier on
        self.loss_fn = AVTSContrastiveLoss(margin, positive_power, normalize, scale)
        self.curriculum = NegativeCurriculum(negatives, switch_epoch, stage2, hard_share)
        self.threshold = margin / 2 if sync_threshold is None else float(sync_threshold)
        self.val_acc = BinaryAccuracy()
        self.test_acc = BinaryAccuracy()

    # ------------------------------------------------------------------ network
    def video_features(self, video: torch.Tensor) -> torch.Tensor:
        """Pooled MC3 conv5 features ``(B, 512)``."""
        return self.video_net(video).mean(dim=(2, 3, 4))

    def audio_features(self, audio: torch.Tensor) -> torch.Tensor:
        """Pooled VGG features ``(B, 512)`` of log-mel ``(B, 1, T, F)``."""
        if audio.dim() != 4 or audio.shape[1] != 1:
            raise ValueError(f"audio must be a log-mel (B, 1, T, F), got shape {tuple(audio.shape)}")
        return self.audio_net(audio).mean(dim=(2, 3))

    def embed_video(self, video: torch.Tensor) -> torch.Tensor:
        """``f_v(v)``: the video embedding ``(B, D)`` the loss compares."""
        return self.video_proj(self.video_features(video))

    def embed_audio(self, audio: torch.Tensor) -> torch.Tensor:
        """``f_a(a)``: the audio embedding ``(B, D)`` of a log-mel ``(B, 1, T, F)``."""
        return self.audio_proj(self.audio_features(audio))

    def features(self, video: torch.Tensor, audio: torch.Tensor | None = None) -> torch.Tensor:
        """Pooled video features ``(B, 512)`` (the transfer protocol's input; audio unused)."""
        return self.video_features(video)

    def forward_features(self, video: torch.Tensor, audio: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named features: pooled ``video`` / ``audio`` features, their embeddings, their distance."""
        vf, af = self.video_features(video), self.audio_features(audio)
        ve, ae = self.video_proj(vf), self.audio_proj(af)
        return {"video": vf, "audio": af, "video_embedding": ve, "audio_embedding": ae,
                "distance": self.loss_fn.distance(ve, ae)}

    def forward(self, video: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """Distance ``(B,)`` between each clip's video and audio embeddings (small = in sync)."""
        return self.loss_fn.distance(self.embed_video(video), self.embed_audio(audio))

    def sync_score(self, video: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """``threshold - distance``: positive when the pair is called in sync."""
        return self.threshold - self(video, audio)

    def layer_depth(self, name: str) -> int:
        """stem -> 0, layer i -> i, the rest -> 5 (layer-wise lr decay in `transfer`)."""
        part = name.split(".")[1] if name.startswith("video_net.") else ""
        if part == "stem":
            return 0
        if part.startswith("layer"):
            return int(part[5:])
        return 5

    def example_input(self, batch_size: int = 1) -> dict[str, Any]:
        hp = self.hparams
        return {"video": torch.randn(batch_size, 3, hp.frames, hp.crop_size, hp.crop_size),
                "audio": torch.randn(batch_size, 1, hp.audio_frames, hp.mel_bins)}

    # ------------------------------------------------------------------ pairs
    def negative_plan(self, batch: dict, epoch: int, generator: torch.Generator | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(easy_index, hard_mask)`` for a batch at 0-based ``epoch``: clip ``i``'s negative is
        ``audio_shifted[i]`` where ``hard_mask[i]``, else ``audio[easy_index[i]]``."""
        b = batch["video"].shape[0]
        vi = batch.get("video_index")
        vi = torch.arange(b) if vi is None else torch.as_tensor(vi).view(-1)
        easy = easy_negative_indices(vi, generator)
        hard = hard_negative_mask(b, self.curriculum.hard_fraction(epoch), generator)
        if bool(hard.any()) and batch.get("audio_shifted") is None:
            raise ValueError(f"epoch {epoch} uses hard negatives ({self.curriculum.kind(epoch)}) but the batch has no "
                             "'audio_shifted': set --data.audio_shift_sec (e.g. 1.0) on the DataModule")
        return easy, hard

    def pair_distances(self, batch: dict, easy: torch.Tensor, hard: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Distances of the B in-sync pairs then the B out-of-sync pairs, and their labels."""
        v = self.embed_video(batch["video"])
        b = v.shape[0]
        hard = hard.to(v.device)
        audio = batch["audio"]
        if bool(hard.any()):  # one audio batch (BatchNorm statistics shared by positives and negatives)
            audio = torch.cat([audio, batch["audio_shifted"][hard]])
        a_all = self.embed_audio(audio)
        a = a_all[:b]
        neg = a[easy.to(a.device)]
        if bool(hard.any()):
            neg = neg.clone()
            neg[hard] = a_all[b:]
        d = torch.cat([self.loss_fn.distance(v, a), self.loss_fn.distance(v, neg)])
        y = torch.cat([torch.ones(v.shape[0]), torch.zeros(v.shape[0])]).to(d.device)
        return d, y

    # ------------------------------------------------------------------ steps
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        easy, hard = self.negative_plan(batch, self.current_epoch)
        d, y = self.pair_distances(batch, easy, hard)
        loss = self._loss(d, y)
        n = batch["video"].shape[0]
        self.log("train/loss", loss, batch_size=n)
        self.log("train/hard_share", hard.float().mean(), batch_size=n)
        return loss

    def _loss(self, d: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return contrastive_loss(d, y, self.hparams.margin, self.hparams.positive_power)

    def _eval(self, batch: dict, batch_idx: int, metric: BinaryAccuracy, prefix: str) -> torch.Tensor:
        b = batch["video"].shape[0]
        vi = batch.get("video_index")
        vi = torch.arange(b) if vi is None else torch.as_tensor(vi).view(-1)
        # easy negatives only (the slides' test set), drawn with a fixed seed: the same pairs every epoch
        easy = easy_negative_indices(vi, torch.Generator().manual_seed(batch_idx))
        d, y = self.pair_distances(batch, easy, torch.zeros(b, dtype=torch.bool))
        self.log(f"{prefix}/loss", self._loss(d, y), batch_size=b, sync_dist=True)
        metric.update(sync_decisions(d, self.threshold).long(), y.long())
        return d

    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        """Distance of each clip's own (in-sync) pair."""
        return self(batch["video"], batch["audio"])

    # ------------------------------------------------------------------ recipe
    @property
    def recipe(self) -> Recipe:
        hp = self.hparams
        return Recipe(base_lr=hp.base_lr, base_batch_size=hp.base_batch_size, optimizer="sgd", momentum=hp.momentum,
                      weight_decay=hp.weight_decay, norm_weight_decay=0.0, schedule=hp.lr_schedule, epochs=90)

    def configure_optimizers(self):
        return self.recipe.configure(self, global_batch_size(self), total_training_steps(self))


#: The audio contract of ``avts-mc3-vggmel`` (VGGish-like front end on 1 s, see the module docstring).
AVTS_AUDIO = AudioInput(kind="logmel", sample_rate=16000, window_ms=25.0, hop_ms=10.0, n_fft=400, n_mels=64,
                        num_frames=98, mel_scale="htk", log_offset=0.01, mean=0.0, std=1.0)

register_model(
    "avts-mc3-vggmel",
    task="audio-visual synchronisation (self-supervised)",
    paper=PAPER,
    input=InputConfig(
        shapes={"video": "B,3,16,112,112", "audio": "B,1,98,64 (log-mel, 16 kHz, 25/10 ms, 64 mels, 0.995 s)"},
        frames=16, sampling_rate=2, train_crop=112, test_crop=112, short_side=128, train_scale=(128, 160),
        mean=IMAGENET_MEAN, std=IMAGENET_STD, test_views=(1, 1), audio=AVTS_AUDIO, datamodules=("kinetics",),
        notes="Kinetics clips with audio, labels unused; hard negatives need --data.audio_shift_sec (1.0).",
    ),
    reported={"kinetics_sync_acc_curriculum": AVTS_PRETEXT["curriculum_mixed"],
              "ucf101_finetune_kinetics": AVTS_DOWNSTREAM["avts-kinetics"]["ucf101"],
              "hmdb51_finetune_kinetics": AVTS_DOWNSTREAM["avts-kinetics"]["hmdb51"]},
)(AVTS)
