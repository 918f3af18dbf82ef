"""Transfer to UCF101 / HMDB51: the source weights of a ``transfer`` model and split reporting.

The architecture and the protocols live in :mod:`mmzoo.models.transfer` (the registered id
``transfer``); this top-floor module does what needs the hub:

* :func:`load_source_weights` fills ``model.source`` from ``model.hparams.source_weights`` (a tag
  of the source id, a name :func:`mmzoo.load` accepts, or a Lightning ``.ckpt``); ``mmzoo fit``
  calls it when it builds a ``transfer`` model;
* :func:`transfer_model` builds a ``transfer`` model and loads its source weights (notebooks);
* :func:`summarise_splits` turns the results of the three official splits into the per-split
  and mean numbers the literature reports.

CLI (LightningCLI-native, no extra flag)::

    mmzoo fit --model transfer --model.source avslowfast-r50-16x4 --model.source_weights k400 \\
        --model.protocol linear-probe --data ucf101 --data.root UCF101 --data.split 1
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from mmzoo.errors import MmzooError

__all__ = ["load_source_weights", "summarise_splits", "transfer_model"]


def _source_state(model: Any, name: str) -> tuple[dict[str, torch.Tensor], str]:
    from mmzoo.hub import load, load_pretrained_state
    from mmzoo.registry import get_spec

    spec = get_spec(model.hparams.source)
    if name in spec.tags:
        return load_pretrained_state(spec.id, name), f"{spec.id}.{name}"
    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".ckpt":
        from mmzoo.hub.checkpoint import model_from_checkpoint

        return model_from_checkpoint(path, spec.id).state_dict(), str(path)
    loaded = load(name)
    return loaded.state_dict(), name


def load_source_weights(model: Any) -> bool:
    """Load ``model.hparams.source_weights`` into ``model.source`` (strictly: every key of the
    source, its own classifiers included); False when there is nothing to load or it was done."""
    from mmzoo.hub import load_state_dict_strict

    name = model.hparams.source_weights
    if not name or getattr(model, "source_weights_loaded", False):
        return False
    state, where = _source_state(model, name)
    load_state_dict_strict(model.source, state, where)
    model.source_weights_loaded = True
    return True


def transfer_model(source: str, protocol: str = "linear-probe", num_classes: int = 101, **kwargs: Any):
    """A ``transfer`` model over ``source`` with its ``source_weights`` loaded (if given)."""
    import mmzoo

    model = mmzoo.create("transfer", source=source, protocol=protocol, num_classes=num_classes, **kwargs)
    load_source_weights(model)
    return model


def summarise_splits(results: Mapping[int, Mapping[str, float] | str | os.PathLike],
                     keys: Sequence[str] = ("test/top1", "test/clip_top1")) -> dict[str, Any]:
    """Per-split results (a metrics dict, or the ``results_test.json`` that ``mmzoo test`` writes)
    -> ``{"splits": {k: {metric: value}}, "mean": {metric: mean over the splits}}``. The mean needs
    the three official splits; anything else is an error (the literature's "average over 3
    splits")."""
    per: dict[int, dict[str, float]] = {}
    for split, res in results.items():
        if isinstance(res, (str, os.PathLike)):
            res = json.loads(Path(res).read_text())["metrics"]
        missing = [k for k in keys if k not in res]
        if missing:
            raise MmzooError(f"split {split}: results lack {missing} (have {sorted(res)})")
        per[int(split)] = {k: float(res[k]) for k in keys}
    if sorted(per) != [1, 2, 3]:
        raise MmzooError(f"the mean over splits needs splits 1, 2 and 3, got {sorted(per)}")
    mean = {k: sum(v[k] for v in per.values()) / 3 for k in keys}
    return {"splits": per, "mean": mean}
