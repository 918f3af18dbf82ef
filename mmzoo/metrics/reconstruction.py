"""Frame reconstruction L1 error (thesis 003, ch. 2, Sec. 2.3.6 "Video Frame Reconstructions",
the table numbered 2.5 in the seed; the digest calls it Table 2.4).

The thesis: "We compare the L1 distance between I'_t and I_t in RGB space", reporting Identity
82.0 / 97.7, FlowNet2 62.4 / 90.3, ImageNet R50 64.0 / 79.2 and TimeCycle R50 60.4 / 76.4 at
gaps of 5 / 10 frames on DAVIS-2017 val. What is used here:

- colour space: RGB (thesis), the frame as decoded, no ImageNet normalisation;
- [SILENT] value range: 0-255 (8-bit). The thesis gives no range, but errors of 60-98 rule out
  [0, 1] values. Inputs may come in any range ``[0, data_range]`` and are rescaled to 0-255;
- [SILENT] reduction per frame: the mean absolute difference over pixels **and channels**
  (``channel_reduction="mean"``), the usual "L1 error" of an image; ``"sum"`` sums the three
  channels instead (3x larger; nothing in the thesis decides between the two, so compare the
  magnitude of the Identity row with care);
- [SILENT] dataset aggregation: the mean of the per-frame errors over every reconstructed frame
  (of every sequence), separately per gap; no clamping, no mask (every pixel of I_t counts).

States are per-gap sums of per-frame errors (float64) and frame counts, reduced with ``sum``:
exact under DDP.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torchmetrics import Metric

__all__ = ["FrameReconstructionL1", "frame_l1"]


def frame_l1(pred: torch.Tensor, target: torch.Tensor, data_range: float = 255.0,
             channel_reduction: Literal["mean", "sum"] = "mean") -> torch.Tensor:
    """Per-frame L1 errors ``(N,)`` on the 0-255 scale of frames ``(N, C, H, W)`` or one
    ``(C, H, W)`` with values in ``[0, data_range]``: ``mean |pred - target|`` over pixels and
    channels (``"mean"``) or over pixels of the channel sum (``"sum"``)."""
    if pred.shape != target.shape or pred.dim() not in (3, 4):
        raise ValueError(f"frame_l1: pred {tuple(pred.shape)} and target {tuple(target.shape)} must both be "
                         "(C, H, W) or (N, C, H, W)")
    if channel_reduction not in ("mean", "sum"):
        raise ValueError(f"channel_reduction must be 'mean' or 'sum', not {channel_reduction!r}")
    if pred.dim() == 3:
        pred, target = pred[None], target[None]
    diff = (pred.double() - target.double()).abs() * (255.0 / float(data_range))
    err = diff.flatten(1).mean(1)
    return err * diff.shape[1] if channel_reduction == "sum" else err


class FrameReconstructionL1(Metric):
    """Mean per-frame L1 reconstruction error for each frame gap (thesis Sec. 2.3.6).

    ``update(pred, target, gap)``: reconstructed frames ``pred`` and the real frames ``target``
    ``(N, 3, H, W)`` (or one ``(3, H, W)``), values in ``[0, data_range]``, reconstructed from a
    reference ``gap`` frames earlier. ``compute()`` returns ``{"l1@<gap>": mean error}`` on the
    0-255 scale for every gap of ``gaps`` (an error if a gap saw no frame).

    Args:
        gaps: the frame gaps reported (5 and 10, thesis).
        data_range: the largest value of the inputs (255 for 8-bit frames, 1 for [0, 1]).
        channel_reduction: "mean" over channels (default) or "sum" of the channels, see module doc.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, gaps: Sequence[int] = (5, 10), data_range: float = 255.0,
                 channel_reduction: Literal["mean", "sum"] = "mean", **kwargs) -> None:
        super().__init__(**kwargs)
        self.gaps = tuple(int(g) for g in gaps)
        if not self.gaps or len(set(self.gaps)) != len(self.gaps) or min(self.gaps) < 1:
            raise ValueError(f"gaps must be distinct positive integers, not {tuple(gaps)}")
        if channel_reduction not in ("mean", "sum"):
            raise ValueError(f"channel_reduction must be 'mean' or 'sum', not {channel_reduction!r}")
        self.data_range = float(data_range)
        self.channel_reduction = channel_reduction
        for g in self.gaps:
            self.add_state(f"error_sum_{g}", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"count_{g}", default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, target: torch.Tensor, gap: int) -> None:
        if int(gap) not in self.gaps:
            raise ValueError(f"FrameReconstructionL1: gap {gap} is not one of the metric's gaps {self.gaps}")
        err = frame_l1(pred, target, self.data_range, self.channel_reduction).to(self.device)
        setattr(self, f"error_sum_{int(gap)}", getattr(self, f"error_sum_{int(gap)}") + err.sum())
        setattr(self, f"count_{int(gap)}", getattr(self, f"count_{int(gap)}") + err.numel())

    def compute(self) -> dict[str, torch.Tensor]:
        empty = [g for g in self.gaps if int(getattr(self, f"count_{g}")) == 0]
        if empty:
            raise ValueError(f"FrameReconstructionL1 over zero frames at gap(s) {empty}: no sequence was longer "
                             "than the gap")
        return {f"l1@{g}": (getattr(self, f"error_sum_{g}") / getattr(self, f"count_{g}")).float()
                for g in self.gaps}
