"""AVE models: the six ids build, run, count parameters as designed and rebuild from config."""
from __future__ import annotations

import json

import pytest
import torch

import mmzoo
from mmzoo.models.ave import AVE_CLASSES, AVEventLocalizer
from mmzoo.registry import get_spec

IDS = ["avsdn", "cmcoatt-avsdn", "cmcoatt-lstm", "cmcoatt-avel", "avel", "lstm-ave"]


def lstm_params(i: int, h: int, bidirectional: bool = False) -> int:
    return (4 * h * (i + h) + 8 * h) * (2 if bidirectional else 1)


def linear(i: int, o: int, bias: bool = True) -> int:
    return i * o + (o if bias else 0)


def expected_params(model_id: str, cv: int) -> int:
    """Parameter count written out from the architecture description (K=512, D=128, H=128)."""
    K, D, A, H, C = 512, 128, 128, 128, 29
    n = linear(cv, K)  # region MLP (Sec. 4.0.2)
    cfg = get_spec(model_id).defaults
    if cfg["attention"] == "cmcoatt":
        n += lstm_params(K, K, bidirectional=True)  # intra-frame BiLSTM, hidden K
        n += linear(3 * K, 512) + linear(512, D)  # inter-frame MLP over 3 frames
    elif cfg["attention"] == "add":
        n += linear(K, 512) + linear(A, 512) + 2 * linear(512, 49, False) + linear(49, 1, False)
    if cfg["classifier"] == "lstm":
        n += lstm_params(A + K, H) + linear(H, C)
    elif cfg["classifier"] == "avel":
        n += lstm_params(A, H, True) + lstm_params(K, H, True) + linear(4 * H, 64) + linear(64, C)
    else:
        g = 2 * linear(H, H)  # one g_theta MLP (shared by both modalities)
        n += lstm_params(A, H) + lstm_params(K, H) + 2 * g + lstm_params(A + K, H) + linear(H, C)
    return n


