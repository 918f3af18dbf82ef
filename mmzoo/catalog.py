"""The zoo's catalogue for `mmzoo list` / `mmzoo info`, read without importing torch or a model.

Listing the zoo used to import every model module (torch, Lightning, transformers: seconds and
hundreds of MB) only to print names. The registry's metadata is instead written once into
`mmzoo/zoo_index.json` by `python -m mmzoo.zoo_table --write` (beside the README table), and
`tests/test_models_every_id.py` keeps that file equal to the live registry, so the two cannot
drift. `mmzoo.model_info` / `mmzoo.list_models` (the Python API) still read the live registry,
which also holds models a user registered in their own code.

Each tag of an id has one of three statuses:

- ``published``: mmzoo's own weights are on the Hub (`hub_repo`);
- ``converts on first use``: the authors released a checkpoint; `mmzoo.load("id.tag")` downloads
  that original file once and converts it (`mmzoo convert` does the same from a local file);
- ``not published``: no weights yet; train them with `mmzoo fit`.
"""
from __future__ import annotations

import fnmatch
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from mmzoo.errors import UnknownModelError
from mmzoo.registry import did_you_mean, split_name

INDEX = Path(__file__).with_name("zoo_index.json")
PUBLISHED = "published"
CONVERTS = "converts on first use"
NOT_PUBLISHED = "not published"


def weights_status(tag: dict[str, Any]) -> str:
    """One of PUBLISHED / CONVERTS / NOT_PUBLISHED for a tag record of `model_info`."""
    if tag.get("hub_repo"):
        return PUBLISHED
    if tag.get("original_url") and tag.get("converter"):
        return CONVERTS
    return NOT_PUBLISHED


@lru_cache(maxsize=1)
def load_index() -> dict[str, dict[str, Any]]:
    """id -> the `model_info` record of that id, as generated into zoo_index.json."""
    if not INDEX.is_file():
        raise FileNotFoundError(f"{INDEX} is missing: regenerate it with `python -m mmzoo.zoo_table --write`.")
    return json.loads(INDEX.read_text(encoding="utf-8"))


def build_index(measured: dict[str, dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """The index from the live registry (imports every model; measures each unless `measured`
    already holds its {"params", "gflops"})."""
    from mmzoo.info import model_info
    from mmzoo.registry import all_specs

    index = {}
    for model_id in all_specs():
        record = model_info(model_id, measured=(measured or {}).get(model_id))
        index[model_id] = json.loads(json.dumps(record, default=str))
    return index


def write_index(index: dict[str, dict[str, Any]]) -> None:
    INDEX.write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")


def list_ids(pattern: str | None = None, pretrained: bool = False) -> list[str]:
    """Ids matching the glob `pattern`; with `pretrained`, 'id.tag' for every tag whose weights
    can be obtained (published or converted on first use)."""
    names: list[str] = []
    for model_id, record in sorted(load_index().items()):
        if pretrained:
            names += [f"{model_id}.{t}" for t, w in record["tags"].items() if weights_status(w) != NOT_PUBLISHED]
        else:
            names.append(model_id)
    return [n for n in names if fnmatch.fnmatch(n, pattern)] if pattern else names


def info(name: str) -> dict[str, Any]:
    """The index record of an id ('.tag' ignored); unknown ids suggest the closest ones."""
    model_id, _ = split_name(name)
    index = load_index()
    if model_id not in index:
        raise UnknownModelError(
            f"Unknown model id '{model_id}'.{did_you_mean(model_id, index)} `mmzoo list` shows all {len(index)} ids."
        )
    return index[model_id]
