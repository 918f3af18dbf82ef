"""L3-Net: audio-visual correspondence (Arandjelovic & Zisserman, "Look, Listen and Learn", ICCV 2017;
seed 004 slides, digest part B.1, the L3-Net rows of the AVTS tables) and the OpenL3 embedding
networks built on it (Cramer, Wu, Salamon, Bello, ICASSP 2019).

The seed gives only the idea: a still frame and 1 s of audio, "do they correspond?", negatives from
different videos (architecture, loss and preprocessing [SILENT]). Everything else follows the
method paper (section 3), and each choice is a constructor argument:

* vision subnet on a 224 x 224 frame, audio subnet on a log-spectrogram of 1 s of 48 kHz audio
  (0.01 s Hann windows with half overlap, 512-point FFT: 257 frequencies x 199 frames); both are
  four blocks of two 3x3 convolutions (64, 128, 256, 512 channels), each followed by BatchNorm and
  ReLU, with 2x2 max pooling after blocks 1-3 and a global max pool after block 4 (512-d each);
* fusion: the two 512-d vectors concatenated, fc 1024 -> 128, ReLU, fc 128 -> 2, softmax;
  cross-entropy on "corresponds" / "does not";
* pairs: half positive (frame and the audio centred on it, same video), half negative (audio of a
  different video): :func:`correspondence_pairs` draws them inside a batch of positive pairs, the
  AudioSet DataModule supplies the frame + centred 1-s waveform (``num_frames=1``,
  ``audio_format="waveform"``);
* Adam with weight decay 1e-5 (method paper), lr 1e-4 (OpenL3's training code, [EXT]; the method
  paper tunes it), batch 256 (16 workers x 16).

[SILENT] choices with no primary source here, all arguments: the log offset of the spectrogram
(``log(|X| + 1e-5)``), BatchNorm epsilon 1e-3 (Keras' default, so OpenL3's weights behave the
same), frames normalised to [-1, 1].

Downstream audio features (method paper section 4.2, the ESC-50 / DCASE protocol the AVTS audio
table compares with): conv4_2 of the audio subnet *before* its BatchNorm / ReLU, max-pooled to a
4 x 3 grid: 4 x 3 x 512 = 6144 dims (``audio_embed_grid``; None = global max, 512). OpenL3's
released embedding models output exactly this tensor, which is why they convert here.

OpenL3 differs from the 2017 network in (each an argument): the audio front end (a Kapre layer
inside the Keras model: "linear" 257 bins with a 512-point DFT and hop 242, or a magnitude mel
spectrogram of 128 / 256 bands with a 2048-point DFT and hop 242, in dB relative to the example's
maximum, floored at -80 dB), a BatchNorm on the input of each subnet (``input_bn``), the training
data (AudioSet "music" or "environmental" videos) and the released files, which hold one subnet
each without the last BatchNorm and the fusion layers (ids ``openl3-audio-*`` / ``openl3-image``:
``parts="audio"`` / ``"vision"``, ``last_bn=False``). Converter: :mod:`mmzoo.convert.openl3`.
"""
from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from mmzoo.metrics.classification import MultiViewAccuracy
from mmzoo.models.base import ZooModule
from mmzoo.models.recipe import Recipe, global_batch_size, total_training_steps
from mmzoo.registry import AudioInput, InputConfig, Weights, register_model

__all__ = ["FRONT_ENDS", "L3Net", "L3Spectrogram", "L3Tower", "correspondence_pairs"]

PAPER = ("Arandjelovic & Zisserman, Look, Listen and Learn (ICCV 2017); seed 004 slides B.1; OpenL3: Cramer et al., "
         "Look, Listen and Learn More (ICASSP 2019)")

#: Audio front ends: the 2017 network's log-spectrogram and OpenL3's three Kapre layers.
FRONT_ENDS: dict[str, dict[str, Any]] = {
    "l3-linear": {"kind": "linear", "n_fft": 512, "win_length": 480, "hop_length": 240, "center": False, "scale": "log"},
    "openl3-linear": {"kind": "linear", "n_fft": 512, "win_length": 512, "hop_length": 242, "center": True, "scale": "decibel"},
    "openl3-mel128": {"kind": "mel", "n_fft": 2048, "win_length": 2048, "hop_length": 242, "n_mels": 128, "center": True,
                          "scale": "decibel"},
    "openl3-mel256": {"kind": "mel", "n_fft": 2048, "win_length": 2048, "hop_length": 242, "n_mels": 256, "center": True,
                          "scale": "decibel"},
}


