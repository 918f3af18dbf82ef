"""STMN: video object detection with an aligned spatial-temporal memory, and its baselines.

Source: Fanyi Xiao, PhD thesis (UC Davis, 2020), chapter 3 (= Xiao & Lee, "Video Object
Detection with an Aligned Spatial-Temporal Memory", ECCV 2018).

One class, :class:`STMN`, covers the six registered ids::

    frames [B,3,T,H,W] -> per-frame trunk (ResNet-101 res5 dilated / VGG-16 conv5_2), stride 16
      R-FCN:      -> 3x3 dil-6 conv 2048->512 + ReLU ("reduce", RPN input) -> 1x1 512->1024 + ReLU ("embed")
      Fast R-CNN: -> (trunk output is the RPN input and the embedding)
    temporal = "none":   the replaced conv (R-FCN 3x3 1024->1024 + ReLU; VGG conv5_3 + ReLU)
    temporal = "stmm":   forward + backward STMM (+ MatchTrans), memories concatenated [2M]
    temporal = "convgru": forward + backward ConvGRU (the Table 3.2 ablations)
    -> "post" 1x1 conv (R-FCN: 1024->512; VGG STMN: 2M->512) -> head
      R-FCN:      position-sensitive RoI pooling, 31 classes, class-agnostic boxes
      Fast R-CNN: RoI pooling 7x7 + fc6 / fc7 (pretrained), 31 classes, per-class boxes
    proposals: a region proposal network on the stride-16 features

Inference on a snippet (:meth:`STMN.detect_snippet`; thesis Sec. 3.4, as the authors' test code
runs it): the snippet is split into ``test_stride`` (10) sequences sampled 1 frame in 10 like
training sequences, windows of ``test_window`` (11) frames slide over each by ``test_window_step``
(1) frames, every frame of every window is detected (ensembled with the single-frame detector
branch, ``ensemble``), a frame's detections from all its windows are pooled (NMS), then Seq-NMS
over the snippet. ``mmzoo test`` gets the same windows from the VID DataModule (``eval_stride``,
``eval_window``, ``eval_window_step``).

[SILENT] points (see the model cards), each a constructor argument:
``w_init`` (STMM: W_z, W_r, W from the replaced conv, filters 0..M-1 forward, M..2M-1 backward,
as the authors split them), ``u_init``,
``bn_stats``, ``w_scale`` (authors: 20 for R-101), ``ensemble`` (how STMN and R-FCN
detections are combined; here the two heads score the same proposals and their class
probabilities / box deltas are averaged), ``seq_nms_*`` (Seq-NMS parameters), ``anchor_sizes``
and the RPN (the thesis uses precomputed DeepMask proposals, the authors' code precomputed
proposals; an RPN is trained here instead).
"""
from __future__ import annotations

import copy
from typing import Any, Literal, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mmzoo.data.constants import IMAGENET_MEAN, IMAGENET_STD, VID_CLASSES
from mmzoo.data.transforms import to_devkit_boxes
from mmzoo.data.vid import eval_window_indices
from mmzoo.metrics.vid_map import VIDMeanAP
from mmzoo.metrics.vid_motion import motion_iou
from mmzoo.models.base import ZooModule
from mmzoo.nn.rfcn import (
    FastRCNNHead,
    PSRoIHead,
    ResNetTrunk,
    RoILoss,
    VGGTrunk,
    build_rpn,
    merge_detections,
    postprocess,
    run_rpn,
)
from mmzoo.nn.seq_nms import seq_nms
from mmzoo.nn.stmm import BidirectionalMemory
from mmzoo.registry import InputConfig, Weights, register_model

__all__ = ["STMN", "VID_LABEL_NAMES"]

#: The 31 outputs of the VID detectors: background, then the 30 VID classes in the devkit order.
VID_LABEL_NAMES = ("__background__", *VID_CLASSES)


