"""AVTS: the contrastive synchronisation loss, its negative samplers and its curriculum.

Korbar, Tran, Torresani, "Cooperative Learning of Audio and Video Models from Self-Supervised
Synchronization" (NeurIPS 2018), as given by seed 004 (digest part B.2).

Loss (the slide, transcribed)::

    E = 1/N sum_n  y_n ||f_v(v_n) - f_a(a_n)||_2  +  (1 - y_n) max(eta - ||f_v(v_n) - f_a(a_n)||_2, 0)^2

``y_n = 1`` for an in-sync pair. [AMBIG] the transcribed positive term is *unsquared*, the standard
contrastive loss (Hadsell, Chopra, LeCun 2006) squares it: ``positive_power`` 1 (slide) or 2
(default: the standard form, and the form the AVSlowFast authors' public code uses for its
AVTS-style synchronisation loss, :mod:`mmzoo.nn.av_sync`). 1/N covers both terms.
[SILENT] the margin eta and whether embeddings are normalised: the default (``normalize=True``,
``scale=0.5``, ``margin=0.99``) follows the same public code: L2-normalised embeddings halved, so
distances lie in [0, 1] and eta just below the largest distance.

Negatives (slides): *easy* = the audio of another video; *hard* = the audio of the same video,
out of sync. Their mix is one number, the share of hard negatives among the negatives of a batch
(``"easy"`` 0, ``"hard"`` 1, ``"mixed"`` 0.25, the slides' 75 % easy / 25 % hard).
[SILENT] sampled per batch as exactly ``floor(share x B + 1/2)`` hard negatives at random positions
(not a Bernoulli draw per sample), one positive and one negative per clip (ratio 1:1).
The hard-negative audio is the DataModule's ``audio_shifted`` field: the same video's audio
window shifted by ``audio_shift_sec`` seconds, later or earlier at random in training (offset
set ``{-s, +s}``; the shifted window never overlaps the clip's window when ``s`` >= the window
length). [SILENT] the slides give no offset; the zoo default for AVTS is ``s = 1.0`` s (the
1-s audio window of the positive and the negative then share no sample).

Curriculum (slides): easy negatives for epochs 1-50, then 75 % easy / 25 % hard for epochs 51-90;
with 0-based Lightning epochs, hard negatives start at ``current_epoch == switch_epoch == 50``.

Sync decision at test time [SILENT]: a pair is predicted in sync when its distance is below a
threshold, by default ``margin / 2`` (the midpoint between the positives' target 0 and the
distance the hinge pushes negatives to); the pretext accuracy is the share of correct decisions
over the positive and the (easy) negative pair of every clip.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "NEGATIVE_SHARES",
    "AVTSContrastiveLoss",
    "NegativeCurriculum",
    "contrastive_loss",
    "easy_negative_indices",
    "hard_negative_mask",
    "pair_distance",
    "sync_decisions",
]

NegativeKind = Literal["easy", "hard", "mixed", "curriculum"]

#: Share of hard negatives of each single-stage scheme of the slides' pretext table.
NEGATIVE_SHARES: dict[str, float] = {"easy": 0.0, "mixed": 0.25, "hard": 1.0}


def pair_distance(v: torch.Tensor, a: torch.Tensor, normalize: bool = True, scale: float = 0.5) -> torch.Tensor:
    """``||f_v - f_a||_2`` per row of ``(B, D)`` embeddings; with ``normalize`` each embedding is
    first L2-normalised and multiplied by ``scale`` (0.5: distances in [0, 1])."""
    if v.shape != a.shape:
        raise ValueError(f"video and audio embeddings differ in shape: {tuple(v.shape)} vs {tuple(a.shape)}")
    if normalize:
        v = F.normalize(v, dim=-1) * scale
        a = F.normalize(a, dim=-1) * scale
    return (v - a).norm(dim=-1)


def contrastive_loss(distance: torch.Tensor, in_sync: torch.Tensor, margin: float,
                     positive_power: Literal[1, 2] = 2) -> torch.Tensor:
    """The slide's E: mean over the N pairs of ``y d^p + (1 - y) max(margin - d, 0)^2``."""
    if positive_power not in (1, 2):
        raise ValueError(f"positive_power must be 1 (slide) or 2 (standard), got {positive_power}")
    y = in_sync.to(distance.dtype)
    pos = distance if positive_power == 1 else distance ** 2
    neg = (margin - distance).clamp(min=0) ** 2
    return (y * pos + (1 - y) * neg).mean()


