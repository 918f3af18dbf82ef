"""Context Relation Mining (CRM) over the per-frame features of PSN's sampler (Wang 2021, ch. 5,
Sec. 5.2.2, Table 5.1).

Input and output are ``(B, D, N)`` sequences: D-dimensional features of the N pre-sampled
frames. Four variants, all returning ``(B, out_dim, N)`` so the score layer ``q = sigmoid(p W_s)``
is the same after each:

* ``"none"`` (Table 5.1 "w/o CRM"): a linear 1x1 projection to ``out_dim`` only;
* ``"nonlocal"``: a 1-D non-local block (self-attention over the N frames; the space-time block of
  :mod:`mmzoo.nn.nonlocal_block` on a ``(N, 1, 1)`` grid, no pooling), then the 1x1 projection;
* ``"tcn"`` (vanilla TCN): 3 x (Conv1d kernel ``k``, stride 1, padding ``k // 2``, BN, ReLU); every
  layer keeps the sequence length (the thesis states it for the first layer);
* ``"ed_tcn"`` (the chosen variant, after Lea et al. 2017): encoder 3 x (Conv1d kernel 3, stride 2,
  BN, ReLU) down to ``ceil(N / 8)``; decoder 3 x ConvTranspose1d (kernel 3, stride 2), the input of
  decoder layer ``j > 1`` being the previous output plus the mirror encoder map (additive skips).

Points the thesis leaves open ([SILENT]) and the choices made here, each an argument:

* filter counts ``filters`` (default 256 per layer) and ``out_dim`` (256);
* encoder padding ``kernel // 2`` (25 -> 13 -> 7 -> 4 for N = 25); each decoder layer's output
  length is set to its mirror encoder map's length (ConvTranspose1d's ``output_size``, so its
  ``output_padding`` is 0 or 1 as needed): 4 -> 7 -> 13 -> 25, and any other N works the same way;
* decoder layers ``j`` output the channels of the encoder map they are added to (the last one
  ``out_dim``); ``decoder_norm`` adds BN + ReLU after each (default on).
"""
from __future__ import annotations

from typing import Literal, Sequence

import torch
from torch import nn

from mmzoo.nn.nonlocal_block import NonLocal3d

__all__ = ["CRM_VARIANTS", "EDTCN", "ContextRelationMining", "NonLocal1d", "VanillaTCN"]

CRM_VARIANTS = ("ed_tcn", "tcn", "nonlocal", "none")


def _conv_bn_relu(cin: int, cout: int, kernel: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv1d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm1d(cout),
        nn.ReLU(inplace=True),
    )


class EDTCN(nn.Module):
    """Encoder-decoder TCN with additive skips (module docstring). ``(B, dim, N) -> (B, out_dim, N)``."""

    def __init__(self, dim: int, filters: Sequence[int] = (256, 256, 256), out_dim: int = 256, kernel: int = 3,
                 decoder_norm: bool = True) -> None:
        super().__init__()
        filters = [int(f) for f in filters]
        if not filters:
            raise ValueError("ED-TCN needs at least one encoder layer")
        self.encoder = nn.ModuleList()
        cin = dim
        for f in filters:
            self.encoder.append(_conv_bn_relu(cin, f, kernel, 2))
            cin = f
        # decoder layer j maps encoder map (L - j) to the size of encoder map (L - j - 1); the
        # last one maps back to the input length with out_dim channels
        outs = list(reversed(filters[:-1])) + [out_dim]
        self.decoder = nn.ModuleList()
        self.decoder_post = nn.ModuleList()
        cin = filters[-1]
        for c in outs:
            self.decoder.append(nn.ConvTranspose1d(cin, c, kernel, stride=2, padding=kernel // 2,
                                                   bias=not decoder_norm))
            self.decoder_post.append(nn.Sequential(nn.BatchNorm1d(c), nn.ReLU(inplace=True)) if decoder_norm
                                     else nn.Identity())
            cin = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = [x]
        for layer in self.encoder:
            maps.append(layer(maps[-1]))
        y = maps[-1]
        n = len(self.decoder)
        for j, (deconv, post) in enumerate(zip(self.decoder, self.decoder_post)):
            target = maps[n - 1 - j]
            if j > 0:
                y = y + maps[n - j]  # additive skip: previous output + the mirror encoder map
            y = post(deconv(y, output_size=[target.shape[-1]]))
        return y


class VanillaTCN(nn.Module):
    """``layers`` x (Conv1d kernel ``kernel``, stride 1, BN, ReLU), length-preserving."""

    def __init__(self, dim: int, filters: Sequence[int] = (256, 256, 256), out_dim: int = 256, kernel: int = 3) -> None:
        super().__init__()
        chans = [int(f) for f in filters[:-1]] + [out_dim]
        layers, cin = [], dim
        for c in chans:
            layers.append(_conv_bn_relu(cin, c, kernel, 1))
            cin = c
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class NonLocal1d(nn.Module):
    """Self-attention over the N frames (embedded-Gaussian non-local block with a residual and a
    zero-initialised BN, Wang et al. 2018), then a 1x1 projection to ``out_dim``."""

    def __init__(self, dim: int, out_dim: int = 256, dim_inner: int | None = None) -> None:
        super().__init__()
        self.block = NonLocal3d(dim, dim_inner or max(dim // 2, 1), pool=(1, 1, 1), mode="softmax")
        self.proj = nn.Conv1d(dim, out_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x[..., None, None])[..., 0, 0]
        return self.proj(y)


class ContextRelationMining(nn.Module):
    """One of the CRM variants (module docstring) behind one interface: ``(B, dim, N) -> (B, out_dim, N)``."""

    def __init__(self, variant: Literal["ed_tcn", "tcn", "nonlocal", "none"], dim: int,
                 filters: Sequence[int] = (256, 256, 256), out_dim: int = 256, kernel: int = 3,
                 decoder_norm: bool = True) -> None:
        super().__init__()
        if variant not in CRM_VARIANTS:
            raise ValueError(f"unknown CRM variant {variant!r}; choose one of {CRM_VARIANTS}")
        self.variant = variant
        if variant == "ed_tcn":
            self.body: nn.Module = EDTCN(dim, filters, out_dim, kernel, decoder_norm)
        elif variant == "tcn":
            self.body = VanillaTCN(dim, filters, out_dim, kernel)
        elif variant == "nonlocal":
            self.body = NonLocal1d(dim, out_dim)
        else:
            self.body = nn.Conv1d(dim, out_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3:
            raise ValueError(f"CRM expects (B, D, N) frame features, got shape {tuple(x.shape)}")
        return self.body(x)

