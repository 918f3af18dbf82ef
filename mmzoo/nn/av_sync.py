"""Hierarchical audio-visual synchronisation (AVS) of AVSlowFast.

An auxiliary task asks, at several depths (res3, res4, res5 by default), whether the audio and
the visual features come from the same moment of the same video. The thesis does not describe
the head; two are offered:

* `"contrastive"` (default, the authors' public code): pooled visual and audio features are
  projected to `proj_dim` (64), L2-normalised and scaled by 1/2 so squared distances fall in
  [0, 1]; loss `(sum ||v - a+||^2 + sum max(0, m - ||v - a-||)^2) / (2N)` with margin m = 0.99;
* `"classifier"`: a linear layer on the concatenated projections predicts "in sync" with a
  binary cross-entropy, positives and negatives weighted equally.

Negatives follow the AVTS curriculum: "easy" negatives (audio of another clip) only, then after
`switch_at` of training a mix with a `hard_ratio` share of "hard" negatives (audio of the same
video shifted in time by at least 0.5 s). `NegativeCurriculum` draws which samples get which.
"""
from __future__ import annotations

import contextlib

from typing import Literal, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["AVSyncHead", "NegativeCurriculum", "audio_pair_mask", "negatives_are_batch_roll", "shared_negative_pass"]