@pytest.mark.parametrize("model_id", IDS)
@pytest.mark.parametrize("visual_dim", [512, 2048])
def test_every_id_builds_and_runs(model_id, visual_dim):
    model = mmzoo.create(model_id, visual_dim=visual_dim).eval()
    assert isinstance(model, AVEventLocalizer)
    assert model.num_parameters() == expected_params(model_id, visual_dim)
    visual = torch.randn(2, 10, 7, 7, visual_dim)
    audio = torch.randn(2, 10, 128)
    with torch.no_grad():
        logits, attn = model(visual, audio, return_attention=True)
    assert logits.shape == (2, 10, 29)
    assert torch.isfinite(logits).all()
    has_attention = get_spec(model_id).defaults["attention"] != "none"
    assert (attn is not None) == has_attention
    if has_attention:
        assert attn.shape == (2, 10, 49)
        torch.testing.assert_close(attn.sum(-1), torch.ones(2, 10))
    # the segments of one video are decided jointly, but videos of a batch independently
    with torch.no_grad():
        single = model(visual[:1], audio[:1])
        half = model(visual[:1].half(), audio[:1].half())  # float16 feature caches are accepted
    torch.testing.assert_close(single, logits[:1], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(half, single, atol=0.05, rtol=0.05)


def test_full_size_parameter_counts_and_flops():
    counts = {i: mmzoo.create(i).num_parameters() for i in IDS}
    # ResNet-152 inputs (Cv=2048): CM-CoAtt adds its BiLSTM + MLP (~5.06 M) to each classifier.
    assert counts["cmcoatt-avsdn"] - counts["avsdn"] == lstm_params(512, 512, True) + linear(1536, 512) + linear(512, 128)
    assert counts["avsdn"] == 1_973_917
    assert counts["cmcoatt-avsdn"] == 7_029_021
    info = mmzoo.model_info("cmcoatt-avsdn")
    assert info["params"] == counts["cmcoatt-avsdn"]
    # The intra-frame BiLSTM dominates: 10 frames x 49 steps x 2 directions x 4 gates x 512 x 1024.
    assert info["gflops"] == pytest.approx(2.995, abs=0.01)


def test_registry_records_thesis_numbers_and_no_weights():
    expected = {"cmcoatt-avsdn": (77.86, 75.85), "avsdn": (75.4, 74.2), "cmcoatt-avel": (76.37, 74.30),
                "avel": (74.7, 73.3), "cmcoatt-lstm": (75.82, 73.81), "lstm-ave": (74.98, 73.11)}
    for model_id, (full, weak) in expected.items():
        spec = get_spec(model_id)
        w = spec.weights_for(None)
        assert w.tag == "ave" and w.hub_repo is None and not w.available
        assert w.metrics == {"acc_full": full, "acc_weak": weak}
        assert full in spec.reported.values() and weak in spec.reported.values()
        assert spec.label_names[28] == "background"
    assert mmzoo.list_models("*ave*", pretrained=True) == []
    assert set(IDS) <= set(mmzoo.list_models())


@pytest.mark.parametrize("model_id", IDS)
def test_state_dict_saves_as_safetensors(model_id, tmp_path):
    # no aliased modules: safetensors refuses tensors that share memory
    from safetensors.torch import load_file, save_file

    model = mmzoo.create(model_id, visual_dim=512)
    save_file(model.state_dict(), str(tmp_path / "model.safetensors"))
    again = mmzoo.create(model_id, visual_dim=512)
    again.load_state_dict(load_file(str(tmp_path / "model.safetensors")), strict=True)
    x = model.example_input(1)
    torch.testing.assert_close(again.eval()(**x), model.eval()(**x))


def test_config_round_trip_rebuilds_identical_model():
    model = mmzoo.create("cmcoatt-avsdn", visual_dim=512, supervision="weak", attn_values="keys")
    kwargs = json.loads(json.dumps(model.init_kwargs()))  # must be JSON-serialisable
    rebuilt = AVEventLocalizer(**kwargs)
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    x = model.example_input(2)
    torch.testing.assert_close(rebuilt.eval()(**x), model.eval()(**x))
    assert x["visual"].shape == (2, 10, 7, 7, 512) and x["audio"].shape == (2, 10, 128)


def test_predict_step_returns_ids_and_names():
    model = mmzoo.create("lstm-ave", visual_dim=512).eval()
    batch = {"visual": torch.randn(3, 10, 7, 7, 512), "audio": torch.randn(3, 10, 128),
             "meta": [{"row": i} for i in range(3)]}
    out = model.predict_step(batch, 0)
    assert out["pred"].shape == (3, 10) and out["pred"].dtype == torch.long
    assert out["names"][1][4] == AVE_CLASSES[out["pred"][1, 4]]
    torch.testing.assert_close(out["probs"].sum(-1), torch.ones(3, 10))


def test_clear_errors_for_bad_configs_and_inputs():
    with pytest.raises(ValueError, match="inter-frame encoder"):
        AVEventLocalizer(attention="cmcoatt", inter_v="none")
    with pytest.raises(ValueError, match="attn_dim=audio_dim"):
        AVEventLocalizer(attention="dot", intra_v=False, inter_v="none", attn_dim=64)
    with pytest.raises(ValueError, match="single-modality"):
        AVEventLocalizer(classifier="avsdn", attention="none", intra_v=False, inter_v="none", modality="audio")
    model = mmzoo.create("avsdn")  # visual_dim=2048
    with pytest.raises(ValueError, match="visual_dim=2048"):
        model(torch.randn(1, 10, 7, 7, 512), torch.randn(1, 10, 128))
    with pytest.raises(ValueError, match="audio must be"):
        model(torch.randn(1, 10, 7, 7, 2048), torch.randn(1, 10, 64))


@pytest.mark.parametrize("inter_v,attention", [("conv3d", "add"), ("conv3d", "dot"), ("lstm", "add"), ("lstm", "cmcoatt")])
def test_table_4_8_variants_run(inter_v, attention):
    model = AVEventLocalizer(classifier="avsdn", attention=attention, intra_v=True, inter_v=inter_v,
                             visual_dim=64, region_dim=32, hidden_dim=16, add_hidden=16).eval()
    logits, attn = model(torch.randn(2, 10, 7, 7, 64), torch.randn(2, 10, 128), return_attention=True)
    assert logits.shape == (2, 10, 29) and attn.shape == (2, 10, 49)
    torch.testing.assert_close(attn.sum(-1), torch.ones(2, 10))


@pytest.mark.parametrize("modality,classifier", [("audio", "avel"), ("visual", "avel"), ("audio", "lstm")])
def test_single_modality_ignores_the_other_stream(modality, classifier):
    model = AVEventLocalizer(classifier=classifier, attention="none", intra_v=False, inter_v="none",
                             modality=modality, visual_dim=32, region_dim=16, hidden_dim=8).eval()
    v, a = torch.randn(2, 10, 7, 7, 32), torch.randn(2, 10, 128)
    base = model(v, a)
    other = model(torch.randn_like(v), a) if modality == "audio" else model(v, torch.randn_like(a))
    same = model(v, torch.randn_like(a)) if modality == "audio" else model(torch.randn_like(v), a)
    torch.testing.assert_close(other, base)
    assert not torch.allclose(same, base)


def test_class_names_match_the_ave_datamodule():
    from mmzoo.data.ave import AVE_CLASSES as DATA_CLASSES

    assert AVE_CLASSES[:28] == list(DATA_CLASSES) and AVE_CLASSES[28] == "background"
