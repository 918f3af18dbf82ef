"""NetVLAD with ghost clusters and centres that several inputs ("branches") can share.

One layer serves plain NetVLAD (Arandjelovic et al.), GhostVLAD (Zhong et al.: extra clusters
that take assignment mass but are dropped from the output) and T2VLAD's text/video encoding
with shared centres (thesis ch. 6, Eqs. 6.1-6.3):

    a_ij = softmax_j( z_i . c_j + b_j )                      j = 1..K+G   (assignment)
    g_j  = L2( sum_i a_ij (z_i - c'_j) )                     j = 1..K     (ghosts dropped)
    out  = L2( [g_1, ..., g_K] )                             flattened, K*D

``c`` (``assign_centers``, K+G x D) and the bias ``b`` -- or a BatchNorm over the K+G
assignment logits, the option the thesis mentions and the authors' port uses -- give the soft
assignment; ``c'`` (``residual_centers``, K x D) are the second set of centres of NetVLAD.

Branches: ``num_branches`` inputs (T2VLAD: video = 0, text = 1) can each have their own copy of
the assignment centres, of the assignment bias/BatchNorm and of the residual centres, or share
one copy (``share_assignment``, ``share_assignment_norm``, ``share_residual_centers``).
``forward(..., detach_assignment=True)`` stops the gradient into the (shared) assignment centres
from that call, as the PaddleVideo port of T2VLAD does for its video branch.

Assignment BatchNorm: its running statistics estimate the distribution of the assignment logits,
and text (BERT tokens) and video (projected expert tokens) logits have different ones. One
BatchNorm shared by both branches normalises each modality with a mixture of the two in
evaluation, but with its own batch statistics in training: a train/eval shift. The authors' port
keeps one BatchNorm per modality (``batch_norm1`` video, ``batch_norm2`` text); the thesis only says
the bias b_j "can be replaced by" a BatchNorm (Eq. 6.1). Loading a state dict saved with one shared
assignment norm into a layer with one per branch copies it to every branch (the eval outputs are
unchanged).

Padded tokens: ``mask`` (bool ``B x N``, True = real token) zeroes their assignments, so they
contribute neither to the residual sums nor to the assignment mass.
"""
from __future__ import annotations

import math
from typing import Literal, Optional

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["NetVLAD", "t2vlad_netvlad"]