class AVTSContrastiveLoss(nn.Module):
    """:func:`contrastive_loss` on embeddings (module docstring for the defaults).

    Args:
        margin: eta (0.99, [SILENT]; public-code default with ``normalize``).
        positive_power: 1 = the slide's transcription, 2 = the standard squared form (default).
        normalize / scale: L2-normalise the embeddings and scale them (True, 0.5).
    """

    def __init__(self, margin: float = 0.99, positive_power: Literal[1, 2] = 2, normalize: bool = True,
                 scale: float = 0.5) -> None:
        super().__init__()
        if margin <= 0:
            raise ValueError(f"margin must be > 0, got {margin}")
        self.margin, self.positive_power, self.normalize, self.scale = margin, positive_power, normalize, scale

    def distance(self, v: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return pair_distance(v, a, self.normalize, self.scale)

    def forward(self, v: torch.Tensor, a: torch.Tensor, in_sync: torch.Tensor) -> torch.Tensor:
        return contrastive_loss(self.distance(v, a), in_sync, self.margin, self.positive_power)


def sync_decisions(distance: torch.Tensor, threshold: float) -> torch.Tensor:
    """The decision rule: in sync (True) when the distance is below ``threshold``."""
    return distance < threshold


def easy_negative_indices(video_index: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """For each clip ``i`` the index ``j`` of a clip of *another* video (``video_index[j] !=
    video_index[i]``), drawn uniformly among them; its audio is ``i``'s easy negative."""
    vi = torch.as_tensor(video_index).view(-1).cpu()
    b = vi.numel()
    other = vi[None, :] != vi[:, None]  # (B, B)
    if not bool(other.any(1).all()):
        raise ValueError(f"easy negatives need clips of at least two videos in a batch; video_index = {vi.tolist()}")
    weights = other.float()
    return torch.multinomial(weights, 1, generator=generator).view(b)


def hard_negative_mask(batch_size: int, share: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Bool ``(B,)``: exactly ``floor(share x B + 1/2)`` clips, at random positions, get a hard negative."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"the share of hard negatives must be in [0, 1], got {share}")
    n = int(share * batch_size + 0.5)  # round half up (a batch of 2 at 25 % gets one)
    mask = torch.zeros(batch_size, dtype=torch.bool)
    mask[torch.randperm(batch_size, generator=generator)[:n]] = True
    return mask


@dataclass(frozen=True)
class NegativeCurriculum:
    """Which negatives an epoch uses.

    Args:
        negatives: ``"easy"``, ``"hard"``, ``"mixed"`` (single-stage rows of the pretext table) or
            ``"curriculum"`` (easy until ``switch_epoch``, then ``stage2``).
        switch_epoch: 0-based epoch at which the curriculum's second stage starts (50: epochs 1-50
            easy, 51-90 the second stage).
        stage2: the second stage's negatives, ``"mixed"`` (the best row, 78.4 %) or ``"hard"``.
        hard_share: share of hard negatives of ``"mixed"`` (0.25).
    """

    negatives: NegativeKind = "curriculum"
    switch_epoch: int = 50
    stage2: Literal["mixed", "hard"] = "mixed"
    hard_share: float = 0.25

    def __post_init__(self) -> None:
        if self.negatives not in ("easy", "hard", "mixed", "curriculum"):
            raise ValueError(f"negatives must be easy/hard/mixed/curriculum, got {self.negatives!r}")
        if self.stage2 not in ("mixed", "hard"):
            raise ValueError(f"stage2 must be mixed/hard, got {self.stage2!r}")

    def kind(self, epoch: int) -> str:
        """The single-stage scheme in force at 0-based ``epoch``."""
        if self.negatives != "curriculum":
            return self.negatives
        return "easy" if epoch < self.switch_epoch else self.stage2

    def hard_fraction(self, epoch: int) -> float:
        """Share of hard negatives at 0-based ``epoch``."""
        k = self.kind(epoch)
        return self.hard_share if k == "mixed" else NEGATIVE_SHARES[k]
