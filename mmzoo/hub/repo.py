"""The repo folder format: what a published mmzoo model is on disk.

A local-hub entry, a Hugging Face Hub repo and an exported folder share one layout::

    config.json          {"format_version", "mmzoo_version", "model_id", "kwargs", "input", "tag", ...}
    model.safetensors    the state dict; weights are only ever read from safetensors
    README.md            the model card (model_cards/<id>.md, or a generated one)

`config.json` alone rebuilds the architecture: the registry maps `model_id` to a class and
`kwargs` are its constructor arguments. This module writes and reads that folder, checks
sha256 digests, and holds mmzoo's one strict state-dict loader (used by `load`, by the
Lightning-checkpoint import and by `mmzoo.convert`). It knows nothing about where a folder
comes from (see `mmzoo.hub.sources`).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

import torch

from mmzoo.errors import (
    ChecksumMismatchError,
    CorruptWeightsError,
    IncompatibleConfigError,
    MissingKeysError,
    UnknownModelError,
)
from mmzoo.registry import ModelSpec, get_spec

__all__ = [
    "FORMAT_VERSION",
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "CARD_NAME",
    "ALIASES_KEY",
    "save_pretrained",
    "read_config",
    "read_weights",
    "load_folder",
    "load_state_dict_strict",
    "build_model",
    "sha256_file",
    "verify_sha256",
]

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
ALIASES_KEY = "mmzoo.aliases"
MODEL_ID_KEY = "mmzoo.model_id"


def mmzoo_version() -> str:
    """The installed mmzoo version (read at call time: mmzoo/__init__ imports the hub lazily)."""
    from mmzoo import __version__

    return __version__


# --------------------------------------------------------------------------------------------
# sha256
# --------------------------------------------------------------------------------------------


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: str | os.PathLike, expected: str | None, hint: str = "") -> str:
    """Check that `path` has sha256 `expected` (no-op check when `expected` is None); returns
    the actual digest, raises `ChecksumMismatchError` naming the file and both digests."""
    actual = sha256_file(path)
    if expected and actual.lower() != expected.strip().lower():
        raise ChecksumMismatchError(path, expected.strip().lower(), actual, hint)
    return actual


# --------------------------------------------------------------------------------------------
# Writing a repo folder
# --------------------------------------------------------------------------------------------


def model_id_of(model) -> str:
    """The registered id a model was built under (`model.zoo_id`), or a ValueError saying how to set it."""
    model_id = getattr(model, "zoo_id", None)
    if not model_id:
        raise ValueError(
            f"This {type(model).__name__} has no zoo id: build it with mmzoo.create(<id>) or "
            "mmzoo.load(...) (which set `model.zoo_id`), or set `model.zoo_id = '<registered id>'`."
        )
    return model_id


def _config_for(model) -> dict[str, Any]:
    model_id = model_id_of(model)
    spec = get_spec(model_id)
    kwargs = model.init_kwargs() if hasattr(model, "init_kwargs") else {}
    try:
        json.dumps(kwargs)
    except TypeError as err:
        raise ValueError(
            f"The constructor arguments of '{model_id}' are not JSON-serialisable ({err}); "
            "config.json must rebuild the model from them alone. Use int/float/str/bool/list values."
        ) from err
    config: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "mmzoo_version": mmzoo_version(),
        "model_id": model_id,
        "kwargs": kwargs,
        "input": spec.input.to_dict(),
    }
    if spec.label_names is not None:
        config["label_names"] = list(spec.label_names)
    tag = getattr(model, "zoo_tag", None)
    if tag:
        config["tag"] = tag
        dataset = next((w.dataset for w in spec.weights if w.tag == tag), "")
        if dataset:
            config["dataset"] = dataset
    return config


def _write_weights(model, path: Path, model_id: str) -> None:
    """model.safetensors. Names sharing one tensor (tied weights) are stored once and recorded in
    the file's metadata (`mmzoo.aliases`: name -> stored name); non-contiguous tensors and
    tensors overlapping another one's memory are written as contiguous copies. The metadata also
    records the model id (`mmzoo.model_id`), so a config.json whose `model_id` was edited, or
    weights copied beside another model's config, are refused on load."""
    import safetensors.torch

    state = model.state_dict()
    kept: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    first: dict[tuple, str] = {}
    for name in sorted(state):
        t = state[name].detach()
        key = (t.device, t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), tuple(t.stride()), t.dtype)
        if t.numel() > 0 and key in first:
            aliases[name] = first[key]
            continue
        first[key] = name
        kept[name] = t
    storages: dict[tuple, int] = {}
    for t in kept.values():
        if t.numel() > 0:
            k = (t.device, t.untyped_storage().data_ptr())
            storages[k] = storages.get(k, 0) + 1
    tensors = {}
    for name, t in kept.items():
        shared = t.numel() > 0 and storages[(t.device, t.untyped_storage().data_ptr())] > 1
        whole = t.is_contiguous() and t.storage_offset() == 0 and t.untyped_storage().nbytes() == t.numel() * t.element_size()
        tensors[name] = t.clone(memory_format=torch.contiguous_format) if (shared or not whole) else t
    metadata = {"format": "pt", MODEL_ID_KEY: model_id}
    if aliases:
        metadata[ALIASES_KEY] = json.dumps(aliases, sort_keys=True)
    safetensors.torch.save_file(tensors, str(path), metadata=metadata)


