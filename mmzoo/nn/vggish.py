"""VGGish: the AudioSet VGG-like audio embedding network and its log-mel front end.

The AVE thesis (Lin 2019) describes its audio features as "a log mel spectrogram ... an audio
representation each 1s from VGGish trained on AudioSet" (128-d per second). This module
implements the network and the standard VGGish front end in PyTorch/torchaudio:

Front end (:class:`VGGishFrontEnd`), with the constants of the published VGGish parameters:

- mono (channel mean), resampled to 16 kHz (``torchaudio.functional.resample``);
- STFT magnitude (not power) with a 25 ms periodic Hann window (400 samples), 10 ms hop
  (160 samples), 512-point FFT, frames starting at sample 0 with no centre padding, so a signal
  of ``S`` samples gives ``1 + (S - 400) // 160`` frames (``torchaudio.transforms.Spectrogram``);
- 64 mel bands between 125 and 7500 Hz on the HTK mel scale. The triangles are built in the
  mel domain (each FFT bin's weight is linear in its *mel* distance to the band edges) and the
  DC bin gets weight 0, as in the VGGish reference front end. ``torchaudio``'s
  ``melscale_fbanks`` interpolates in Hz instead, hence our own small matrix builder;
- ``log(mel + 0.01)``;
- examples of 96 frames (0.96 s) with a 96-frame hop, i.e. non-overlapping ``96 x 64`` patches;
  trailing frames that do not fill an example are dropped.

Network (:class:`VGGish`): ``1x96x64`` input; conv3x3 64 - pool - conv 128 - pool -
conv 256 x2 - pool - conv 512 x2 - pool (all 3x3, stride 1, padding 1, ReLU; 2x2 max pools),
giving ``512 x 6 x 4``; flattened in (H, W, C) order (the order of the TensorFlow original, so
that ported weights map one to one); fully connected 4096 - 4096 - 128. 72.1 M parameters.

Weights. The original weights are a TensorFlow checkpoint (``vggish_model.ckpt``) that is not
reachable from this workplace, so nothing here downloads or converts it. The module layout and
parameter names match the widely used PyTorch port (``torchvggish``: ``features.{0,3,6,8,11,13}``
and ``embeddings.{0,2,4}``), so a state dict from that port loads directly:
:func:`load_vggish_weights` reads a ``.safetensors`` file, and
:func:`convert_torchvggish_checkpoint` turns the port's ``.pth`` state dict into a plain tensor
dict (read with ``torch.load(weights_only=True)``, which refuses arbitrary pickled objects) that
can be saved as safetensors. The PCA/quantisation post-processing of the AudioSet release
(``vggish_pca_params``) is not implemented.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Union

import torch
from torch import nn

__all__ = [
    "VGGish",
    "VGGishFrontEnd",
    "vggish_mel_matrix",
    "hz_to_mel_htk",
    "load_vggish_weights",
    "convert_torchvggish_checkpoint",
    "SAMPLE_RATE",
    "NUM_FRAMES",
    "NUM_BANDS",
    "EMBEDDING_SIZE",
]

from mmzoo.data.constants import (  # noqa: E402
    VGGISH_EMBEDDING_SIZE as EMBEDDING_SIZE,
    VGGISH_HOP_SECONDS as HOP_SECONDS,
    VGGISH_LOG_OFFSET as LOG_OFFSET,
    VGGISH_MEL_MAX_HZ as MEL_MAX_HZ,
    VGGISH_MEL_MIN_HZ as MEL_MIN_HZ,
    VGGISH_NUM_BANDS as NUM_BANDS,
    VGGISH_NUM_FRAMES as NUM_FRAMES,
    VGGISH_SAMPLE_RATE as SAMPLE_RATE,
    VGGISH_WINDOW_SECONDS as WINDOW_SECONDS,
)


def hz_to_mel_htk(hz: torch.Tensor) -> torch.Tensor:
    """HTK mel scale: ``1127 * ln(1 + f / 700)``."""
    return 1127.0 * torch.log1p(hz / 700.0)


def vggish_mel_matrix(
    num_bins: int = NUM_BANDS,
    num_spectrogram_bins: int = 257,
    sample_rate: int = SAMPLE_RATE,
    lower_hz: float = MEL_MIN_HZ,
    upper_hz: float = MEL_MAX_HZ,
) -> torch.Tensor:
    """Mel weight matrix ``[num_spectrogram_bins, num_bins]`` of the VGGish front end.

    Band edges are equally spaced on the HTK mel scale between ``lower_hz`` and ``upper_hz``;
    each band is a triangle whose slopes are linear in mel; the DC bin has zero weight.
    """
    if not 0.0 <= lower_hz < upper_hz <= sample_rate / 2:
        raise ValueError(f"need 0 <= lower_hz < upper_hz <= Nyquist; got {lower_hz}, {upper_hz}")
    nyquist = sample_rate / 2.0
    bin_hz = torch.linspace(0.0, nyquist, num_spectrogram_bins, dtype=torch.float64)
    bin_mel = hz_to_mel_htk(bin_hz)
    edges = torch.linspace(
        float(hz_to_mel_htk(torch.tensor(lower_hz, dtype=torch.float64))),
        float(hz_to_mel_htk(torch.tensor(upper_hz, dtype=torch.float64))),
        num_bins + 2,
        dtype=torch.float64,
    )
    lo, mid, hi = edges[:-2], edges[1:-1], edges[2:]
    rising = (bin_mel[:, None] - lo[None]) / (mid - lo)[None]
    falling = (hi[None] - bin_mel[:, None]) / (hi - mid)[None]
    weights = torch.clamp(torch.minimum(rising, falling), min=0.0)
    weights[0, :] = 0.0
    return weights.to(torch.float32)


class VGGishFrontEnd(nn.Module):
    """Waveform -> VGGish log-mel examples ``[N, 1, 96, 64]``.

    Args:
        input_sample_rate: rate of the waveforms passed to :meth:`forward`; resampled to 16 kHz
            when different.

    ``forward(waveform)`` takes ``(S,)`` or ``(channels, S)`` (channels are averaged) and returns
    the examples of that one signal. :meth:`log_mel` returns the ``[frames, 64]`` log-mel
    spectrogram before framing into examples.
    """

    def __init__(self, input_sample_rate: int = SAMPLE_RATE) -> None:
        super().__init__()
        import torchaudio

        self.input_sample_rate = int(input_sample_rate)
        self.win_length = int(round(WINDOW_SECONDS * SAMPLE_RATE))  # 400
        self.hop_length = int(round(HOP_SECONDS * SAMPLE_RATE))  # 160
        self.n_fft = 2 ** int(math.ceil(math.log2(self.win_length)))  # 512
        self.spectrogram = torchaudio.transforms.Spectrogram(
            n_fft=self.n_fft,
            win_length=self.win_length,
            hop_length=self.hop_length,
            window_fn=torch.hann_window,
            wkwargs={"periodic": True},
            power=1.0,
            center=False,
        )
        self.register_buffer("mel_matrix", vggish_mel_matrix(num_spectrogram_bins=self.n_fft // 2 + 1), persistent=False)

    def _prepare(self, waveform: torch.Tensor) -> torch.Tensor:
        wav = torch.as_tensor(waveform, dtype=torch.float32)
        if wav.ndim == 2:
            wav = wav.mean(dim=0)
        if wav.ndim != 1:
            raise ValueError(f"waveform must be (S,) or (channels, S); got {tuple(wav.shape)}")
        if self.input_sample_rate != SAMPLE_RATE:
            import torchaudio

            wav = torchaudio.functional.resample(wav, self.input_sample_rate, SAMPLE_RATE)
        return wav

    def log_mel(self, waveform: torch.Tensor) -> torch.Tensor:
        """``[frames, 64]`` log-mel spectrogram at 100 frames/s (``frames = 1 + (S - 400) // 160``)."""
        wav = self._prepare(waveform)
        if wav.shape[0] < self.win_length:
            wav = torch.nn.functional.pad(wav, (0, self.win_length - wav.shape[0]))
        # torch.stft centres the 400-sample window inside each 512-sample frame (offset 56). Padding
        # the signal by 56 on both sides makes frame i's window cover samples [160 i, 160 i + 400),
        # the VGGish framing; the shift inside the FFT frame changes only the phase.
        side = (self.n_fft - self.win_length) // 2
        wav = torch.nn.functional.pad(wav, (side, self.n_fft - self.win_length - side))
        mag = self.spectrogram(wav.to(self.mel_matrix.device))  # [257, frames]
        mel = mag.transpose(0, 1) @ self.mel_matrix
        return torch.log(mel + LOG_OFFSET)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        logmel = self.log_mel(waveform)
        n = logmel.shape[0] // NUM_FRAMES
        if n == 0:
            raise ValueError(
                f"waveform too short for one 0.96 s VGGish example: {logmel.shape[0]} frames < {NUM_FRAMES}"
            )
        return logmel[: n * NUM_FRAMES].reshape(n, 1, NUM_FRAMES, NUM_BANDS)


class VGGish(nn.Module):
    """The VGGish network: ``[N, 1, 96, 64]`` log-mel examples -> ``[N, 128]`` embeddings.

    Args:
        final_relu: apply ReLU after the 128-d layer. The PyTorch port of the AudioSet weights
            does; later versions of the TensorFlow reference leave the embedding linear. The
            thesis does not say [SILENT]; default ``True`` (the port's behaviour).
    """

    def __init__(self, final_relu: bool = True) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 1
        for block in ((64,), (128,), (256, 256), (512, 512)):
            for out_ch in block:
                layers += [nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                in_ch = out_ch
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        self.features = nn.Sequential(*layers)
        head: list[nn.Module] = [
            nn.Linear(512 * 6 * 4, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, EMBEDDING_SIZE),
        ]
        if final_relu:
            head.append(nn.ReLU(inplace=True))
        self.embeddings = nn.Sequential(*head)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He-normal weights and zero biases: a random VGGish whose activations neither vanish nor
        explode (used when no trained weights are loaded)."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:
            x = x.unsqueeze(1)
        if x.shape[1:] != (1, NUM_FRAMES, NUM_BANDS):
            raise ValueError(f"VGGish expects [N, 1, {NUM_FRAMES}, {NUM_BANDS}] log-mel examples; got {tuple(x.shape)}")
        x = self.features(x)  # [N, 512, 6, 4]
        x = x.permute(0, 2, 3, 1).flatten(1)  # (H, W, C) order of the TF original
        return self.embeddings(x)


def load_vggish_weights(model: VGGish, path: Union[str, Path], strict: bool = True) -> VGGish:
    """Load a VGGish state dict from a ``.safetensors`` file into ``model`` (names as in ``torchvggish``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"VGGish weights not found: {path}")
    if path.suffix != ".safetensors":
        raise ValueError(
            f"VGGish weights must be a .safetensors file; got {path}. Convert a torchvggish .pth with "
            "mmzoo.nn.vggish.convert_torchvggish_checkpoint(path) and safetensors.torch.save_file."
        )
    from safetensors.torch import load_file

    state = load_file(str(path))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if strict and (missing or unexpected):
        raise ValueError(f"VGGish weights {path} do not match the network: missing {missing}, unexpected {unexpected}")
    return model


def convert_torchvggish_checkpoint(path: Union[str, Path]) -> dict[str, torch.Tensor]:
    """State dict of the ``torchvggish`` port (``vggish-*.pth``) as plain tensors, names kept.

    Read with ``torch.load(weights_only=True)``: only tensors and containers are accepted, no
    arbitrary pickled objects. Keys outside ``features.*`` / ``embeddings.*`` (e.g. PCA
    parameters) are dropped.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict")
    out = {k: v.contiguous() for k, v in state.items() if k.startswith(("features.", "embeddings.")) and torch.is_tensor(v)}
    if not out:
        raise ValueError(f"{path} holds no VGGish 'features.*' / 'embeddings.*' tensors")
    return out


def vggish_embed(
    waveform: torch.Tensor,
    model: VGGish,
    front_end: Optional[VGGishFrontEnd] = None,
) -> torch.Tensor:
    """Embed one waveform: ``[num_examples, 128]`` (one row per 0.96 s example)."""
    front_end = front_end or VGGishFrontEnd()
    return model(front_end(waveform))
