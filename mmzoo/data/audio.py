"""Log-mel audio front ends (torchaudio), parameterised so that each paper's settings are one
constructor call.

:class:`LogMel` maps a waveform ``(..., S)`` to a log-mel spectrogram ``(..., 1, T, F)`` (time
before frequency, the layout of the batch field ``audio``). With ``num_frames`` set it first
centre-crops / zero-pads the waveform to exactly the ``(num_frames - 1) * hop + win`` samples that
give ``num_frames`` frames (``center=False`` framing), so the output size never depends on the clip.

:func:`avslowfast_logmel` is the AVSlowFast front end (thesis ch. 4): 16 kHz, 32 ms Hann window
(512 samples), 16 ms hop (256), 80 mel bins, 128 frames. The thesis is [SILENT] on FFT size, mel
scale, fmin/fmax, log offset and normalisation; the defaults follow the authors' public code
([EXT]: n_fft 512, HTK mel scale, no framing padding, ``log(S + 1e-8)``, then ``(x + 7.03) / 4.66``)
and each of them is an argument (``normalization="none"|"fixed"|"instance"``).
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from mmzoo.data.constants import AVSLOWFAST_AUDIO, AVSLOWFAST_LOGMEL_MEAN, AVSLOWFAST_LOGMEL_STD

__all__ = ["LogMel", "avslowfast_logmel", "AVSLOWFAST_MEAN", "AVSLOWFAST_STD"]

#: Normalisation constants of the AVSlowFast public code [EXT].
AVSLOWFAST_MEAN = AVSLOWFAST_LOGMEL_MEAN
AVSLOWFAST_STD = AVSLOWFAST_LOGMEL_STD


class LogMel(nn.Module):
    """Waveform -> ``log(mel + log_offset)`` -> optional normalisation.

    Args:
        sample_rate: rate of the input waveform (Hz).
        win_ms / hop_ms: analysis window and hop in milliseconds (rounded to samples).
        n_mels: number of mel bins ``F``.
        n_fft: FFT size (default: the window length in samples).
        num_frames: fixed number of output frames ``T`` (crop/pad the waveform first), or ``None``.
        f_min / f_max: mel filterbank range (``f_max=None``: Nyquist).
        mel_scale: ``"htk"`` or ``"slaney"``.
        log_offset: added before the log.
        normalization: ``"none"``; ``"fixed"``: ``(x - mean) / std`` with the given constants;
            ``"instance"``: per-example zero mean / unit variance.
        mean / std: constants for ``"fixed"``.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        win_ms: float = 32.0,
        hop_ms: float = 16.0,
        n_mels: int = 80,
        n_fft: int | None = None,
        num_frames: int | None = None,
        f_min: float = 0.0,
        f_max: float | None = None,
        mel_scale: Literal["htk", "slaney"] = "htk",
        log_offset: float = 1e-8,
        normalization: Literal["none", "fixed", "instance"] = "fixed",
        mean: float = AVSLOWFAST_MEAN,
        std: float = AVSLOWFAST_STD,
    ):
        super().__init__()
        import torchaudio

        if normalization not in ("none", "fixed", "instance"):
            raise ValueError(f"normalization must be none/fixed/instance, got {normalization!r}")
        self.sample_rate = int(sample_rate)
        self.win_length = int(round(win_ms * sample_rate / 1000))
        self.hop_length = int(round(hop_ms * sample_rate / 1000))
        self.n_fft = int(n_fft or self.win_length)
        self.n_mels = n_mels
        self.num_frames = num_frames
        self.log_offset = log_offset
        self.normalization = normalization
        self.mean, self.std = float(mean), float(std)
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=self.sample_rate,
            n_fft=self.n_fft,
            win_length=self.win_length,
            hop_length=self.hop_length,
            f_min=f_min,
            f_max=f_max,
            n_mels=n_mels,
            center=False,
            power=2.0,
            mel_scale=mel_scale,
        )

    def num_samples(self, num_frames: int | None = None) -> int:
        """Waveform length giving exactly ``num_frames`` frames. Without centring, every frame
        reads ``max(win_length, n_fft)`` samples (a shorter window is zero-padded to ``n_fft``
        inside the frame), so that is the span of the last one."""
        n = num_frames or self.num_frames
        if n is None:
            raise ValueError("num_frames is not set")
        return (n - 1) * self.hop_length + max(self.win_length, self.n_fft)

    @property
    def window_seconds(self) -> float | None:
        """Duration of the waveform consumed when ``num_frames`` is set (AVSlowFast: 2.064 s)."""
        return None if self.num_frames is None else self.num_samples() / self.sample_rate

    def fit(self, waveform: torch.Tensor) -> torch.Tensor:
        """Centre-crop or zero-pad (symmetrically) the last dim to :meth:`num_samples`."""
        need = self.num_samples()
        have = waveform.shape[-1]
        if have > need:
            off = (have - need) // 2
            return waveform[..., off : off + need]
        if have < need:
            left = (need - have) // 2
            return torch.nn.functional.pad(waveform, (left, need - have - left))
        return waveform

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        if self.num_frames is not None:
            waveform = self.fit(waveform)
        elif waveform.shape[-1] < self.win_length:
            raise ValueError(f"waveform of {waveform.shape[-1]} samples is shorter than one window ({self.win_length})")
        spec = self.mel(waveform.float())  # (..., F, T)
        x = torch.log(spec + self.log_offset).transpose(-1, -2).unsqueeze(-3)  # (..., 1, T, F)
        if self.normalization == "fixed":
            x = (x - self.mean) / self.std
        elif self.normalization == "instance":
            dims = (-3, -2, -1)
            x = (x - x.mean(dim=dims, keepdim=True)) / x.std(dim=dims, keepdim=True).clamp_min(1e-5)
        return x


def avslowfast_logmel(**overrides) -> LogMel:
    """The AVSlowFast front end: 16 kHz, 32 ms / 16 ms, 80 mels, 128 frames, [EXT] log offset
    and normalisation (overridable)."""
    a = AVSLOWFAST_AUDIO
    kw = dict(sample_rate=a["sample_rate"], win_ms=a["window_ms"], hop_ms=a["hop_ms"], n_mels=a["n_mels"], num_frames=128)
    kw.update(overrides)
    return LogMel(**kw)
