"""Converting the original authors' checkpoints into mmzoo repos.

A `Weights` record with `converter="mmzoo.convert.<module>:<function>"` names a function taking
the path of the authors' file (often a pickle: a PyTorch `.pth`, a Caffe2 `.pkl`, ...) and
returning an mmzoo state dict. `convert` runs it, loads the result strictly into the registered
architecture and writes a regular repo folder (config.json + model.safetensors + README.md),
by default into the local hub, so that `mmzoo.load` afterwards only ever reads safetensors.

Reading a pickle can execute code: this is the one place mmzoo does it, only when asked
explicitly (`mmzoo convert`, or `load` falling back to a registered original file whose sha256
the registry records), and it says so.
"""
from __future__ import annotations

import importlib
import inspect
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable

from mmzoo.errors import ConversionError, MmzooError, NoPublishedWeightsError
from mmzoo.hub.repo import WEIGHTS_NAME, load_state_dict_strict, save_pretrained, sha256_file, verify_sha256
from mmzoo.hub.sources import converted_repo, install_local
from mmzoo.registry import get_spec, split_name

__all__ = ["convert", "verify_sha256", "sha256_file", "load_converter"]


def load_converter(dotted: str) -> Callable[[str], dict]:
    """Import the converter 'package.module:function'."""
    module_name, sep, attr = dotted.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"Converter '{dotted}' must be written 'package.module:function'.")
    fn = getattr(importlib.import_module(module_name), attr, None)
    if not callable(fn):
        raise ValueError(f"Converter '{dotted}': {module_name} has no function {attr}.")
    return fn


def _trust_notice(path: Path, checked: bool) -> str:
    check = (
        "its sha256 matches the one the registry records"
        if checked
        else "the registry records no sha256 for it, so its origin is NOT verified"
    )
    return (
        f"mmzoo convert: reading {path}, an original-format checkpoint. Such files are usually "
        "Python pickles, and unpickling can execute arbitrary code: convert only files from a "
        f"source you trust ({check}). The result is written as safetensors, which is all that "
        "mmzoo.load reads afterwards."
    )


def convert(
    name: str,
    original_file: str | os.PathLike,
    output_dir: str | os.PathLike | None = None,
    push_to_local_hub: bool = True,
    allow_pickle: bool = False,
) -> Path:
    """Convert the authors' checkpoint of `name` ('id.tag', or 'id' for the default tag).

    Writes the repo folder into `output_dir` and/or the local hub (at the tag's `hub_repo`, or
    `mmzoo-converted/<id>.<tag>` when none is recorded). Returns `output_dir` when given, else
    the local-hub folder. Converters that read PyTorch pickles use torch's restricted
    (weights_only) loader unless `allow_pickle` is given (the `mmzoo convert` command gives it,
    after printing a trust notice); `mmzoo.load` converts without it. Raises if the original file's sha256 or the converted
    model.safetensors' sha256 differs from the registry's record, or if the converted state
    dict does not fit the architecture exactly.
    """
    if output_dir is None and not push_to_local_hub:
        raise ValueError("Nowhere to write: give output_dir or keep push_to_local_hub=True.")
    spec = get_spec(name)
    tag = split_name(name)[1]
    w = spec.weights_for(tag) if (tag or spec.default_tag) else None
    if w is None or not w.converter:
        have = [f"{spec.id}.{x.tag}" for x in spec.weights if x.converter]
        raise NoPublishedWeightsError(
            f"'{spec.id}{'.' + w.tag if w else ''}' has no converter registered, so there is no original checkpoint to "
            f"convert. Tags with converters: {', '.join(have) or 'none'}."
        )
    original = Path(original_file).expanduser()
    if not original.is_file():
        raise FileNotFoundError(f"No original checkpoint at {original}.")
    if w.original_sha256:
        verify_sha256(original, w.original_sha256, hint=f"expected the original file of {spec.id}.{w.tag}")
    suffix = Path(w.original_url).suffix if w.original_url else ""
    if suffix and original.suffix.lower() != suffix.lower():  # before the trust notice: nothing is read
        raise ConversionError(f"{original} is not the original checkpoint of {spec.id}.{w.tag}: expected a {suffix} "
                              f"file (as published at {w.original_url}), read by {w.converter}")
    converter = load_converter(w.converter)
    try:
        if "allow_pickle" in inspect.signature(converter).parameters:
            # Converters that may need full unpickling read safely unless the caller consents.
            if allow_pickle:
                print(_trust_notice(original, bool(w.original_sha256)), file=sys.stderr)
            state_dict = converter(str(original), allow_pickle=allow_pickle)
        else:
            state_dict = converter(str(original))
    except MmzooError:
        raise
    except Exception as err:  # a file of another format: say which one was expected
        expected = f"a {suffix} file" if suffix else "the authors' original file"
        raise ConversionError(
            f"{original} is not in the format {spec.id}.{w.tag} converts from (expected {expected} "
            f"read by {w.converter}): {type(err).__name__}: {err}"
        ) from err
    model = spec.build(**spec.cls.init_without_download)
    load_state_dict_strict(model, state_dict, f"the output of {w.converter} on {original}")
    model.zoo_tag = w.tag
    model.eval()

    with tempfile.TemporaryDirectory(prefix="mmzoo-convert-") as tmp:
        folder = save_pretrained(model, Path(tmp) / "repo")
        if w.sha256:
            verify_sha256(
                folder / WEIGHTS_NAME,
                w.sha256,
                hint="the converted weights differ from the published ones: the converter or this file is not the recorded one",
            )
        result: Path | None = None
        if push_to_local_hub:
            result = install_local(lambda dst: shutil.copytree(folder, dst, dirs_exist_ok=True), converted_repo(spec, w))
        if output_dir is not None:
            out = Path(output_dir)
            out.mkdir(parents=True, exist_ok=True)
            for item in folder.iterdir():
                shutil.copy2(item, out / item.name)
            result = out
    assert result is not None
    return result

