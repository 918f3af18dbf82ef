"""`mmzoo export`: a zoo model as TorchScript, an ``torch.export`` ExportedProgram, or ONNX.

``mmzoo export --model <id>[.tag] --format {torchscript,onnx,exported-program} --output F
[--pretrained false] [--model.<arg> v ...] [--batch_size 1]``

The model's ``forward`` is exported on its ``example_input`` (the paper's input shapes, or the
shapes the ``--model.*`` arguments give). Nested inputs (SlowFast's ``[slow, fast]`` list,
T2VLAD's dict of experts) and outputs (``{"verb", "noun"}``) are flattened into positional
tensors with ``torch.utils._pytree``; the record next to the file (``F.json``) lists the input
and output names and shapes in that order. After writing, the file is loaded back and run on
the same example: every output must match eager mode within ``atol=1e-4, rtol=1e-4`` (float32),
and the largest difference is recorded; a larger one is an error (:class:`ExportMismatchError`).

Formats: ``torchscript`` (``torch.jit.trace``: shapes other than the example's are not
guaranteed; ``.pt``), ``exported-program`` (``torch.export.export``, static shapes, loadable with
``torch.export.load``; ``.pt2``), ``onnx`` (``torch.onnx.export``, which needs the ``onnx``
package: without it, a clear error says so).

Families that cannot be exported get :class:`~mmzoo.errors.NotSupportedError` with the reason
(:data:`NOT_EXPORTABLE`): their inference is a data-dependent Python loop over detections.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils import _pytree as pytree

from mmzoo.errors import MmzooError, NotSupportedError

__all__ = ["FORMATS", "NOT_EXPORTABLE", "ExportMismatchError", "export_model", "main"]

FORMATS = ("torchscript", "onnx", "exported-program")
ATOL, RTOL = 1e-4, 1e-4

#: Model classes that cannot be exported, and why.
NOT_EXPORTABLE = {
    "STMN": "its inference decodes proposals, runs NMS and Seq-NMS per frame in Python over a variable number of "
            "boxes (data-dependent control flow and output sizes)",
    "MaskRCNN": "torchvision's Mask R-CNN returns a variable number of detections per image through data-dependent "
                "NMS and mask pasting; export the backbone (forward_features) from Python instead",
    "Ensemble": "it fuses members loaded from separate checkpoints; export each member instead",
}


class ExportMismatchError(MmzooError, ValueError):
    """The exported model's outputs differ from eager mode beyond the stated tolerance."""


class _Flat(nn.Module):
    """``forward(*tensors)`` -> tuple of tensors around ``model(**example)`` (pytree-flattened)."""

    def __init__(self, model: nn.Module, example: dict[str, Any]):
        super().__init__()
        self.model = model
        leaves, self.spec = pytree.tree_flatten(example)
        self.is_tensor = [isinstance(v, torch.Tensor) for v in leaves]
        self.constants = [None if t else v for v, t in zip(leaves, self.is_tensor)]

    def forward(self, *tensors: torch.Tensor):
        it = iter(tensors)
        leaves = [next(it) if t else c for t, c in zip(self.is_tensor, self.constants)]
        out = self.model(**pytree.tree_unflatten(leaves, self.spec))
        return tuple(pytree.tree_flatten(out)[0])


def _names(tree: Any, prefix: str) -> list[str]:
    """Dotted names of the leaves (``video.0``, ``experts.audio``, ``output.verb``)."""
    paths, _ = pytree.tree_flatten_with_path(tree)
    parts = [[str(getattr(k, "key", getattr(k, "idx", k))) for k in path] for path, _ in paths]
    return [".".join([prefix, *p] if prefix else p) or prefix for p in parts]


def _load_back(fmt: str, path: Path):
    if fmt == "torchscript":
        return torch.jit.load(str(path))
    if fmt == "exported-program":
        return torch.export.load(str(path)).module()
    import onnxruntime  # noqa: F401 - only reached with onnx installed

    raise NotSupportedError("checking an ONNX file needs onnxruntime")  # pragma: no cover