class NetVLAD(nn.Module):
    """NetVLAD / GhostVLAD layer with optionally shared centres.

    Args:
        feature_size: D, the dimension of the input tokens.
        num_clusters: K, the clusters kept in the output (output size K*D).
        ghost_clusters: G, extra clusters in the assignment softmax, dropped from the output.
        num_branches: how many distinct inputs use this layer (1 for plain NetVLAD).
        share_assignment: one set of assignment centres ``c`` for every branch.
        share_assignment_norm: one assignment bias / BatchNorm for every branch.
        share_residual_centers: one set of residual centres ``c'`` for every branch.
        assignment_norm: ``"batchnorm"`` (BatchNorm1d over the K+G logits, no bias) or ``"bias"``
            (a learnable b_j as in Eq. 6.1).
        intra_norm: L2-normalise each cluster's residual (Eq. 6.2).
        final_norm: L2-normalise the flattened K*D vector (so that a dot product is a cosine).
    """

    def __init__(
        self,
        feature_size: int,
        num_clusters: int,
        ghost_clusters: int = 0,
        num_branches: int = 1,
        share_assignment: bool = True,
        share_assignment_norm: bool = True,
        share_residual_centers: bool = True,
        assignment_norm: Literal["batchnorm", "bias"] = "batchnorm",
        intra_norm: bool = True,
        final_norm: bool = True,
    ):
        super().__init__()
        if num_clusters < 1 or ghost_clusters < 0 or num_branches < 1:
            raise ValueError("need num_clusters >= 1, ghost_clusters >= 0, num_branches >= 1")
        if assignment_norm not in ("batchnorm", "bias"):
            raise ValueError(f"assignment_norm must be 'batchnorm' or 'bias', got {assignment_norm!r}")
        self.feature_size = feature_size
        self.num_clusters = num_clusters
        self.ghost_clusters = ghost_clusters
        self.num_branches = num_branches
        self.assignment_norm = assignment_norm
        self.intra_norm = intra_norm
        self.final_norm = final_norm
        total = num_clusters + ghost_clusters
        n_assign = 1 if share_assignment else num_branches
        n_norm = 1 if share_assignment_norm else num_branches
        n_res = 1 if share_residual_centers else num_branches
        scale = 1.0 / math.sqrt(feature_size)
        self.assign_centers = nn.ParameterList(
            [nn.Parameter(torch.randn(total, feature_size) * scale) for _ in range(n_assign)]
        )
        if assignment_norm == "batchnorm":
            self.assign_norm = nn.ModuleList([nn.BatchNorm1d(total) for _ in range(n_norm)])
        else:
            self.assign_norm = nn.ParameterList([nn.Parameter(torch.zeros(total)) for _ in range(n_norm)])
        self.residual_centers = nn.ParameterList(
            [nn.Parameter(torch.randn(num_clusters, feature_size) * scale) for _ in range(n_res)]
        )

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        # a checkpoint with one shared assignment norm -> copy it to every branch's norm
        if len(self.assign_norm) > 1:
            first = [k for k in state_dict if k.startswith(f"{prefix}assign_norm.0")]
            for i in range(1, len(self.assign_norm)):
                if first and not any(k.startswith(f"{prefix}assign_norm.{i}") for k in state_dict):
                    for k in first:
                        state_dict[f"{prefix}assign_norm.{i}" + k[len(f"{prefix}assign_norm.0"):]] = state_dict[k].clone()
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)

    @property
    def out_dim(self) -> int:
        return self.num_clusters * self.feature_size

    @staticmethod
    def _pick(container, branch: int):
        return container[branch if len(container) > 1 else 0]

    def _check_branch(self, branch: int) -> None:
        if not 0 <= branch < self.num_branches:
            raise ValueError(f"branch {branch} out of range for a NetVLAD with {self.num_branches} branches")

    def assignment(self, x: torch.Tensor, branch: int = 0, detach_assignment: bool = False,
                   mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Soft assignment ``B x N x (K+G)`` over all clusters, ghosts included (rows sum to 1;
        rows of masked tokens are zero)."""
        self._check_branch(branch)
        b, n, d = x.shape
        if d != self.feature_size:
            raise ValueError(f"NetVLAD expects tokens of size {self.feature_size}, got {d}")
        centers = self._pick(self.assign_centers, branch)
        if detach_assignment:
            centers = centers.detach()
        logits = x.reshape(b * n, d) @ centers.t()
        norm = self._pick(self.assign_norm, branch)
        if self.assignment_norm == "batchnorm":
            logits = norm(logits)
        else:
            logits = logits + (norm.detach() if detach_assignment else norm)
        a = logits.softmax(dim=1).reshape(b, n, -1)
        if mask is not None:
            a = a * mask.to(a.dtype).unsqueeze(-1)
        return a

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None, branch: int = 0,
                detach_assignment: bool = False, return_assignment: bool = False):
        """Aggregate ``x`` (``B x N x D``) into ``B x (K*D)``.

        Returns the flattened descriptor, or ``(descriptor, assignment)`` with the full
        ``B x N x (K+G)`` assignment when ``return_assignment``.
        """
        a_full = self.assignment(x, branch, detach_assignment, mask)
        a = a_full[:, :, : self.num_clusters]  # ghosts dropped here, after the softmax
        res_centers = self._pick(self.residual_centers, branch)  # K x D
        vlad = torch.einsum("bnk,bnd->bkd", a, x) - a.sum(1).unsqueeze(-1) * res_centers.unsqueeze(0)
        if self.intra_norm:
            vlad = F.normalize(vlad, dim=-1)
        vlad = vlad.reshape(x.shape[0], -1)
        if self.final_norm:
            vlad = F.normalize(vlad, dim=-1)
        return (vlad, a_full) if return_assignment else vlad


def t2vlad_netvlad(feature_size: int, num_clusters: int, ghost_clusters: int, two_branches: bool,
                   sharing: str = "thesis", norm_sharing: str = "per_modality",
                   assignment_norm: str = "batchnorm") -> NetVLAD:
    """The NetVLAD of T2VLAD (thesis ch. 6; CVPR 2021): branch 0 = video, 1 = text (one branch
    when only the text uses it).

    ``sharing``: ``"thesis"`` -- one set of assignment centres c and residual centres c' for text
    and video (Eqs. 6.1-6.3); ``"port"`` -- the same layout, but the PaddleVideo port detaches c in
    the video call (the caller passes ``detach_assignment``); ``"separate"`` -- independent VLADs
    (Table 6.5 ablation). ``norm_sharing``: the assignment BatchNorm (or bias) is one per modality
    (``"per_modality"``, the port's choice) or one for both (``"shared"``); ``"separate"`` has one
    per modality by definition.
    """
    if sharing not in ("thesis", "port", "separate"):
        raise ValueError(f"vlad_sharing must be 'thesis', 'port' or 'separate', got {sharing!r}")
    if norm_sharing not in ("per_modality", "shared"):
        raise ValueError(f"vlad_norm_sharing must be 'per_modality' or 'shared', got {norm_sharing!r}")
    if sharing == "separate" and norm_sharing == "shared":
        raise ValueError("vlad_sharing='separate' has one assignment norm per modality; vlad_norm_sharing='shared' contradicts it")
    shared = sharing != "separate"
    return NetVLAD(feature_size, num_clusters, ghost_clusters, num_branches=2 if two_branches else 1,
                   share_assignment=shared, share_assignment_norm=shared and norm_sharing == "shared",
                   share_residual_centers=shared, assignment_norm=assignment_norm)
