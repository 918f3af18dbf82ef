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
``torch.export.load``; ``.pt2``), ``onnx`` (``torch.onnx.export(dynamo=True)``, static shapes,
one self-contained file whose graph inputs and outputs carry the record's names; it is checked
by running it in onnxruntime on CPU, and the record adds the opset. It needs the ``export``
extra, ``pip install 'mmzoo[export]'`` (onnx, onnxscript, onnxruntime): without one of them, a
clear error names it).

Families that cannot be exported get :class:`~mmzoo.errors.NotSupportedError` with the reason
(:data:`NOT_EXPORTABLE`): their inference is a data-dependent Python loop over detections. An
exporter failure is one line too; for ONNX it names the ATen operator that has no ONNX
translation (the audio probe's ``adaptive_max_pool2d`` to a 4 x 3 grid, in torch 2.11).
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils import _pytree as pytree

from mmzoo.errors import MmzooError, NotSupportedError

__all__ = ["FORMATS", "NOT_EXPORTABLE", "ExportMismatchError", "export_model", "main"]

FORMATS = ("torchscript", "onnx", "exported-program")
ATOL, RTOL = 1e-4, 1e-4
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # torch.onnx colours its messages
#: torch.onnx's message for an ATen operator it cannot translate (torch 2.11)
_NO_ONNX_OP = re.compile(r"No ONNX function found for <OpOverload\(op='([\w.]+)'")
#: What ``--format onnx`` imports (the ``export`` extra of pyproject.toml).
ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")

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


def _one_line(err: BaseException, limit: int = 500) -> str:
    return " ".join(_ANSI.sub("", str(err)).split())[:limit]


def _export_error(cls: str, fmt: str, err: Exception) -> NotSupportedError:
    """One line for an exporter failure; for ONNX, the operator that has no ONNX translation."""
    if isinstance(err, NotSupportedError):
        return err
    if fmt == "onnx":
        cause: BaseException | None = err
        while cause is not None:  # torch.onnx wraps the DispatchError that names the operator
            m = _NO_ONNX_OP.search(_ANSI.sub("", str(cause)))
            if m:
                return NotSupportedError(
                    f"{cls} cannot be exported as onnx: the operator {m.group(1)} has no ONNX translation in "
                    f"torch {torch.__version__}'s exporter (torch.onnx.export(dynamo=True)); "
                    "try --format exported-program")
            cause = cause.__cause__
    return NotSupportedError(f"{cls} could not be exported as {fmt}: {type(err).__name__}: {_one_line(err)}")


def _check_onnx_packages() -> None:
    """ONNX export needs onnx and onnxscript (``torch.onnx.export(dynamo=True)``) and onnxruntime (the check)."""
    missing = []
    for name in ONNX_PACKAGES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise NotSupportedError(f"--format onnx needs the {', '.join(repr(m) for m in missing)} package(s): "
                                f"pip install 'mmzoo[export]' ({' '.join(ONNX_PACKAGES)}); "
                                "torchscript and exported-program need nothing more")


class _OnnxRuntime:
    """Runs an ``.onnx`` file in onnxruntime (CPU) like a module: tensors in, tuple of tensors out."""

    def __init__(self, path: Path, n_inputs: int):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.names = [i.name for i in self.session.get_inputs()]
        if len(self.names) != n_inputs:
            raise ExportMismatchError(f"{path}: the ONNX graph takes {len(self.names)} inputs, the model "
                                      f"{n_inputs}")

    def __call__(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        feeds = {n: t.detach().cpu().numpy() for n, t in zip(self.names, tensors)}
        return tuple(torch.from_numpy(o) for o in self.session.run(None, feeds))


def _load_back(fmt: str, path: Path, n_inputs: int):
    if fmt == "torchscript":
        return torch.jit.load(str(path))
    if fmt == "exported-program":
        return torch.export.load(str(path)).module()
    return _OnnxRuntime(path, n_inputs)


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
    if fmt == "onnx":
        _check_onnx_packages()
    model = model.eval()
    torch.manual_seed(0)
    example = model.example_input(batch_size)
    flat = _Flat(model, example).eval()
    args = tuple(v for v in pytree.tree_flatten(example)[0] if isinstance(v, torch.Tensor))
    with torch.no_grad():
        out_tree = model(**example)
    eager = tuple(pytree.tree_flatten(out_tree)[0])
    in_names = [n for n, v in zip(_names(example, ""), pytree.tree_flatten(example)[0]) if isinstance(v, torch.Tensor)]
    out_names = _names(out_tree, "output")
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Lightning's own flag for tracing a LightningModule (its `trainer` property would raise otherwise),
    # on the model and on every LightningModule inside it (the audio probe wraps an L3-Net)
    jit_flags = {m: m._jit_is_scripting for m in model.modules() if hasattr(m, "_jit_is_scripting")}
    for m in jit_flags:
        m._jit_is_scripting = True
    try:
        with torch.no_grad():
            if fmt == "torchscript":
                torch.jit.save(torch.jit.trace(flat, args, check_trace=False), str(out))
            elif fmt == "exported-program":
                torch.export.save(torch.export.export(flat, args, strict=False), str(out))
            else:
                # one self-contained file (torch still writes `<output>.data` beside it past 1.5 GB of weights)
                torch.onnx.export(flat, args, str(out), dynamo=True, external_data=False, verbose=False,
                                  input_names=in_names, output_names=out_names)
    except Exception as err:
        raise _export_error(cls, fmt, err) from err
    finally:
        for m, flag in jit_flags.items():
            m._jit_is_scripting = flag
    try:
        loaded = _load_back(fmt, out, len(args))
        with torch.no_grad():
            got = loaded(*args)
    except ExportMismatchError:
        raise
    except Exception as err:
        if fmt != "onnx":
            raise
        import onnxruntime

        raise NotSupportedError(f"{cls} was written to {out} but onnxruntime {onnxruntime.__version__} cannot run "
                                f"it: {type(err).__name__}: {_one_line(err)}") from err
    got = tuple(got) if isinstance(got, (tuple, list)) else (got,)
    if len(got) != len(eager):
        raise ExportMismatchError(f"{out}: {len(got)} outputs, eager mode has {len(eager)}")
    diff = max(float((a.float() - b.float()).abs().max()) for a, b in zip(got, eager)) if eager else 0.0
    ok = all(torch.allclose(a.float(), b.float(), atol=ATOL, rtol=RTOL) for a, b in zip(got, eager))
    if not ok:
        raise ExportMismatchError(f"{out}: outputs differ from eager mode by up to {diff:.3g} "
                                  f"(tolerance atol={ATOL}, rtol={RTOL})")
    record = {
        "model": getattr(model, "zoo_id", None), "tag": getattr(model, "zoo_tag", None), "format": fmt,
        "file": out.name,
        "inputs": [{"name": n, "shape": list(t.shape), "dtype": str(t.dtype)} for n, t in zip(in_names, args)],
        "outputs": [{"name": n, "shape": list(t.shape)} for n, t in zip(out_names, eager)],
        "max_abs_diff": diff, "tolerance": {"atol": ATOL, "rtol": RTOL},
        "torch": torch.__version__,
    }
    if fmt == "onnx":  # the graph's inputs and outputs carry the record's names
        import onnx

        proto = onnx.load(str(out), load_external_data=False)
        record["opset"] = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
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
