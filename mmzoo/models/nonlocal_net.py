"""C2D, I3D and Non-local networks for video classification (X. Wang, PhD thesis CMU, ch. 5;
Wang, Girshick, Gupta and He, "Non-local Neural Networks", CVPR 2018).

Ids (Kinetics-400, 32 frames at stride 2): `c2d-r50`, `i3d-r50`, `nl-c2d-r50`, `nl-i3d-r50`,
`c2d-r101`, `i3d-r101`, `nl-i3d-r101`; Charades (157 classes, per-class sigmoid):
`i3d-r101-charades`, `nl-i3d-r101-charades`; the faster 8 x 8 variants of PySlowFast /
PyTorchVideo (8 frames at stride 8, conv1 and pool1 without temporal stride, trained from
scratch), which carry those projects' released weights: `c2d-r50-8x8`, `i3d-r50-8x8`,
`nl-i3d-r50-8x8`. One class, `NonLocalNet`, whose arguments make
every row of Table 5.2 a-g a configuration: the pairwise function (a), the stage of one block (b),
1 / 5 / 10 blocks (c), the extent (d), C2D / I3D_3x3x3 / I3D_3x1x1 (e), I3D + NL (f) and 128
frames (g: `--model.frames 128 --model.freeze_bn true`, with the lr of section 5.4.1).

Backbone (Table 5.1 and the authors' `resnet_video_org.py`): conv1 1x7x7 (C2D) or 5x7x7 (I3D),
stride 2,2,2; pool1 2x3x3 stride 2,2,2 without padding (the authors' code; Table 5.1 prints
3x3x3, see `pool1_kernel`); res2; pool2 2x1x1 stride 2 (Table 5.1 prints 3x1x1: the code's 2 is
the default); res3-res5; global average pool, dropout 0.5, fc. Recipe (section 5.4.1 and the
authors' config): SGD (Nesterov) lr 0.01 at batch 64 scaled linearly, /10 at 150k and 300k of
400k iterations, momentum 0.9, weight decay 1e-4 (none on BN), dropout 0.5, BN fine-tuned.
Test: 10 clips x 3 crops of 256 at short side 256 (the authors' approximation of full-frame
testing), each crop fully convolutional: 7x7 average pools at stride 1, fc and softmax at every
position, the probabilities averaged (`fully_conv_test`).

The Lightning logic, the heads, the metrics and the recipe plumbing are
`mmzoo.models.slowfast.SlowFastFamilyModule`'s; this module adds the single-pathway backbone.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar, Literal, Optional, Sequence, Union

import torch
import torch.nn.functional as F

from mmzoo.data.constants import KINETICS_MEAN, KINETICS_STD
from mmzoo.models.recipe import Recipe
from mmzoo.models.slowfast import SlowFastFamilyModule
from mmzoo.nn.nonlocal_block import NonLocal3d, nonlocal_positions
from mmzoo.nn.resnet3d import STAGE_DEPTHS, ResNetPathway3d, load_imagenet_inflated
from mmzoo.nn.slowfast import MultiPathwayHead
from mmzoo.registry import InputConfig, Weights, register_model

__all__ = ["NonLocalNet", "FullyConvHead", "i3d_temporal_kernels", "placement_positions"]

PAPER = "Wang, Non-local Neural Networks (X. Wang, PhD thesis CMU 2019, ch. 5; CVPR 2018, arXiv 1711.07971)"

Arch = Literal["c2d", "i3d_3x1x1", "i3d_3x3x3"]
Placement = Literal["none", "1", "5", "10", "custom"]
Stage = Literal["res2", "res3", "res4", "res5"]


def i3d_temporal_kernels(depths: Sequence[int], pattern: Literal["authors", "every_other"] = "authors") -> list[list[int]]:
    """Temporal kernel (3 = inflated, 1 = not) of each residual block, per stage.

    "authors" (`obtain_arc` of video-nonlocal-net): every block of res2, blocks 0, 2, ... of res3
    and res4, blocks 1, 3, ... of res5 (R50: [1,1,1], [1,0,1,0], [1,0,1,0,1,0], [0,1,0]);
    "every_other": blocks 0, 2, ... of every stage (the thesis' "every 2 residual blocks")."""
    out = []
    for s, d in enumerate(depths):
        if pattern == "authors" and s == 0:
            out.append([3] * d)
        elif pattern == "authors" and s == 3:
            out.append([3 if i % 2 == 1 else 1 for i in range(d)])
        else:
            out.append([3 if i % 2 == 0 else 1 for i in range(d)])
    return out


def placement_positions(placement: str, depths: Sequence[int], stage: str = "res4",
                        custom: Sequence[Sequence[int]] = ()) -> list[list[int]]:
    """Block indices followed by a non-local block, per stage (Table 5.2b/c).

    "1": one block before the last residual block of `stage`; "5": 2 in res3 + 3 in res4 on
    every other block (R50: res3 [1, 3], res4 [1, 3, 5]; deeper res4: every 7th block, the
    authors' `LAYER_MOD * 4 - 1` for R101: [6, 13, 20]); "10": every block of res3 and res4 (R50;
    R101: res3 [0..3] + res4 every 4th block from 2, our reading of "corresponding" blocks);
    "custom": `custom` (4 lists)."""
    out: list[list[int]] = [[], [], [], []]
    if placement == "none":
        return out
    if placement == "1":
        s = ("res2", "res3", "res4", "res5").index(stage)
        out[s] = nonlocal_positions(depths[s], 1, last=True)
    elif placement == "5":
        out[1] = nonlocal_positions(depths[1], 2, count=2)
        out[2] = nonlocal_positions(depths[2], 2 if depths[2] <= 6 else 7, count=3)
    elif placement == "10":
        out[1] = list(range(depths[1]))
        out[2] = list(range(depths[2])) if depths[2] <= 6 else [i for i in range(depths[2]) if i % 4 == 2]
    elif placement == "custom":
        if len(custom) != 4:
            raise ValueError(f"nonlocal_positions must list 4 stages (res2..res5), got {len(custom)}")
        out = [sorted(int(i) for i in c) for c in custom]
    else:
        raise ValueError(f"unknown non-local placement {placement!r}")
    return out


class FullyConvHead(MultiPathwayHead):
    """`MultiPathwayHead` (global pool, dropout, fc) that, in evaluation with `fully_conv`,
    tests fully convolutionally as the authors' test net does: average pools of
    (T, pool_size, pool_size) at stride 1, the classifier and a softmax at every remaining
    position, the probabilities averaged. It returns `log(mean softmax)`, so that the softmax the
    evaluation applies gives back the averaged probabilities. With a 224 crop (7x7 res5 map) this
    equals the global pool."""

    def __init__(self, dims: Sequence[int], head: str, num_classes: int, num_verbs: int, num_nouns: int,
                 dropout: float, fully_conv: bool = True, pool_size: int = 7) -> None:
        super().__init__(dims, head, num_classes, num_verbs, num_nouns, dropout)  # type: ignore[arg-type]
        self.fully_conv = fully_conv and head == "single"
        self.pool_size = pool_size

    def forward(self, feats: Sequence[torch.Tensor]) -> Union[torch.Tensor, dict[str, torch.Tensor]]:
        if self.training or not self.fully_conv:
            return super().forward(feats)
        x = feats[0]
        kernel = (x.shape[2], min(self.pool_size, x.shape[3]), min(self.pool_size, x.shape[4]))
        x = F.avg_pool3d(x, kernel, stride=1)
        logits = self.fc(x.flatten(2).transpose(1, 2))  # B, positions, classes
        if logits.shape[1] == 1:
            return logits[:, 0]
        return torch.logsumexp(logits.log_softmax(-1), dim=1) - math.log(logits.shape[1])


class NonLocalNet(SlowFastFamilyModule):
    """C2D / I3D ResNet with optional non-local blocks (thesis ch. 5, Tables 5.1-5.2).

    Args (the head, recipe and shared arguments are `SlowFastFamilyModule`'s: num_classes,
    head, depth, width, dropout, base_lr, lr schedule, freeze_bn, ...):
        frames: input frames (32; 128 for the long-clip models of Table 5.2g).
        crop_size: spatial size of `example_input`: one test view (256; 320 for Charades). Table
            5.2e's parameters / FLOPs are at the training crop, `crop_size=224`.
        arch: "c2d", "i3d_3x1x1" (first 1x1 of a block -> 3x1x1; the NL I3D backbone) or
            "i3d_3x3x3" (the 3x3 -> 3x3x3).
        inflation_pattern: which blocks I3D inflates: "authors" (video-nonlocal-net: all of
            res2, every other block of res3-res5; default) or "every_other" (thesis' wording).
        stem_temporal_kernel: conv1's temporal size (None: 1 for C2D, 5 for I3D).
        stem_temporal_stride: conv1's temporal stride (2 in the 32-frame architecture; 1 in the
            8x8 variants of the authors' repo, PySlowFast and PyTorchVideo).
        pool1_kernel / pool1_stride / pool1_padding: pool1 (authors: 2x3x3, stride 2,2,2, no
            padding; Table 5.1: 3x3x3). PyTorchVideo's c2d_r50 / i3d_r50: 1x3x3, 1,2,2, (0,1,1).
        pool2: the 2x1x1 temporal max-pool after res2 (Table 5.1 prints 3x1x1; the code uses 2).
        nonlocal_placement: "none", "1" (before the last block of `nonlocal_stage`), "5" (res3 +
            res4, every other block), "10" (every res3 / res4 block) or "custom".
        nonlocal_stage: the stage of the single block of placement "1" (Table 5.2b).
        nonlocal_positions: with "custom", the block indices of each of res2..res5.
        nonlocal_mode: "softmax" (embedded Gaussian, default), "gaussian", "dot_product" or
            "concatenation" (Table 5.2a).
        nonlocal_scale: scale the embedded-Gaussian exponent by dim_inner^-0.5 (public code: on).
        nonlocal_extent: "spacetime", "space" or "time" (Table 5.2d).
        nonlocal_pool: max-pool before phi and g (authors: 1x2x2).
        nonlocal_res3_groups: temporal groups of the res3 blocks (authors: 4 in their 128-frame
            models, 1 otherwise).
        nonlocal_init_std: std of the non-local convs' Gaussian init (authors: 0.01).
        fully_conv_test: evaluate fully convolutionally (see `FullyConvHead`).
        test_pool_size: spatial kernel of that test pool (7 = 224 / 32).
        nesterov: Nesterov momentum (authors' solver: True).
        bn_eps: BN epsilon (Caffe2: 1e-5).
        pretrained_backbone: start from ImageNet (section 5.4.1): timm's `resnet50.tv_in1k` /
            `resnet101.tv_in1k` (torchvision's ImageNet ResNets; the authors used their Caffe2
            ImageNet models) inflated by copying each 2D kernel into the t planes and dividing by
            t. Only for depth 50 / 101 at width 64; weights that cannot be had give a warning and
            the random init. The classifier and the non-local blocks stay randomly initialised.
    """

    init_without_download: ClassVar[dict[str, Any]] = {"pretrained_backbone": False}
    pathway_names = ("res5",)

    def __init__(
        self,
        frames: int = 32,
        crop_size: int = 256,
        arch: Arch = "c2d",
        inflation_pattern: Literal["authors", "every_other"] = "authors",
        stem_temporal_kernel: Optional[int] = None,
        stem_temporal_stride: int = 2,
        pool1_kernel: list[int] = [2, 3, 3],  # noqa: B006 - JSON-serialisable default
        pool1_stride: list[int] = [2, 2, 2],  # noqa: B006
        pool1_padding: list[int] = [0, 0, 0],  # noqa: B006
        pool2: bool = True,
        nonlocal_placement: Placement = "none",
        nonlocal_stage: Stage = "res4",
        nonlocal_positions: list[list[int]] = [],  # noqa: B006
        nonlocal_mode: Literal["softmax", "gaussian", "dot_product", "concatenation"] = "softmax",
        nonlocal_scale: bool = True,
        nonlocal_extent: Literal["spacetime", "space", "time"] = "spacetime",
        nonlocal_pool: list[int] = [1, 2, 2],  # noqa: B006
        nonlocal_res3_groups: int = 1,
        nonlocal_init_std: float = 0.01,
        fully_conv_test: bool = True,
        test_pool_size: int = 7,
        nesterov: bool = True,
        bn_eps: float = 1e-5,
        pretrained_backbone: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        hp = self.hparams
        if arch not in ("c2d", "i3d_3x1x1", "i3d_3x3x3"):
            raise ValueError(f"unknown arch {arch!r}; expected c2d, i3d_3x1x1 or i3d_3x3x3")
        depths = STAGE_DEPTHS[hp.depth]
        ones = [[1] * d for d in depths]
        inflated = i3d_temporal_kernels(depths, inflation_pattern)
        conv_a = inflated if arch == "i3d_3x1x1" else ones
        conv_b = inflated if arch == "i3d_3x3x3" else ones
        stem_t = stem_temporal_kernel if stem_temporal_kernel is not None else (1 if arch == "c2d" else 5)
        self.nonlocal_after = placement_positions(nonlocal_placement, depths, nonlocal_stage, nonlocal_positions)
        stage_kwargs = [{}, {"temporal_groups": nonlocal_res3_groups}, {}, {}]
        self.backbone = ResNetPathway3d(
            dim_in=3, width=hp.width, depth=hp.depth, stem="visual", stem_temporal_kernel=stem_t,
            stem_stride=(stem_temporal_stride, 2, 2), stem_pool=True, stem_pool_kernel=tuple(pool1_kernel),
            stem_pool_stride=tuple(pool1_stride), stem_pool_padding=tuple(pool1_padding),
            stage_temporal_kernels=conv_a, stage_strides=((1, 1, 1), (1, 2, 2), (1, 2, 2), (1, 2, 2)),
            pool2=pool2, nonlocal_after=self.nonlocal_after, nonlocal_pool=tuple(nonlocal_pool),
            nonlocal_mode=nonlocal_mode, bn_eps=bn_eps, stage_temporal_kernels_b=conv_b,
            nonlocal_kwargs={"scale": nonlocal_scale, "extent": nonlocal_extent}, nonlocal_stage_kwargs=stage_kwargs,
        )  # fmt: skip
        self.head = FullyConvHead([self.backbone.out_channels[-1]], hp.head, hp.num_classes, hp.num_verbs,
                                  hp.num_nouns, hp.dropout, fully_conv_test, test_pool_size)
        self._setup_common()
        for m in self.modules():
            if isinstance(m, NonLocal3d):
                m.reset_parameters(nonlocal_init_std)
        self.imagenet_loaded = False
        if pretrained_backbone and hp.depth in (50, 101) and hp.width == 64:
            self.imagenet_loaded = load_imagenet_inflated(self.backbone, hp.depth)

    def num_nonlocal_blocks(self) -> int:
        return sum(len(p) for p in self.nonlocal_after)

    def _pathways(self, video: Union[torch.Tensor, Sequence[torch.Tensor]]) -> torch.Tensor:  # type: ignore[override]
        if isinstance(video, (list, tuple)):
            if len(video) != 1:
                raise ValueError(f"{type(self).__name__} takes one clip tensor, got a list of {len(video)}")
            video = video[0]
        return video

    def extract(self, video, audio=None, audio_neg=None):
        return [self.backbone(self._pathways(video))], {}

    def example_input(self, batch_size: int = 1) -> dict[str, Any]:
        s = self.hparams.crop_size
        return {"video": torch.randn(batch_size, 3, self.hparams.frames, s, s)}

    @property
    def recipe(self) -> Recipe:
        """Section 5.4.1's recipe: the family's, with the authors' Nesterov momentum."""
        return dataclasses.replace(super().recipe, nesterov=self.hparams.nesterov)


# --------------------------------------------------------------------------- ids
#: Kinetics recipe of section 5.4.1 (400k iterations at batch 64 ~ 104 epochs of 246k videos).
KINETICS_RECIPE: dict[str, Any] = dict(
    base_lr=0.01, base_batch_size=64, lr_schedule="steps", lr_steps=[0.375, 0.75], warmup_epochs=0.0,
    recipe_epochs=104, bn_weight_decay=0.0, weight_decay=1e-4, momentum=0.9, dropout=0.5,
)
#: Charades recipe (section 5.4.3): from the 128-frame Kinetics model, 1 clip per GPU (8 GPUs),
#: lr 0.00125, /10 every 75k of 200k iterations (~200 epochs of 8k videos), BN frozen.
CHARADES_RECIPE: dict[str, Any] = dict(
    num_classes=157, head="multilabel", base_lr=0.00125, base_batch_size=8, lr_schedule="steps",
    lr_steps=[0.375, 0.75], warmup_epochs=0.0, recipe_epochs=200, bn_weight_decay=0.0, weight_decay=1e-4,
    momentum=0.9, dropout=0.5, freeze_bn=True, frames=128, crop_size=320,
)


def nl_kinetics_input(frames: int = 32) -> InputConfig:
    """32 frames at stride 2, short side in [256, 320], 224 crops; test 10 clips x 3 crops of 256."""
    return InputConfig(
        shapes={"video": f"B,3,{frames},224,224 (training), B,3,{frames},256,256 (test views; any size: fully convolutional)"},
        frames=frames,
        sampling_rate=2, train_crop=224, test_crop=256, short_side=256, train_scale=(256, 320), mean=KINETICS_MEAN,
        std=KINETICS_STD, test_views=(10, 3), datamodules=("kinetics",),
    )  # fmt: skip


def nl_8x8_input() -> InputConfig:
    """PySlowFast's 8 x 8 clips: 8 frames at stride 8, otherwise as `nl_kinetics_input`."""
    return dataclasses.replace(nl_kinetics_input(8), sampling_rate=8)


def nl_charades_input() -> InputConfig:
    """128 consecutive frames; training: a 224 window jittered at short side [256, 320] and
    rescaled to 288 x 288 (`train_crop=288`: the `charades` DataModule's `train_resize`); test 10
    clips x 3 crops of 320 at short side 320."""
    return InputConfig(
        shapes={"video": "B,3,128,288,288 (training), B,3,128,320,320 (test)"}, frames=128, sampling_rate=1,
        train_crop=288, test_crop=320, short_side=320, train_scale=(256, 320), mean=KINETICS_MEAN, std=KINETICS_STD,
        test_views=(10, 3), datamodules=("charades",),
    )  # fmt: skip


_S3 = "https://s3.amazonaws.com/video-nonlocal/"
_CONVERTER = "mmzoo.convert.nonlocal_caffe2:convert_nonlocal_caffe2"


def _authors(tag: str, fname: str, top1: float, top5: float) -> Weights:
    return Weights(tag, original_url=_S3 + fname, converter=_CONVERTER, dataset="kinetics-400",
                   metrics={"top1": top1, "top5": top5},
                   notes="video-nonlocal-net Caffe2 pickle (CC-BY-NC 4.0), fully-convolutional 30-view test in its "
                         "README; original_sha256 unknown (no public checksum).")  # fmt: skip


#: PySlowFast's Kinetics/c2 8x8 configs (`ARCH: c2d / i3d`, trained from scratch): stem without
#: temporal stride, pool1 1x3x3 padded, 196 epochs of half-period cosine from lr 0.1 at batch 64
#: after 34 warm-up epochs from 0.01, Nesterov (PySlowFast's default).
PYSLOWFAST_8X8: dict[str, Any] = dict(
    frames=8, stem_temporal_stride=1, pool1_kernel=[1, 3, 3], pool1_stride=[1, 2, 2], pool1_padding=[0, 1, 1],
    pretrained_backbone=False, base_lr=0.1, base_batch_size=64, lr_schedule="cosine", warmup_epochs=34.0,
    warmup_start_factor=0.1, recipe_epochs=196, bn_weight_decay=0.0, weight_decay=1e-4, dropout=0.5,
)
_PTV = "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics/"
_PSF = "https://dl.fbaipublicfiles.com/pyslowfast/model_zoo/kinetics400/"


def _zoo(tag: str, url: str, converter: str, metrics: dict[str, float], notes: str) -> Weights:
    return Weights(tag, original_url=url, converter=converter, dataset="kinetics-400", metrics=metrics,
                   notes=notes + " original_sha256 unknown (no public checksum).")


_NL5 = {"nonlocal_placement": "5"}
_I3D = {"arch": "i3d_3x1x1"}
_IDS: dict[str, dict] = {
    "c2d-r50": dict(
        defaults={**KINETICS_RECIPE},
        input=nl_kinetics_input(),
        weights=[_authors("k400", "c2d_baseline_32x2_IN_pretrain_400k.pkl", 72.0, 90.0)],
        reported={"k400_top1": 71.8, "k400_top5": 89.7},
    ),
    "nl-c2d-r50": dict(
        defaults={**KINETICS_RECIPE, **_NL5},
        input=nl_kinetics_input(),
        weights=[_authors("k400", "c2d_nonlocal_32x2_IN_pretrain_400k.pkl", 73.9, 91.0)],
        reported={"k400_top1": 73.8, "k400_top5": 91.0},
    ),
    "i3d-r50": dict(
        defaults={**KINETICS_RECIPE, **_I3D},
        input=nl_kinetics_input(),
        weights=[_authors("k400", "i3d_baseline_32x2_IN_pretrain_400k.pkl", 73.6, 90.8)],
        reported={"k400_top1": 73.3, "k400_top5": 90.7},
    ),
    "nl-i3d-r50": dict(
        defaults={**KINETICS_RECIPE, **_I3D, **_NL5},
        input=nl_kinetics_input(),
        weights=[_authors("k400", "i3d_nonlocal_32x2_IN_pretrain_400k.pkl", 74.9, 91.6)],
        reported={"k400_top1": 74.9, "k400_top5": 91.6, "k400_128f_top1": 76.5, "k400_128f_top5": 92.6},
    ),
    "c2d-r101": dict(
        defaults={**KINETICS_RECIPE, "depth": 101},
        input=nl_kinetics_input(),
        weights=[],
        reported={"k400_top1": 73.1, "k400_top5": 91.0, "params_m": 43.2, "gflops": 34.2},
    ),
    "i3d-r101": dict(
        defaults={**KINETICS_RECIPE, **_I3D, "depth": 101},
        input=nl_kinetics_input(),
        weights=[],
        reported={"k400_top1": 74.4, "k400_top5": 91.1, "k400_128f_top1": 76.4, "k400_128f_top5": 92.7},
    ),
    "nl-i3d-r101": dict(
        defaults={**KINETICS_RECIPE, **_I3D, **_NL5, "depth": 101},
        input=nl_kinetics_input(),
        weights=[],
        reported={"k400_top1": 76.0, "k400_top5": 92.1, "k400_128f_top1": 77.7, "k400_128f_top5": 93.3},
    ),
    "i3d-r101-charades": dict(
        defaults={**CHARADES_RECIPE, **_I3D, "depth": 101},
        input=nl_charades_input(),
        weights=[],
        reported={"charades_map_trainval_test": 37.2, "charades_map_train_val": 35.5},
    ),
    "nl-i3d-r101-charades": dict(
        defaults={**CHARADES_RECIPE, **_I3D, **_NL5, "depth": 101},
        input=nl_charades_input(),
        weights=[],
        reported={"charades_map_trainval_test": 39.5, "charades_map_train_val": 37.5},
    ),
    "c2d-r50-8x8": dict(
        defaults={**PYSLOWFAST_8X8},
        input=nl_8x8_input(),
        weights=[_zoo("k400", _PTV + "C2D_8x8_R50.pyth", "mmzoo.convert.pytorchvideo:convert_pytorchvideo_resnet",
                      {"top1": 71.46}, "PyTorchVideo model zoo (`c2d_r50`, {'model_state': ...}).")],
        reported={},
    ),
    "i3d-r50-8x8": dict(
        defaults={**PYSLOWFAST_8X8, **_I3D},
        input=nl_8x8_input(),
        weights=[
            _zoo("k400", _PTV + "I3D_8x8_R50.pyth", "mmzoo.convert.pytorchvideo:convert_pytorchvideo_resnet",
                 {"top1": 73.27}, "PyTorchVideo model zoo (`i3d_r50`, {'model_state': ...})."),
            _zoo("k400-pyslowfast", _PSF + "I3D_8x8_R50.pkl", _CONVERTER, {"top1": 73.5, "top5": 90.8},
                 "PySlowFast model zoo Caffe2 pickle (config Kinetics/c2/I3D_8x8_R50)."),
        ],
        reported={},
    ),
    "nl-i3d-r50-8x8": dict(
        defaults={**PYSLOWFAST_8X8, **_I3D, **_NL5},
        input=nl_8x8_input(),
        weights=[_zoo("k400", _PSF + "I3D_NLN_8x8_R50.pkl", _CONVERTER, {"top1": 74.0, "top5": 91.1},
                      "PySlowFast model zoo Caffe2 pickle (config Kinetics/c2/I3D_NLN_8x8_R50: softmax non-local "
                      "after res3 blocks 1, 3 and res4 blocks 1, 3, 5).")],
        reported={},
    ),
}

for _id, _cfg in _IDS.items():
    register_model(_id, task="video classification", paper=PAPER, **_cfg)(NonLocalNet)
