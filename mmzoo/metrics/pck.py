"""PCK (percentage of correct keypoints) for JHMDB pose propagation (thesis Table 2.2).

As the TimeCycle-lineage evaluation script (``eval_pck.py``, published with UVC, which credits
TimeCycle) computes it: a predicted joint is correct when its distance to the ground truth is at
most ``alpha x scale``, where ``scale`` is the person size of that frame, ``0.6 x`` the diagonal
of the box around the frame's (visible) ground-truth joints; PCK is computed per joint type over
every evaluated frame (the first frame, which is given, is left out by the caller) and then
averaged over the 15 joint types. Reported at alpha = 0.1 and 0.2, in percent. ``scale_mode
="max_side"`` gives the alternative in that script's comment (the box's larger side).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torchmetrics import Metric

__all__ = ["PCK", "person_scale"]


def person_scale(keypoints: torch.Tensor, visible: torch.Tensor | None = None,
                 mode: Literal["diag0.6", "max_side"] = "diag0.6") -> torch.Tensor:
    """Person size of each frame's joints ``(..., K, 2)`` -> ``(...)``: ``0.6 x`` the diagonal of
    their box ("diag0.6", the evaluation script's) or its larger side ("max_side"); over visible
    joints only when ``visible (..., K)`` is given."""
    kp = keypoints.float()
    if visible is None:
        visible = torch.ones(kp.shape[:-1], dtype=torch.bool, device=kp.device)
    big = torch.finfo(kp.dtype).max
    vis = visible.bool().unsqueeze(-1)
    lo = torch.where(vis, kp, torch.full_like(kp, big)).amin(-2)
    hi = torch.where(vis, kp, torch.full_like(kp, -big)).amax(-2)
    size = 0.6 * (hi - lo).norm(dim=-1) if mode == "diag0.6" else (hi - lo).amax(-1)
    return torch.where(visible.any(-1), size, torch.zeros_like(size))


class PCK(Metric):
    """``update(pred, target, scale=None, visible=None)``: joints ``(N, K, 2)`` (x, y), per-frame
    person scale ``(N,)`` (default: :func:`person_scale` of ``target``), visibility ``(N, K)``.
    ``compute()`` -> ``{"pck@0.1": ..., "pck@0.2": ...}`` in percent: per joint type, then the
    mean over joint types that occurred (``average="joint"``, the script's), or over all joints
    pooled (``average="all"``). Per-joint sum states (exact under DDP).
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, thresholds: Sequence[float] = (0.1, 0.2), num_joints: int = 15, percent: bool = True,
                 average: Literal["joint", "all"] = "joint", **kwargs) -> None:
        super().__init__(**kwargs)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.percent = percent
        self.average = average
        self.num_joints = num_joints
        self.add_state("correct", default=torch.zeros(len(self.thresholds), num_joints, dtype=torch.long),
                       dist_reduce_fx="sum")
        self.add_state("total", default=torch.zeros(num_joints, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, target: torch.Tensor, scale: torch.Tensor | None = None,
               visible: torch.Tensor | None = None) -> None:
        if pred.shape != target.shape or pred.shape[-1] != 2 or pred.dim() != 3 or pred.shape[1] != self.num_joints:
            raise ValueError(f"PCK: pred {tuple(pred.shape)} and target {tuple(target.shape)} must both be "
                             f"(N, K, 2) with K = {self.num_joints} joints")
        if visible is None:
            visible = torch.ones(target.shape[:-1], dtype=torch.bool, device=target.device)
        visible = visible.bool().to(target.device)
        if scale is None:
            scale = person_scale(target, visible)
        dist = (pred.float().to(target.device) - target.float()).norm(dim=-1)  # N, K
        for i, a in enumerate(self.thresholds):
            ok = (dist <= a * scale.float().to(target.device).unsqueeze(-1)) & visible
            self.correct[i] += ok.sum(0)
        self.total += visible.sum(0)

    def compute(self) -> dict[str, torch.Tensor]:
        if self.total.sum() == 0:
            raise ValueError("PCK over zero joints: the evaluation set is empty")
        scale = 100.0 if self.percent else 1.0
        seen = self.total > 0
        if self.average == "all":
            acc = self.correct.sum(1).float() / self.total.sum().float()
        else:
            acc = (self.correct[:, seen].float() / self.total[seen].float()).mean(1)
        return {f"pck@{t:g}": acc[i] * scale for i, t in enumerate(self.thresholds)}
