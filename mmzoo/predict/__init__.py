"""File-in / file-out applications: `mmzoo predict --model <id> --input PATH`.

A model family that can run on a file or folder without a DataModule registers a predictor here:
STMN draws its detections on a video (:mod:`mmzoo.predict.stmn`; Xiao, PhD thesis ch. 3) and
T2VLAD ranks an expert feature set for a text query (:mod:`mmzoo.predict.t2vlad`; Wang, thesis
ch. 6); the AVE event localisers label the ten 1-s segments of a 10-s video and draw its
timeline and attention maps (:mod:`mmzoo.predict.ave`; Lin, MSc thesis 2019, ch. 3). A
predictor is ``fn(model, path, output_dir, query=None, top_k=10, **options)``; it writes its
results under ``output_dir`` and returns them. Its further keyword arguments (``options``: the AVE
feature extraction settings, the flow stride / method / bound of the flow streams, PSN's frame
rate, the window stride of clip classifiers, ...) are ``mmzoo predict --predictor.KEY VALUE``
flags (YAML values, as ``--model.KEY``); :func:`predictor_options` lists them, and an unknown key
is a one-line error naming the close ones. Other families predict from their DataModule only
(`mmzoo predict --model <id> --data <name>`).
"""
from __future__ import annotations

import argparse
import difflib
import importlib
import inspect
import sys
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from mmzoo.errors import MmzooError, NotSupportedError

__all__ = ["PREDICTORS", "PredictorOptionError", "register_predictor", "get_predictor", "predictor_options",
           "check_predictor_options", "predict_input", "main"]

#: The arguments every predictor takes; the others are its options (``--predictor.KEY``).
_COMMON = ("model", "path", "output_dir", "query", "top_k")


class PredictorOptionError(MmzooError, ValueError):
    """A ``--predictor.KEY`` option the family's predictor does not take, or a value it refuses."""

