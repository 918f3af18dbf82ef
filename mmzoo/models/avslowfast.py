"""Audiovisual SlowFast Networks (thesis ch. 4, sections 4.2-4.4).

SlowFast plus an Audio pathway on an 80-bin log-mel spectrogram (beta_A = 1/2 of the Slow
width, alpha_A = audio frames per Slow frame, conv1 = parallel 9-tap time and frequency convs,
no pool1, decomposed time/frequency blocks in res2-res3), fused into the visual pathways by
A->FS connections after res3 and res4 and by concatenation at pool5, trained with DropPathway
(P_d = 0.8) and hierarchical audio-visual synchronisation losses at res3-res5 whose negatives
switch from easy to easy+hard at half of training.

Choices the thesis leaves open are constructor arguments whose defaults follow the authors'
public code (github.com/fanyix/SlowFast, configs/Kinetics/AVSLOWFAST_4x16_R50.yaml); with them
the measured GFLOPs reproduce Table 4.6a exactly (36.0 / 36.8 / 39.8 / 51.9 for
beta_A = 1/8 .. 1).
"""
from __future__ import annotations

from typing import Any, Literal, Optional

import torch

from mmzoo.models.audionet import audio_stage_strides, logmel_input, prepare_logmel
from mmzoo.models.slowfast import PAPER, SlowFast, kinetics_input
from mmzoo.nn.av_sync import NegativeCurriculum
from mmzoo.nn.timefreq_conv import flatten_conv3d_
from mmzoo.registry import register_model

__all__ = ["ABLATIONS", "AVSlowFast"]

_F, _T = False, True

