"""File-in / file-out applications: `mmzoo predict --model <id> --input PATH`.

A model family that can run on a file or folder without a DataModule registers a predictor here:
STMN draws its detections on a video (:mod:`mmzoo.predict.stmn`; Xiao, PhD thesis ch. 3) and
T2VLAD ranks an expert feature set for a text query (:mod:`mmzoo.predict.t2vlad`; Wang, thesis
ch. 6); the AVE event localisers label the ten 1-s segments of a 10-s video and draw its
timeline and attention maps (:mod:`mmzoo.predict.ave`; Lin, MSc thesis 2019, ch. 3). A
predictor is ``fn(model, path, output_dir, query=None, top_k=10)``; it writes its
results under ``output_dir`` and returns them. Other families predict from their DataModule only
(`mmzoo predict --model <id> --data <name>`).
"""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from mmzoo.errors import NotSupportedError

__all__ = ["PREDICTORS", "register_predictor", "get_predictor", "predict_input", "main"]

#: model family (the `family` of its registry records, the module name under mmzoo.models) ->
#: "module:function" of its predictor, imported on first use.
PREDICTORS: dict[str, str] = {
    "aot": "mmzoo.predict.aot:predict_input",
    "ave": "mmzoo.predict.ave:predict_input",
    "audionet": "mmzoo.predict.classify_av:predict_input",
    "avslowfast": "mmzoo.predict.classify_av:predict_input",
    "ipl": "mmzoo.predict.flow:predict_input",
    "multisensory": "mmzoo.predict.multisensory:predict_input",
    "nonlocal_net": "mmzoo.predict.classify:predict_input",
    "psn": "mmzoo.predict.psn:predict_input",
    "saoa": "mmzoo.predict.flow:predict_saoa",
    "slowfast": "mmzoo.predict.classify:predict_input",
    "stmn": "mmzoo.predict.stmn:predict_input",
    "t2vlad": "mmzoo.predict.t2vlad:predict_input",
    "tsn": "mmzoo.predict.classify:predict_segments",
}


def register_predictor(family: str, target: str) -> None:
    """Make ``mmzoo predict --input`` run ``target`` ("module:function") for models of ``family``."""
    PREDICTORS[family] = target


def _family_of(model_or_id: Any) -> tuple[str, str]:
    """(family, display name) of a model instance or a registered id."""
    from mmzoo.registry import get_spec

    if isinstance(model_or_id, str):
        spec = get_spec(model_or_id)
        return spec.family, spec.cls.__name__
    zoo_id = getattr(model_or_id, "zoo_id", None)
    family = get_spec(zoo_id).family if zoo_id else type(model_or_id).__module__.rsplit(".", 1)[-1]
    return family, type(model_or_id).__name__


def get_predictor(model_or_id: Any) -> Callable[..., Any]:
    """The predictor of a model (or registered id); NotSupportedError when its family has none."""
    family, name = _family_of(model_or_id)
    target = PREDICTORS.get(family)
    if target is None:
        raise NotSupportedError(
            f"{name} does not predict from --input (file prediction exists for: {', '.join(sorted(PREDICTORS))}); "
            "use `mmzoo predict --model <id> --data <name> --data.root DIR`."
        )
    module, _, fn = target.partition(":")
    return getattr(importlib.import_module(module), fn)


def predict_input(model: Any, path: str, output_dir: str, query: Optional[str] = None, top_k: int = 10) -> Any:
    """Run ``model`` on the file or folder ``path`` with its family's predictor."""
    return get_predictor(model)(model, path, output_dir, query=query, top_k=top_k)


def _split_model_overrides(argv: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """``--model.KEY VALUE`` pairs (constructor overrides, YAML values) and the other arguments."""
    import yaml

    overrides: dict[str, Any] = {}
    rest: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i].startswith("--model.") and i + 1 < len(argv):
            overrides[argv[i][len("--model."):]] = yaml.safe_load(argv[i + 1])
            i += 2
        else:
            rest.append(argv[i])
            i += 1
    return overrides, rest


def main(argv: Sequence[str]) -> Any:
    """`mmzoo predict --model <id> --input PATH [--query TEXT] [--output_dir DIR]`: run a model on a
    file or folder without a DataModule, e.g. draw STMN detections on a video, or rank an MSR-VTT
    feature set for a sentence with T2VLAD."""
    import yaml

    import mmzoo
    from mmzoo.errors import UnknownModelError
    from mmzoo.hub import model_from_checkpoint

    overrides, rest = _split_model_overrides(argv)
    parser = argparse.ArgumentParser(prog="mmzoo predict", description=main.__doc__)
    parser.add_argument("--model", required=True, help="'id' or 'id.tag' (or a hub repo / folder)")
    parser.add_argument("--input", required=True, help="a video file, a frame folder or a feature set")
    parser.add_argument("--output_dir", default="predictions")
    parser.add_argument("--query", default=None, help="text query, for retrieval models")
    parser.add_argument("--top_k", type=int, default=10)
    parser.add_argument("--ckpt_path", default=None, help="a Lightning checkpoint of this model")
    parser.add_argument("--pretrained", type=lambda v: yaml.safe_load(v) is True, default=True,
                        help="load the tag's published weights (default true; ignored with --ckpt_path)")
    args = parser.parse_args(rest)
    try:  # a registered id: say before loading anything when its family has no file prediction
        get_predictor(args.model)
    except UnknownModelError:
        pass  # a hub repo or a folder: checked once the model is loaded
    if args.ckpt_path:
        model = model_from_checkpoint(args.ckpt_path, model_id=args.model.split(".")[0])
    elif args.pretrained:
        model = mmzoo.load(args.model, **overrides)
    else:
        print(f"mmzoo predict: --pretrained false: {args.model} has RANDOM weights", file=sys.stderr)
        model = mmzoo.create(args.model, **overrides)
    model.eval()
    out = Path(args.output_dir)
    before = {f: f.stat().st_mtime_ns for f in out.rglob("*") if f.is_file()} if out.is_dir() else {}
    result = predict_input(model, args.input, args.output_dir, query=args.query, top_k=args.top_k)
    print(_summary(args.model, args.input, out, before, result))
    return result


def _summary(model: str, source: str, out: Path, before: dict[Path, int], result: Any) -> str:
    """One line: what `mmzoo predict --input` wrote where (never the result itself)."""
    written = sorted(f for f in out.rglob("*") if f.is_file() and before.get(f) != f.stat().st_mtime_ns) \
        if out.is_dir() else []
    count = f"{len(result)} results" if isinstance(result, (list, tuple, dict)) else "done"
    names = ", ".join(str(f.relative_to(out)) for f in written[:3]) + (f" (+{len(written) - 3} more)" if len(written) > 3 else "")
    files = f"wrote {len(written)} file(s) to {out}" + (f": {names}" if names else "")
    return f"mmzoo predict: {model} on {source}: {count}; {files}"