#: model family (the `family` of its registry records, the module name under mmzoo.models) ->
#: "module:function" of its predictor, imported on first use.
PREDICTORS: dict[str, str] = {
    "aot": "mmzoo.predict.aot:predict_input",
    "ave": "mmzoo.predict.ave:predict_input",
    "audionet": "mmzoo.predict.classify_av:predict_input",
    "avslowfast": "mmzoo.predict.classify_av:predict_input",
    "ensemble": "mmzoo.predict.ensemble:predict_input",
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
    return _load(target)


def _load(target: str) -> Callable[..., Any]:
    module, _, fn = target.partition(":")
    return getattr(importlib.import_module(module), fn)


def predictor_options(fn: Callable[..., Any]) -> dict[str, Any]:
    """``{key: default}`` of the options of predictor ``fn``: its keyword arguments other than
    model / path / output_dir / query / top_k (``inspect.Parameter.empty`` for one without a default)."""
    return {name: p.default for name, p in inspect.signature(fn).parameters.items()
            if name not in _COMMON and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _describe(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}.{fn.__name__}"


def check_predictor_options(fn: Callable[..., Any], options: dict[str, Any], who: str = "") -> None:
    """PredictorOptionError (one line) for an option ``fn`` does not take: the accepted keys and
    the close matches (difflib) of the unknown one. A predictor with ``**kwargs`` takes any."""
    if any(p.kind is p.VAR_KEYWORD for p in inspect.signature(fn).parameters.values()):
        return
    accepted = list(predictor_options(fn))
    for key in options:
        if key in accepted:
            continue
        close = difflib.get_close_matches(key, accepted, n=3, cutoff=0.5)
        hint = f"did you mean {' or '.join('--predictor.' + c for c in close)}? " if close else ""
        keys = ", ".join(accepted) if accepted else "none"
        raise PredictorOptionError(
            f"unknown option --predictor.{key} for {who or 'this model'} ({_describe(fn)}); {hint}accepted keys: {keys}")


def predict_input(model: Any, path: str, output_dir: str, query: Optional[str] = None, top_k: int = 10,
                  **options: Any) -> Any:
    """Run ``model`` on the file or folder ``path`` with its family's predictor; ``options`` are
    its keyword arguments (checked by :func:`check_predictor_options`)."""
    fn = get_predictor(model)
    check_predictor_options(fn, options, getattr(model, "zoo_id", None) or type(model).__name__)
    return fn(model, path, output_dir, query=query, top_k=top_k, **options)


_PREFIXES = ("--model.", "--predictor.")


def _split_overrides(argv: Sequence[str]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """``--model.KEY VALUE`` (constructor overrides) and ``--predictor.KEY VALUE`` (predictor
    options) pairs, also written ``--PREFIX.KEY=VALUE``, YAML-parsed, by prefix; and the other arguments."""
    import yaml

    found: dict[str, dict[str, Any]] = {p: {} for p in _PREFIXES}
    rest: list[str] = []
    i = 0
    while i < len(argv):
        prefix = next((p for p in _PREFIXES if argv[i].startswith(p)), None)
        if prefix is None:
            rest.append(argv[i])
            i += 1
            continue
        key, eq, value = argv[i][len(prefix):].partition("=")
        if not eq:
            if i + 1 >= len(argv):
                raise PredictorOptionError(f"{argv[i]} needs a value")
            value, i = argv[i + 1], i + 1
        if not key:
            raise PredictorOptionError(f"{argv[i]}: {prefix}KEY needs a key")
        found[prefix][key] = yaml.safe_load(value)
        i += 1
    return found, rest


def options_epilog() -> str:
    """The ``--predictor.KEY`` options of every family's predictor, for ``mmzoo predict --help``."""
    lines = ["predictor options (--predictor.KEY VALUE, YAML values), by model family:"]
    for family, target in sorted(PREDICTORS.items()):
        opts = predictor_options(_load(target))
        text = ", ".join(k if v is inspect.Parameter.empty else f"{k}={v!r}" for k, v in opts.items())
        lines.append(f"  {family}: {text or '(none)'}")
    lines.append("(ipl / saoa: flow_stride, method and bound apply to flow ids; None there means the EPIC release's "
                 "2, tvl1, 20.0; window_stride=None: consecutive windows)")
    return "\n".join(lines)


def main(argv: Sequence[str]) -> Any:
    """`mmzoo predict --model <id> --input PATH [--query TEXT] [--output_dir DIR] [--predictor.KEY VALUE]`:
    run a model on a file or folder without a DataModule, e.g. draw STMN detections on a video, or
    rank an MSR-VTT feature set for a sentence with T2VLAD; ``--predictor.KEY VALUE`` is a keyword
    argument of the family's predictor."""
    import yaml

    import mmzoo
    from mmzoo.errors import UnknownModelError
    from mmzoo.hub import model_from_checkpoint

    found, rest = _split_overrides(argv)
    overrides, options = found["--model."], found["--predictor."]
    wants_help = any(a in ("-h", "--help") for a in rest)
    parser = argparse.ArgumentParser(prog="mmzoo predict", description=inspect.cleandoc(main.__doc__ or ""),
                                     epilog=options_epilog() if wants_help else None,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="'id' or 'id.tag' (or a hub repo / folder)")
    parser.add_argument("--input", required=True, help="a video file, a frame folder or a feature set")
    parser.add_argument("--output_dir", default="predictions")
    parser.add_argument("--query", default=None, help="text query, for retrieval models")
    parser.add_argument("--top_k", type=int, default=10)
    parser.add_argument("--ckpt_path", default=None, help="a Lightning checkpoint of this model")
    parser.add_argument("--pretrained", type=lambda v: yaml.safe_load(v) is True, default=True,
                        help="load the tag's published weights (default true; ignored with --ckpt_path)")
    parser.add_argument("--predictor.KEY", metavar="VALUE", dest="_predictor_doc", default=None,
                        help="a keyword argument of the family's predictor (listed below), e.g. "
                             "--predictor.window_stride 8")
    args = parser.parse_args(rest)
    try:  # a registered id: say before loading anything when its family has no file prediction or option
        check_predictor_options(get_predictor(args.model), options, args.model)
    except UnknownModelError:
        pass  # a hub repo or a folder: checked once the model is loaded
    if args.ckpt_path:
        model = model_from_checkpoint(args.ckpt_path, model_id=args.model.split(".")[0])
    elif args.pretrained:
        model = mmzoo.load(args.model, **overrides)
    else:
        if not overrides.get("member_checkpoints"):  # an ensemble's members may load their own checkpoints
            print(f"mmzoo predict: --pretrained false: {args.model} has RANDOM weights", file=sys.stderr)
        model = mmzoo.create(args.model, **overrides)
    model.eval()
    out = Path(args.output_dir)
    before = {f: f.stat().st_mtime_ns for f in out.rglob("*") if f.is_file()} if out.is_dir() else {}
    result = predict_input(model, args.input, args.output_dir, query=args.query, top_k=args.top_k, **options)
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