def save_pretrained(model, folder: str | os.PathLike, card: str | None = None,
                    evaluation: Mapping[str, Any] | None = None) -> Path:
    """Write `model` into `folder` as config.json + model.safetensors + README.md.

    `card` replaces the model card; by default it is `model_cards/<id>.md`, or a generated card
    with valid Hugging Face metadata when the repository has none. `evaluation` (the results JSON
    of `mmzoo test`: ``metrics`` and ``protocol``, see :mod:`mmzoo.hub.protocol`) is stored in
    config.json under ``"evaluation"`` and rendered at the end of the card, the paper's reported
    numbers beside the reproduced ones.
    """
    from mmzoo.cards import card_for

    folder = Path(folder)
    config = _config_for(model)
    if evaluation is not None:
        config["evaluation"] = {k: evaluation[k] for k in ("model", "data", "metrics", "protocol") if k in evaluation}
    folder.mkdir(parents=True, exist_ok=True)
    _write_weights(model, folder / WEIGHTS_NAME, config["model_id"])
    if card is None:
        card = card_for(config["model_id"], tag=config.get("tag"), kwargs=config["kwargs"])
    if evaluation is not None:
        from mmzoo.hub.protocol import protocol_section

        card = card.rstrip("\n") + "\n\n" + protocol_section(evaluation, get_spec(config["model_id"]).reported)
    (folder / CARD_NAME).write_text(card, encoding="utf-8")
    (folder / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return folder


# --------------------------------------------------------------------------------------------
# Reading a repo folder
# --------------------------------------------------------------------------------------------


def read_config(folder: str | os.PathLike) -> dict[str, Any]:
    """Read and validate `folder/config.json`; the model id must be registered in this install."""
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        raise IncompatibleConfigError(
            f"{Path(folder)} has no {CONFIG_NAME}: it is not an mmzoo repo. Export models with "
            "mmzoo.push(...) / mmzoo.hub.save_pretrained(...), which write config.json + "
            "model.safetensors + README.md."
        )
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise IncompatibleConfigError(f"{path} is not valid JSON ({err}); re-export or re-download the repo.") from err
    if not isinstance(config, dict) or "model_id" not in config or not isinstance(config.get("kwargs", {}), dict):
        raise IncompatibleConfigError(
            f"{path} is not an mmzoo config (it needs 'model_id' and a 'kwargs' mapping); "
            "was this repo written by another library?"
        )
    _check_versions(config, path)
    try:
        get_spec(str(config["model_id"]))
    except UnknownModelError as err:
        raise IncompatibleConfigError(
            f"{path} names model id '{config['model_id']}', which this mmzoo ({mmzoo_version()}) does not "
            f"know. {err} Upgrade mmzoo, or import the package that registers this id before loading."
        ) from err
    return config


def _check_versions(config: Mapping[str, Any], path: Path) -> None:
    """Refuse a config written in a newer format, or by a newer major mmzoo version."""
    fmt = config.get("format_version", 1)
    if not isinstance(fmt, int) or fmt > FORMAT_VERSION:
        raise IncompatibleConfigError(
            f"{path} uses config format_version {fmt!r}, but this mmzoo ({mmzoo_version()}) reads format "
            f"{FORMAT_VERSION}. The repo was written by a newer mmzoo "
            f"({config.get('mmzoo_version', 'unknown')}): upgrade with `pip install -U mmzoo`."
        )
    written_by = str(config.get("mmzoo_version", "0"))
    try:
        newer_major = int(written_by.split(".")[0]) > int(mmzoo_version().split(".")[0])
    except ValueError:
        newer_major = False
    if newer_major:
        raise IncompatibleConfigError(
            f"{path} was written by mmzoo {written_by}, a newer major version than this install "
            f"({mmzoo_version()}); upgrade with `pip install -U mmzoo`."
        )


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a model.safetensors, tied names restored from the file's alias metadata."""
    import safetensors.torch

    if not path.is_file():
        raise CorruptWeightsError(
            f"{path} is missing: the repo folder is incomplete. Push or download it again."
        )
    try:
        state = safetensors.torch.load_file(str(path), device="cpu")
        with safetensors.safe_open(str(path), "pt") as f:
            aliases = json.loads((f.metadata() or {}).get(ALIASES_KEY, "{}"))
        for alias, stored in aliases.items():
            state[alias] = state[stored]
        return state
    except Exception as err:  # noqa: BLE001 - SafetensorError, OSError, ...: all mean unreadable
        target = path.resolve()
        also = f" (and {target}, the cached blob it links to)" if target != path.absolute() else ""
        raise CorruptWeightsError(
            f"{path} is not a readable safetensors file ({type(err).__name__}: {err}). It is "
            "probably truncated (an interrupted download or copy) or not a safetensors file at all. "
            f"Delete it{also} and download / push it again."
        ) from err


def weights_model_id(path: Path) -> str | None:
    """The model id a model.safetensors records in its metadata; None for files written before
    mmzoo recorded it, or when the file is missing (the loader reports that)."""
    import safetensors

    if not path.is_file():
        return None
    try:
        with safetensors.safe_open(str(path), "pt") as f:
            return (f.metadata() or {}).get(MODEL_ID_KEY)
    except Exception:  # noqa: BLE001 - unreadable: read_weights raises the CorruptWeightsError
        return None


def read_verified_weights(folder: Path, expected_sha256: str | None) -> dict[str, torch.Tensor]:
    """model.safetensors of a repo folder, its sha256 checked first when one is expected."""
    weights_path = folder / WEIGHTS_NAME
    if expected_sha256:
        if not weights_path.is_file():
            raise CorruptWeightsError(f"{weights_path} is missing: the repo folder is incomplete.")
        verify_sha256(weights_path, expected_sha256)
    return read_weights(weights_path)


# --------------------------------------------------------------------------------------------
# Building and strict loading
# --------------------------------------------------------------------------------------------


def _alias_groups(state: Mapping[str, torch.Tensor]) -> dict[str, list[str]]:
    """For each name, the other names of the module that share its tensor (tied weights)."""
    groups: dict[tuple, list[str]] = {}
    for name, t in state.items():
        if t.device.type == "meta" or t.numel() == 0:
            continue
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), tuple(t.stride()))
        groups.setdefault(key, []).append(name)
    return {n: [m for m in names if m != n] for names in groups.values() if len(names) > 1 for n in names}


