"""TimeCycle parts (Wang, Jabri & Efros, CVPR 2019; thesis ch. 2): the res4 encoder, the affinity
f, the localizer g, the bilinear sampler h, and the cycle-consistency losses.

Shapes: frame features ``(N, c, H, W)`` (``30 x 30`` for 240 x 240 frames), patch features
``(N, c, h, w)`` (``10 x 10`` for 80 x 80 patches); an affinity is ``(N, H*W, h, w)``: for every
patch position, a softmax over the image positions (Eq. 2.1). Image positions are flattened
row-major (``j = y * W + x``). Where the thesis is silent the authors' public code
(xiaolonw/TimeCycle) gives the value; each such point is an argument whose docstring says so.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

__all__ = [
    "RES4_BLOCKS",
    "TRANSLATION_FACTOR",
    "Localizer",
    "Res4Encoder",
    "affinity",
    "frobenius_similarity_loss",
    "grid_loss",
    "inlier_loss",
    "rigid_theta",
    "sample_patch",
]

#: block type and blocks of res2-res4 per depth (10 = one block per stage, a tiny test variant).
RES4_BLOCKS: dict[int, tuple[type, tuple[int, int, int]]] = {
    10: (BasicBlock, (1, 1, 1)),
    18: (BasicBlock, (2, 2, 2)),
    34: (BasicBlock, (3, 4, 6)),
    50: (Bottleneck, (3, 4, 6)),
    101: (Bottleneck, (3, 4, 23)),
}

#: The authors' sampler multiplies translations by 227/210 (`GeometricTnfAffine(offset_factor=227/210)`
#: in their code; a leftover of Rocco et al.'s geometric-matching code).
TRANSLATION_FACTOR = 227.0 / 210.0


class Res4Encoder(nn.Module):
    """ResNet up to res4 with res4's stride removed (feature stride 8), then the authors' 1x1 conv
    to ``out_dim`` channels + ReLU (thesis Sec. 2.3.1: "ResNet-50 without res5 ... reduce the
    spatial stride of res4"; the 1x1 conv 1024 -> 512 is from the authors' code).

    Args:
        depth: 50 (Bottleneck, 1024 channels after res4) or 18 (BasicBlock, 256); 10 for tests.
        width: conv1 channels (64 = ResNet); smaller only for tiny test variants.
        out_dim: c, channels of the output features (512 in the authors' code); 0 = no 1x1 conv
            (the raw res4 features, as the ImageNet / random baselines use).

    ``forward`` returns the ReLU'd, *not* normalised features; normalise with
    ``F.normalize(x, dim=1)`` where the thesis uses l2-normalised features.
    """

    def __init__(self, depth: int = 50, width: int = 64, out_dim: int = 512) -> None:
        super().__init__()
        if depth not in RES4_BLOCKS:
            raise ValueError(f"depth must be one of {sorted(RES4_BLOCKS)}, got {depth}")
        block, counts = RES4_BLOCKS[depth]
        self.conv1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self._inplanes = width
        self.layer1 = self._layer(block, width, counts[0], 1)
        self.layer2 = self._layer(block, width * 2, counts[1], 2)
        self.layer3 = self._layer(block, width * 4, counts[2], 1)  # res4 with its stride removed
        self.res4_dim = width * 4 * block.expansion
        self.out_dim = out_dim or self.res4_dim
        self.afterconv1 = nn.Conv2d(self.res4_dim, out_dim, 1, bias=False) if out_dim else None
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _layer(self, block: type, planes: int, blocks: int, stride: int) -> nn.Sequential:
        down = None
        if stride != 1 or self._inplanes != planes * block.expansion:
            down = nn.Sequential(nn.Conv2d(self._inplanes, planes * block.expansion, 1, stride=stride, bias=False),
                                 nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self._inplanes, planes, stride, down)]
        self._inplanes = planes * block.expansion
        layers += [block(self._inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer3(self.layer2(self.layer1(x)))
        if self.afterconv1 is not None:
            x = self.relu(self.afterconv1(x))
        return x


class Localizer(nn.Module):
    """g: affinity ``(N, H*W, h, w)`` -> (tx, ty, rotation) (thesis: "two convolutional layers and
    one linear layer"; sizes from the authors' code: Conv(H*W -> 128, k4) + LeakyReLU(0.1),
    Conv(128 -> 64, k4) + LeakyReLU(0.1), Linear(64 * 4 * 4 -> 3) for a 10 x 10 patch)."""

    def __init__(self, positions: int, patch_size: int = 10, channels: Sequence[int] = (128, 64),
                 kernel: int = 4) -> None:
        super().__init__()
        c1, c2 = channels
        out = patch_size - 2 * (kernel - 1)
        if out < 1:
            raise ValueError(f"a {patch_size}x{patch_size} patch feature is too small for two {kernel}x{kernel} convs")
        self.conv1 = nn.Conv2d(positions, c1, kernel, bias=False)
        self.conv2 = nn.Conv2d(c1, c2, kernel, bias=False)
        self.act = nn.LeakyReLU(0.1)
        self.linear = nn.Linear(c2 * out * out, 3)
        nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")
        nn.init.kaiming_normal_(self.conv2.weight, mode="fan_out", nonlinearity="relu")
        nn.init.normal_(self.linear.weight, 0.0, 0.01)  # authors: N(0, 0.01), zero bias
        nn.init.zeros_(self.linear.bias)

    def forward(self, aff: torch.Tensor) -> torch.Tensor:
        x = self.act(self.conv2(self.act(self.conv1(aff))))
        return self.linear(x.flatten(1))


def affinity(query: torch.Tensor, base: torch.Tensor, temperature: float) -> torch.Tensor:
    """Eq. 2.1: ``A(j, i) = softmax_j(x_I(j)^T x_p(i) / temperature)`` for l2-normalised image
    features ``base (N, c, H, W)`` and patch features ``query (N, c, h, w)``; returns
    ``(N, H*W, h, w)``, each column summing to 1 over the image positions j."""
    n, _c, h, w = query.shape
    logits = torch.einsum("ncj,nci->nji", base.flatten(2), query.flatten(2)) / temperature
    return logits.softmax(dim=1).reshape(n, -1, h, w)


def rigid_theta(params: torch.Tensor, scale: float = 1.0 / 3.0) -> torch.Tensor:
    """(tx, ty, alpha) ``(N, 3)`` -> affine ``(N, 2, 3)`` ``[[s cos, -s sin, tx], [s sin, s cos, ty]]``
    with the authors' fixed scale s = 1/3 (the patch is a third of the frame)."""
    tx, ty, a = params.unbind(-1)
    cos, sin = torch.cos(a) * scale, torch.sin(a) * scale
    return torch.stack([torch.stack([cos, -sin, tx], -1), torch.stack([sin, cos, ty], -1)], -2)


def _grid(theta: torch.Tensor, h: int, w: int, translation_factor: float) -> torch.Tensor:
    scaled = torch.cat([theta[..., :2], theta[..., 2:] * translation_factor], -1)
    return F.affine_grid(scaled, [theta.shape[0], 1, h, w], align_corners=True)


def sample_patch(feat: torch.Tensor, theta: torch.Tensor, size: int | tuple[int, int],
                 translation_factor: float = TRANSLATION_FACTOR) -> torch.Tensor:
    """h: bilinear crop of ``feat (N, C, H, W)`` along the grid of ``theta (N, 2, 3)`` into a
    ``size`` patch (``F.affine_grid`` / ``F.grid_sample`` with corner-aligned [-1, 1] coordinates,
    the authors' grid; translations multiplied by ``translation_factor``)."""
    h, w = (size, size) if isinstance(size, int) else size
    grid = _grid(theta, h, w, translation_factor).to(feat.dtype)
    return F.grid_sample(feat, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def grid_loss(theta: torch.Tensor, theta_gt: torch.Tensor, grid_size: int = 20) -> torch.Tensor:
    """l_theta (Rocco et al.): ``1/n sum_i ||M(theta)_i - M(theta_gt)_i||^2`` over a ``grid_size``
    x ``grid_size`` grid of points in [-1, 1]^2 (20 x 20 in the authors' code), batch-averaged."""
    lin = torch.linspace(-1, 1, grid_size, device=theta.device, dtype=theta.dtype)
    ys, xs = torch.meshgrid(lin, lin, indexing="ij")
    pts = torch.stack([xs.flatten(), ys.flatten(), torch.ones_like(xs.flatten())], 0)  # 3, n
    diff = (theta - theta_gt.to(theta.dtype)) @ pts  # N, 2, n
    return diff.pow(2).sum(1).mean()


def inlier_loss(aff: torch.Tensor, theta: torch.Tensor, image_size: tuple[int, int],
                translation_factor: float = TRANSLATION_FACTOR, eps: float = 1e-5) -> torch.Tensor:
    """The authors' similarity term: minus Rocco's normalised weak inlier count.

    For each patch position i, the affinity mass ``A(:, i)`` (an ``H x W`` map) is read
    bilinearly at the image location theta sends i to; the score is the sum over i divided by
    the sum of the bilinear weights (+ eps per affinity entry), i.e. the identity-mask warp of
    `WeakInlierCountPool(normalize_inlier_count=True)` without building the mask. Returns the
    batch mean of ``-score``.
    """
    n, hw, h, w = aff.shape
    H, W = image_size
    grid = _grid(theta, h, w, translation_factor).to(aff.dtype).reshape(n * h * w, 1, 1, 2)
    maps = aff.permute(0, 2, 3, 1).reshape(n * h * w, 1, H, W)
    hit = F.grid_sample(maps, grid, mode="bilinear", padding_mode="zeros", align_corners=True).reshape(n, -1)
    ones = torch.ones(1, 1, H, W, device=aff.device, dtype=aff.dtype).expand(n * h * w, 1, H, W)
    weight = F.grid_sample(ones, grid, mode="bilinear", padding_mode="zeros", align_corners=True).reshape(n, -1)
    score = hit.sum(1) / (weight.sum(1) + eps * hw * h * w)
    return -score.mean()


def frobenius_similarity_loss(patch: torch.Tensor, tracked: torch.Tensor) -> torch.Tensor:
    """The thesis's L_sim: ``-<x_p, x_hat_p>_F`` of two l2-normalised patch features ``(N, c, h, w)``
    (summed over channels and positions), batch-averaged."""
    return -(patch * tracked).flatten(1).sum(1).mean()


def default_temperature(dim: int = 512) -> float:
    """The authors' affinity temperature ``dim ** -0.5`` (logits = cosine x sqrt(512))."""
    return 1.0 / math.sqrt(dim)