class STMN(ZooModule):
    """STMN / R-FCN / Fast R-CNN video object detector (see the module docstring).

    Args:
        backbone: "resnet101" (R-FCN ids), "vgg16" (Fast R-CNN ids), or a smaller timm ResNet
            ("resnet18", "resnet50") for tests.
        detector: "rfcn" or "fastrcnn".
        temporal: "stmm" (STMN), "convgru" (ablation) or "none" (the single-frame baseline).
        matchtrans: align memories with MatchTrans (STMN: True; Table 3.2 "No-MatchTrans": False).
        matchtrans_k: MatchTrans half window (thesis: 2 -> 5x5).
        affinity_grad: back-propagate through the MatchTrans affinity (authors: no).
        bidirectional: forward and backward memories, concatenated (thesis: yes).
        mem_channels: memory channels per direction (thesis: 512).
        embed_channels: R-FCN embedding channels fed to the memory (authors: 1024).
        head_channels: channels fed to the R-FCN head (authors: 512).
        num_classes: classes including background (VID: 31).
        pretrained_backbone: ImageNet weights from timm's Hub when reachable (else random init
            and a warning).
        w_scale: factor on the W * F_t terms of the STMM (authors: 20 for R-101, 1 for VGG-16).
        bn_k: BN* saturation in standard deviations (thesis: 3).
        bn_stats: BN* statistics, "global_positive" (authors), "channel_positive", "global_all".
        u_init: "default" (PyTorch conv init; authors: Torch7 default) or "zeros".
        w_init: "replaced_conv" (W's from the conv the memory replaces) or "random"; ``None``: the
            thesis's choice per cell (Sec. 3.2.2): "replaced_conv" for the STMM, "random" for the
            ConvGRU ablation (STMM's change to ConvGRU is to initialise W_z, W_r, W "with the
            weights of the convolution layer that is swapped out, rather than ... random weights").
        stmm_placement: "replace" (the memory takes the place of the last conv before the RoI
            pooling: R-FCN's 3x3 1024->1024, VGG's conv5_3; thesis / authors) or "append" (that
            conv and its ReLU are kept and the memory reads their output; W's then start random).
        merge_init: VGG STMN only: "average" initialises the 1x1 merge of the two directions
            to their mean (so the pretrained fc6 sees conv5_3-like input) or "default".
        reinit_head: re-initialise the prediction layers (Table 3.2 "ConvGRU-FreshFC").
        ensemble: "score_avg" (average class probabilities and box deltas of the memory head
            and a single-frame head on the same proposals), "concat" (pool both detection
            sets before NMS / Seq-NMS) or "none".
        train_ensemble_branch: train the single-frame branch with its own RoI losses (True), or
            freeze it as the detector the STMN started from (False; the thesis ensembles with
            "the initial R-FCN detector", see :meth:`init_from_single_frame`; the shared trunk
            is still fine-tuned).
        seq_nms: apply Seq-NMS over each snippet at test time.
        seq_nms_link_iou / seq_nms_nms_iou / seq_nms_rescore / seq_nms_top_k: Seq-NMS
            parameters (Han et al. defaults: 0.5, 0.3, "avg"; top_k boxes per class and frame).
        anchor_sizes / aspect_ratios: RPN anchors (one stride-16 level).
        rpn_pre_nms_train / rpn_pre_nms_test / rpn_post_nms_train / rpn_post_nms_test: RPN
            proposal counts (authors: 300 RoIs per frame).
        roi_batch_size / fg_fraction / ohem: RoI loss sampling (authors: 128 of 300, 0.25,
            "balanced" OHEM).
        ps_pool: R-FCN pooling, "align" (ps_roi_align) or "max" (ps_roi_pool).
        grid: position-sensitive grid k (R-FCN: 7).
        test_window: frames per inference window (thesis: 11; its ablation: 3, 7, 11, 15).
        test_stride / test_window_step: :meth:`detect_snippet` windows sample 1 frame in
            ``test_stride`` (10, as training) and start every ``test_window_step`` (1) sampled
            frames (see :func:`mmzoo.data.vid.eval_window_indices`).
        test_score_thresh / test_nms / max_dets: per-frame post-processing.
        lr / lr_drop_epoch / momentum / weight_decay: SGD at lr 1e-3, x0.1 at ``lr_drop_epoch``
            (thesis: "when the loss plateaus"); momentum 0.9, weight decay 0 for ResNet
            (authors) and 5e-4 for VGG-16 (Fast R-CNN's value).
        train_frames / train_stride / short_side / max_side: the data configuration the model
            was designed for (T = 7 at stride 10, frames 360 / 600), recorded in config.json.
    """

    init_without_download = {"pretrained_backbone": False}

    def __init__(
        self,
        backbone: str = "resnet101",
        detector: Literal["rfcn", "fastrcnn"] = "rfcn",
        temporal: Literal["stmm", "convgru", "none"] = "stmm",
        matchtrans: bool = True, matchtrans_k: int = 2,
        affinity_grad: bool = False,
        bidirectional: bool = True,
        mem_channels: int = 512, embed_channels: int = 1024, head_channels: int = 512,
        num_classes: int = 31,
        pretrained_backbone: bool = True,
        w_scale: float = 20.0, bn_k: float = 3.0,
        bn_stats: Literal["global_positive", "channel_positive", "global_all"] = "global_positive",
        u_init: Literal["default", "zeros"] = "default",
        w_init: Optional[Literal["replaced_conv", "random"]] = None,
        stmm_placement: Literal["replace", "append"] = "replace",
        merge_init: Literal["average", "default"] = "average",
        reinit_head: bool = False,
        ensemble: Literal["score_avg", "concat", "none"] = "score_avg",
        train_ensemble_branch: bool = True,
        seq_nms: bool = True,
        seq_nms_link_iou: float = 0.5, seq_nms_nms_iou: float = 0.3,
        seq_nms_rescore: Literal["avg", "max"] = "avg",
        seq_nms_top_k: int = 20,
        anchor_sizes: Sequence[int] = (64, 128, 256, 512),
        aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
        rpn_pre_nms_train: int = 6000, rpn_pre_nms_test: int = 6000,
        rpn_post_nms_train: int = 300, rpn_post_nms_test: int = 300,
        roi_batch_size: int = 128, fg_fraction: float = 0.25,
        ohem: Literal["balanced", "none"] = "balanced",
        ps_pool: Literal["align", "max"] = "align",
        grid: int = 7,
        test_window: int = 11, test_stride: int = 10, test_window_step: int = 1,
        test_score_thresh: float = 1e-3, test_nms: float = 0.3, max_dets: int = 300,
        lr: float = 1e-3, lr_drop_epoch: int = 6,
        momentum: float = 0.9, weight_decay: float = 0.0,
        train_frames: int = 7, train_stride: int = 10,
        short_side: int = 360, max_side: int = 600,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.class_names = VID_LABEL_NAMES if num_classes == 31 else tuple(str(i) for i in range(num_classes))
        ens = ensemble != "none" and temporal != "none"
        if detector == "rfcn":
            self.backbone = ResNetTrunk(backbone, pretrained_backbone)
            c = self.backbone.out_channels
            self.reduce = nn.Sequential(nn.Conv2d(c, head_channels, 3, padding=6, dilation=6), nn.ReLU(inplace=True))
            self.embed = nn.Sequential(nn.Conv2d(head_channels, embed_channels, 1), nn.ReLU(inplace=True))
            rpn_in, mem_in = head_channels, embed_channels
            replaced = nn.Conv2d(embed_channels, embed_channels, 3, padding=1)
            make_post = lambda cin: nn.Conv2d(cin, head_channels, 1)  # noqa: E731
            make_head = lambda: PSRoIHead(head_channels, num_classes, grid, 1 / 16, ps_pool, True)  # noqa: E731
        elif detector == "fastrcnn":
            if backbone != "vgg16":
                raise ValueError("detector='fastrcnn' is defined on backbone='vgg16'")
            trunk = VGGTrunk(pretrained_backbone)
            replaced, fc6, fc7 = trunk.conv5_3, trunk.fc6, trunk.fc7
            del trunk.conv5_3, trunk.fc6, trunk.fc7
            self.backbone = trunk
            self.reduce = self.embed = nn.Identity()
            rpn_in = mem_in = 512
            make_post = lambda cin: nn.Conv2d(cin, 512, 1)  # noqa: E731
            head = FastRCNNHead(fc6, fc7, num_classes)
            make_head = lambda: head  # noqa: E731  (one head, shared with the ensemble branch)
        else:
            raise ValueError(f"unknown detector {detector!r}")

        self.pre_temporal = None
        if temporal == "none":
            self.temporal = nn.Sequential(replaced, nn.ReLU(inplace=True))
            self.post = make_post(embed_channels) if detector == "rfcn" else nn.Identity()
        else:
            if stmm_placement == "append":
                self.pre_temporal = nn.Sequential(copy.deepcopy(replaced), nn.ReLU(inplace=True))
            elif stmm_placement != "replace":
                raise ValueError(f"stmm_placement must be 'replace' or 'append', got {stmm_placement!r}")
            self.temporal = BidirectionalMemory(
                cell=temporal, bidirectional=bidirectional, in_channels=mem_in, mem_channels=mem_channels,
                w_scale=w_scale, bn_k=bn_k, bn_stats=bn_stats, u_init=u_init, matchtrans=matchtrans,
                matchtrans_k=matchtrans_k, affinity_grad=affinity_grad)
            if self._w_from_conv():
                self.temporal.init_from_conv(replaced)
            self.post = make_post(self.temporal.out_channels)
            if detector == "fastrcnn" and merge_init == "average":
                with torch.no_grad():
                    w = torch.zeros(512, self.temporal.out_channels, 1, 1)
                    n_dir = self.temporal.out_channels // mem_channels
                    for d in range(n_dir):
                        w[:, d * mem_channels:(d + 1) * mem_channels, 0, 0] = torch.eye(512, mem_channels) / n_dir
                    self.post.weight.copy_(w.to(self.post.weight))
                    self.post.bias.zero_()
        self.head = make_head()
        if reinit_head:
            if isinstance(self.head, FastRCNNHead):
                self.head.reset_parameters()
            else:
                self.head = make_head()
        self.ensemble_branch = None
        if ens:
            branch = {"conv": nn.Sequential(copy.deepcopy(replaced), nn.ReLU(inplace=True))}
            if detector == "rfcn":
                branch["post"] = make_post(embed_channels)
                branch["head"] = make_head()
            self.ensemble_branch = nn.ModuleDict(branch)
            if not train_ensemble_branch:
                for p in self.ensemble_branch.parameters():
                    p.requires_grad_(False)
        self.rpn = build_rpn(rpn_in, anchor_sizes, aspect_ratios, rpn_pre_nms_train, rpn_pre_nms_test,
                             rpn_post_nms_train, rpn_post_nms_test)
        self.roi_loss = RoILoss(roi_batch_size=roi_batch_size, fg_fraction=fg_fraction, ohem=ohem)
        n_obj = num_classes - 1
        names = VID_CLASSES if num_classes == 31 else None
        self.val_map = VIDMeanAP(n_obj, class_names=names)
        self.test_map = VIDMeanAP(n_obj, class_names=names, breakdown=True)  # FGFA's speed / size mAPs
        self._buffers_eval: dict[str, dict] = {}

    # ------------------------------------------------------------------ initialisation
    def _w_from_conv(self) -> bool:
        hp = self.hparams
        w_init = hp.w_init or ("replaced_conv" if hp.temporal == "stmm" else "random")
        return w_init == "replaced_conv" and hp.stmm_placement == "replace"

    @torch.no_grad()
    def init_from_single_frame(self, base: "STMN") -> None:
        """Transfer a trained single-frame detector (``rfcn-r101`` / ``fastrcnn-vgg16`` with the
        same sizes) into this memory model, as thesis Sec. 3.2.2 does: trunk, RPN, post conv and
        prediction layers are copied, the memories' W_z, W_r, W start from the conv they replace,
        and the single-frame ensemble branch becomes that detector ("the initial R-FCN detector
        from which it started", used for the test-time ensemble)."""
        if base.hparams.temporal != "none" or base.hparams.detector != self.hparams.detector:
            raise ValueError("init_from_single_frame needs a single-frame model (temporal='none') of the same detector")
        for name in ("backbone", "reduce", "embed", "rpn", "head"):
            getattr(self, name).load_state_dict(getattr(base, name).state_dict())
        replaced = base.temporal[0]
        if self.hparams.temporal == "none":
            self.temporal.load_state_dict(base.temporal.state_dict())
        elif self.hparams.stmm_placement == "replace":
            if self._w_from_conv():
                self.temporal.init_from_conv(replaced)
        else:
            self.pre_temporal.load_state_dict(base.temporal.state_dict())
        if isinstance(base.post, nn.Conv2d) and isinstance(self.post, nn.Conv2d) and base.post.weight.shape == self.post.weight.shape:
            self.post.load_state_dict(base.post.state_dict())
        if self.ensemble_branch is not None:
            self.ensemble_branch["conv"].load_state_dict(base.temporal.state_dict())
            if "post" in self.ensemble_branch:
                self.ensemble_branch["post"].load_state_dict(base.post.state_dict())
                self.ensemble_branch["head"].load_state_dict(base.head.state_dict())

    # ------------------------------------------------------------------ network
    def example_input(self, batch_size: int = 1) -> dict[str, Any]:
        """``forward`` keyword arguments for the FLOP count (:meth:`ZooModule.count_flops`): one
        ``test_window`` window (11 frames) at 337x600, the thesis's speed setting (Sec. 3.4), with
        ``rpn_post_nms_test`` (300) RoIs per frame given as proposals and ``raw=True``, so that the
        network (trunk, memory, ensemble branch, RPN head, RoI heads) is counted and proposal decoding
        and NMS (no FLOPs, no meta-device kernels) are not."""
        t, h, w = self.hparams.test_window, 337, 600
        box = torch.tensor([0.0, 0.0, w / 2, h / 2])
        proposals = [box.repeat(self.hparams.rpn_post_nms_test, 1) for _ in range(batch_size * t)]
        return {"video": torch.randn(batch_size, 3, t, h, w), "proposals": proposals, "raw": True}

    def _trunk(self, frames: torch.Tensor):
        x = self.backbone(frames)
        base = self.reduce(x)
        return base, self.embed(base)

    def _temporal(self, emb: torch.Tensor, b: int, t: int) -> torch.Tensor:
        if self.hparams.temporal == "none":
            return self.post(self.temporal(emb))
        if self.pre_temporal is not None:
            emb = self.pre_temporal(emb)
        mem = self.temporal(emb.view(b, t, *emb.shape[1:]))
        return self.post(mem.flatten(0, 1))

    def _branch(self, emb: torch.Tensor) -> torch.Tensor:
        h = self.ensemble_branch["conv"](emb)
        return self.ensemble_branch["post"](h) if "post" in self.ensemble_branch else h

    def _branch_head(self):
        return self.ensemble_branch["head"] if "head" in self.ensemble_branch else self.head

    def _window(self, video: torch.Tensor, sizes: list, gt_boxes=None, proposals=None, rpn_maps: bool = False):
        """Network outputs of one window: memory features, ensemble-branch features, proposals,
        RPN losses (zeros with given proposals) and, with ``rpn_maps``, the RPN head's maps."""
        b, _, t, h, w = video.shape
        frames = video.permute(0, 2, 1, 3, 4).reshape(b * t, 3, h, w)
        base, emb = self._trunk(frames)
        feats = self._temporal(emb, b, t)
        maps = self.rpn.head([base]) if rpn_maps else None
        if proposals is None:
            proposals, rpn_losses = run_rpn(self.rpn, frames, sizes, base, gt_boxes)
        else:  # precomputed proposals (the thesis: DeepMask; the authors' released proposal files)
            proposals = [p.to(video.device, video.dtype).reshape(-1, 4) for p in proposals]
            zero = video.new_zeros(())
            rpn_losses = {"loss_objectness": zero, "loss_rpn_box_reg": zero}
        branch = self._branch(emb) if self.ensemble_branch is not None else None
        return feats, branch, proposals, rpn_losses, maps

    @staticmethod
    def _rois(proposals: list) -> torch.Tensor:
        """[K, 5] RoIs (frame index, x1, y1, x2, y2) of per-frame proposal boxes."""
        return torch.cat([torch.cat([torch.full((len(p), 1), float(i), device=p.device), p], 1)
                          for i, p in enumerate(proposals)])

    def forward_features(self, video: torch.Tensor, sizes: Optional[list] = None, proposals: Optional[list] = None,
                         window: Optional[int] = None, raw: bool = False) -> dict[str, torch.Tensor]:
        """Named features (`mmzoo extract`): "memory" (``B, T, C, h, w``: the spatial memory of
        each frame after the STMM, as the detection head reads it; the memory restarts every
        ``window`` frames, default ``test_window``, as in ``forward``) and "pooled" (``B, C``,
        its average over frames and positions). ``sizes`` / ``proposals`` / ``raw`` (``forward``'s)
        do not change the memory and are accepted only so that ``forward``'s inputs can be passed."""
        b, _, t, h, w = video.shape
        win = window or self.hparams.test_window
        mems = []
        for s in range(0, t, win):
            chunk = video[:, :, s:s + win]
            tc = chunk.shape[2]
            _, emb = self._trunk(chunk.permute(0, 2, 1, 3, 4).reshape(b * tc, 3, h, w))
            mem = self._temporal(emb, b, tc)
            mems.append(mem.view(b, tc, *mem.shape[1:]))
        memory = torch.cat(mems, 1)
        return {"memory": memory, "pooled": memory.mean(dim=(1, 3, 4))}

    def forward(self, video: torch.Tensor, sizes: Optional[list] = None, proposals: Optional[list] = None,
                raw: bool = False, window: Optional[int] = None) -> list[dict]:
        """Detections for every frame of ``video`` [B, 3, T, H, W] (pixels of the input frames).

        Frames are processed in consecutive windows of ``window`` (default ``test_window``) frames
        (the memory restarts at each window); Seq-NMS is not applied here (see :meth:`detect_snippet`). ``sizes``: the valid
        (h, w) of each of the ``B*T`` frames (padding excluded); defaults to the full frame.
        ``proposals``: optional precomputed boxes, one [K, 4] tensor per frame (the RPN is then
        skipped). Returns ``B*T`` dicts ``{"boxes" [N,4], "scores" [N], "labels" [N]}``,
        sample-major.

        ``raw=True`` returns, per window, the network's outputs before box decoding and NMS:
        ``{"rpn_objectness", "rpn_deltas", "rois" [K,5], "logits" [K,C], "deltas"}`` (and
        ``"branch_logits"`` / ``"branch_deltas"`` of the single-frame ensemble branch).
        """
        b, _, t, h, w = video.shape
        sizes = sizes or [(h, w)] * (b * t)
        outs: list[list[dict]] = [[] for _ in range(b)]
        windows: list[dict] = []
        win = window or self.hparams.test_window
        for s in range(0, t, win):
            chunk = video[:, :, s:s + win]
            tc = chunk.shape[2]
            sel = [i * t + s + k for i in range(b) for k in range(tc)]
            args = (chunk, [sizes[j] for j in sel], None if proposals is None else [proposals[j] for j in sel])
            if raw:
                windows.append(self._raw_window(*args))
                continue
            dets = self._detect_window(*args)
            for i in range(b):
                outs[i].extend(dets[i * tc:(i + 1) * tc])
        return windows if raw else [d for per in outs for d in per]

    def _raw_window(self, video, sizes, proposals=None) -> dict:
        feats, branch, proposals, _, (objectness, rpn_deltas) = self._window(video, sizes, proposals=proposals,
                                                                             rpn_maps=True)
        rois = self._rois(proposals)
        out = {"rpn_objectness": objectness[0], "rpn_deltas": rpn_deltas[0], "rois": rois}
        out["logits"], out["deltas"] = self.head(feats, rois)
        if branch is not None:
            out["branch_logits"], out["branch_deltas"] = self._branch_head()(branch, rois)
        return out

    def _detect_window(self, video, sizes, proposals=None):
        hp = self.hparams
        feats, branch, proposals, _, _ = self._window(video, sizes, proposals=proposals)
        n = len(proposals)
        rois = self._rois(proposals)
        logits, deltas = self.head(feats, rois)
        post = dict(score_thresh=hp.test_score_thresh, nms_thresh=hp.test_nms, max_dets=hp.max_dets)
        if branch is None:
            return postprocess(logits, deltas, rois, sizes, n, **post)
        l2, d2 = self._branch_head()(branch, rois)
        if hp.ensemble == "score_avg":
            probs = (F.softmax(logits, 1) + F.softmax(l2, 1)) / 2
            return postprocess(probs, (deltas + d2) / 2, rois, sizes, n, probs=True, **post)
        a = postprocess(logits, deltas, rois, sizes, n, **{**post, "nms_thresh": 1.0})
        c = postprocess(l2, d2, rois, sizes, n, **{**post, "nms_thresh": 1.0})
        return [merge_detections([x, y], hp.test_nms, hp.max_dets) for x, y in zip(a, c)]

    def apply_seq_nms(self, frames: list[dict]) -> list[dict]:
        hp = self.hparams
        return seq_nms(frames, hp.num_classes - 1, hp.seq_nms_link_iou, hp.seq_nms_nms_iou, hp.seq_nms_rescore,
                       top_k=hp.seq_nms_top_k)

    def test_windows(self, num_frames: int) -> list[list[int]]:
        """Frame positions of each test window over a snippet of ``num_frames`` frames (a
        single-frame model, whose detections do not depend on the window, tiles the frames)."""
        hp = self.hparams
        if hp.temporal == "none":
            return eval_window_indices(num_frames, hp.test_window, 1, hp.test_window)
        return eval_window_indices(num_frames, hp.test_window, hp.test_stride, hp.test_window_step)

    @torch.no_grad()
    def detect_snippet(self, video: torch.Tensor, sizes: Optional[list] = None, load=None) -> list[dict]:
        """Every frame of one snippet [1, 3, T, H, W] with the thesis's test protocol (module
        docstring): strided sliding windows, a frame's detections pooled over its windows, then
        (optionally) Seq-NMS. ``load(positions) -> (video, sizes)`` may replace ``video`` (then an
        int: the frame count) to read each window's frames on demand."""
        n = video if isinstance(video, int) else video.shape[2]
        if load is None:
            sizes = sizes or [tuple(video.shape[-2:])] * n
            load = lambda pos: (video[:, :, pos], [sizes[i] for i in pos])  # noqa: E731
        per_frame: list[list[dict]] = [[] for _ in range(n)]
        for pos in self.test_windows(n):
            clip, clip_sizes = load(pos)
            for i, d in zip(pos, self(clip, clip_sizes, window=len(pos))):
                per_frame[i].append(d)
        dets = [merge_detections(d, self.hparams.test_nms, self.hparams.max_dets) for d in per_frame]
        return self.apply_seq_nms(dets) if self.hparams.seq_nms else dets

    # ------------------------------------------------------------------ training
    def _losses(self, batch: dict) -> dict:
        video = batch["video"]
        sizes = [m["size"] for m in batch["meta"]]
        gtb = [b.to(video.device) for b in batch["boxes"]]
        gtl = [lab.to(video.device) for lab in batch["labels"]]
        feats, branch, proposals, rpn_losses, _ = self._window(video, sizes, gtb, batch.get("proposals"))
        proposals = [p.detach() for p in proposals]
        rois, labels, targets = self.roi_loss.label(proposals, gtb, gtl)
        logits, deltas = self.head(feats, rois)
        losses = {"loss_rpn_cls": rpn_losses["loss_objectness"], "loss_rpn_box": rpn_losses["loss_rpn_box_reg"]}
        losses.update(self.roi_loss(logits, deltas, labels, targets, rois[:, 0]))
        if branch is not None and self.hparams.train_ensemble_branch:
            l2, d2 = self._branch_head()(branch, rois)
            for k, v in self.roi_loss(l2, d2, labels, targets, rois[:, 0]).items():
                losses["ens_" + k] = v
        return losses

    def training_step(self, batch: dict, batch_idx: int):
        losses = self._losses(batch)
        loss = sum(losses.values())
        bs = batch["video"].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        for k, v in losses.items():
            self.log(f"train/{k}", v, batch_size=bs)
        return loss

    def configure_optimizers(self):
        hp = self.hparams
        params = [p for p in self.parameters() if p.requires_grad]
        opt = torch.optim.SGD(params, lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay)
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[hp.lr_drop_epoch], gamma=0.1)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}

    # ------------------------------------------------------------------ evaluation
    def _eval_step(self, batch: dict, metric: VIDMeanAP, buffers: dict) -> None:
        """Detect the batch's windows (each one memory window, as the DataModule built it) and
        buffer per snippet and frame; a frame in several overlapping windows gets them all."""
        video = batch["video"]
        meta = batch["meta"]
        dets = self(video, [m["size"] for m in meta], batch.get("proposals"), window=video.shape[2])
        for d, m, gb, gl in zip(dets, meta, batch["boxes"], batch["labels"]):
            pred = {"boxes": to_devkit_boxes(d["boxes"], m), "scores": d["scores"], "labels": d["labels"]}
            buf = buffers.setdefault(m["snippet"], {"pred": {}, "gt": {}})
            buf["pred"].setdefault(m["frame"], []).append(pred)
            if m["frame"] not in buf["gt"]:  # ground truth exactly as the XML gives it when known
                gtb = m["xml_boxes"] if "xml_boxes" in m else to_devkit_boxes(gb, m)
                buf["gt"][m["frame"]] = {"boxes": torch.as_tensor(gtb, dtype=torch.float64), "labels": gl.cpu(),
                                         "motion_iou": m.get("motion_iou"), "track_ids": m.get("track_ids", []),
                                         "eval_index": m.get("eval_index", -1)}
        for sid in {m["snippet"] for m in meta if m["last"]}:
            self._flush(sid, metric, buffers)

    def _flush(self, sid: str, metric: VIDMeanAP, buffers: dict) -> None:
        """Merge each frame's windows, Seq-NMS over the snippet in frame order, update the metric
        with each frame's evaluation-list index (when known) and motion IoU (computed here from the
        track ids when the data layer gave none)."""
        buf = buffers.pop(sid)
        frames = sorted(buf["pred"])
        preds = [merge_detections(buf["pred"][f], self.hparams.test_nms, self.hparams.max_dets) for f in frames]
        preds = self.apply_seq_nms(preds) if self.hparams.seq_nms else preds
        gts = [buf["gt"][f] for f in frames]
        if any(g["motion_iou"] is None for g in gts):
            mi = motion_iou([f for f, g in zip(frames, gts) for _ in g["labels"]],
                            [t for g in gts for t in g["track_ids"]], torch.cat([g["boxes"] for g in gts]))
            for g, m in zip(gts, torch.split(mi, [len(g["labels"]) for g in gts])):
                g["motion_iou"] = m
        ids = [g["eval_index"] for g in gts]
        metric.update(preds, [{k: g[k] for k in ("boxes", "labels", "motion_iou")} for g in gts],
                      frame_ids=ids if min(ids) >= 0 else None)

    def validation_step(self, batch: dict, batch_idx: int):
        self._eval_step(batch, self.val_map, self._buffers_eval.setdefault("val", {}))

    def test_step(self, batch: dict, batch_idx: int):
        self._eval_step(batch, self.test_map, self._buffers_eval.setdefault("test", {}))

    def _epoch_end(self, stage: str, metric: VIDMeanAP) -> None:
        bufs = self._buffers_eval.setdefault(stage, {})
        for sid in list(bufs):  # snippets whose last window never came (truncated runs)
            self._flush(sid, metric, bufs)
        if metric.update_count == 0:
            raise RuntimeError(f"STMN {stage}: the evaluation covered zero frames (is the evaluation list empty?)")
        r = metric.compute()
        extra = {k: float(v) for k, v in r.items() if k.startswith("map/")}  # FGFA speed / size breakdown
        if self._trainer is not None:
            self.log(f"{stage}/map", r["map"], prog_bar=True, sync_dist=False)
            for k, v in extra.items():
                self.log(f"{stage}/{k}", v, sync_dist=False)
        self.last_eval_result = {"map": float(r["map"]), "ap": metric.per_class(r), "num_frames": int(r["num_frames"]),
                                 **extra}
        metric.reset()

    def on_validation_epoch_end(self):
        self._epoch_end("val", self.val_map)

    def on_test_epoch_end(self):
        self._epoch_end("test", self.test_map)

    def predict_step(self, batch: dict, batch_idx: int = 0, dataloader_idx: int = 0) -> list[dict]:
        """Per-frame detections of a ``vid`` batch (each item one memory window) in the original
        frames' devkit coordinates; with overlapping windows a frame comes once per window (merge
        by ``eval_index``, or use :meth:`detect_snippet`)."""
        meta = batch["meta"]
        dets = self(batch["video"], [m["size"] for m in meta], batch.get("proposals"), window=batch["video"].shape[2])
        out = []
        for d, m in zip(dets, meta):
            out.append({"snippet": m["snippet"], "frame": m["frame"], "eval_index": m["eval_index"],
                        "boxes": to_devkit_boxes(d["boxes"], m).cpu(), "scores": d["scores"].cpu(),
                        "labels": d["labels"].cpu()})
        return out


