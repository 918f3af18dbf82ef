"""Importing a Lightning checkpoint (`.ckpt` from `mmzoo fit` or any Trainer) as a zoo model.

The checkpoint is read with torch's restricted `weights_only` unpickler (tensors and plain
containers; no code from the file runs). Its model id comes from the caller, from the "mmzoo"
entry `ZooModule.on_save_checkpoint` records, or is inferred from the hyper-parameters and
tensor shapes; the weights then go through the hub's one strict loader.
"""
from __future__ import annotations

import inspect
import os
import pickle
from pathlib import Path
from typing import Any, Mapping

import torch

from mmzoo.errors import CorruptWeightsError, IncompatibleConfigError
from mmzoo.hub.repo import build_model, load_folder, load_state_dict_strict
from mmzoo.registry import all_specs, get_spec

__all__ = ["model_from_checkpoint", "infer_model_id"]


def infer_model_id(hparams: Mapping[str, Any], state: Mapping[str, torch.Tensor], path: Path) -> str:
    """The registered id whose class accepts these hyper-parameters and whose state dict has
    exactly the checkpoint's names and shapes (built on the meta device, nothing allocated)."""
    matches: list[str] = []
    for model_id, spec in all_specs().items():
        params = inspect.signature(spec.cls.__init__).parameters
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()) and not set(hparams) <= set(params):
            continue
        try:
            with torch.device("meta"):
                candidate = spec.build(**hparams)
        except Exception:  # noqa: BLE001 - this id cannot take these arguments
            continue
        own = {k: tuple(v.shape) for k, v in candidate.state_dict().items()}
        if own == {k: tuple(v.shape) for k, v in state.items() if k in own} and set(state) <= set(own):
            matches.append(model_id)
    exact = [m for m in matches if all(hparams.get(k) == v for k, v in get_spec(m).defaults.items())]
    if len(matches) == 1 or len(exact) == 1:
        return (exact or matches)[0]
    found = ", ".join(matches) if matches else "none"
    raise IncompatibleConfigError(
        f"Cannot tell which zoo model {path} holds (matching ids: {found}). Pass the id explicitly: "
        "model_from_checkpoint(path, model_id=...) / `mmzoo push --model <id> ...`."
    )


def recorded_model_id(ckpt: Any) -> str | None:
    """The model id a loaded checkpoint records in its "mmzoo" entry (`ZooModule.on_save_checkpoint`)."""
    recorded = ckpt.get("mmzoo") if isinstance(ckpt, dict) else None
    return recorded.get("model_id") if isinstance(recorded, dict) else None


def checkpoint_model_id(path: str | os.PathLike) -> str | None:
    """The model id the Lightning checkpoint at `path` records (None when it records none or is
    unreadable); memory-maps the file instead of reading its tensors."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - not a (readable) checkpoint: the loader reports it later
        return None
    return recorded_model_id(ckpt)


def _read_checkpoint(path: Path) -> dict:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as err:
        raise CorruptWeightsError(
            f"{path} could not be read as a Lightning checkpoint with torch's safe (weights_only) "
            f"loader: {err}. mmzoo does not unpickle arbitrary objects; original-format checkpoints "
            "go through `mmzoo convert <id.tag> <file>`."
        ) from err
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise CorruptWeightsError(f"{path} is not a Lightning checkpoint (no 'state_dict' entry).")
    return ckpt


def model_from_checkpoint(path: str | os.PathLike, model_id: str | None = None):
    """A zoo model from an exported folder (config.json + model.safetensors) or from a Lightning
    `.ckpt` written by `mmzoo fit` / a Trainer.

    A .ckpt is read with torch's restricted `weights_only` unpickler (tensors and plain
    containers only; no code is executed). The model id comes from `model_id`, from the
    checkpoint's "mmzoo" entry, or is inferred from the hyper-parameters and tensor shapes; a
    `model_id` other than the one the checkpoint records is an IncompatibleConfigError.
    """
    path = Path(path)
    if path.is_dir():
        return load_folder(path, expected_model_id=get_spec(model_id).id if model_id else None)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint or folder at {path}.")
    ckpt = _read_checkpoint(path)
    hparams = {k: v for k, v in dict(ckpt.get("hyper_parameters") or {}).items() if not k.startswith("_")}
    state = ckpt["state_dict"]
    saved_as = recorded_model_id(ckpt)
    if model_id and saved_as and get_spec(model_id).id != saved_as:
        raise IncompatibleConfigError(
            f"{path} is a checkpoint of '{saved_as}', not of '{model_id}'; pass --model {saved_as} "
            "(model_id=...) or leave it out: the checkpoint records its model id."
        )
    model_id = model_id or saved_as or infer_model_id(hparams, state, path)
    spec = get_spec(model_id)
    model = build_model(spec, hparams, str(path))
    load_state_dict_strict(model, state, str(path))
    model.zoo_id = spec.id
    model.zoo_tag = None
    model.eval()
    return model
