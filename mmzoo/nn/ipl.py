"""Interactive Prototype Learning (IPL) head: Wang 2021, "Collaborative Dual-Stream Modeling for
Video Understanding" (PhD thesis, UTS), chapter 4, Eqs. 4.2-4.5.

On a backbone map phi(X) (``B, C, T, H, W``):

* verb branch (Eq. 4.2): v = GAP(phi(X)); q_i = softmax_i(v_bar . p_bar_i / tau): a cosine
  classifier whose weights are the M verb prototypes P (:func:`cosine_logits`);
* noun-to-verb assignment (Eq. 4.3): Z = phi(X) reshaped to (THW, C); a_kj =
  softmax_j(z_k . c_j) over C = {p_1..p_M, b}, a plain dot product (no bias, no normalisation),
  b a learnable background prototype; the background column is then dropped (A: THW x M);
* grouping (Eqs. 4.4-4.5): G = A^T Z; g_i^noun = g_i - (sum_k a_ki) p_i (the residual of the
  features assigned to prototype i, as in NetVLAD);
* verb-to-noun selection: the groups of the K verbs with the highest predicted scores q, each
  L2-normalised, stacked to n' (K x C), fused by f_w (1-D conv + BN + ReLU) into the noun feature
  n (C); a cosine classifier over the nouns.

Points the thesis leaves open ([SILENT] / [AMBIG] in the spec digest) are arguments of
:class:`IPLHead`, with the reason for each default in its docstring. There is no public IPL code.
The ablations of Tables 4.5-4.7 are arguments too: ``shared_prototypes=False`` +
``selection="all"`` (independent centres, all groups), ``background=False``, ``top_k``.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CosineClassifier", "FusionFw", "IPLHead", "cosine_logits", "group_residuals", "prototype_assignment", "select_top_k"]


def cosine_logits(x: torch.Tensor, weight: torch.Tensor, tau: float) -> torch.Tensor:
    """``x_bar . w_bar_i / tau``: cosine similarity of ``x`` (``..., C``) with each row of ``weight``
    (``K, C``) over a temperature (Eq. 4.2)."""
    return F.normalize(x, dim=-1) @ F.normalize(weight, dim=-1).t() / tau


class CosineClassifier(nn.Module):
    """A cosine classifier with its own class weights: logits ``x_bar . w_bar_i / tau``.

    Args:
        dim / num_classes: feature width and classes.
        tau: temperature.
    """

    def __init__(self, dim: int, num_classes: int, tau: float) -> None:
        super().__init__()
        if tau <= 0:
            raise ValueError(f"tau must be > 0, got {tau}")
        self.tau = float(tau)
        self.weight = nn.Parameter(torch.randn(num_classes, dim) * dim**-0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return cosine_logits(x, self.weight, self.tau)


def prototype_assignment(z: torch.Tensor, prototypes: torch.Tensor, background: torch.Tensor | None) -> torch.Tensor:
    """Eq. 4.3: soft assignment of each feature z_k (``B, N, C``) to the prototypes
    (``M, C``) and the background (``1, C`` or None): a softmax over the M (+1) plain dot
    products z_k . c_j. Returns A (``B, N, M``), the background column dropped."""
    centres = prototypes if background is None else torch.cat([prototypes, background], dim=0)
    a = torch.softmax(z @ centres.t(), dim=-1)
    return a[..., : prototypes.shape[0]]


def group_residuals(z: torch.Tensor, a: torch.Tensor, prototypes: torch.Tensor, normalize_prototypes: bool = False) -> torch.Tensor:
    """Eqs. 4.4-4.5: G = A^T Z (``B, M, C``) and g_i - (sum_k a_ki) p_i, with p_i L2-normalised
    first when ``normalize_prototypes``."""
    g = a.transpose(1, 2) @ z
    p = F.normalize(prototypes, dim=-1) if normalize_prototypes else prototypes
    return g - a.sum(dim=1).unsqueeze(-1) * p.unsqueeze(0)


def select_top_k(groups: torch.Tensor, verb_scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Verb-to-noun selection: the groups (``B, M, C``) of the k highest verb scores (``B, M``) of
    each sample, in decreasing score order, each L2-normalised: (n' ``B, k, C``, indices ``B, k``)."""
    if not 1 <= k <= groups.shape[1]:
        raise ValueError(f"top_k must be in [1, {groups.shape[1]}] (the number of verb prototypes), got {k}")
    idx = verb_scores.topk(k, dim=1).indices
    picked = groups.gather(1, idx.unsqueeze(-1).expand(-1, -1, groups.shape[-1]))
    return F.normalize(picked, dim=-1), idx