# ---------------------------------------------------------------------- registry
_PAPER = "Xiao & Lee, Video Object Detection with an Aligned Spatial-Temporal Memory (ECCV 2018); F. Xiao, PhD thesis ch. 3 (UC Davis 2020)"
_TASK = "video object detection"
# Sec. 3.4: training on 7 frames at stride 10, testing on 11-frame windows; frames resized to a
# short side of 360 (long side at most 600), ImageNet-normalised RGB.
_INPUT = InputConfig(
    shapes={"video": "float [B,3,T,H,W], ImageNet-normalised RGB, short side 360 / long side <= 600",
            "sizes": "optional list of B*T (h, w) valid sizes", "proposals": "optional list of B*T [K,4] boxes"},
    frames=7, sampling_rate=10, short_side=360, mean=IMAGENET_MEAN, std=IMAGENET_STD, datamodules=("vid",),
    notes=("long side at most 600; test windows of 11 frames (test_window) sampled 1 in 10 (test_stride), sliding by "
           "1 (test_window_step), Seq-NMS over each snippet"),
)
_STMN_DRIVE = "https://drive.google.com/open?id=1rUchPUSRrksDp4JRboj2h1z-GfG1zbDu"
_RFCN_DRIVE = "https://drive.google.com/open?id=14Cb39nOP9DA0dl6GxY2D_KzWLVnTTmbL"


