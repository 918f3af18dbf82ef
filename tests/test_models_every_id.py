"""Every registered id, one parametrised test each (timm's ``test_models.py`` pattern).

For each id: the full-size model builds on the meta device and its parameter count and GFLOPs
are the README zoo table's; a tiny configuration of the same class runs ``example_input`` through
``forward``; ``config.json`` round-trips through the local hub (same id, constructor arguments,
input contract and weights). A new id is covered the moment it registers; a family whose class is
not in ``TINY`` fails here until it says how to build a small instance.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

import mmzoo
from mmzoo.catalog import load_index
from mmzoo.info import measure, model_info
from mmzoo.registry import InputConfig, all_specs

README = Path(__file__).resolve().parents[1] / "README.md"
IDS = sorted(all_specs())

_BERT_TINY = dict(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                  max_position_embeddings=64)

_IPL_TINY = dict(width_multiplier=0.125, frames=8, crop_size=32, num_verbs=5, num_nouns=6, top_k=2)

#: Constructor overrides giving a small model of each class: same code paths, tiny widths/inputs.
TINY: dict[str, dict] = {
    "SlowFast": dict(depth=14, width=8, slow_frames=2, alpha=4, crop_size=32, num_classes=5),
    "AVSlowFast": dict(depth=14, width=8, slow_frames=2, alpha=4, crop_size=32, num_classes=5, audio_frames=32, mel_bins=16),
    "AudioNet": dict(depth=14, width=8, num_classes=5, audio_frames=32, mel_bins=16),
    "AVEventLocalizer": dict(visual_dim=32, region_dim=16, hidden_dim=8),
    "STMN": dict(backbone="resnet18", pretrained_backbone=False, head_channels=16, test_window=2),
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


def _readme_rows() -> dict[str, tuple[float, str]]:
    rows = {}
    for line in README.read_text().splitlines():
        m = re.match(r"\| `([a-z0-9-]+)` \| [^|]+ \| ([0-9.]+) \| ([0-9.]+|n/a) \|", line)
        if m:
            rows[m.group(1)] = (float(m.group(2)), m.group(3))
    return rows


def _tiny(model_id: str):
    spec = all_specs()[model_id]
    name = spec.cls.__name__
    assert name in TINY, f"{model_id}: add a tiny configuration of {name} to TINY"
    kwargs = dict(TINY[name])
    if spec.defaults.get("detector") == "fastrcnn":  # the Fast R-CNN head is defined on VGG-16 only
        kwargs.pop("backbone")
    if spec.defaults.get("nonlocal_res4"):  # the tiny res4 has one block
        kwargs["nonlocal_res4"] = [0]
    torch.manual_seed(0)
    return mmzoo.create(model_id, **kwargs).eval()


def _tensors(out):
    if isinstance(out, torch.Tensor):
        yield out
    elif isinstance(out, dict):
        for v in out.values():
            yield from _tensors(v)
    elif isinstance(out, (list, tuple)):
        for v in out:
            yield from _tensors(v)


@pytest.mark.parametrize("model_id", IDS)
def test_full_size_on_meta_matches_the_readme_table_and_the_catalogue(model_id):
    rows = _readme_rows()
    assert model_id in rows, f"{model_id} is missing from the README zoo table"
    params_m, gflops = rows[model_id]
    size = measure(model_id)
    assert round(size["params"] / 1e6, 2) == params_m
    assert gflops != "n/a" and size["gflops"] is not None, f"{model_id}: GFLOPs must be countable on the meta device"
    assert round(size["gflops"], 1) == float(gflops)
    # what `mmzoo list` / `info` print without importing the model equals the live registry
    live = json.loads(json.dumps(model_info(model_id, measured=size), default=str))
    assert load_index().get(model_id) == live, "mmzoo/zoo_index.json is stale: run `python -m mmzoo.zoo_table --write`"


@pytest.mark.parametrize("model_id", IDS)
def test_example_input_runs_through_a_tiny_configuration(model_id):
    model = _tiny(model_id)
    example = model.example_input(2)
    assert isinstance(example, dict), "example_input must return forward's keyword arguments"
    with torch.no_grad():
        out = model(**example)
    tensors = list(_tensors(out))
    assert tensors, f"{model_id}: forward returned no tensor"
    assert all(torch.isfinite(t.float()).all() for t in tensors if t.is_floating_point())


@pytest.mark.parametrize("model_id", IDS)
def test_config_json_round_trips(model_id):
    model = _tiny(model_id)
    folder = Path(mmzoo.push(model, f"every-id/{model_id}"))
    config = json.loads((folder / "config.json").read_text())
    spec = all_specs()[model_id]
    assert config["model_id"] == model_id
    assert config["kwargs"] == json.loads(json.dumps(model.init_kwargs()))
    assert InputConfig.from_dict(config["input"]) == spec.input
    loaded = mmzoo.load(f"every-id/{model_id}")
    assert type(loaded) is type(model) and loaded.zoo_id == model_id
    mine, theirs = model.state_dict(), loaded.state_dict()
    assert mine.keys() == theirs.keys()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)