class FusionFw(nn.Module):
    """f_w: fuses the K selected groups (``B, K, C``) into one C-vector: a 1-D conv with K input
    channels and one output channel sliding over the C feature positions, BN, ReLU.

    Args:
        groups: K.
        dim: C (for ``norm="feature"``).
        kernel_size: the conv's extent along C (1: a learned weighted sum of the K groups).
        norm: ``"channel"``: BatchNorm1d over the conv's single output channel (statistics over
            batch and C, the literal "conv + BN"); ``"feature"``: BatchNorm1d over the C
            features.
    """

    def __init__(self, groups: int, dim: int, kernel_size: int = 1, norm: Literal["channel", "feature"] = "channel") -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"fw kernel_size must be odd (same length output), got {kernel_size}")
        self.conv = nn.Conv1d(groups, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.norm = norm
        self.bn = nn.BatchNorm1d(1 if norm == "channel" else dim)

    def forward(self, n: torch.Tensor) -> torch.Tensor:
        y = self.conv(n)  # B, 1, C
        y = self.bn(y) if self.norm == "channel" else self.bn(y.squeeze(1)).unsqueeze(1)
        return F.relu(y).squeeze(1)


class IPLHead(nn.Module):
    """The IPL verb and noun branches on a backbone feature map.

    Args:
        dim: C, channels of the backbone map (1024 for I3D, 512 for R(2+1)D-34).
        num_verbs / num_nouns: M verb prototypes and noun classes (EPIC-100 97 / 300, EPIC-55
            125 / 352 (the thesis says 321), EGTEA 19 / 51).
        tau: temperature of the verb cosine classifier. [SILENT] in the thesis; 0.05 (logit scale
            20) is our choice: with cosine logits in [-1, 1] a scale of 10-30 lets the softmax
            reach confident predictions over hundreds of classes, which a scale near 1 cannot.
        noun_tau: temperature of the noun cosine classifier; None = ``tau`` (the thesis does not
            say whether it differs).
        top_k: K verb groups selected for the noun feature (5, Table 4.7).
        background: use the background prototype b (Table 4.6 ablates it).
        shared_prototypes: the noun branch assigns to the verb prototypes P (IPL); False gives it
            its own M learnable centres, the "independent centres" ablation (Table 4.5).
        selection: ``"top_k"`` (IPL) or ``"all"`` (every group, in prototype order, fused by an
            f_w with M inputs: the "all groups used" ablation of Table 4.5).
        normalize_residual_prototype: subtract (sum_k a_ki) p_bar_i (L2-normalised prototype)
            instead of p_i. [AMBIG]: Eq. 4.5 shows p_i, the text mentions a normalisation "for
            calibration"; the default follows the equation.
        fw_kernel / fw_norm: f_w's conv extent along C and its BN layout (:class:`FusionFw`);
            [SILENT] beyond "1-D conv + BN + ReLU with negligible parameters", the defaults are
            the smallest such layer (K weights + one BN channel).
        dropout: dropout on the pooled verb feature and on the noun feature (0: the thesis
            mentions none).
    """

    def __init__(self, dim: int, num_verbs: int, num_nouns: int, tau: float = 0.05, noun_tau: float | None = None,
                 top_k: int = 5, background: bool = True, shared_prototypes: bool = True,
                 selection: Literal["top_k", "all"] = "top_k", normalize_residual_prototype: bool = False,
                 fw_kernel: int = 1, fw_norm: Literal["channel", "feature"] = "channel", dropout: float = 0.0) -> None:
        super().__init__()
        if selection not in ("top_k", "all"):
            raise ValueError(f"selection must be 'top_k' or 'all', got {selection!r}")
        if selection == "top_k" and not 1 <= top_k <= num_verbs:
            raise ValueError(f"top_k must be in [1, num_verbs={num_verbs}], got {top_k}")
        self.num_verbs, self.top_k, self.selection = num_verbs, top_k, selection
        self.normalize_residual_prototype = normalize_residual_prototype
        # random initialisation of the prototypes (thesis); the scale keeps dot products O(1)
        self.prototypes = nn.Parameter(torch.randn(num_verbs, dim) * dim**-0.5)
        self.background = nn.Parameter(torch.randn(1, dim) * dim**-0.5) if background else None
        self.noun_centres = None if shared_prototypes else nn.Parameter(torch.randn(num_verbs, dim) * dim**-0.5)
        if tau <= 0:
            raise ValueError(f"tau must be > 0, got {tau}")
        self.tau = float(tau)  # the verb classifier is the prototypes themselves (cosine_logits)
        self.noun_classifier = CosineClassifier(dim, num_nouns, tau if noun_tau is None else noun_tau)
        self.fw = FusionFw(top_k if selection == "top_k" else num_verbs, dim, fw_kernel, fw_norm)
        self.dropout = nn.Dropout(dropout)

    def forward(self, fmap: torch.Tensor) -> dict[str, torch.Tensor]:
        """``fmap`` (``B, C, T, H, W``) -> {"verb", "noun"} logits, "assignment" A (``B, THW, M``) and
        "selected" verb indices (``B, K``; all M with ``selection="all"``)."""
        b = fmap.shape[0]
        z = fmap.flatten(2).transpose(1, 2)  # B, THW, C
        v = self.dropout(z.mean(dim=1))
        verb = cosine_logits(v, self.prototypes, self.tau)
        centres = self.prototypes if self.noun_centres is None else self.noun_centres
        a = prototype_assignment(z, centres, self.background)
        groups = group_residuals(z, a, centres, self.normalize_residual_prototype)
        if self.selection == "top_k":
            picked, idx = select_top_k(groups, verb.detach().softmax(-1), self.top_k)
        else:
            picked = F.normalize(groups, dim=-1)
            idx = torch.arange(self.num_verbs, device=fmap.device).expand(b, -1)
        noun = self.noun_classifier(self.dropout(self.fw(picked)))
        return {"verb": verb, "noun": noun, "assignment": a, "selected": idx}
