"""Tiny configurations of every model class, shared by the tests that build or run each model.

``TINY`` holds constructor overrides that give a small model of each class: the same code paths as
the full-size models, tiny widths and inputs. ``tiny_kwargs`` adds the adjustments some ids need;
``as_flags`` writes kwargs as ``--model.<name> <value>`` flags of ``mmzoo fit|validate|test``.
``AV_CLIP`` / ``AV_CLIP_FLAGS`` / ``TRAINER_FLAGS`` are the tiny clips and the short CPU runs of the
audio-visual synchronisation tests (AVTS, Multisensory; their data: ``av_events`` in conftest.py).
Used by ``test_models_every_id.py`` (constructor kwargs) and ``test_docs_commands.py`` (CLI flags).
"""
from __future__ import annotations

import copy
import json
from typing import Any

from mmzoo.registry import all_specs

_BERT_TINY = dict(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                  max_position_embeddings=64)

_IPL_TINY = dict(width_multiplier=0.125, frames=8, crop_size=32, num_verbs=5, num_nouns=6, top_k=2)

#: Constructor overrides giving a small model of each class: same code paths, tiny widths/inputs.
TINY: dict[str, dict] = {
    "SlowFast": dict(depth=14, width=8, slow_frames=2, alpha=4, crop_size=32, num_classes=5),
    "AVSlowFast": dict(depth=14, width=8, slow_frames=2, alpha=4, crop_size=32, num_classes=5, audio_frames=32, mel_bins=16),
    "AudioNet": dict(depth=14, width=8, num_classes=5, audio_frames=32, mel_bins=16),
    "AVEventLocalizer": dict(visual_dim=32, region_dim=16, inter_hidden=16, hidden_dim=8),
    "STMN": dict(backbone="resnet18", pretrained_backbone=False, head_channels=16, embed_channels=24, mem_channels=8,
                 anchor_sizes=[16, 32, 64], rpn_pre_nms_train=200, rpn_pre_nms_test=100, rpn_post_nms_train=40,
                 rpn_post_nms_test=30, roi_batch_size=32, test_window=2, seq_nms_top_k=5, max_dets=50),
    "T2VLAD": dict(text_encoder_config=_BERT_TINY, text_encoder_init="random", embed_dim=16, transformer_ffn_dim=16,
                   num_clusters=3, text_max_tokens=8),
    "NonLocalNet": dict(depth=14, width=8, frames=8, crop_size=32, num_classes=5, nonlocal_placement="custom",
                        nonlocal_positions=[[], [0], [0], []]),
    "MaskRCNN": dict(depth=18, fpn_channels=16, representation_size=32, mask_head_channels=16, min_size=64, max_size=96,
                     num_classes=3),
    "TimeCycle": dict(depth=10, width=8, feature_dim=16, crop_size=72, patch_size=24, localizer_channels=[8, 8],
                      localizer_kernel=2),
    "FeaturePropagation": dict(depth=10, width=8, pretrained_backbone=False, frame_size=32),
    "IPL": _IPL_TINY,
    "Ensemble": dict(member_kwargs=[_IPL_TINY, _IPL_TINY]),
    "TSNRecognizer": dict(num_classes=5, backbone_layers=[1, 1, 1, 1], backbone_channels=[8, 8, 8, 8], stem_width=8,
                          crop_size=32, num_frames=4, pretrained_backbone=False),
    "PSN": dict(num_classes=5, num_segments=8, num_selected=3, recognizer_layers=[1, 1, 1, 1],
                recognizer_channels=[8, 8, 8, 8], recognizer_stem_width=8, crop_size=32, sampler_pretrained=False,
                sampler_repeats=[1, 1, 1], sampler_channels=[8, 16, 16, 16, 32], crm_filters=[8, 8, 8], crm_out_dim=8),
    "TransferModule": dict(source="avslowfast-r50-4x16", source_kwargs=dict(depth=14, width=8, slow_frames=2, alpha=4,
                                                                           crop_size=32, audio_frames=32, mel_bins=16,
                                                                           mode="ssl"), num_classes=5),
    "STRG": dict(depth=14, width=8, frames=16, crop_size=32, num_classes=5, node_dim=16, proposals_per_frame=3,
                 pretrained_backbone=False, nonlocal_placement="custom", nonlocal_positions=[[], [0], [0], []]),
    "TCAM": dict(flow_frames=2, widths=[4, 8, 8, 16, 16], crop_size=32),
    "AVTS": dict(video_layers=[1, 1, 1, 1], video_widths=[8, 8, 8, 16], audio_widths=[8, 8, 16, 16],
                 audio_convs=[1, 1, 1, 1], frames=8, crop_size=32, audio_frames=32, mel_bins=16),
    "Multisensory": dict(audio_widths=[8, 8, 8, 16], video_width=8, fusion_channels=8, stage_widths=[8, 16, 16],
                         stage_blocks=[1, 1, 1], frames=8, crop_size=32, audio_samples=16000),
    "L3Net": dict(widths=[4, 8, 8, 16], fusion_dim=8, crop_size=32),
    "AudioProbe": dict(source_kwargs=dict(widths=[4, 8, 8, 16], fusion_dim=8, crop_size=32), num_classes=5),
    "SAOA": dict(width_multiplier=0.125, frames=8, crop_size=32, num_verbs=5, num_nouns=6, object_dim=16, num_objects=10),
}


def tiny_kwargs(model_id: str) -> dict[str, Any]:
    """``TINY`` of the id's class (a fresh copy), adjusted where the id's own defaults require it."""
    spec = all_specs()[model_id]
    name = spec.cls.__name__
    assert name in TINY, f"{model_id}: add a tiny configuration of {name} to TINY in tests/_tiny.py"
    kwargs = copy.deepcopy(TINY[name])
    if spec.defaults.get("detector") == "fastrcnn":  # the Fast R-CNN head is defined on VGG-16 only
        kwargs.pop("backbone")
    if spec.defaults.get("nonlocal_res4"):  # the tiny res4 has one block
        kwargs["nonlocal_res4"] = [0]
    return kwargs


def as_flags(kwargs: dict[str, Any], prefix: str = "--model.") -> list[str]:
    """``<prefix><name> <value>`` for each item: strings as they are, anything else as JSON (YAML)."""
    return [x for k, v in kwargs.items() for x in (prefix + k, v if isinstance(v, str) else json.dumps(v))]


#: Clips of 8 frames at stride 4 (1.07 s at 30 fps, the span of the 1-s audio window), 32 x 32:
#: KineticsDataModule kwargs of the AVTS / Multisensory tests.
AV_CLIP = {"version": "any", "num_frames": 8, "stride": 4, "train_scale": (32, 36), "crop_size": 32, "test_scale": 32,
           "test_crop_size": 32, "num_clips": 1, "num_crops": 1, "num_workers": 0}
#: The same clips as ``--data.*`` flags (any clip DataModule: no Kinetics version), batches of 4.
AV_CLIP_FLAGS = as_flags({**{k: v for k, v in AV_CLIP.items() if k != "version"}, "batch_size": 4}, "--data.")
#: One short epoch on one CPU device for the CLI round trips.
TRAINER_FLAGS = ["--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.max_epochs", "1",
                 "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
                 "--trainer.enable_progress_bar", "false", "--seed_everything", "0"]