class AVSyncHead(nn.Module):
    """Args:
    dim_visual: channels of the visual feature map (B, C, T, H, W), averaged over T, H, W.
    dim_audio: channels of the audio feature map, averaged over all its positions.
    proj_dim: size of the projections (64).
    head: "contrastive" or "classifier" (see the module docstring).
    margin: contrastive margin (0.99).
    """

    def __init__(
        self,
        dim_visual: int,
        dim_audio: int,
        proj_dim: int = 64,
        head: Literal["contrastive", "classifier"] = "contrastive",
        margin: float = 0.99,
    ) -> None:
        super().__init__()
        if head not in ("contrastive", "classifier"):
            raise ValueError(f"unknown AVS head {head!r}")
        self.head = head
        self.margin = margin
        self.visual_proj = nn.Linear(dim_visual, proj_dim)
        self.audio_proj = nn.Linear(dim_audio, proj_dim)
        self.classifier = nn.Linear(2 * proj_dim, 1) if head == "classifier" else None

    def embed(self, visual: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        v = self.visual_proj(visual.flatten(2).mean(-1))
        a = self.audio_proj(audio.flatten(2).mean(-1))
        return v, a

    def forward(
        self, visual: torch.Tensor, audio_pos: torch.Tensor, audio_neg: torch.Tensor, mask: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """Loss for a batch of (visual, in-sync audio, out-of-sync audio) triplets; `mask`
        (bool, B) keeps only valid pairs (non-silent, non-duplicate audio)."""
        v, a_pos = self.embed(visual, audio_pos)
        a_neg = self.audio_proj(audio_neg.flatten(2).mean(-1))
        if mask is None:
            mask = torch.ones(v.shape[0], dtype=torch.bool, device=v.device)
        n = mask.sum()
        if self.head == "contrastive":
            v = F.normalize(v, dim=1) * 0.5
            a_pos = F.normalize(a_pos, dim=1) * 0.5
            a_neg = F.normalize(a_neg, dim=1) * 0.5
            pos = ((v - a_pos) ** 2).sum(1)
            neg = (self.margin - (v - a_neg).norm(dim=1)).clamp(min=0) ** 2
            per_sample = (pos + neg) * mask
            return per_sample.sum() / (2 * n + 1e-8)
        logits_pos = self.classifier(torch.cat([v, a_pos], 1)).squeeze(1)
        logits_neg = self.classifier(torch.cat([v, a_neg], 1)).squeeze(1)
        loss = F.binary_cross_entropy_with_logits(logits_pos, torch.ones_like(logits_pos), reduction="none")
        loss = loss + F.binary_cross_entropy_with_logits(logits_neg, torch.zeros_like(logits_neg), reduction="none")
        return (loss * mask).sum() / (2 * n + 1e-8)


def audio_pair_mask(audio_pos: torch.Tensor, audio_neg: torch.Tensor, var_thresh: float = 0.01, dup_thresh: float = 0.99999) -> torch.Tensor:
    """True for pairs whose two spectrograms both vary (variance > var_thresh) and are not
    near-duplicates (cosine similarity < dup_thresh), as the authors' code filters them."""
    p = audio_pos.flatten(1)
    q = audio_neg.flatten(1)
    keep = (p.var(dim=1) > var_thresh) & (q.var(dim=1) > var_thresh)
    return keep & ((F.normalize(p, dim=1) * F.normalize(q, dim=1)).sum(1) < dup_thresh)


class NegativeCurriculum:
    """Easy -> easy+hard negatives.

    Args:
        switch_at: fraction of training after which hard negatives are mixed in (0.5).
        hard_ratio: share of hard negatives after the switch (0.25 = 1 - EASY_NEG_RATIO 0.75).
        hard_gap: time shift, in spectrogram frames, of a hard negative built by rolling the
            clip's own spectrogram when the batch carries no shifted audio (32 frames = 0.5 s).
    """

    def __init__(self, switch_at: float = 0.5, hard_ratio: float = 0.25, hard_gap: int = 32) -> None:
        self.switch_at = switch_at
        self.hard_ratio = hard_ratio
        self.hard_gap = hard_gap

    def hard_fraction(self, progress: float) -> float:
        """Share of hard negatives at `progress` (0 = start, 1 = end of training)."""
        return self.hard_ratio if progress >= self.switch_at else 0.0

    def negatives(
        self,
        audio: torch.Tensor,
        progress: float,
        shifted: Optional[torch.Tensor] = None,
        generator: Optional[torch.Generator] = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Out-of-sync audio for each sample of `audio` (B, 1, T, F) and the bool mask of the
        samples that got a hard negative.

        Easy negative: the audio of the next clip in the batch (another video when the batch
        holds several). Hard negative: `shifted` (the same video's audio, shifted in time, when
        the data provides it) or the clip's own spectrogram rolled by `hard_gap` frames.
        """
        b = audio.shape[0]
        if b < 2:
            raise ValueError("AVS easy negatives need at least 2 clips per batch")
        easy = audio.roll(1, dims=0)
        hard_src = shifted if shifted is not None else audio.roll(self.hard_gap, dims=2)
        frac = self.hard_fraction(progress)
        hard = torch.rand(b, generator=generator) < frac if frac > 0 else torch.zeros(b, dtype=torch.bool)
        hard = hard.to(audio.device)
        sel = hard.view(b, *([1] * (audio.dim() - 1)))
        return torch.where(sel, hard_src, easy), hard


def negatives_are_batch_roll(audio: torch.Tensor, audio_neg: torch.Tensor) -> bool:
    """True when every negative is the next clip's audio (`audio.roll(1, 0)`, the curriculum's
    easy negatives): the audio pathway can then run on the positives alone (`shared_negative_pass`)."""
    return audio_neg.shape == audio.shape and torch.equal(audio_neg, audio.roll(1, dims=0))


@contextlib.contextmanager
def shared_negative_pass(modules: Sequence[nn.Module]):
    """Run the audio branch once for positives and their rolled (easy) negatives.

    In the thesis' training step the B negatives go through the Audio pathway beside the B
    positives, one batch of 2B, so BN normalises both with the same statistics. When the
    negatives are the positives rolled by one clip, that batch is the positives twice: its mean
    and biased variance (what BN normalises with in training) are the positives', so running the
    branch on the B positives and rolling its outputs gives the same features, losses and
    gradients. Only the running variance differs: BN updates it with the unbiased variance, n/(n-1)
    over n = B*T*F values per channel instead of 2n/(2n-1). Inside this context every BN of
    `modules` in training mode gets that update corrected to the 2B batch's, so the running
    statistics are also the ones of the doubled batch (tests/test_av_shared_negatives.py).
    SyncBatchNorm (statistics over several processes) is corrected with the local count only.
    """
    bns = [m for mod in modules for m in mod.modules()
           if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training and m.track_running_stats]  # fmt: skip
    if not bns:
        yield
        return
    counts: dict[int, int] = {}

    def record(m, inputs):  # Python only: no kernel is launched per layer
        if id(m) in counts:
            raise RuntimeError(f"{type(m).__name__} ran twice inside shared_negative_pass: its running "
                               "variance cannot be corrected to the doubled batch")
        x = inputs[0]
        counts[id(m)] = x.numel() // x.shape[1]

    handles = [m.register_forward_pre_hook(record) for m in bns]
    # Through `.data`: the BN's autograd node holds the buffer (unused by its training-mode
    # backward), and a versioned in-place write would invalidate it.
    with torch.no_grad():
        old = torch._foreach_mul([m.running_var.data for m in bns], 1.0)  # one multi-tensor copy
    try:
        yield
    finally:
        for h in handles:
            h.remove()
    # running = (1 - mom) old + mom * var * n/(n-1); the doubled batch's is
    # (1 - mom) old + mom * var * 2n/(2n-1), i.e. running * f + (1 - mom) * old * (1 - f) with
    # f = 2(n-1)/(2n-1). Applied to every layer at once, after the forward.
    idx = [i for i, m in enumerate(bns) if counts.get(id(m), 0) >= 2]
    if not idx:
        return
    rv = [bns[i].running_var.data for i in idx]
    f = [2 * (counts[id(bns[i])] - 1) / (2 * counts[id(bns[i])] - 1) for i in idx]
    keep = []
    for i, fi in zip(idx, f):
        m = bns[i]
        mom = m.momentum if m.momentum is not None else 1.0 / float(m.num_batches_tracked)
        keep.append((1 - mom) * (1 - fi))
    with torch.no_grad():
        torch._foreach_mul_(rv, f)
        torch._foreach_add_(rv, torch._foreach_mul([old[i] for i in idx], keep))
