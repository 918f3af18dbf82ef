"""`mmzoo export` (mmzoo.export) through the CLI: TorchScript, ExportedProgram and ONNX files of
SlowFast, AVSlowFast, the AVE localiser, a non-local I3D and T2VLAD give eager mode's outputs
(within atol = rtol = 1e-4) on new inputs of the example's shapes, the ONNX files run in
onnxruntime; models that cannot be exported, an operator without an ONNX translation, ONNX
without one of its packages and a wrong file suffix are clear errors."""
from __future__ import annotations

import json
import sys

import pytest
import torch
from torch.utils import _pytree as pytree

import mmzoo
from mmzoo.cli import main
from mmzoo.errors import NotSupportedError
from mmzoo.export import export_model

_T2VLAD_BERT = json.dumps(dict(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=64, max_position_embeddings=64))
#: (model id, tiny constructor arguments, formats checked: TorchScript tracing of the tiny BERT is slow;
#: every family is exported to ONNX and run in onnxruntime)
CASES = {
    "slowfast-r50-4x16": (dict(depth=14, width=8, slow_frames=2, alpha=4, crop_size=32),
                          ("torchscript", "exported-program", "onnx")),
    "avslowfast-r50-4x16": (dict(depth=14, width=8, slow_frames=2, alpha=4, crop_size=32, audio_frames=32, mel_bins=16),
                            ("exported-program", "onnx")),
    "avel": (dict(region_dim=16, hidden_dim=8), ("torchscript", "exported-program", "onnx")),
    "nl-i3d-r50": (dict(depth=14, width=8, frames=8, crop_size=32, nonlocal_placement="custom",
                        nonlocal_positions=[[], [0], [0], []]), ("torchscript", "onnx")),
    "t2vlad": (dict(text_encoder_config=json.loads(_T2VLAD_BERT), text_encoder_init="random", embed_dim=16,
                    transformer_ffn_dim=16, num_clusters=3, text_max_tokens=8), ("exported-program", "onnx")),
}
SUFFIX = {"torchscript": ".pt", "exported-program": ".pt2", "onnx": ".onnx"}


def _flags(kwargs: dict) -> list[str]:
    return [x for k, v in kwargs.items() for x in (f"--model.{k}", json.dumps(v) if not isinstance(v, str) else v)]


def _load(fmt: str, path, record: dict):
    if fmt == "torchscript":
        return torch.jit.load(str(path))
    if fmt == "exported-program":
        return torch.export.load(str(path)).module()
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    # the graph's inputs and outputs carry the record's names (video.0, experts.audio, output.verb)
    assert names == [i["name"] for i in record["inputs"]]
    assert [o.name for o in session.get_outputs()] == [o["name"] for o in record["outputs"]]
    return lambda *args: [torch.from_numpy(o) for o in session.run(None, {n: a.numpy() for n, a in zip(names, args)})]


def _fresh_like(example: dict) -> dict:
    """A new input of the example's shapes (token ids kept: they index the vocabulary)."""
    gen = torch.Generator().manual_seed(123)
    return pytree.tree_map(lambda t: torch.randn(t.shape, generator=gen) if isinstance(t, torch.Tensor)
                           and t.is_floating_point() else t, example)


@pytest.mark.parametrize("model_id,fmt", [(m, f) for m, (_, fmts) in CASES.items() for f in fmts])
def test_exported_file_matches_eager_mode(model_id, fmt, tmp_path):
    kwargs, _ = CASES[model_id]
    out = tmp_path / f"model{SUFFIX[fmt]}"
    record = main(["export", "--model", model_id, "--format", fmt, "--output", str(out), "--pretrained", "false",
                   *_flags(kwargs)])
    assert out.is_file() and json.loads((tmp_path / f"{out.name}.json").read_text()) == record
    assert record["max_abs_diff"] <= 1e-4 and record["tolerance"] == {"atol": 1e-4, "rtol": 1e-4}
    if fmt == "onnx":  # one self-contained file (no external weights), the exporter's default opset
        assert sorted(p.name for p in tmp_path.iterdir()) == [out.name, f"{out.name}.json"]
        assert record["opset"] >= 18
    torch.manual_seed(0)
    model = mmzoo.create(model_id, **kwargs).eval()  # the same weights as the exported one (seed 0)
    example = model.example_input(1)
    assert [i["shape"] for i in record["inputs"]] == [list(t.shape) for t in pytree.tree_flatten(example)[0]
                                                      if isinstance(t, torch.Tensor)]
    fresh = _fresh_like(example)
    args = [t for t in pytree.tree_flatten(fresh)[0] if isinstance(t, torch.Tensor)]
    with torch.no_grad():
        want = pytree.tree_flatten(model(**fresh))[0]
        got = _load(fmt, out, record)(*args)
    got = list(got) if isinstance(got, (tuple, list)) else [got]
    assert len(got) == len(want) == len(record["outputs"])
    for a, b in zip(got, want):
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(want[0], pytree.tree_flatten(model(**example))[0][0])  # the new input matters


def test_models_that_cannot_be_exported_say_why(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["export", "--model", "stmn-r101", "--format", "torchscript", "--output", str(tmp_path / "x.pt"),
              "--pretrained", "false", "--model.backbone", "resnet18", "--model.pretrained_backbone", "false"])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert "STMN cannot be exported" in err and "NMS" in err


def test_an_operator_without_an_onnx_translation_is_named_in_one_line(tmp_path, capsys):
    # the audio probe max-pools L3-Net's audio maps to a 4 x 3 grid: aten.adaptive_max_pool2d to a
    # non-global size has no ONNX translation in torch 2.11's exporter (when one appears, the probe
    # exports and this test says so)
    out = tmp_path / "probe.onnx"
    with pytest.raises(SystemExit) as exc:
        main(["export", "--model", "audio-probe", "--format", "onnx", "--output", str(out), "--pretrained", "false",
              "--model.num_classes", "5", "--model.source_kwargs",
              json.dumps(dict(widths=[4, 8, 8, 16], fusion_dim=8, crop_size=32))])
    assert exc.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("mmzoo export: error: AudioProbe cannot be exported as onnx: the operator "
                          "aten.adaptive_max_pool2d has no ONNX translation")
    assert "\x1b" not in err and "try --format exported-program" in err and not (tmp_path / "probe.onnx.json").exists()


@pytest.mark.parametrize("package", ["onnx", "onnxscript", "onnxruntime"])
def test_onnx_without_one_of_its_packages_is_a_clear_error(package, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, package, None)  # `import package` raises ImportError, as if not installed
    torch.manual_seed(0)
    model = mmzoo.create("avel", region_dim=16, hidden_dim=8)
    with pytest.raises(NotSupportedError, match=rf"--format onnx needs the '{package}' package\(s\): "
                                                r"pip install 'mmzoo\[export\]'"):
        export_model(model, "onnx", tmp_path / "avel.onnx")
    assert not (tmp_path / "avel.onnx").exists()


def test_exported_program_needs_the_pt2_suffix(tmp_path):
    model = mmzoo.create("avel", region_dim=16, hidden_dim=8)
    with pytest.raises(ValueError, match=r"must end in \.pt2"):
        export_model(model, "exported-program", tmp_path / "avel.pt")
