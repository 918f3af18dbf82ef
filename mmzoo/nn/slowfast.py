"""SlowFast and Audiovisual SlowFast backbones and their classification heads.

`SlowFastBackbone` builds its Slow, Fast and (optional) Audio pathways with
`mmzoo.nn.resnet3d.ResNetPathway3d` and wires the lateral connections between them at the
*junctions* after pool1 (j=0), res2 (j=1), res3 (j=2), res4 (j=3) and res5 (j=4, used by the
res5 synchronisation loss only):

* Fast -> Slow (`fs_fusion[j]`): time-strided conv, concatenated into Slow;
* Audio -> visual (`afs_fusion[j]`), in one of the three designs of Table 4.5b
  (`av_fusion`): "a_fs" (A->FS, default): frequency-averaged audio features, two temporal convs,
  summed onto the fused Slow tensor; "a_f_s" (A->F->S): the same convs at the Fast frame rate,
  summed into the Fast pathway *before* the Fast->Slow lateral of that junction, so audio
  reaches Slow only through Fast; "nonlocal" (AV Nonlocal): audio queries attend over the
  fused Slow tensor's positions and the attended feature is summed onto it. Zeros are summed
  instead when DropPathway drops the audio pathway on a training iteration;
* AV synchronisation (`avs_stages[j]`): a loss comparing the fused visual features with the
  processed audio of in-sync and out-of-sync clips.

`MultiPathwayHead` averages each pathway's final features over all positions, concatenates
them ("pool5 concatenation"), applies dropout and one or two linear classifiers.
"""
from __future__ import annotations

from typing import Literal, Optional, Sequence, Union

import torch
from torch import nn

from mmzoo.nn.av_fusion import AudioVisualNonLocal, FuseAudioToVisual, FuseFastToSlow
import contextlib

from mmzoo.nn.av_sync import AVSyncHead, audio_pair_mask, negatives_are_batch_roll, shared_negative_pass
from mmzoo.nn.drop_pathway import DropPathway
from mmzoo.nn.resnet3d import ResNetPathway3d

__all__ = ["SlowFastBackbone", "MultiPathwayHead", "pack_pathways"]

HeadKind = Literal["single", "verb_noun", "multilabel"]
AVFusionKind = Literal["a_fs", "a_f_s", "nonlocal"]