# Every row of the thesis' AVSlowFast ablations (Tables 4.5-4.8 and the audio-decomposition
# check of section 4.3.2) as (model id, constructor arguments, thesis top-1, top-5, GFLOPs).
# Arguments are overrides of the id's defaults; None = not one model (see `note`). All Kinetics
# rows are R50 4x16 trained on K400. Rendered as a table in docs/slowfast.md and
# model_cards/avslowfast-r50-4x16.md; every row is built and run in
# tests/test_models_avslowfast_ablations.py.
ABLATIONS: dict[str, dict] = {
    # Table 4.5a, fusion stages (the authors' config puts Fast->Slow exactly where audio fuses)
    "4.5a SlowFast": {"id": "slowfast-r50-4x16", "kwargs": {}, "top1": 75.6, "top5": 92.0, "gflops": 36.1},
    "4.5a SlowFast+Audio (late ensemble)": {
        "id": "slowfast-r50-4x16 + audionet-r50", "kwargs": None, "top1": 76.1, "top5": 92.0, "gflops": None,
        "note": "two separately trained models whose test scores are averaged; not one constructor",
    },
    "4.5a pool5": {"id": "avslowfast-r50-4x16", "kwargs": {"afs_fusion": [_F, _F, _F, _F], "fs_fusion": [_F, _F, _F, _F]},
                   "top1": 75.4, "top5": 92.0, "gflops": 38.4},
    "4.5a res4 + pool5": {"id": "avslowfast-r50-4x16", "kwargs": {"afs_fusion": [_F, _F, _F, _T], "fs_fusion": [_F, _F, _F, _T]},
                          "top1": 76.5, "top5": 92.6, "gflops": 39.1},
    "4.5a res3,4 + pool5 (default)": {"id": "avslowfast-r50-4x16", "kwargs": {}, "top1": 77.0, "top5": 92.7, "gflops": 39.8},
    "4.5a res2,3,4 + pool5": {"id": "avslowfast-r50-4x16", "kwargs": {"afs_fusion": [_F, _T, _T, _T], "fs_fusion": [_F, _T, _T, _T]},
                              "top1": 75.8, "top5": 92.4, "gflops": 40.2},
    # Table 4.5b, fusion designs
    "4.5b A->F->S": {"id": "avslowfast-r50-4x16", "kwargs": {"av_fusion": "a_f_s"}, "top1": 75.3, "top5": 91.8, "gflops": 51.4},
    "4.5b A->FS (default)": {"id": "avslowfast-r50-4x16", "kwargs": {"av_fusion": "a_fs"}, "top1": 77.0, "top5": 92.7, "gflops": 39.8},
    "4.5b AV Nonlocal": {"id": "avslowfast-r50-4x16", "kwargs": {"av_fusion": "nonlocal"}, "top1": 77.2, "top5": 92.9, "gflops": 39.9},
    # Table 4.6a, audio channel ratio beta_A
    "4.6a beta_A 1/8": {"id": "avslowfast-r50-4x16", "kwargs": {"audio_beta_inv": 8}, "top1": 76.0, "top5": 92.5, "gflops": 36.0},
    "4.6a beta_A 1/4": {"id": "avslowfast-r50-4x16", "kwargs": {"audio_beta_inv": 4}, "top1": 76.6, "top5": 92.7, "gflops": 36.8},
    "4.6a beta_A 1/2 (default)": {"id": "avslowfast-r50-4x16", "kwargs": {"audio_beta_inv": 2}, "top1": 77.0, "top5": 92.7, "gflops": 39.8},
    "4.6a beta_A 1": {"id": "avslowfast-r50-4x16", "kwargs": {"audio_beta_inv": 1}, "top1": 75.9, "top5": 92.4, "gflops": 51.9},
    # Table 4.6b, DropPathway rate
    "4.6b P_d none": {"id": "avslowfast-r50-4x16", "kwargs": {"drop_pathway": 0.0}, "top1": 75.2, "top5": 91.8, "gflops": None},
    "4.6b P_d 0.2": {"id": "avslowfast-r50-4x16", "kwargs": {"drop_pathway": 0.2}, "top1": 76.0, "top5": 92.5, "gflops": None},
    "4.6b P_d 0.5": {"id": "avslowfast-r50-4x16", "kwargs": {"drop_pathway": 0.5}, "top1": 76.7, "top5": 92.7, "gflops": None},
    "4.6b P_d 0.8 (default)": {"id": "avslowfast-r50-4x16", "kwargs": {"drop_pathway": 0.8}, "top1": 77.0, "top5": 92.7, "gflops": None},
    # Table 4.6c, AV synchronisation losses
    "4.6c AVS none": {"id": "avslowfast-r50-4x16", "kwargs": {"use_avs": False}, "top1": 76.4, "top5": 92.5, "gflops": None},
    "4.6c AVS res5": {"id": "avslowfast-r50-4x16", "kwargs": {"avs_stages": [_F, _F, _F, _F, _T]}, "top1": 76.7, "top5": 92.8, "gflops": None},
    "4.6c AVS res4,5": {"id": "avslowfast-r50-4x16", "kwargs": {"avs_stages": [_F, _F, _F, _T, _T]}, "top1": 76.9, "top5": 92.9, "gflops": None},
    "4.6c AVS res3,4,5 (default)": {"id": "avslowfast-r50-4x16", "kwargs": {"avs_stages": [_F, _F, _T, _T, _T]}, "top1": 77.0, "top5": 92.7,
                                    "gflops": None},
    # section 4.2.3 / 4.3.2: decomposed audio filters in res2-res3 are worth +0.2 top-1
    "text: no audio decomposition": {"id": "avslowfast-r50-4x16", "kwargs": {"audio_decomposed_stages": 0}, "top1": 76.8, "top5": None,
                                     "gflops": None, "note": "top-1 derived: 77.0 - 0.2"},
    # Table 4.7, audio-only
    "4.7 audio-only K600": {"id": "audionet-r50", "kwargs": {"num_classes": 600}, "top1": 26.5, "top5": 44.7, "gflops": 14.2},
    "4.7 audio-only K400": {"id": "audionet-r50", "kwargs": {"num_classes": 400}, "top1": 24.8, "top5": 43.3, "gflops": 14.2},
    # Table 4.8, AVA v2.1 frame mAP (v2.2 in `note`): needs the detection head, not implemented
    "4.8 AVA AVSlowFast 4x16 R50": {"id": "avslowfast-r50-4x16", "kwargs": None, "top1": None, "top5": None, "gflops": 67.1,
                                    "note": "AVA v2.1 mAP 25.4 (v2.2 25.9); AVA detection head not implemented"},
    "4.8 AVA AVSlowFast 8x8 R101+NL": {"id": "avslowfast-r101-8x8 + NL", "kwargs": None, "top1": None, "top5": None, "gflops": 210,
                                       "note": "AVA v2.1 mAP 27.8 (v2.2 28.6); AVA detection head not implemented"},
}



def _input(slow: int, fast: int, alpha: int, audio_frames: int = 128, train_scale: tuple[int, int] = (256, 320), **extra):
    shapes = {"video": f"[slow B,3,{slow},256,256 ; fast B,3,{fast},256,256]", "audio": f"log-mel B,1,{audio_frames},80"}
    return kinetics_input(shapes, frames=fast, alpha=alpha, train_scale=train_scale,
                          audio=logmel_input(audio_frames), **extra)  # fmt: skip


