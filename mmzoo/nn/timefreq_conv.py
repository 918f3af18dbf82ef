"""Conv3d layers of a `B, C, T, F, 1` audio pathway, run as 2-D convolutions.

The Audio pathway of AVSlowFast (thesis section 4.2.3) keeps the visual pathways' 5-D layout,
`B, C, T, F, 1`, and every one of its kernels is `(k_t, k_f, 1)` with stride `(s, s, 1)`. On such
an input a Conv3d is exactly a Conv2d over `(T, F)`, but PyTorch's CPU backend picks its slow
im2col `slow_conv3d` kernel for many of these shapes (every `(k, 1, 1)` and `1x1x1` conv with one
thread) and oneDNN's 3-D path for the others, about 2x slower than the 2-D kernels on the same
arithmetic (benchmarks/results/slowfast_speed.md, profile section).

`FlatConv3d` is a drop-in `nn.Conv3d` (same parameters, same state-dict keys, same output to
float rounding) whose forward squeezes the trailing unit axis, calls `conv2d`, and puts the axis
back, on the CPU only: on CUDA cuDNN's 3-D kernels were as fast or faster (H200: the audio
pathway took 7.4 ms as Conv3d and 8.4 ms as conv2d, benchmarks/results/gpu/avslowfast_overhead.md),
so CUDA inputs and inputs whose last axis is not 1 go through the ordinary Conv3d. `flatten_conv3d_` swaps it
in for every eligible Conv3d of a module tree, keeping the parameter objects.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FlatConv3d", "flatten_conv3d_"]


def _eligible(conv: nn.Conv3d) -> bool:
    return (
        conv.kernel_size[2] == 1
        and conv.stride[2] == 1
        and conv.dilation[2] == 1
        and isinstance(conv.padding, tuple)
        and conv.padding[2] == 0
        and conv.padding_mode == "zeros"
    )


class FlatConv3d(nn.Conv3d):
    """`nn.Conv3d` with kernel, stride, dilation 1 and padding 0 on the last axis, computed with
    `conv2d` when the input is on the CPU and its last axis has size 1."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or x.shape[-1] != 1 or x.device.type != "cpu":
            return super().forward(x)
        y = F.conv2d(
            x.squeeze(-1), self.weight.squeeze(-1), self.bias, self.stride[:2], self.padding[:2], self.dilation[:2], self.groups
        )
        return y.unsqueeze(-1)


def _flat_copy(conv: nn.Conv3d) -> FlatConv3d:
    new = FlatConv3d.__new__(FlatConv3d)
    new.__dict__.update(conv.__dict__)  # the same parameters, buffers and hooks, by reference
    return new


def flatten_conv3d_(module: nn.Module) -> int:
    """Replace, in place, every Conv3d below `module` whose last-axis kernel / stride / dilation
    are 1 and padding 0 by a `FlatConv3d` sharing its parameters; returns how many were replaced.
    State-dict keys and parameter identities are unchanged, so optimizers built before or after
    see the same tensors."""
    count = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Conv3d and _eligible(child):
                setattr(parent, name, _flat_copy(child))
                count += 1
    return count
