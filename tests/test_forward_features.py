"""``forward_features(**inputs)`` on every model class of the zoo (issue 13): named tensors with
the batch first, and features that are what the model's own head reads: feeding them through the
rest of the model gives ``forward``'s output (so a feature name cannot point at the wrong layer)."""
from __future__ import annotations

import pytest
import torch
from _tiny import TINY
from test_models_every_id import _tiny

from mmzoo.registry import all_specs


def _one_id_per_class() -> dict[str, str]:
    ids: dict[str, str] = {}
    for model_id, spec in sorted(all_specs().items()):
        if spec.cls.__name__ in TINY and spec.defaults.get("detector") != "fastrcnn":
            ids.setdefault(spec.cls.__name__, model_id)
    return ids


IDS = _one_id_per_class()
#: Classes whose features include "pooled", one vector per clip (what `mmzoo extract` writes by
#: default); AVE is per segment, T2VLAD per text / video embedding.
CLIP_MODELS = {"SlowFast", "AVSlowFast", "AudioNet", "NonLocalNet", "STMN", "MaskRCNN", "TimeCycle",
               "FeaturePropagation", "IPL", "Ensemble", "TSNRecognizer", "PSN", "TransferModule", "TCAM",
               "AudioProbe", "Multisensory", "STRG"}


@pytest.mark.parametrize("cls_name", sorted(IDS))
def test_forward_features_names_tensors(cls_name):
    model = _tiny(IDS[cls_name])
    assert hasattr(model, "forward_features"), f"{cls_name} has no forward_features"
    torch.manual_seed(1)
    ex = model.example_input(2)
    with torch.no_grad():
        feats = model.forward_features(**ex)
    assert isinstance(feats, dict) and feats
    for name, value in feats.items():
        assert isinstance(name, str) and isinstance(value, torch.Tensor), (name, type(value))
    if cls_name != "T2VLAD":  # texts and videos are counted separately
        assert all(v.shape[0] == 2 for v in feats.values()), {k: tuple(v.shape) for k, v in feats.items()}
    if cls_name in CLIP_MODELS:
        assert "pooled" in feats and feats["pooled"].dim() == 2


def _close(a, b):
    return torch.allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cls_name", ["SlowFast", "AVSlowFast", "AudioNet", "NonLocalNet"])
def test_slowfast_family_pooled_is_what_the_head_classifies(cls_name):
    model = _tiny(IDS[cls_name])
    ex = model.example_input(2)
    with torch.no_grad():
        feats = model.forward_features(**ex)
        assert _close(model.head.fc(feats["pooled"]), model(**ex))
        maps = [feats[n] for n in model.pathway_names]
        assert _close(model.head.pool(maps), feats["pooled"])
    assert feats["pooled"].shape[1] == sum(m.shape[1] for m in maps)


def test_ave_features_are_the_classifier_inputs():
    model = _tiny("avel")
    ex = model.example_input(2)
    with torch.no_grad():
        feats = model.forward_features(**ex)
        logits, _ = model.classifier(feats["audio"], feats["visual"])
        assert _close(logits, model(**ex))
    assert feats["visual"].shape[:2] == (2, 10) and feats["attention"].shape == (2, 10, 49)
    assert torch.allclose(feats["attention"].sum(-1), torch.ones(2, 10))


def test_frame_models_classify_their_frame_features():
    tsn = _tiny(IDS["TSNRecognizer"])
    ex = tsn.example_input(2)
    with torch.no_grad():
        f = tsn.forward_features(**ex)
        assert _close(tsn.net.fc(f["frames"]).mean(1), tsn(**ex))
        assert f["frames"].shape[1] == ex["video"].shape[2]
    tcam = _tiny(IDS["TCAM"])
    ex = tcam.example_input(2)
    with torch.no_grad():
        assert _close(tcam.fc(tcam.forward_features(**ex)["pooled"]), tcam(**ex))


def test_transfer_and_dense_models():
    tr = _tiny(IDS["TransferModule"])
    ex = tr.example_input(2)
    with torch.no_grad():
        assert _close(tr.fc(tr.head_norm(tr.forward_features(**ex)["pooled"])), tr(**ex))
    lp = _tiny(IDS["FeaturePropagation"])
    ex = lp.example_input(2)
    with torch.no_grad():
        f = lp.forward_features(**ex)
        assert _close(f["dense"], lp(**ex))
        assert _close(f["pooled"], f["dense"].mean(dim=(2, 3, 4)))


def test_t2vlad_embeddings_give_the_similarity():
    model = _tiny("t2vlad")
    ex = model.example_input(2)
    with torch.no_grad():
        f = model.forward_features(**ex)
        text = {k[5:]: v for k, v in f.items() if k.startswith("text_")}
        video = {k[6:]: v for k, v in f.items() if k.startswith("video_")}
        assert _close(model.similarity(text, video, model.hparams.eval_similarity), model(**ex))
