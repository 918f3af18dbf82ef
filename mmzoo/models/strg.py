"""Space-Time Region Graphs (STRG) for action recognition (X. Wang, PhD thesis CMU 2019, ch. 6;
Wang and Gupta, "Videos as Space-Time Region Graphs", ECCV 2018). No code was released by the
authors: this is a reference implementation, every gap of the thesis an argument.

Ids: `strg-i3d-r50-charades`, `strg-nl-i3d-r50-charades`, `strg-i3d-r101-charades`,
`strg-nl-i3d-r101-charades` (157 classes, per-class sigmoid, mAP), `strg-i3d-r50-sthv1`,
`strg-nl-i3d-r50-sthv1` (Something-Something v1, 174 classes, softmax, top-1 / top-5). Every row
of Table 6.2 is a configuration: `graphs="none"` (proposals + average pool), `"st"`
(spatial-temporal GCN), `"sim"` (similarity GCN), `"joint"` (both, default);
`proposals_per_frame` 25 / 50 / 100; `nonlocal_placement="5"` for NL I3D + GCN.

Network (section 6.3, Table 6.1):

* backbone: I3D ResNet-50/101 (`i3d_3x1x1` inflation of ch. 5), conv1 5x7x7 stride 1,2,2, pool1
  1x3x3 stride 1,2,2, pool2 3x1x1 stride 2, res5 without spatial stride: 32x224x224 -> 16x14x14;
  optional non-local blocks (ch. 5 placement); then a 1x1x1 conv 2048 -> d = 512;
* nodes: `proposals_per_frame` boxes in each of the 16 feature frames (the proposals of input
  frame `2t` belong to feature frame `t`); RoIAlign 7x7 on the d-channel map, max-pooled to d;
* graphs (`mmzoo.nn.region_graph`): G^sim and G^front / G^back; two 3-layer GCN branches
  (G^sim; G^front + G^back with separate weights), their node outputs summed;
* head: mean over the nodes (d) concatenated with the global average pool of the d-channel map (d),
  dropout 0.3, fc. With `graphs="none"` the node features are averaged without a GCN.

Proposals: `proposal_source="batch"` reads `batch["boxes"]` (B tensors `16, K, 4` in the clip's
pixel coordinates; all-zero boxes are padding), written by `mmzoo propose` and served by the
`charades` / `something-something` DataModules with `--data.proposals FILE`; `"rpn"` runs
torchvision's COCO Faster R-CNN R50-FPN RPN on every other input frame inside `forward`
(`mmzoo.nn.region_proposals.RegionProposer`, frozen, not shared with the backbone).

Training (section 6.4.1): batch 8, lr 0.00125, /10 for the last 10k of 100k iterations, BN
frozen, dropout 0.3, weight decay 1e-4 and momentum 0.9 (not stated in ch. 6: ch. 5's values);
phi, phi' and g ~ N(0, 0.01), the GCN weights zero. The stage-wise schedule is `stage`:
"backbone" (fine-tune I3D with its own fc on the pooled res5 features), "gcn" (backbone frozen,
train the 1x1x1 conv, graphs and head), "joint" (everything, at `joint_lr_factor` x the lr, 30k
iterations); each stage starts from the previous one's checkpoint with `init_checkpoint`.
`stage="full"` (the default) trains everything at once at the full lr (no stage-wise schedule).
With frozen BN the non-local blocks' BN scale and shift (initialised to 0) stay trainable, or a
new block would stay the identity.

R101 (section 6.4.1): 128 frames at 24 fps, 288 x 288, still 16 feature frames: conv1 and pool1
stride 2 in time (`stem_temporal_stride=2`, pool1 2x3x3 as in the non-local networks of ch. 5). Inference: 10 clips
(Charades) or 2 (Something-Something) at short side 256, max-pooled over clips.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import torch
from torch import nn
from torchvision.ops import roi_align

from mmzoo.data.constants import KINETICS_MEAN, KINETICS_STD
from mmzoo.errors import MissingKeysError, NotSupportedError
from mmzoo.models.nonlocal_net import (
    Placement,
    i3d_temporal_kernels,
    placement_positions,
)
from mmzoo.models.recipe import Recipe
from mmzoo.models.slowfast import SlowFastFamilyModule
from mmzoo.nn.nonlocal_block import NonLocal3d
from mmzoo.nn.region_graph import (
    RegionGCN,
    SimilarityGraph,
    masked_node_mean,
    temporal_iou_graphs,
)
from mmzoo.nn.resnet3d import STAGE_DEPTHS, ResNetPathway3d, load_imagenet_inflated
from mmzoo.registry import InputConfig, register_model

__all__ = ["STRG", "boxes_valid"]

PAPER = "Wang and Gupta, Videos as Space-Time Region Graphs (X. Wang, PhD thesis CMU 2019, ch. 6; ECCV 2018)"

Graphs = Literal["joint", "sim", "st", "none"]
Stage = Literal["full", "backbone", "gcn", "joint"]


def boxes_valid(boxes: torch.Tensor) -> torch.Tensor:
    """Which boxes (``..., 4``) are real proposals: positive width and height (zero boxes pad)."""
    return (boxes[..., 2] > boxes[..., 0]) & (boxes[..., 3] > boxes[..., 1])


class _ConcatHead(nn.Module):
    """Concatenate the pooled vectors, dropout, fc (`pool` gives the concatenation)."""

    def __init__(self, dim: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(dim, num_classes)

    def pool(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.cat(list(feats), dim=1)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.fc(self.dropout(self.pool(feats)))


class STRG(SlowFastFamilyModule):
    """I3D (+ NL) backbone with space-time region graph convolutions (thesis ch. 6).

    Args (the head, recipe and shared arguments are `SlowFastFamilyModule`'s: num_classes, head,
    depth, width, dropout, base_lr, lr schedule, freeze_bn, ...):
        frames / crop_size: input clip of `example_input`: one test view (32 frames, 256; R101:
            128, 320). The thesis' FLOPs (153 G I3D, 158 G with the joint GCN) are at the training
            crop, `crop_size=224`.
        stem_temporal_stride: temporal stride of conv1 and of pool1 (kernel 2x3x3 when 2): 1 for
            Table 6.1's 32-frame R50, 2 for the 128-frame R101 (16 feature frames either way).
        inflation_pattern: I3D_3x1x1 inflated blocks ("authors": video-nonlocal-net's, as ch. 5).
        nonlocal_placement / nonlocal_positions: non-local blocks in the backbone (ch. 5 placement
            "5" for the NL I3D + GCN rows; "none" for I3D).
        node_dim: d, the 1x1x1 conv's output and the node feature size (512).
        graphs: "joint" (G^sim branch + G^front/G^back branch), "sim", "st", or "none"
            (Table 6.2's "proposals + average pool").
        gcn_layers: layers per branch (3).
        proposals_per_frame: K nodes per feature frame (50 Charades, 10 Something-Something).
        proposal_source: "batch" (`batch["boxes"]`, precomputed) or "rpn" (run in `forward` when
            the batch has no boxes).
        roi_size / roi_sampling_ratio / roi_aligned: RoIAlign (7x7 as stated; sampling ratio 2
            and half-pixel alignment are not stated: Mask R-CNN / Detectron2's defaults).
        sim_self_edges: self-edges in G^sim (not stated; True as in the non-local operation).
        init_std: std of phi, phi' and g (0.01).
        stage: stage-wise schedule (module docstring): "full" (no schedule), "backbone", "gcn" or
            "joint".
        joint_lr_factor: lr multiplier of the "joint" stage (0.1: "the reduced lr").
        init_checkpoint: a Lightning `.ckpt` or `.safetensors` of this architecture (the previous
            stage) loaded after construction; None: none.
        rpn_pretrained / rpn_min_size / rpn_max_size / rpn_nms_thresh: the on-the-fly RPN's COCO
            weights and test settings (`mmzoo.nn.region_proposals.RegionProposer`).
        pretrained_backbone: inflate torchvision's ImageNet ResNet into the backbone (timm
            `resnetXX.tv_in1k`); the thesis starts from Kinetics-pretrained I3D, for which no
            weights are released. Only at depth 50 / 101 and width 64; unreachable weights warn.
        bn_eps: BN epsilon (1e-5).
    """

    #: what a complete state dict replaces anyway (the hub applies these before loading one)
    init_without_download: ClassVar[dict[str, Any]] = {"pretrained_backbone": False, "rpn_pretrained": False,
                                                       "init_checkpoint": None}

    def __init__(
        self,
        frames: int = 32,
        crop_size: int = 256,
        stem_temporal_stride: int = 1,
        inflation_pattern: Literal["authors", "every_other"] = "authors",
        nonlocal_placement: Placement = "none",
        nonlocal_positions: list[list[int]] = [],  # noqa: B006 - JSON-serialisable default
        node_dim: int = 512,
        graphs: Graphs = "joint",
        gcn_layers: int = 3,
        proposals_per_frame: int = 50,
        proposal_source: Literal["batch", "rpn"] = "batch",
        roi_size: int = 7,
        roi_sampling_ratio: int = 2,
        roi_aligned: bool = True,
        sim_self_edges: bool = True,
        init_std: float = 0.01,
        stage: Stage = "full",
        joint_lr_factor: float = 0.1,
        init_checkpoint: str | None = None,
        rpn_pretrained: bool = True,
        rpn_min_size: int = 800,
        rpn_max_size: int = 1333,
        rpn_nms_thresh: float = 0.7,
        pretrained_backbone: bool = True,
        bn_eps: float = 1e-5,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        hp = self.hparams
        for name, value, allowed in (("graphs", graphs, ("joint", "sim", "st", "none")),
                                     ("stage", stage, ("full", "backbone", "gcn", "joint")),
                                     ("proposal_source", proposal_source, ("batch", "rpn"))):  # fmt: skip
            if value not in allowed:
                raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")
        if hp.head == "verb_noun":
            raise NotSupportedError("STRG has a single classifier: head must be 'single' or 'multilabel'")
        depths = STAGE_DEPTHS[hp.depth]
        self.nonlocal_after = placement_positions(nonlocal_placement, depths, "res4", nonlocal_positions)
        self.backbone = ResNetPathway3d(
            dim_in=3, width=hp.width, depth=hp.depth, stem="visual", stem_temporal_kernel=5,
            stem_stride=(stem_temporal_stride, 2, 2), stem_pool=True, stem_pool_kernel=(stem_temporal_stride, 3, 3),
            stem_pool_stride=(stem_temporal_stride, 2, 2), stem_pool_padding=(0, 1, 1),
            stage_temporal_kernels=i3d_temporal_kernels(depths, inflation_pattern),
            stage_strides=((1, 1, 1), (1, 2, 2), (1, 2, 2), (1, 1, 1)), pool2=True, pool2_kernel=(3, 1, 1),
            pool2_padding=(1, 0, 0), nonlocal_after=self.nonlocal_after, bn_eps=bn_eps,
            nonlocal_kwargs={"scale": True},
        )  # fmt: skip
        c5 = self.backbone.out_channels[-1]
        self.reduce = nn.Conv3d(c5, node_dim, 1)
        self.sim_graph = SimilarityGraph(node_dim, init_std, sim_self_edges) if graphs in ("joint", "sim") else None
        self.sim_gcn = RegionGCN(node_dim, 1, gcn_layers, init_std) if graphs in ("joint", "sim") else None
        self.st_gcn = RegionGCN(node_dim, 2, gcn_layers, init_std) if graphs in ("joint", "st") else None
        self.head = _ConcatHead(2 * node_dim, hp.num_classes, hp.dropout)
        self.baseline_head = _ConcatHead(c5, hp.num_classes, hp.dropout)
        self.proposer = None
        if proposal_source == "rpn":
            from mmzoo.nn.region_proposals import RegionProposer

            self.proposer = RegionProposer(proposals_per_frame, rpn_pretrained, rpn_min_size, rpn_max_size,
                                           rpn_nms_thresh)  # fmt: skip
        self._setup_common()  # ResNet init of the convs and linears, frozen BN, metrics
        for m in self.modules():
            if isinstance(m, NonLocal3d):
                m.reset_parameters(0.01)
                for p in m.parameters():  # frozen BN elsewhere; the block's own BN must learn
                    p.requires_grad_(True)
        for gcn in (self.sim_gcn, self.st_gcn):  # section 6.4.1: g ~ N(0, 0.01), GCN weights zero
            if gcn is not None:
                nn.init.normal_(gcn.g.weight, std=init_std)
                for layer in gcn.layers:
                    for w in layer.weights:
                        nn.init.zeros_(w.weight)
        if self.sim_graph is not None:
            self.sim_graph.reset_parameters(init_std)
        self.imagenet_loaded = False
        if pretrained_backbone and hp.depth in (50, 101) and hp.width == 64:
            self.imagenet_loaded = load_imagenet_inflated(self.backbone, hp.depth)
        if init_checkpoint:
            self.load_stage_checkpoint(init_checkpoint)
        self._apply_stage()

    # ------------------------------------------------------------------ weights
    def load_stage_checkpoint(self, path: str) -> None:
        """Load the weights of an earlier stage (a Lightning `.ckpt`'s `state_dict`, or a
        `.safetensors` file) into this model; every tensor must match (the RPN's may be absent)."""
        if not os.path.isfile(path):
            raise FileNotFoundError(f"init_checkpoint {path} does not exist (--model.init_checkpoint)")
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
            state = state.get("state_dict", state)
        own = self.state_dict()
        missing = [k for k in own if k not in state and not k.startswith("proposer.")]
        unexpected = [k for k in state if k not in own and not k.startswith("proposer.")]
        mismatched = [(k, state[k].shape, own[k].shape) for k in own if k in state and state[k].shape != own[k].shape]
        if missing or unexpected or mismatched:
            raise MissingKeysError(path, missing, unexpected, mismatched,
                                   hint="init_checkpoint must come from an STRG model with the same architecture "
                                        "arguments (depth, node_dim, graphs, nonlocal_placement, num_classes).")
        self.load_state_dict({**own, **{k: v for k, v in state.items() if k in own}})

    def _apply_stage(self) -> None:
        """Trainable parameters of the stage (module docstring); frozen parts get no gradient."""
        stage = self.hparams.stage
        graph_parts = [self.reduce, self.head] + [m for m in (self.sim_graph, self.sim_gcn, self.st_gcn) if m is not None]
        train_backbone = stage != "gcn"
        for p in self.backbone.parameters():
            p.requires_grad_(train_backbone and p.requires_grad)
        for p in self.baseline_head.parameters():
            p.requires_grad_(stage == "backbone")
        for part in graph_parts:  # "full", "gcn", "joint"
            for p in part.parameters():
                p.requires_grad_(stage != "backbone")

    def train(self, mode: bool = True):
        super().train(mode)
        if mode and self.hparams.stage == "gcn":  # the frozen backbone also keeps its BN statistics
            self.backbone.eval()
        return self

    # ------------------------------------------------------------------ forward
    def _batch_inputs(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(video, boxes): the second input slot of the family's steps carries the proposals."""
        video = self._pathways(batch["video"])
        boxes = batch.get("boxes")
        if isinstance(boxes, (list, tuple)):
            boxes = torch.stack([torch.as_tensor(b) for b in boxes]).to(video.device)
        return video, boxes

    def _pathways(self, video: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:  # type: ignore[override]
        if isinstance(video, (list, tuple)):
            if len(video) != 1:
                raise ValueError(f"STRG takes one clip tensor, got a list of {len(video)}")
            video = video[0]
        return video

    def feature_frames(self, frames: int) -> int:
        """Feature frames T' of a clip of `frames` (conv1 and pool1 stride s, pool2 stride 2)."""
        s = self.hparams.stem_temporal_stride
        return max(1, frames // (2 * s * s))

    def propose(self, video: torch.Tensor) -> torch.Tensor:
        """RPN proposals of the first of every `T / T'` frames of `video` (normalised ``B, 3, T, H,
        W``; every other frame at 32 -> 16): ``B, T', K, 4`` in the clip's pixels."""
        if self.proposer is None:
            raise NotSupportedError("proposal_source is 'batch': this model has no RPN (pass proposal_source='rpn')")
        b, _, t, h, w = video.shape
        step = t // self.feature_frames(t)
        mean = video.new_tensor(KINETICS_MEAN).view(1, 3, 1, 1, 1)
        std = video.new_tensor(KINETICS_STD).view(1, 3, 1, 1, 1)
        frames = (video[:, :, ::step] * std + mean).clamp(0, 1).transpose(1, 2).reshape(-1, 3, h, w)
        return self.proposer(frames).view(b, -1, self.hparams.proposals_per_frame, 4)

    def forward_features(self, video: torch.Tensor, boxes: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Named features: `backbone` (res5 map ``B, 2048, T', H', W'``), `reduced` (``B, d, T',
        H', W'``), `boxes` (``B, T', K, 4``), `nodes` (RoI features ``B, N, d``), `node_valid`
        (``B, N``), `gcn` (summed branch outputs ``B, N, d``; the nodes themselves with
        graphs="none"), `pooled` (the head's input ``B, 2d``; ``B, 2048`` in stage "backbone")."""
        video = self._pathways(video)
        res5 = self.backbone(video)
        if self.hparams.stage == "backbone":
            return {"backbone": res5, "pooled": res5.mean(dim=(2, 3, 4))}
        if boxes is None:
            if self.proposer is None:
                raise ValueError("STRG needs proposals: batch['boxes'] (B, T', K, 4; --data.proposals FILE written by "
                                 "`mmzoo propose`) or proposal_source='rpn'")
            boxes = self.propose(video)
        return {"backbone": res5, **self.region_features(res5, boxes, video.shape[-1])}

    def region_features(self, res5: torch.Tensor, boxes: torch.Tensor, input_width: int) -> dict[str, torch.Tensor]:
        """Everything after the backbone: the 1x1x1 conv, RoIAlign node features, graphs, GCN and
        the pooled vector (`forward_features`' names but `backbone`), from the res5 map and the
        proposals in input pixels (``input_width`` gives the RoIAlign scale)."""
        fmap = self.reduce(res5)
        b, d, t, h, w = fmap.shape
        if boxes.dim() != 4 or boxes.shape[0] != b or boxes.shape[1] != t or boxes.shape[-1] != 4:
            raise ValueError(f"boxes must be B, T', K, 4 = {b}, {t}, K, 4 (one set per feature frame); "
                             f"got {tuple(boxes.shape)}")
        boxes = boxes.to(fmap.dtype)
        k = boxes.shape[2]
        valid = boxes_valid(boxes)
        frame_ids = torch.arange(b * t, device=fmap.device, dtype=fmap.dtype).repeat_interleave(k)
        rois = torch.cat([frame_ids[:, None], boxes.reshape(-1, 4)], dim=1)
        scale = w / input_width
        size = self.hparams.roi_size
        per_frame = fmap.transpose(1, 2).reshape(b * t, d, h, w)
        region = roi_align(per_frame, rois, (size, size), scale, self.hparams.roi_sampling_ratio,
                           self.hparams.roi_aligned)  # fmt: skip
        nodes = region.amax(dim=(2, 3)).view(b, t * k, d)
        node_valid = valid.reshape(b, t * k)
        nodes = nodes * node_valid[..., None].to(nodes.dtype)
        z = None
        if self.sim_gcn is not None:
            z = self.sim_gcn(nodes, [self.sim_graph(nodes, node_valid)])
        if self.st_gcn is not None:
            front, back = temporal_iou_graphs(boxes, valid)
            zst = self.st_gcn(nodes, [front, back])
            z = zst if z is None else z + zst
        z = nodes if z is None else z
        pooled = torch.cat([masked_node_mean(z, node_valid), fmap.mean(dim=(2, 3, 4))], dim=1)
        return {"reduced": fmap, "boxes": boxes, "nodes": nodes, "node_valid": node_valid, "gcn": z, "pooled": pooled}

    def extract(self, video, boxes=None, audio_neg=None):
        feats = self.forward_features(video, boxes)
        return [feats["pooled"]], {}

    def _head(self) -> _ConcatHead:
        return self.baseline_head if self.hparams.stage == "backbone" else self.head

    def forward(self, video=None, boxes=None) -> torch.Tensor:  # type: ignore[override]
        """Logits ``B, classes`` of a clip ``B, 3, T, H, W`` and its proposals ``B, T/2, K, 4``."""
        feats, _ = self.extract(video, boxes)
        return self._head()(feats)

    def features(self, video=None, boxes=None) -> torch.Tensor:  # type: ignore[override]
        return self.forward_features(video, boxes)["pooled"]

    # the family's steps call self.head(feats): route them through the stage's classifier
    def _training_loss(self, batch, video, audio, audio_neg):
        feats, aux = self.extract(video, audio)
        loss = self._classification_loss(self._head()(feats), batch)
        return feats, aux, loss, {"train/cls_loss": loss}

    def _eval_step(self, batch: dict, metric, prefix: str) -> dict:
        video, boxes = self._batch_inputs(batch)
        out = self(video, boxes)
        scores = self._scores(out)
        vid = self._video_indices(batch, out.device, prefix)
        self.log(f"{prefix}/loss", self._classification_loss(out, batch), batch_size=out.shape[0], sync_dist=True)
        metric.update(scores, batch["label"], vid)
        return {"scores": scores, "video_index": vid}

    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0):
        return self._scores(self(*self._batch_inputs(batch)))

    def example_input(self, batch_size: int = 1) -> dict[str, Any]:
        hp = self.hparams
        s, t, k = hp.crop_size, self.feature_frames(hp.frames), hp.proposals_per_frame
        out: dict[str, Any] = {"video": torch.randn(batch_size, 3, hp.frames, s, s)}
        if hp.stage != "backbone" and hp.proposal_source == "batch":
            xy = torch.rand(batch_size, t, k, 2) * (s / 2)
            out["boxes"] = torch.cat([xy, xy + 1 + torch.rand(batch_size, t, k, 2) * (s / 2 - 1)], dim=-1)
        return out

    # ------------------------------------------------------------------ recipe
    @property
    def recipe(self) -> Recipe:
        """Section 6.4.1's recipe; the "joint" stage trains at `joint_lr_factor` x the lr."""
        r = super().recipe
        if self.hparams.stage == "joint":
            r = dataclasses.replace(r, base_lr=r.base_lr * self.hparams.joint_lr_factor)
        return r


# --------------------------------------------------------------------------- ids
#: Section 6.4.1: batch 8, lr 0.00125, /10 for the last 10k of 100k iterations, BN frozen,
#: dropout 0.3; weight decay / momentum from ch. 5 (not stated in ch. 6). 100k iterations at batch 8
#: are 100 epochs of Charades' 8k training videos and ~9 of Something-Something v1's 86k.
_RECIPE: dict[str, Any] = {
    "base_lr": 0.00125, "base_batch_size": 8, "lr_schedule": "steps", "lr_steps": [0.9], "warmup_epochs": 0.0,
    "weight_decay": 1e-4, "bn_weight_decay": 0.0, "momentum": 0.9, "dropout": 0.3, "freeze_bn": True,
}
CHARADES: dict[str, Any] = {**_RECIPE, "num_classes": 157, "head": "multilabel", "proposals_per_frame": 50,
                            "recipe_epochs": 100}
STHV1: dict[str, Any] = {**_RECIPE, "num_classes": 174, "head": "single", "proposals_per_frame": 10,
                         "recipe_epochs": 9, "view_aggregation": "max"}
_NL = {"nonlocal_placement": "5"}


def strg_input(dataset: Literal["charades", "something-something"], sampling_rate: int) -> InputConfig:
    """32 frames (6 fps on Charades: every 4th frame of the 24 fps release; every other frame of
    Something-Something's 12 fps), short side in [256, 320], 224 crops, no training flip on
    Something-Something (its left/right templates); test 10 (Charades) or 2 clips at short side
    256, one 256 crop (fully convolutional in the thesis), max-pooled."""
    clips = 10 if dataset == "charades" else 2
    return InputConfig(
        shapes={"video": "B,3,32,224,224 (training), B,3,32,256,256 (test)",
                "boxes": "B,16,K,4 proposals per feature frame, clip pixels (zero boxes pad)"},
        frames=32, sampling_rate=sampling_rate, train_crop=224, test_crop=256, short_side=256,
        train_scale=(256, 320), mean=KINETICS_MEAN, std=KINETICS_STD, test_views=(clips, 1), datamodules=(dataset,),
    )  # fmt: skip


def strg_r101_input() -> InputConfig:
    """The R101 models' clips (section 6.4.1): 128 consecutive frames at 24 fps, 288 crops (short
    side in [320, 400] is our scaling of [256, 320] by 288 / 224: not stated), test at 320."""
    return InputConfig(
        shapes={"video": "B,3,128,288,288 (training), B,3,128,320,320 (test)",
                "boxes": "B,16,K,4 proposals per feature frame, clip pixels (zero boxes pad)"},
        frames=128, sampling_rate=1, train_crop=288, test_crop=320, short_side=320, train_scale=(320, 400),
        mean=KINETICS_MEAN, std=KINETICS_STD, test_views=(10, 1), datamodules=("charades",),
    )  # fmt: skip


_R101 = {"depth": 101, "frames": 128, "crop_size": 320, "stem_temporal_stride": 2}
_IDS: dict[str, dict] = {
    "strg-i3d-r50-charades": {"defaults": {**CHARADES}, "input": strg_input("charades", 4),
                                  "reported": {"charades_map": 36.2, "charades_map_i3d": 31.8, "gflops": 158.0,
                                            "gflops_i3d": 153.0}},
    "strg-nl-i3d-r50-charades": {"defaults": {**CHARADES, **_NL}, "input": strg_input("charades", 4),
                                     "reported": {"charades_map": 37.5, "charades_map_nl_i3d": 33.5}},
    "strg-i3d-r101-charades": {"defaults": {**CHARADES, **_R101}, "input": strg_r101_input(),
                                   "reported": {"charades_map": 39.1}},
    "strg-nl-i3d-r101-charades": {"defaults": {**CHARADES, **_NL, **_R101}, "input": strg_r101_input(),
                                      "reported": {"charades_map": 39.7}},
    "strg-i3d-r50-sthv1": {"defaults": {**STHV1}, "input": strg_input("something-something", 2),
                               "reported": {"sthv1_val_top1": 43.3, "sthv1_val_top5": 75.1}},
    "strg-nl-i3d-r50-sthv1": {"defaults": {**STHV1, **_NL}, "input": strg_input("something-something", 2),
                                  "reported": {"sthv1_val_top1": 46.1, "sthv1_val_top5": 76.8, "sthv1_test_top1": 45.0}},
}

for _id, _cfg in _IDS.items():
    register_model(_id, task="video classification", paper=PAPER, **_cfg)(STRG)