def load_state_dict_strict(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """Load `state_dict` into `model`, refusing any missing, unexpected or mis-shaped tensor.

    mmzoo's one strict loader: a `MissingKeysError` lists every offending name (torch's own
    `strict=True` stops at a size mismatch without naming the others). Names that share a tensor
    in the model (tied weights, stored once in safetensors) count as present when any one of
    them is in the file.
    """
    own = model.state_dict()
    aliases = _alias_groups(own)
    missing = [k for k in own if k not in state_dict and not any(a in state_dict for a in aliases.get(k, ()))]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [
        (k, tuple(state_dict[k].shape), tuple(own[k].shape))
        for k in state_dict
        if k in own and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or mismatched:
        raise MissingKeysError(source, missing, unexpected, mismatched)
    model.load_state_dict(dict(state_dict), strict=False)


def build_model(spec: ModelSpec, kwargs: Mapping[str, Any], where: str):
    """`spec.build(**kwargs)`, a TypeError turned into an `IncompatibleConfigError` naming `where`."""
    try:
        return spec.build(**kwargs)
    except TypeError as err:
        raise IncompatibleConfigError(
            f"{where}: '{spec.id}' cannot be built from these arguments ({err}). The config was "
            "probably written by another mmzoo version; check the kwargs in config.json and any overrides."
        ) from err


def load_folder(
    folder: str | os.PathLike,
    pretrained: bool = True,
    map_location: str | torch.device = "cpu",
    expected_sha256: str | None = None,
    expected_model_id: str | None = None,
    **overrides: Any,
):
    """Build the model of a repo folder from config.json (kwargs, `overrides` winning) and, with
    `pretrained`, load model.safetensors strictly (sha256-checked when `expected_sha256`)."""
    folder = Path(folder)
    config = read_config(folder)
    model_id = str(config["model_id"])
    if expected_model_id and model_id != expected_model_id:
        raise IncompatibleConfigError(
            f"{folder / CONFIG_NAME} holds a '{model_id}' model, not '{expected_model_id}'; pass "
            f"--model {model_id} (model_id=...) or leave it out: the folder records its model id."
        )
    weights_id = weights_model_id(folder / WEIGHTS_NAME)
    if weights_id is not None and weights_id != model_id:
        raise IncompatibleConfigError(
            f"{folder / CONFIG_NAME} says model_id '{model_id}', but {folder / WEIGHTS_NAME} was written "
            f"for '{weights_id}': config.json was edited or the files come from two models. Restore "
            f"\"model_id\": \"{weights_id}\" (or push the folder again from its checkpoint)."
        )
    spec = get_spec(model_id)
    no_download = spec.cls.init_without_download if pretrained else {}
    model = build_model(spec, {**config.get("kwargs", {}), **no_download, **overrides}, str(folder / CONFIG_NAME))
    if pretrained:
        load_state_dict_strict(model, read_verified_weights(folder, expected_sha256), str(folder / WEIGHTS_NAME))
    model.zoo_id = model_id
    model.zoo_tag = config.get("tag")
    model.zoo_source = str(folder)
    model.to(map_location)
    model.eval()
    return model