def export_model(model: nn.Module, fmt: str, output: str | os.PathLike, batch_size: int = 1) -> dict[str, Any]:
    """Export ``model`` (a zoo model) to ``output`` in ``fmt``, check it against eager mode on
    ``example_input(batch_size)``, write ``output + ".json"`` and return that record."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    cls = type(model).__name__
    if fmt == "exported-program" and Path(output).suffix != ".pt2":
        raise ValueError(f"--output {output}: an ExportedProgram file must end in .pt2 (torch.export.load needs it)")
    if cls in NOT_EXPORTABLE:
        raise NotSupportedError(f"{cls} cannot be exported: {NOT_EXPORTABLE[cls]}")
    model = model.eval()
    torch.manual_seed(0)
    example = model.example_input(batch_size)
    flat = _Flat(model, example).eval()
    args = tuple(v for v in pytree.tree_flatten(example)[0] if isinstance(v, torch.Tensor))
    with torch.no_grad():
        eager = flat(*args)
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Lightning's own flag for tracing a LightningModule (its `trainer` property would raise otherwise)
    jit_flag = getattr(model, "_jit_is_scripting", None)
    if jit_flag is not None:
        model._jit_is_scripting = True
    try:
        with torch.no_grad():
            if fmt == "torchscript":
                torch.jit.save(torch.jit.trace(flat, args, check_trace=False), str(out))
            elif fmt == "exported-program":
                torch.export.save(torch.export.export(flat, args, strict=False), str(out))
            else:
                try:
                    import onnx  # noqa: F401
                except ImportError as err:
                    raise NotSupportedError("--format onnx needs the 'onnx' package (pip install onnx onnxscript); "
                                            "torchscript and exported-program need nothing more") from err
                torch.onnx.export(flat, args, str(out), dynamo=True)
    except NotSupportedError:
        raise
    except Exception as err:
        raise NotSupportedError(f"{cls} could not be exported as {fmt}: {type(err).__name__}: "
                                f"{' '.join(str(err).split())[:500]}") from err
    finally:
        if jit_flag is not None:
            model._jit_is_scripting = jit_flag
    loaded = _load_back(fmt, out)
    with torch.no_grad():
        got = loaded(*args)
    got = tuple(got) if isinstance(got, (tuple, list)) else (got,)
    if len(got) != len(eager):
        raise ExportMismatchError(f"{out}: {len(got)} outputs, eager mode has {len(eager)}")
    diff = max(float((a.float() - b.float()).abs().max()) for a, b in zip(got, eager)) if eager else 0.0
    ok = all(torch.allclose(a.float(), b.float(), atol=ATOL, rtol=RTOL) for a, b in zip(got, eager))
    if not ok:
        raise ExportMismatchError(f"{out}: outputs differ from eager mode by up to {diff:.3g} "
                                  f"(tolerance atol={ATOL}, rtol={RTOL})")
    with torch.no_grad():
        out_tree = model(**example)
    record = {
        "model": getattr(model, "zoo_id", None), "tag": getattr(model, "zoo_tag", None), "format": fmt,
        "file": out.name,
        "inputs": [{"name": n, "shape": list(t.shape), "dtype": str(t.dtype)} for n, t in zip(
            [n for n, v in zip(_names(example, ""), pytree.tree_flatten(example)[0]) if isinstance(v, torch.Tensor)],
            args)],
        "outputs": [{"name": n, "shape": list(t.shape)} for n, t in zip(_names(out_tree, "output"), eager)],
        "max_abs_diff": diff, "tolerance": {"atol": ATOL, "rtol": RTOL},
        "torch": torch.__version__,
    }
    Path(str(out) + ".json").write_text(json.dumps(record, indent=2))
    return record


def main(argv: list[str]) -> dict[str, Any]:
    """The `mmzoo export` command line."""
    import yaml

    import mmzoo

    parser = argparse.ArgumentParser(prog="mmzoo export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="'id', 'id.tag', a hub repo or a local folder")
    parser.add_argument("--format", required=True, choices=FORMATS)
    parser.add_argument("--output", required=True)
    parser.add_argument("--pretrained", default="true", choices=["true", "false"])
    parser.add_argument("--batch_size", type=int, default=1)
    known, rest = parser.parse_known_args(argv)
    kwargs: dict[str, Any] = {}
    it = iter(rest)
    for arg in it:
        name, _, value = arg.partition("=")
        if not name.startswith("--model."):
            parser.error(f"unknown argument {arg}")
        value = value or next(it, None)
        if value is None:
            parser.error(f"{name} needs a value")
        kwargs[name[len("--model."):]] = yaml.safe_load(value)
    if known.pretrained == "true":
        model = mmzoo.load(known.model, **kwargs)
    else:
        from mmzoo.registry import get_spec

        torch.manual_seed(0)
        model = mmzoo.create(known.model, **kwargs)
        model.zoo_id = get_spec(known.model).id
    record = export_model(model, known.format, known.output, known.batch_size)
    print(f"mmzoo export: {record['model']} -> {known.output} ({known.format}); outputs match eager mode "
          f"within atol={ATOL} (max difference {record['max_abs_diff']:.2g})")
    return record