class L3Spectrogram(nn.Module):
    """Waveform ``(B, S)`` -> ``(B, 1, F, T)`` (frequency as height, as in both Keras models).

    ``scale="log"``: ``log(|X| + log_offset)`` (the 2017 network); ``"decibel"``: Kapre's
    ``10 log10(max(x, 1e-10))`` minus the example's maximum, floored at ``-80`` dB (OpenL3), of the
    magnitude (``kind="linear"``) or of the magnitude mel spectrogram (HTK mel scale, Slaney area
    normalisation, 0 .. sample_rate / 2)."""

    def __init__(self, kind: str = "linear", n_fft: int = 512, win_length: int = 480, hop_length: int = 240,
                 n_mels: int = 128, center: bool = False, scale: str = "log", sample_rate: int = 48000,
                 log_offset: float = 1e-5):
        super().__init__()
        if kind not in ("linear", "mel") or scale not in ("log", "decibel"):
            raise ValueError(f"kind must be linear/mel and scale log/decibel, got {kind!r}, {scale!r}")
        self.kind, self.n_fft, self.win_length, self.hop_length = kind, n_fft, win_length, hop_length
        self.center, self.scale, self.log_offset = center, scale, log_offset
        self.register_buffer("window", torch.hann_window(win_length), persistent=False)
        if kind == "mel":
            import torchaudio.functional as AF

            with torch.device("cpu"):  # a fixed matrix, also when the model is built on the meta device
                fb = AF.melscale_fbanks(n_fft // 2 + 1, 0.0, sample_rate / 2, n_mels, sample_rate, norm="slaney",
                                        mel_scale="htk")
            self.register_buffer("mel_fb", fb, persistent=False)  # (freq, mels)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.dim() == 3:  # (B, 1, S)
            wave = wave.squeeze(1)
        wave = wave.float()
        if self.center:
            spec = torch.stft(wave, self.n_fft, self.hop_length, self.win_length, self.window.to(wave.device),
                              center=True, pad_mode="constant", return_complex=True).abs()  # (B, F, T)
        else:  # frames of win_length samples (zero-padded to n_fft): 199 frames of 480 in 1 s at 48 kHz
            frames = wave.unfold(-1, self.win_length, self.hop_length) * self.window.to(wave.device)
            spec = torch.fft.rfft(frames, n=self.n_fft).abs().transpose(1, 2)
        if self.kind == "mel":
            spec = torch.einsum("bft,fm->bmt", spec, self.mel_fb.to(spec.dtype))
        if self.scale == "log":
            out = torch.log(spec + self.log_offset)
        else:
            db = 10.0 * torch.log10(spec.clamp_min(1e-10))
            db = db - db.amax(dim=(1, 2), keepdim=True)
            out = db.clamp_min(-80.0)
        return out.unsqueeze(1)


