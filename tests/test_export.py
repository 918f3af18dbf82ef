"""`mmzoo export` (mmzoo.export) through the CLI: TorchScript and ExportedProgram files of SlowFast,
AVSlowFast, the AVE localiser, a non-local I3D and T2VLAD give eager mode's outputs (within
atol = rtol = 1e-4) on new inputs of the example's shapes; models that cannot be exported, ONNX
without the onnx package and a wrong file suffix are clear errors."""
from __future__ import annotations

import importlib.util
import json

import pytest
import torch
from torch.utils import _pytree as pytree

import mmzoo
from mmzoo.cli import main
from mmzoo.errors import NotSupportedError
from mmzoo.export import export_model

_T2VLAD_BERT = json.dumps(dict(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=64, max_position_embeddings=64))
#: (model id, tiny constructor arguments, formats checked: TorchScript tracing of the tiny BERT is slow)
CASES = {
    "slowfast-r50-4x16": (dict(depth=14, width=8, slow_frames=2, alpha=4, crop_size=32), ("torchscript", "exported-program")),
    "avslowfast-r50-4x16": (dict(depth=14, width=8, slow_frames=2, alpha=4, crop_size=32, audio_frames=32, mel_bins=16),
                            ("exported-program",)),
    "avel": (dict(region_dim=16, hidden_dim=8), ("torchscript", "exported-program")),
    "nl-i3d-r50": (dict(depth=14, width=8, frames=8, crop_size=32, nonlocal_placement="custom",
                        nonlocal_positions=[[], [0], [0], []]), ("torchscript",)),
    "t2vlad": (dict(text_encoder_config=json.loads(_T2VLAD_BERT), text_encoder_init="random", embed_dim=16,
                    transformer_ffn_dim=16, num_clusters=3, text_max_tokens=8), ("exported-program",)),
}


def _flags(kwargs: dict) -> list[str]:
    return [x for k, v in kwargs.items() for x in (f"--model.{k}", json.dumps(v) if not isinstance(v, str) else v)]


def _load(fmt: str, path):
    return torch.jit.load(str(path)) if fmt == "torchscript" else torch.export.load(str(path)).module()


def _fresh_like(example: dict) -> dict:
    """A new input of the example's shapes (token ids kept: they index the vocabulary)."""
    gen = torch.Generator().manual_seed(123)
    return pytree.tree_map(lambda t: torch.randn(t.shape, generator=gen) if isinstance(t, torch.Tensor)
                           and t.is_floating_point() else t, example)


@pytest.mark.parametrize("model_id,fmt", [(m, f) for m, (_, fmts) in CASES.items() for f in fmts])
def test_exported_file_matches_eager_mode(model_id, fmt, tmp_path):
    kwargs, _ = CASES[model_id]
    out = tmp_path / "model.pt2"
    record = main(["export", "--model", model_id, "--format", fmt, "--output", str(out), "--pretrained", "false",
                   *_flags(kwargs)])
    assert out.is_file() and json.loads((tmp_path / "model.pt2.json").read_text()) == record
    assert record["max_abs_diff"] <= 1e-4 and record["tolerance"] == {"atol": 1e-4, "rtol": 1e-4}
    torch.manual_seed(0)
    model = mmzoo.create(model_id, **kwargs).eval()  # the same weights as the exported one (seed 0)
    example = model.example_input(1)
    assert [i["shape"] for i in record["inputs"]] == [list(t.shape) for t in pytree.tree_flatten(example)[0]
                                                      if isinstance(t, torch.Tensor)]
    fresh = _fresh_like(example)
    args = [t for t in pytree.tree_flatten(fresh)[0] if isinstance(t, torch.Tensor)]
    with torch.no_grad():
        want = pytree.tree_flatten(model(**fresh))[0]
        got = _load(fmt, out)(*args)
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


@pytest.mark.skipif(importlib.util.find_spec("onnx") is not None, reason="onnx is installed here")
def test_onnx_without_the_onnx_package_is_a_clear_error(tmp_path):
    torch.manual_seed(0)
    model = mmzoo.create("avel", region_dim=16, hidden_dim=8)
    with pytest.raises(NotSupportedError, match="needs the 'onnx' package"):
        export_model(model, "onnx", tmp_path / "avel.onnx")


def test_exported_program_needs_the_pt2_suffix(tmp_path):
    model = mmzoo.create("avel", region_dim=16, hidden_dim=8)
    with pytest.raises(ValueError, match=r"must end in \.pt2"):
        export_model(model, "exported-program", tmp_path / "avel.pt")
