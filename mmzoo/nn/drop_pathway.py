"""DropPathway (AVSlowFast, thesis section 4.3): drop the whole audio pathway at random.

At each training iteration the audio pathway is dropped with probability `p` (P_d = 0.8 by
default, Table 4.6b). A dropped pathway contributes zero tensors to the sums of the A->FS
fusion, so the visual pathways are trained as if they had no audio input on that iteration;
in eval mode nothing is ever dropped.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

__all__ = ["DropPathway"]


class DropPathway(nn.Module):
    """Samples one keep/drop decision per training iteration.

    Args:
        p: probability of dropping the pathway on a training iteration (0 disables it).

    `sample()` draws the decision for the current iteration (False in eval mode) and stores it in
    `dropped`; `forward(x)` returns `x` or zeros (`x * 0`) according to that decision, so that
    "summing the audio features" becomes "summing zeros" when the pathway is dropped.
    """

    def __init__(self, p: float = 0.8) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"DropPathway probability must be in [0, 1], got {p}")
        self.p = float(p)
        self.dropped = False

    def sample(self, generator: Optional[torch.Generator] = None) -> bool:
        if not self.training or self.p == 0.0:
            self.dropped = False
        else:
            self.dropped = bool(torch.rand((), generator=generator).item() < self.p)
        return self.dropped

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x * 0 rather than zeros_like(x): the dropped branch stays in the autograd graph with
        # zero gradients, so DDP does not see unused parameters on iterations that drop it
        return x * 0.0 if self.dropped else x

    def extra_repr(self) -> str:
        return f"p={self.p}"