def _drive_weights(converter: str, url: str, what: str) -> list[Weights]:
    return [Weights(
        tag="vid", hub_repo=None, converter=converter, dataset="ImageNet VID (+DET)",
        notes=(f"not published on the Hub; the authors' Torch7 {what} is on Google Drive ({url}), which serves "
               f"an interactive confirmation page instead of the file and publishes no checksum, so it is not "
               f"downloaded automatically: fetch it by hand and run `mmzoo convert <id>.vid {what}`"))]


_R101 = dict(backbone="resnet101", detector="rfcn", w_scale=20.0, weight_decay=0.0)
_VGG = dict(backbone="vgg16", detector="fastrcnn", w_scale=1.0, weight_decay=5e-4)

for _id, _cfg, _rep, _w in (
    ("stmn-r101", {**_R101, "temporal": "stmm"}, {"vid_val_map": 80.5, "table": "3.1"},
     _drive_weights("mmzoo.convert.torch7:convert_stmn_r101", _STMN_DRIVE, "stmn.t7")),
    ("rfcn-r101", {**_R101, "temporal": "none", "ensemble": "none", "seq_nms": False},
     {"vid_val_map": 73.4, "table": "3.1 (R-FCN [42] row)"},
     _drive_weights("mmzoo.convert.torch7:convert_rfcn_r101", _RFCN_DRIVE, "rfcn.t7")),
    ("stmn-vgg16", {**_VGG, "temporal": "stmm"},
     {"vid_val_map": 61.7, "vid_test_map": 56.5, "table": "3.1", "ablation_test_map_no_aug": 50.7}, []),
    ("fastrcnn-vgg16", {**_VGG, "temporal": "none", "ensemble": "none", "seq_nms": False},
     {"note": "the thesis reports no Fast R-CNN VGG-16 baseline on VID; its closest row is Faster-RCNN VGG-16 "
              "52.2 val / 48.2 test (Table 3.1)"}, []),
    ("stmn-vgg16-nomatchtrans", {**_VGG, "temporal": "stmm", "matchtrans": False, "ensemble": "none", "seq_nms": False},
     {"vid_test_map_no_aug": 49.0, "table": "3.2 (STMN-No-MatchTrans)"}, []),
    ("convgru-vgg16", {**_VGG, "temporal": "convgru", "matchtrans": False, "ensemble": "none", "seq_nms": False},
     {"vid_test_map_no_aug": 48.0, "table": "3.2 (ConvGRU-Pretrain; reinit_head=True gives ConvGRU-FreshFC, 44.8)"}, []),
):
    register_model(_id, defaults=_cfg, task=_TASK, paper=_PAPER, input=_INPUT, weights=_w, reported=_rep,
                   label_names=VID_LABEL_NAMES, family="stmn")(STMN)