def pack_pathways(video: torch.Tensor, alpha: int) -> list[torch.Tensor]:
    """Split one `B, C, T, H, W` clip into [slow, fast]: fast is the clip, slow keeps T // alpha
    frames evenly spaced over it (the same index rule as PyTorchVideo's PackPathway)."""
    t = video.shape[2]
    idx = torch.linspace(0, t - 1, max(t // alpha, 1), device=video.device).long()
    return [video.index_select(2, idx), video]


class SlowFastBackbone(nn.Module):
    """Slow + Fast (+ Audio) pathways with lateral connections.

    Args:
        depth: ResNet depth of every pathway (50 or 101; 14 = one block per stage, for tests).
        width: Slow conv1 channels (64; Fast and Audio widths follow from beta_inv, audio_beta_inv).
        alpha: Fast / Slow frame-rate ratio (temporal stride of the Fast->Slow convs).
        beta_inv: Slow / Fast channel ratio (8).
        fusion_kernel: temporal kernel of the Fast->Slow convs (5; 7 in the public 8x8 R50).
        fusion_ratio: Fast->Slow output channels as a multiple of the Fast channels (2).
        fs_fusion: Fast->Slow connection at junctions (pool1, res2, res3, res4).
        slow_temporal_kernels / fast_temporal_kernels: conv_a temporal kernel per stage (an int,
            or one per block).
        fast_stem_temporal_kernel: temporal kernel of the Fast conv1 (5).
        slow_nonlocal: per stage, Slow block indices followed by a non-local block.
        nonlocal_mode: "softmax" (embedded Gaussian) or "dot_product".
        nonlocal_pool: max-pool kernel before phi and g of the non-local blocks.
        use_audio: add the Audio pathway.
        audio_beta_inv: Slow / Audio channel ratio (2, i.e. beta_A = 1/2).
        audio_time_ratio: audio spectrogram frames per Slow frame at the input (alpha_A = 32 for
            4x16 with 128 frames).
        audio_stage_strides: time and frequency stride of the first block of res2..res5.
        audio_decomposed_stages: how many leading stages use the decomposed time/frequency block.
        audio_block: its topology, "timefreq" (parallel branches concatenated, authors' default)
            or "timefreq_reduce_sum" (1x1 reduction, branches summed).
        afs_fusion: audio -> visual connection at junctions (pool1, res2, res3, res4).
        av_fusion: its design (Table 4.5b): "a_fs" (A->FS), "a_f_s" (A->F->S) or "nonlocal"
            (AV Nonlocal); see the module docstring.
        afs_dim_inner / afs_kernel / afs_num_convs: the A->FS convs (64, 5, 2); A->F->S uses
            the same settings for its audio -> Fast convs. The AVS losses always compare the
            visual features with audio processed by A->FS convs (built for the AVS stages only
            when `av_fusion` is not "a_fs").
        av_nonlocal_dim_inner / av_nonlocal_pool / av_nonlocal_mode: the AV Nonlocal block
            (64, (1, 2, 2), "softmax"; see `mmzoo.nn.av_fusion.AudioVisualNonLocal`).
        avs_stages: synchronisation loss at junctions (pool1, res2, res3, res4, res5).
        avs_head / avs_proj_dim / avs_margin: see `mmzoo.nn.av_sync.AVSyncHead`.
        avs_until_fusion: count a stage's AVS loss only up to the earliest A->FS fusion active on
            the iteration (authors' code); False counts every flagged stage on every iteration.
        drop_pathway: DropPathway probability P_d.
    """

    def __init__(
        self,
        depth: int = 50,
        width: int = 64,
        alpha: int = 8,
        beta_inv: int = 8,
        fusion_kernel: int = 5,
        fusion_ratio: int = 2,
        fs_fusion: Sequence[bool] = (True, True, True, True),
        slow_temporal_kernels: Sequence[Union[int, Sequence[int]]] = (1, 1, 3, 3),
        fast_temporal_kernels: Sequence[Union[int, Sequence[int]]] = (3, 3, 3, 3),
        fast_stem_temporal_kernel: int = 5,
        slow_nonlocal: Sequence[Sequence[int]] = ((), (), (), ()),
        nonlocal_mode: Literal["softmax", "dot_product"] = "softmax",
        nonlocal_pool: Sequence[int] = (1, 2, 2),
        use_audio: bool = False,
        audio_beta_inv: int = 2,
        audio_time_ratio: int = 32,
        audio_stage_strides: Sequence[int] = (1, 2, 2, 2),
        audio_decomposed_stages: int = 2,
        audio_block: Literal["timefreq", "timefreq_reduce_sum"] = "timefreq",
        afs_fusion: Sequence[bool] = (False, False, True, True),
        afs_dim_inner: int = 64,
        afs_kernel: int = 5,
        afs_num_convs: int = 2,
        av_fusion: AVFusionKind = "a_fs",
        av_nonlocal_dim_inner: int = 64,
        av_nonlocal_pool: Sequence[int] = (1, 2, 2),
        av_nonlocal_mode: Literal["softmax", "dot_product"] = "softmax",
        avs_stages: Sequence[bool] = (False, False, True, True, True),
        avs_head: Literal["contrastive", "classifier"] = "contrastive",
        avs_proj_dim: int = 64,
        avs_margin: float = 0.99,
        avs_until_fusion: bool = True,
        drop_pathway: float = 0.8,
    ) -> None:
        super().__init__()
        fast_width = width // beta_inv
        self.alpha = alpha
        self.fs_fusion = tuple(bool(b) for b in fs_fusion)
        fast_dims = [fast_width] + [fast_width * 4 * 2**i for i in range(4)]  # after stem, res2..res5
        slow_dims = [width] + [width * 4 * 2**i for i in range(4)]
        self.f2s = nn.ModuleDict()
        lateral = [0, 0, 0, 0]
        for j in range(4):
            if self.fs_fusion[j]:
                self.f2s[str(j)] = FuseFastToSlow(fast_dims[j], fusion_ratio, fusion_kernel, alpha)
                lateral[j] = fast_dims[j] * fusion_ratio
        self.slow = ResNetPathway3d(
            3, width, depth, "visual", 1,
            stage_temporal_kernels=slow_temporal_kernels,
            lateral_channels=lateral,
            nonlocal_after=slow_nonlocal,
            nonlocal_mode=nonlocal_mode,
            nonlocal_pool=nonlocal_pool,
        )
        self.fast = ResNetPathway3d(3, fast_width, depth, "visual", fast_stem_temporal_kernel, stage_temporal_kernels=fast_temporal_kernels)
        self.out_channels = [slow_dims[4], fast_dims[4]]
        self.use_audio = use_audio
        self.afs_fusion = tuple(bool(b) for b in afs_fusion) if use_audio else (False,) * 4
        self.avs_stages = tuple(bool(b) for b in avs_stages) if use_audio else (False,) * 5
        if av_fusion not in ("a_fs", "a_f_s", "nonlocal"):
            raise ValueError(f"unknown av_fusion {av_fusion!r}: 'a_fs', 'a_f_s' or 'nonlocal'")
        self.av_fusion = av_fusion
        #: run the audio branch once when the AVS negatives are all easy (see `forward`); exact
        self.share_easy_negatives = True
        self.afs = nn.ModuleDict()  # A->FS convs: the a_fs fusion and every AVS loss
        self.a2f = nn.ModuleDict()  # A->F convs of A->F->S
        self.avnl = nn.ModuleDict()  # AV Nonlocal blocks
        self.avs = nn.ModuleDict()
        self.avs_until_fusion = avs_until_fusion
        self.drop = DropPathway(drop_pathway if use_audio else 0.0)
        if use_audio:
            audio_width = width // audio_beta_inv
            strides = [(s, s, 1) for s in audio_stage_strides]
            self.audio = ResNetPathway3d(
                1, audio_width, depth, "timefreq",
                stage_temporal_kernels=(1, 1, 1, 1),
                stage_strides=strides,
                stage_blocks=[audio_block] * audio_decomposed_stages + ["bottleneck"] * (4 - audio_decomposed_stages),
                kernel_b=(3, 3, 1),
            )
            audio_dims = [audio_width] + [audio_width * 4 * 2**i for i in range(4)]
            time_down = [1]
            for s in audio_stage_strides:
                time_down.append(time_down[-1] * s)
            self.out_channels.append(audio_dims[4])
            for j in range(5):
                fuse_here = j < 4 and self.afs_fusion[j]
                if not fuse_here and not self.avs_stages[j]:
                    continue
                fs_on = self.fs_fusion[j] if j < 4 else True
                if j == 4:  # the res5 AVS loss compares [Slow, Fast->Slow] as a fusion would build it
                    self.f2s[str(j)] = FuseFastToSlow(fast_dims[j], fusion_ratio, fusion_kernel, alpha)
                dim_visual = slow_dims[j] + (fast_dims[j] * fusion_ratio if fs_on else 0)
                # audio frames per Slow frame at this junction; when the audio is coarser than the
                # Slow pathway (e.g. 16x4 with the thesis' res2 audio downsampling at res5), the
                # A->FS output is upsampled in time (nearest) to the Slow frame rate instead
                stride, a_up = audio_time_ratio // time_down[j], 1
                if stride < 1 and time_down[j] % audio_time_ratio == 0:
                    stride, a_up = 1, time_down[j] // audio_time_ratio
                elif stride < 1 or audio_time_ratio % time_down[j]:
                    raise ValueError(f"audio_time_ratio {audio_time_ratio} is not divisible by the audio time stride {time_down[j]} at junction {j}")
                if fuse_here and av_fusion == "a_f_s":
                    # audio frames per Fast frame: stride / alpha (nearest upsampling when < 1)
                    if stride % alpha == 0 and a_up == 1:
                        f_stride, f_up = stride // alpha, 1
                    elif (alpha * a_up) % stride == 0:
                        f_stride, f_up = 1, alpha * a_up // stride
                    else:
                        raise ValueError(f"audio frames per Slow frame ({stride}) and alpha ({alpha}) are incompatible at junction {j}")
                    self.a2f[str(j)] = FuseAudioToVisual(
                        audio_dims[j], fast_dims[j], f_stride, afs_dim_inner, afs_kernel, afs_num_convs, time_upsample=f_up
                    )
                if fuse_here and av_fusion == "nonlocal":
                    if a_up > 1:
                        raise ValueError(f"AV Nonlocal needs at least one audio frame per Slow frame at junction {j}")
                    self.avnl[str(j)] = AudioVisualNonLocal(
                        audio_dims[j], dim_visual, stride, av_nonlocal_dim_inner, tuple(av_nonlocal_pool), av_nonlocal_mode
                    )
                if (fuse_here and av_fusion == "a_fs") or self.avs_stages[j]:
                    self.afs[str(j)] = FuseAudioToVisual(
                        audio_dims[j], dim_visual, stride, afs_dim_inner, afs_kernel, afs_num_convs, time_upsample=a_up
                    )
                if self.avs_stages[j]:
                    self.avs[str(j)] = AVSyncHead(dim_visual, dim_visual, avs_proj_dim, avs_head, avs_margin)

    # ------------------------------------------------------------------ forward
    def avs_pattern(self, dropped: bool) -> list[bool]:
        """Junctions whose AVS loss counts on this iteration: the flagged ones up to the earliest
        active audio fusion (later visual features have already seen the audio); all flagged
        ones when the audio pathway is dropped (the authors' rule; `avs_until_fusion=False`
        keeps every flagged stage)."""
        if not self.avs_until_fusion:
            return list(self.avs_stages)
        active = [self.afs_fusion[j] and not dropped for j in range(4)]
        earliest = next((j for j in range(4) if active[j]), 4)
        return [self.avs_stages[j] and j <= earliest for j in range(5)]

    def forward(
        self,
        slow: torch.Tensor,
        fast: torch.Tensor,
        audio: Optional[torch.Tensor] = None,
        audio_neg: Optional[torch.Tensor] = None,
        negatives_easy: Optional[bool] = None,
    ) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
        """Returns the final feature maps of each pathway and, when `audio_neg` (out-of-sync
        audio, `B, 1, T, F`) is given, the AVS losses per junction (`"avs_res3"`, ...).

        When every negative is the next clip's audio (the easy negatives of the first half of
        the curriculum) and `share_easy_negatives` is on, the audio branch runs on the B positives
        only and the negatives' features are its outputs rolled by one clip: the same features,
        losses and gradients as the 2B batch, with BN's running variance corrected to it
        (`mmzoo.nn.av_sync.shared_negative_pass`); ~10.5 GFLOPs less per training clip at R50.
        `negatives_easy` says whether `audio_neg` is `audio.roll(1, 0)` (the curriculum knows it
        before the switch); None compares the tensors, which waits for the device."""
        losses: dict[str, torch.Tensor] = {}
        x_s = self.slow.stem(slow)
        x_f = self.fast.stem(fast)
        x_a = mask = pattern = None
        with_neg = shared = False
        if self.use_audio:
            if audio is None:
                raise ValueError("this AVSlowFast backbone needs an audio input (B, 1, T, F)")
            self.drop.sample()
            with_neg = audio_neg is not None and len(self.avs) > 0
            shared = with_neg and self.share_easy_negatives and (
                negatives_easy if negatives_easy is not None else negatives_are_batch_roll(audio, audio_neg))
            mask = audio_pair_mask(audio, audio_neg) if with_neg else None
            pattern = self.avs_pattern(self.drop.dropped)
        b = slow.shape[0]
        ctx = shared_negative_pass([self.audio, self.afs]) if shared else contextlib.nullcontext()
        with ctx:
            if self.use_audio:
                a_in = torch.cat([audio, audio_neg], 0) if with_neg and not shared else audio
                x_a = self.audio.stem(a_in.unsqueeze(-1))
            return self._junctions(x_s, x_f, x_a, b, with_neg, shared, mask, pattern, losses)

    def _junctions(self, x_s, x_f, x_a, b, with_neg, shared, mask, pattern, losses):
        """Stages res2..res5 of every pathway and the lateral connections after each junction."""
        for j in range(5):
            if j > 0:
                x_s = self.slow.stages[j - 1](x_s)
                x_f = self.fast.stages[j - 1](x_f)
                if x_a is not None:
                    x_a = self.audio.stages[j - 1](x_a)
            key = str(j)
            avs_here = with_neg and key in self.avs
            fuse_audio = j < 4 and self.afs_fusion[j]
            if j == 4 and not avs_here:
                break  # the res5 branch only serves the AVS loss: skipped at inference
            fs_here = key in self.f2s and (j == 4 or self.fs_fusion[j])
            into_fast = fuse_audio and self.av_fusion == "a_f_s"
            fused = x_s
            if fs_here and (avs_here or not into_fast):  # [Slow, Fast->Slow] before any audio
                fused = self.f2s[key](x_s, x_f)
            if avs_here or (fuse_audio and self.av_fusion == "a_fs"):
                a = self.afs[key](x_a)
                a_pos = a[:b]
                if avs_here:
                    loss = self.avs[key](fused, a_pos, a.roll(1, dims=0) if shared else a[b:], mask)
                    losses[f"avs_res{j + 1}" if j else "avs_pool1"] = loss if pattern[j] else loss * 0.0
                if fuse_audio and self.av_fusion == "a_fs":
                    fused = fused + self.drop(a_pos)
            if into_fast:  # A->F->S: audio into Fast, then Fast (with audio) into Slow
                x_f = x_f + self.drop(self.a2f[key](x_a[:b]))
                fused = self.f2s[key](x_s, x_f) if fs_here else x_s
            elif fuse_audio and self.av_fusion == "nonlocal":
                fused = fused + self.drop(self.avnl[key](fused, x_a[:b]))
            if j < 4:
                x_s = fused
        feats = [x_s, x_f]
        if x_a is not None:
            feats.append(x_a[:b])
        return feats, losses


class MultiPathwayHead(nn.Module):
    """Global average pool per pathway, concatenation, dropout, linear classifier(s).

    Args:
        dims: channels of each pathway's final features.
        head: "single" (softmax classes), "verb_noun" (two classifiers, EPIC-Kitchens) or
            "multilabel" (per-class sigmoid, Charades).
        num_classes / num_verbs / num_nouns: classifier sizes.
        dropout: dropout before the classifier(s).
    """

    def __init__(
        self,
        dims: Sequence[int],
        head: HeadKind = "single",
        num_classes: int = 400,
        num_verbs: int = 125,
        num_nouns: int = 352,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.head = head
        dim = int(sum(dims))
        self.dim = dim
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        if head == "verb_noun":
            self.verb = nn.Linear(dim, num_verbs)
            self.noun = nn.Linear(dim, num_nouns)
        elif head in ("single", "multilabel"):
            self.fc = nn.Linear(dim, num_classes)
        else:
            raise ValueError(f"unknown head {head!r}")

    @staticmethod
    def pool(feats: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.cat([f.flatten(2).mean(-1) for f in feats], dim=1)

    def forward(self, feats: Sequence[torch.Tensor]) -> Union[torch.Tensor, dict[str, torch.Tensor]]:
        x = self.dropout(self.pool(feats))
        if self.head == "verb_noun":
            return {"verb": self.verb(x), "noun": self.noun(x)}
        return self.fc(x)