class L3Tower(nn.Module):
    """One subnet: 4 blocks x 2 (3x3 conv, BN, ReLU), 2x2 max pool after blocks 1-3.
    ``conv_maps`` returns conv4_2's output before its BN / ReLU (the embedding layer)."""

    def __init__(self, in_channels: int, widths: list[int], input_bn: bool, last_bn: bool, bn_eps: float):
        super().__init__()
        self.input_bn = nn.BatchNorm2d(in_channels, eps=bn_eps) if input_bn else None
        convs, bns = [], []
        cin = in_channels
        for w in widths:
            for _ in range(2):
                convs.append(nn.Conv2d(cin, w, 3, padding=1))
                bns.append(nn.BatchNorm2d(w, eps=bn_eps))
                cin = w
        if not last_bn:
            bns.pop()
        self.convs, self.bns = nn.ModuleList(convs), nn.ModuleList(bns)
        self.out_channels = cin

    def conv_maps(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_bn is not None:
            x = self.input_bn(x)
        last = len(self.convs) - 1
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if i == last:
                return x
            x = F.relu(self.bns[i](x))
            if i % 2 == 1:
                x = F.max_pool2d(x, 2)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Global max pool of ReLU(BN(conv4_2)): the 512-d input of the fusion."""
        x = F.relu(self.bns[-1](self.conv_maps(x)))
        return x.amax(dim=(-2, -1))


def correspondence_pairs(video_index: torch.Tensor, negative_fraction: float = 0.5,
                         generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The audio each frame of a batch of in-sync (frame, audio) pairs is paired with, and the target.

    ``round(B * negative_fraction)`` frames, drawn at random, get the audio of another sample of a
    *different video* (uniformly among those), target 0; the others keep their own audio, target 1.
    Returns ``(audio_index (B,), target (B,))``. A batch where some frame has no other video to
    take a negative from is an error."""
    b = video_index.numel()
    n_neg = round(b * negative_fraction)
    audio_index = torch.arange(b)
    target = torch.ones(b, dtype=torch.long)
    if n_neg == 0:
        return audio_index, target
    vid = video_index.detach().cpu()
    negs = torch.randperm(b, generator=generator)[:n_neg]
    for i in negs.tolist():
        others = torch.nonzero(vid != vid[i]).flatten()
        if others.numel() == 0:
            raise ValueError(f"correspondence_pairs: sample {i} has no sample of another video in the batch "
                             f"(video_index {vid.tolist()}); negatives come from different videos")
        audio_index[i] = others[torch.randint(others.numel(), (1,), generator=generator)].item()
        target[i] = 0
    return audio_index, target


class L3Net(ZooModule):
    """L3-Net audio-visual correspondence (module docstring).

    Args:
        parts: ``"avc"`` (both subnets, fusion, classifier), ``"audio"`` / ``"vision"`` (one subnet:
            the OpenL3 embedding models; ``forward`` returns its embedding).
        audio_frontend: a key of :data:`FRONT_ENDS` ("l3-linear": the 2017 network).
        sample_rate / audio_seconds: waveform input (48 kHz, 1 s).
        log_offset: offset inside ``log(|X| + offset)`` of the "l3-linear" front end ([SILENT]).
        widths: channels of the four blocks (64, 128, 256, 512).
        input_bn: BatchNorm on each subnet's input (OpenL3; not in the 2017 network).
        last_bn: BatchNorm after conv4_2 (the full AVC network; absent from OpenL3's embedding files).
        bn_eps: BatchNorm epsilon (1e-3, Keras' default).
        fusion_dim: hidden width of the fusion (128).
        audio_embed_grid: max-pool grid of ``embed_audio`` over conv4_2 (``[4, 3]``: 6144-d, the
            method paper's ESC-50 features; None: global, 512-d).
        vision_embed_grid: the same for ``embed_video`` (None: global, 512-d; ``[4, 4]``: OpenL3's 8192).
        crop_size: frame size of ``example_input`` (224).
        negative_fraction: share of negative pairs per batch (0.5).
        base_lr / base_batch_size / weight_decay: Adam recipe (1e-4 at batch 256, wd 1e-5).
    """

    def __init__(
        self,
        parts: Literal["avc", "audio", "vision"] = "avc",
        audio_frontend: Literal["l3-linear", "openl3-linear", "openl3-mel128", "openl3-mel256"] = "l3-linear",
        sample_rate: int = 48000,
        audio_seconds: float = 1.0,
        log_offset: float = 1e-5,
        widths: list[int] = [64, 128, 256, 512],  # noqa: B006 - JSON-serialisable default
        input_bn: bool = False,
        last_bn: bool = True,
        bn_eps: float = 1e-3,
        fusion_dim: int = 128,
        audio_embed_grid: list[int] | None = [4, 3],  # noqa: B006
        vision_embed_grid: list[int] | None = None,
        crop_size: int = 224,
        negative_fraction: float = 0.5,
        base_lr: float = 1e-4,
        base_batch_size: int | None = 256,
        weight_decay: float = 1e-5,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if audio_frontend not in FRONT_ENDS:
            raise ValueError(f"audio_frontend must be one of {sorted(FRONT_ENDS)}, got {audio_frontend!r}")
        if len(widths) != 4:
            raise ValueError(f"widths must give the 4 blocks, got {widths}")
        if parts == "avc" and not last_bn:
            raise ValueError("the AVC network needs last_bn=True (its fusion sees ReLU(BN(conv4_2)))")
        self.audio_spec = self.audio = self.vision = None
        if parts in ("avc", "audio"):
            self.audio_spec = L3Spectrogram(sample_rate=sample_rate, log_offset=log_offset,
                                            **FRONT_ENDS[audio_frontend])
            self.audio = L3Tower(1, widths, input_bn, last_bn, bn_eps)
        if parts in ("avc", "vision"):
            self.vision = L3Tower(3, widths, input_bn, last_bn, bn_eps)
        if parts == "avc":
            self.fusion = nn.Sequential(nn.Linear(2 * widths[-1], fusion_dim), nn.ReLU(inplace=True),
                                        nn.Linear(fusion_dim, 2))
        self.val_metric = MultiViewAccuracy(top_k=(1,))
        self.test_metric = MultiViewAccuracy(top_k=(1,))

    # ------------------------------------------------------------------ inputs
    @staticmethod
    def _frame(video: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` from a frame batch or a one-frame clip ``(B, 3, 1, H, W)``."""
        if video.dim() == 5:
            if video.shape[2] != 1:
                raise ValueError(f"L3-Net takes one still frame; got a clip of {video.shape[2]} frames "
                                 "(use --data.num_frames 1)")
            video = video[:, :, 0]
        if video.dim() != 4 or video.shape[1] != 3:
            raise ValueError(f"video must be (B, 3, H, W) or (B, 3, 1, H, W), got {tuple(video.shape)}")
        return video

    def _spectrogram(self, audio: torch.Tensor) -> torch.Tensor:
        if audio.dim() not in (2, 3):
            raise ValueError(f"audio must be a waveform (B, S) at {self.hparams.sample_rate} Hz, got {tuple(audio.shape)}")
        return self.audio_spec(audio)

    @staticmethod
    def _grid_pool(maps: torch.Tensor, grid: list[int] | None) -> torch.Tensor:
        if grid is None:
            return maps.amax(dim=(-2, -1))
        return F.adaptive_max_pool2d(maps, tuple(grid)).flatten(1)

    # ------------------------------------------------------------------ the interface of the AV SSL models
    def embed_audio(self, audio: torch.Tensor) -> torch.Tensor:
        """Downstream audio features ``(B, D)``: conv4_2 before BN/ReLU, max-pooled to
        ``audio_embed_grid`` (6144-d by default)."""
        if self.audio is None:
            raise ValueError(f"this L3-Net has no audio subnet (parts={self.hparams.parts!r})")
        return self._grid_pool(self.audio.conv_maps(self._spectrogram(audio)), self.hparams.audio_embed_grid)

    def embed_video(self, video: torch.Tensor) -> torch.Tensor:
        """Frame features ``(B, D)``: conv4_2 before BN/ReLU, max-pooled to ``vision_embed_grid``."""
        if self.vision is None:
            raise ValueError(f"this L3-Net has no vision subnet (parts={self.hparams.parts!r})")
        return self._grid_pool(self.vision.conv_maps(self._frame(video)), self.hparams.vision_embed_grid)

    def forward_features(self, video: torch.Tensor | None = None, audio: torch.Tensor | None = None,
                         **_: Any) -> dict[str, torch.Tensor]:
        out = {}
        if video is not None and self.vision is not None:
            out["video"] = self.embed_video(video)
        if audio is not None and self.audio is not None:
            out["audio"] = self.embed_audio(audio)
        return out

    def avc_logits(self, video: torch.Tensor, audio: torch.Tensor, audio_index: torch.Tensor | None = None):
        """Correspondence logits ``(B, 2)`` (index 1 = "corresponds") of frame ``i`` with audio
        ``audio_index[i]`` (default: its own)."""
        v = self.vision(self._frame(video))
        a = self.audio(self._spectrogram(audio))
        if audio_index is not None:
            a = a[audio_index.to(a.device)]
        return self.fusion(torch.cat([v, a], dim=1))

    def forward(self, video: torch.Tensor | None = None, audio: torch.Tensor | None = None) -> torch.Tensor:
        """``parts="avc"``: correspondence logits of each (frame, audio) pair; otherwise the subnet's
        embedding."""
        p = self.hparams.parts
        if p == "audio":
            return self.embed_audio(audio)
        if p == "vision":
            return self.embed_video(video)
        return self.avc_logits(video, audio)

    def example_input(self, batch_size: int = 1) -> dict[str, Any]:
        hp = self.hparams
        out: dict[str, Any] = {}
        if hp.parts in ("avc", "vision"):
            out["video"] = torch.randn(batch_size, 3, 1, hp.crop_size, hp.crop_size)
        if hp.parts in ("avc", "audio"):
            out["audio"] = torch.randn(batch_size, round(hp.sample_rate * hp.audio_seconds)) * 0.1
        return out

    # ------------------------------------------------------------------ training
    def _pairs(self, batch: dict, generator: torch.Generator | None = None):
        video, audio = batch.get("video"), batch.get("audio")
        if video is None or audio is None:
            raise ValueError("L3-Net training needs batch['video'] (one frame) and batch['audio'] (waveform); "
                             "use --data audioset --data.with_audio true --data.audio_format waveform")
        vid = batch.get("video_index")
        vid = torch.arange(video.shape[0]) if vid is None else torch.as_tensor(vid)
        idx, target = correspondence_pairs(vid, self.hparams.negative_fraction, generator)
        return self.avc_logits(video, audio, idx), target.to(video.device)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        if self.hparams.parts != "avc":
            raise ValueError(f"only parts='avc' trains (the correspondence task); this model is {self.hparams.parts!r}")
        logits, target = self._pairs(batch)
        loss = F.cross_entropy(logits, target)
        self.log("train/loss", loss, batch_size=target.numel())
        self.log("train/avc_acc", (logits.argmax(1) == target).float().mean() * 100, batch_size=target.numel())
        return loss

    def _eval(self, batch: dict, batch_idx: int, metric, prefix: str) -> None:
        g = torch.Generator().manual_seed(batch_idx)  # the same pairs every evaluation
        logits, target = self._pairs(batch, g)
        self.log(f"{prefix}/loss", F.cross_entropy(logits, target), batch_size=target.numel(), sync_dist=True)
        metric.update(logits.softmax(1), target)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval(batch, batch_idx, self.val_metric, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval(batch, batch_idx, self.test_metric, "test")

    def _log(self, metric, prefix: str) -> None:
        self.log_dict({f"{prefix}/avc_acc": metric.compute()["top1"]})
        metric.reset()

    def on_validation_epoch_end(self) -> None:
        self._log(self.val_metric, "val")

    def on_test_epoch_end(self) -> None:
        self._log(self.test_metric, "test")

    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> dict[str, torch.Tensor]:
        return self.forward_features(video=batch.get("video"), audio=batch.get("audio"))

    @property
    def recipe(self) -> Recipe:
        hp = self.hparams
        return Recipe(base_lr=hp.base_lr, base_batch_size=hp.base_batch_size, optimizer="adam",
                      weight_decay=hp.weight_decay, norm_weight_decay=0.0, schedule="constant")

    def configure_optimizers(self):
        return self.recipe.configure(self, global_batch_size(self), total_training_steps(self))


_WAVE = AudioInput(kind="waveform", sample_rate=48000, num_frames=48000)
_FRAME = {"frames": 1, "sampling_rate": 1, "train_crop": 224, "test_crop": 224, "short_side": 256, "train_scale": (256, 256),
              "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "test_views": (1, 1)}

register_model(
    "l3net-avc",
    task="audio-visual correspondence (self-supervised)",
    paper=PAPER,
    input=InputConfig(shapes={"video": "B,3,1,224,224 (one frame, [-1, 1])", "audio": "B,48000 (1 s at 48 kHz)"},
                      audio=_WAVE, datamodules=("audioset",), **_FRAME,
                      notes="Frame + the 1-s waveform centred on it; negatives drawn in the batch."),
    reported={"avts_kinetics_pretext": 74.3, "esc50": 79.3, "dcase2014": 93.0, "hmdb51": 40.2, "ucf101": 72.3},
    family="l3net",
)(L3Net)


_OPENL3_URL = "https://github.com/marl/openl3/raw/models/"


def _openl3_weights(kind: str, rep: str) -> list[Weights]:
    """The env / music files of OpenL3 (the image files come with each audio front end, whose joint
    training they share: ``<rep>-<env|music>`` tags)."""
    tags = ("env", "music") if kind == "audio" else tuple(f"{r}-{c}" for r in ("mel256", "mel128", "linear")
                                                          for c in ("env", "music"))
    out = []
    for tag in tags:
        r, c = (rep, tag) if kind == "audio" else tag.split("-")
        name = f"openl3-{kind}-{rep}" if kind == "audio" else "openl3-image"
        fname = f"openl3_{kind}_{r}_{c}-v0_4_0.h5.gz"
        out.append(Weights(tag, original_url=_OPENL3_URL + fname, converter="mmzoo.convert.openl3:convert_openl3",
                           dataset=f"audioset-{c}",
                           notes=f"OpenL3 v0.4.0 release file {fname} (gzipped Keras .h5); "
                                 f"`mmzoo convert {name}.{tag} {fname}`"))
    return out


for _rep in ("linear", "mel128", "mel256"):
    register_model(
        f"openl3-audio-{_rep}",
        defaults={"parts": "audio", "audio_frontend": f"openl3-{_rep}", "input_bn": True, "last_bn": False},
        task="audio embedding (OpenL3, audio-visual correspondence)",
        paper=PAPER,
        input=InputConfig(shapes={"audio": "B,48000 (1 s at 48 kHz)"}, audio=_WAVE, datamodules=("esc50", "dcase2014")),
        weights=_openl3_weights("audio", _rep),
        default_tag="env",
        family="l3net",
    )(L3Net)

register_model(
    "openl3-image",
    defaults={"parts": "vision", "input_bn": True, "last_bn": False, "vision_embed_grid": [4, 4]},
    task="image embedding (OpenL3, audio-visual correspondence)",
    paper=PAPER,
    input=InputConfig(shapes={"video": "B,3,1,224,224"}, **_FRAME),
    weights=_openl3_weights("image", ""),
    default_tag="mel256-env",
    family="l3net",
)(L3Net)