class AVSlowFast(SlowFast):
    """Audiovisual SlowFast network.

    Args (the other visual arguments are `SlowFast`'s, the head and recipe ones
    `SlowFastFamilyModule`'s; all mean the same here):
        audio_frames: log-mel frames of one clip (128 spans the 4x16 / 8x8 clips; not stated for
            16x8, 256 is used so that the spectrogram spans the 128-frame clip).
        mel_bins: mel bins of the spectrogram (80).
        audio_downsample_from / audio_decomposed_stages / audio_block: the Audio pathway's
            stages, as in `mmzoo.models.audionet.AudioNet` ("res3", 2, "timefreq": authors' code).
        logmel_normalize / logmel_mean / logmel_std: optional in-model normalisation of the
            spectrogram, as in `AudioNet`.
        audio_beta_inv: Slow / Audio channel ratio (2, beta_A = 1/2).
        fs_fusion: Fast->Slow connections after pool1, res2, res3, res4. The authors' AVSlowFast
            config has them only after res3 and res4 (default), unlike SlowFast.
        afs_fusion: audio -> visual connections after pool1, res2, res3, res4 (res3 + res4 by
            default, Table 4.5a's best). The authors' config sets `fs_fusion` equal to it, and
            only with `fs_fusion == afs_fusion` do Table 4.5a's GFLOPs come out (see
            docs/slowfast.md, "Ablation rows as constructor arguments").
        av_fusion: design of those connections (Table 4.5b): "a_fs" (A->FS, default: audio
            summed onto the [Slow, Fast->Slow] tensor), "a_f_s" (A->F->S: audio brought to the
            Fast frame rate and summed into Fast before that junction's Fast->Slow lateral, so
            it reaches Slow only through Fast) or "nonlocal" (AV Nonlocal: audio queries attend
            over the visual T x H x W positions; the details the thesis leaves open, in
            `mmzoo.nn.av_fusion.AudioVisualNonLocal`). Only "a_fs" is in the authors' code.
        afs_dim_inner / afs_kernel / afs_num_convs: the A->FS convs (64, 5, 2; authors' code),
            also used by A->F->S's audio -> Fast convs (not stated in the thesis).
        av_nonlocal_dim_inner: AV Nonlocal theta / phi / g width (not stated in the thesis;
            64 matches Table 4.5b's +0.1 GFLOPs over A->FS).
        av_nonlocal_pool: max-pool of the visual keys / values (not stated in the thesis; 1x2x2).
        av_nonlocal_mode: AV Nonlocal affinity, "softmax" (embedded Gaussian) or "dot_product"
            (not stated in the thesis).
        use_avs: train with the synchronisation losses.
        avs_stages: AVS losses after pool1, res2, res3, res4, res5 (res3-res5, Table 4.6c).
        avs_head: "contrastive" (authors' code) or "classifier" (binary in-sync classifier).
        avs_proj_dim / avs_margin: projection size (64) and contrastive margin (0.99).
        avs_weight: weight of the summed AVS losses (not stated in the thesis; 1.0).
        avs_until_fusion: what the AVS losses do when audio is fused (not stated in the thesis):
            True (authors' code) counts a stage's loss only up to the earliest A->FS fusion active on the
            iteration (res3 only, or res3-res5 when DropPathway dropped the audio); False counts
            res3-res5 on every iteration.
        avs_switch_at: fraction of training after which hard negatives are mixed in (0.5).
        avs_hard_ratio: share of hard negatives after the switch (0.25).
        avs_hard_gap: frames by which the clip's own spectrogram is rolled to make a hard negative
            when the batch has no "audio_shifted" field (32 = 0.5 s).
        drop_pathway: DropPathway probability P_d (0.8).
    """

    uses_audio = True
    pathway_names = ("slow", "fast", "audio")

    def __init__(
        self,
        fs_fusion: list[bool] = [False, False, True, True],  # noqa: B006 - JSON-serialisable default
        audio_frames: int = 128,
        mel_bins: int = 80,
        audio_beta_inv: int = 2,
        audio_downsample_from: Literal["res2", "res3"] = "res3",
        audio_decomposed_stages: int = 2,
        audio_block: Literal["timefreq", "timefreq_reduce_sum"] = "timefreq",
        afs_fusion: list[bool] = [False, False, True, True],  # noqa: B006
        afs_dim_inner: int = 64,
        afs_kernel: int = 5,
        afs_num_convs: int = 2,
        av_fusion: Literal["a_fs", "a_f_s", "nonlocal"] = "a_fs",
        av_nonlocal_dim_inner: int = 64,
        av_nonlocal_pool: list[int] = [1, 2, 2],  # noqa: B006
        av_nonlocal_mode: Literal["softmax", "dot_product"] = "softmax",
        use_avs: bool = True,
        avs_stages: list[bool] = [False, False, True, True, True],  # noqa: B006
        avs_head: Literal["contrastive", "classifier"] = "contrastive",
        avs_proj_dim: int = 64,
        avs_margin: float = 0.99,
        avs_weight: float = 1.0,
        avs_until_fusion: bool = True,
        avs_switch_at: float = 0.5,
        avs_hard_ratio: float = 0.25,
        avs_hard_gap: int = 32,
        drop_pathway: float = 0.8,
        logmel_normalize: bool = False,
        logmel_mean: float = -7.03,
        logmel_std: float = 4.66,
        **kwargs: Any,
    ) -> None:
        super().__init__(fs_fusion=fs_fusion, **kwargs)
        # the Audio pathway and the audio -> visual convs work on B, C, T, F, 1 maps: run their
        # (k_t, k_f, 1) convs as 2-D convs (same parameters and outputs, ~2x faster on CPU)
        for part in (self.backbone.audio, self.backbone.afs, self.backbone.a2f):
            flatten_conv3d_(part)
        self.curriculum = NegativeCurriculum(avs_switch_at, avs_hard_ratio, avs_hard_gap)

    def _backbone_kwargs(self) -> dict[str, Any]:
        hp = self.hparams
        if hp.audio_frames % hp.slow_frames:
            raise ValueError(f"audio_frames ({hp.audio_frames}) must be a multiple of slow_frames ({hp.slow_frames})")
        return dict(
            super()._backbone_kwargs(),
            use_audio=True, audio_beta_inv=hp.audio_beta_inv, audio_time_ratio=hp.audio_frames // hp.slow_frames,
            audio_stage_strides=audio_stage_strides(hp.audio_downsample_from),
            audio_decomposed_stages=hp.audio_decomposed_stages, audio_block=hp.audio_block,
            afs_fusion=hp.afs_fusion, afs_dim_inner=hp.afs_dim_inner, afs_kernel=hp.afs_kernel,
            afs_num_convs=hp.afs_num_convs, av_fusion=hp.av_fusion, av_nonlocal_dim_inner=hp.av_nonlocal_dim_inner,
            av_nonlocal_pool=tuple(hp.av_nonlocal_pool), av_nonlocal_mode=hp.av_nonlocal_mode,
            avs_stages=hp.avs_stages if hp.use_avs else [False] * 5, avs_head=hp.avs_head,
            avs_proj_dim=hp.avs_proj_dim, avs_margin=hp.avs_margin, avs_until_fusion=hp.avs_until_fusion,
            drop_pathway=hp.drop_pathway,
        )  # fmt: skip

    def _prepare_audio(self, audio: Optional[torch.Tensor]) -> torch.Tensor:
        return prepare_logmel(self, audio)

    def _aux_loss(self, aux: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.hparams.avs_weight * super()._aux_loss(aux)

    def _audio_negatives(self, batch: dict) -> Optional[torch.Tensor]:
        """Out-of-sync audio for the AVS losses, following the curriculum at the current
        training progress; None (no AVS this step) without AVS or with a single clip."""
        if not self.hparams.use_avs or not any(self.hparams.avs_stages):
            return None
        audio = self._prepare_audio(batch["audio"])
        if audio.shape[0] < 2:
            return None
        shifted = batch.get("audio_shifted")
        if shifted is not None:
            shifted = self._prepare_audio(shifted)
        progress = self.training_progress()
        neg, hard = self.curriculum.negatives(audio, progress, shifted)
        self.last_hard_negatives = hard
        # before the switch every negative is the next clip's audio: the backbone shares its pass
        self._negatives_easy = self.curriculum.hard_fraction(progress) == 0
        self.log("train/avs_hard_fraction", hard.float().mean(), batch_size=audio.shape[0])
        return neg

    def extract(self, video, audio=None, audio_neg=None):
        slow, fast = self._pathways(video)
        if audio is not None and audio.dim() == 3:
            audio = audio.unsqueeze(1)
        easy = self.__dict__.pop("_negatives_easy", None) if audio_neg is not None else None  # this step's only
        return self.backbone(slow, fast, audio, audio_neg, negatives_easy=easy)

    def forward(self, video=None, audio=None):
        """Logits (or {"verb", "noun"}) from `video` ([slow, fast] or one clip) and `audio`
        (log-mel B, 1, T, F)."""
        return super().forward(video, self._prepare_audio(audio))

    def features(self, video=None, audio=None) -> torch.Tensor:
        return super().features(video, self._prepare_audio(audio))

    def example_input(self, batch_size: int = 1) -> dict[str, Any]:
        hp = self.hparams
        return {**super().example_input(batch_size), "audio": torch.randn(batch_size, 1, hp.audio_frames, hp.mel_bins)}


#: The registered ids: constructor defaults, input contract, weights and the thesis's numbers.
_IDS: dict[str, dict] = {
    "avslowfast-r50-4x16": dict(
        defaults={},
        input=_input(4, 32, alpha=8),
        reported={
            "k400_top1": 77.0, "k400_top5": 92.7, "kinetics_sounds_top1": 83.7, "gflops_per_view": 39.8, "views": 30,
            "ava_v2.1_map": 25.4, "ava_v2.2_map": 25.9, "ava_gflops": 67.1,
            "ssl_params_m": 38.5, "ssl_gflops": 36.2, "ssl_linear_ucf101": 76.8, "ssl_linear_hmdb51": 41.0,
        },
    ),
    "avslowfast-r50-8x8": dict(
        defaults={"slow_frames": 8, "alpha": 4, "recipe_epochs": 196},
        input=_input(8, 32, alpha=4),
        reported={"ssl_params_m": 38.5, "ssl_gflops": 63.4, "ssl_linear_ucf101": 77.4, "ssl_linear_hmdb51": 42.2},
    ),
    "avslowfast-r50-16x4": dict(
        defaults={"slow_frames": 16, "alpha": 2, "recipe_epochs": 196},
        input=_input(16, 32, alpha=2),
        reported={
            "ssl_params_m": 38.5, "ssl_gflops": 117.9, "ssl_linear_ucf101": 77.4, "ssl_linear_hmdb51": 44.1,
            "ssl_finetune_ucf101": 87.0, "ssl_finetune_hmdb51": 54.6,
        },
    ),
    "avslowfast-r101-8x8": dict(
        defaults={"depth": 101, "slow_frames": 8, "alpha": 4, "res4_temporal_blocks": 6, "recipe_epochs": 196},
        input=_input(8, 32, alpha=4, train_scale=(256, 340)),
        reported={
            "k400_top1": 78.8, "k400_top5": 93.6, "kinetics_sounds_top1": 85.0, "gflops_per_view": 129, "views": 30,
            "epic_val_verb_top1": 58.7, "epic_val_verb_top5": 83.6, "epic_val_noun_top1": 31.7, "epic_val_noun_top5": 58.4,
            "epic_val_action_top1": 24.2, "epic_val_action_top5": 43.6,
            "epic_s1_verb_top1": 65.7, "epic_s1_verb_top5": 89.5, "epic_s1_noun_top1": 46.4, "epic_s1_noun_top5": 71.7,
            "epic_s1_action_top1": 35.9, "epic_s1_action_top5": 57.8,
            "epic_s2_verb_top1": 55.8, "epic_s2_verb_top5": 81.7, "epic_s2_noun_top1": 32.7, "epic_s2_noun_top5": 58.9,
            "epic_s2_action_top1": 24.0, "epic_s2_action_top5": 43.2,
        },
    ),
    "avslowfast-r101nl-16x8": dict(
        defaults={
            "depth": 101, "slow_frames": 16, "alpha": 4, "res4_temporal_blocks": 6, "audio_frames": 256,
            "nonlocal_res4": [6, 13, 20], "nonlocal_mode": "dot_product", "nonlocal_pool": [2, 2, 2],
            "recipe_epochs": 196,
        },
        input=_input(16, 64, alpha=4, audio_frames=256, train_scale=(256, 340),
                     notes="Its reported mAP is Charades' (Table 4.4): fine-tune with --data charades and the "
                           "flags of mmzoo.models.slowfast.CHARADES_RECIPE (docs/charades-data.md)."),
        reported={"charades_map": 43.7, "charades_gflops_per_view": 278, "views": 30, "slowfast_baseline_charades_map": 42.5, "slowfast_baseline_gflops": 234},
    ),
}

for _id, _cfg in _IDS.items():
    register_model(_id, task="audio-visual video classification", paper=PAPER, **_cfg)(AVSlowFast)
