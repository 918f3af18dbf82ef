"""Publishing and fetching zoo models: the local-directory hub and the Hugging Face Hub.

A published model is a folder (a local-hub entry or a Hub repo, same layout)::

    config.json          {"format_version", "mmzoo_version", "model_id", "kwargs", "data", "tag", ...}
    model.safetensors    the state dict; weights are only ever read from safetensors
    README.md            the model card (model_cards/<id>.md, or a generated one)

`config.json` alone rebuilds the architecture (the registry maps `model_id` to a class and
`kwargs` are its constructor arguments). The local hub lives in `$MMZOO_HUB` (default
`~/.cache/mmzoo/hub`) as `<root>/<owner>/<name>/`; the Hugging Face Hub is reached only through
`huggingface_hub` (its cache, token, revisions and `HF_HUB_OFFLINE`). The environment variables
(`MMZOO_HUB`, `HF_ENDPOINT`, `HF_HOME`, `HF_HUB_CACHE`, `HF_HUB_OFFLINE`) are read when a
function is called, not when mmzoo is imported.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
import shutil
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Mapping

import torch

from mmzoo.offline import hf_offline
from mmzoo.errors import (
    ChecksumMismatchError,
    CorruptWeightsError,
    IncompatibleConfigError,
    MissingKeysError,
    MmzooError,
    NoPublishedWeightsError,
    OfflineNotCachedError,
    RepoNotFoundError,
    UnknownModelError,
)
from mmzoo.registry import ModelSpec, Weights, all_specs, get_spec, split_name

__all__ = [
    "FORMAT_VERSION",
    "local_hub_dir",
    "originals_dir",
    "save_pretrained",
    "read_config",
    "load_folder",
    "load",
    "load_pretrained_state",
    "pull",
    "push",
    "model_from_checkpoint",
    "download_original",
    "hf_offline",
]

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
HF_PREFIX = "hf-hub:"

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


# --------------------------------------------------------------------------------------------
# Locations and environment
# --------------------------------------------------------------------------------------------


def local_hub_dir() -> Path:
    """Root of the local-directory hub: `$MMZOO_HUB`, default `~/.cache/mmzoo/hub`."""
    env = os.environ.get("MMZOO_HUB")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mmzoo" / "hub"


def originals_dir() -> Path:
    """Where original (authors') checkpoints are downloaded before conversion:
    `$MMZOO_ORIGINALS`, default `originals/` beside the local hub root."""
    env = os.environ.get("MMZOO_ORIGINALS")
    return Path(env).expanduser() if env else local_hub_dir().parent / "originals"


def _hf_cache_dir() -> str:
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def _hf_endpoint() -> str | None:
    endpoint = os.environ.get("HF_ENDPOINT", "").strip().rstrip("/")
    return endpoint or None


def _endpoint_name() -> str:
    return _hf_endpoint() or "https://huggingface.co"


def _version() -> str:
    from mmzoo import __version__

    return __version__


def _check_repo_id(repo_id: str) -> None:
    if not isinstance(repo_id, str) or not _REPO_ID.match(repo_id) or ".." in repo_id:
        raise ValueError(
            f"'{repo_id}' is not a repo id: use 'owner/name' (letters, digits, '-', '_', '.'), "
            "e.g. 'someone/my-finetune'."
        )


# --------------------------------------------------------------------------------------------
# Writing a repo folder
# --------------------------------------------------------------------------------------------


def _model_id_of(model) -> str:
    model_id = getattr(model, "zoo_id", None)
    if not model_id:
        raise ValueError(
            f"This {type(model).__name__} has no zoo id: build it with mmzoo.create(<id>) or "
            "mmzoo.load(...) (which set `model.zoo_id`), or set `model.zoo_id = '<registered id>'`."
        )
    return model_id


def _config_for(model) -> dict[str, Any]:
    model_id = _model_id_of(model)
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
        "mmzoo_version": _version(),
        "model_id": model_id,
        "kwargs": kwargs,
        "input": spec.input.to_dict(),
        "data": dict(spec.data),  # TRANSITIONAL
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


ALIASES_KEY = "mmzoo.aliases"


def _write_weights(model, path: Path) -> None:
    """model.safetensors. Names sharing one tensor (tied weights) are stored once and recorded in
    the file's metadata (`mmzoo.aliases`: name -> stored name); non-contiguous tensors and
    tensors overlapping another one's memory are written as contiguous copies."""
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
    metadata = {"format": "pt"}
    if aliases:
        metadata[ALIASES_KEY] = json.dumps(aliases, sort_keys=True)
    safetensors.torch.save_file(tensors, str(path), metadata=metadata)


def save_pretrained(model, folder: str | os.PathLike, card: str | None = None) -> Path:
    """Write `model` into `folder` as config.json + model.safetensors + README.md.

    `card` replaces the model card; by default it is `model_cards/<id>.md`, or a generated card
    with valid Hugging Face metadata when the repository has none.
    """
    from mmzoo.cards import card_for

    folder = Path(folder)
    config = _config_for(model)
    folder.mkdir(parents=True, exist_ok=True)
    _write_weights(model, folder / WEIGHTS_NAME)
    if card is None:
        card = card_for(config["model_id"], tag=config.get("tag"), kwargs=config["kwargs"])
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
    fmt = config.get("format_version", 1)
    if not isinstance(fmt, int) or fmt > FORMAT_VERSION:
        raise IncompatibleConfigError(
            f"{path} uses config format_version {fmt!r}, but this mmzoo ({_version()}) reads format "
            f"{FORMAT_VERSION}. The repo was written by a newer mmzoo "
            f"({config.get('mmzoo_version', 'unknown')}): upgrade with `pip install -U mmzoo`."
        )
    written_by = str(config.get("mmzoo_version", "0"))
    try:
        newer_major = int(written_by.split(".")[0]) > int(_version().split(".")[0])
    except ValueError:
        newer_major = False
    if newer_major:
        raise IncompatibleConfigError(
            f"{path} was written by mmzoo {written_by}, a newer major version than this install "
            f"({_version()}); upgrade with `pip install -U mmzoo`."
        )
    try:
        get_spec(str(config["model_id"]))
    except UnknownModelError as err:
        raise IncompatibleConfigError(
            f"{path} names model id '{config['model_id']}', which this mmzoo ({_version()}) does not "
            f"know. {err} Upgrade mmzoo, or import the package that registers this id before loading."
        ) from err
    return config


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
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

    Names that share a tensor in the model (tied weights, stored once in safetensors) count as
    present when any one of them is in the file.
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


def _build(spec: ModelSpec, kwargs: Mapping[str, Any], where: str):
    try:
        return spec.build(**kwargs)
    except TypeError as err:
        raise IncompatibleConfigError(
            f"{where}: '{spec.id}' cannot be built from these arguments ({err}). The config was "
            "probably written by another mmzoo version; check the kwargs in config.json and any overrides."
        ) from err


def _read_verified_weights(folder: Path, expected_sha256: str | None) -> dict[str, torch.Tensor]:
    """model.safetensors of a repo folder, its sha256 checked first when one is expected."""
    from mmzoo.convert import verify_sha256

    weights_path = folder / WEIGHTS_NAME
    if expected_sha256:
        if not weights_path.is_file():
            raise CorruptWeightsError(f"{weights_path} is missing: the repo folder is incomplete.")
        verify_sha256(weights_path, expected_sha256)
    return _read_weights(weights_path)


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
            f"{folder / CONFIG_NAME} holds a '{model_id}' model, but '{expected_model_id}' was "
            "requested: the repo does not belong to this registry entry."
        )
    spec = get_spec(model_id)
    no_download = spec.cls.init_without_download if pretrained else {}
    model = _build(spec, {**config.get("kwargs", {}), **no_download, **overrides}, str(folder / CONFIG_NAME))
    if pretrained:
        load_state_dict_strict(model, _read_verified_weights(folder, expected_sha256), str(folder / WEIGHTS_NAME))
    model.zoo_id = model_id
    model.zoo_tag = config.get("tag")
    model.zoo_source = str(folder)
    model.to(map_location)
    model.eval()
    return model


# --------------------------------------------------------------------------------------------
# Sources: local hub, Hugging Face Hub, original checkpoints
# --------------------------------------------------------------------------------------------


def _backup_of(dest: Path) -> Path:
    return dest.parent / f".{dest.name}.previous"


def _recover_interrupted(dest: Path) -> None:
    """A push killed between its two renames leaves the previous version as a backup: restore it."""
    backup = _backup_of(dest)
    if backup.is_dir() and not dest.exists():
        os.rename(backup, dest)


def _local_repo(repo_id: str) -> Path | None:
    dest = local_hub_dir() / repo_id
    _recover_interrupted(dest)
    return dest if (dest / CONFIG_NAME).is_file() else None


def _hf_fetch(
    repo_id: str,
    revision: str | None,
    token: str | bool | None = None,
    with_weights: bool = True,
    context: str = "",
) -> Path:
    """Download (or find in the HF cache) a repo's files; returns its snapshot folder.

    config.json is resolved first; the other files are then fetched at the exact commit it came
    from, so the folder is always one consistent revision.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    offline = hf_offline()
    rev = revision or "main"
    common = dict(
        repo_type="model",
        cache_dir=_hf_cache_dir(),
        endpoint=_hf_endpoint(),
        token=token,
        local_files_only=offline,
        library_name="mmzoo",
        library_version=_version(),
    )
    where = f"'{repo_id}' (revision '{rev}') on the Hugging Face Hub ({_endpoint_name()})"
    current = CONFIG_NAME
    try:
        config_path = Path(hf_hub_download(repo_id, CONFIG_NAME, revision=rev, **common))
        commit = config_path.parent.name
        if with_weights:
            current = WEIGHTS_NAME
            hf_hub_download(repo_id, WEIGHTS_NAME, revision=commit, **common)
        try:
            hf_hub_download(repo_id, CARD_NAME, revision=commit, **common)
        except (EntryNotFoundError, LocalEntryNotFoundError):
            pass  # the card is documentation; a repo without one still loads
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as err:
        if offline or isinstance(err, OfflineModeIsEnabled) or isinstance(err.__cause__, OfflineModeIsEnabled):
            raise OfflineNotCachedError(
                f"HF_HUB_OFFLINE is set and {current} of {where} is not in the Hugging Face cache "
                f"({_hf_cache_dir()}){context}. Run `mmzoo pull` for it once with network access (or "
                "copy the cache / a local-hub folder from another machine), or unset HF_HUB_OFFLINE."
            ) from err
        raise RepoNotFoundError(
            f"Could not reach {where} and {current} is not cached ({err}){context}. Check the network "
            "or HF_ENDPOINT, or put the repo in the local hub (MMZOO_HUB)."
        ) from err
    except RevisionNotFoundError as err:
        raise RepoNotFoundError(f"Revision '{rev}' does not exist in {where}{context}. Use a branch, tag or commit of the repo.") from err
    except RepositoryNotFoundError as err:
        raise RepoNotFoundError(
            f"{where} does not exist or is private{context}. Check the id; for a private repo pass "
            "token=... or log in with `hf auth login`."
        ) from err
    except EntryNotFoundError as err:
        raise RepoNotFoundError(
            f"{where} has no {current}{context}: it was not published by mmzoo (mmzoo repos hold "
            f"{CONFIG_NAME}, {WEIGHTS_NAME} and {CARD_NAME})."
        ) from err
    except HfHubHTTPError as err:
        raise RepoNotFoundError(f"The Hub refused {where}{context}: {err}") from err
    return config_path.parent


def _parse_repo(text: str, revision: str | None) -> tuple[str, str | None]:
    repo_id, at, rev = text.partition("@")
    if at and revision and rev != revision:
        raise ValueError(f"'{text}' pins revision '{rev}' but revision='{revision}' was also given; use one.")
    _check_repo_id(repo_id)
    return repo_id, (rev if at else revision)


def _fetch_repo(repo_id: str, revision: str | None, token, with_weights: bool = True) -> Path:
    """A bare 'owner/name': the local hub first (unless a revision is pinned), then the HF Hub."""
    if revision is None:
        local = _local_repo(repo_id)
        if local is not None:
            return local
    return _hf_fetch(
        repo_id, revision, token, with_weights,
        context=f"; it is not in the local hub either ({local_hub_dir() / repo_id})",
    )


def _converted_repo(spec: ModelSpec, w: Weights) -> str:
    """Local-hub repo caching the conversion of an original checkpoint."""
    return w.hub_repo or f"mmzoo-converted/{spec.id}.{w.tag}"


def _no_weights_message(spec: ModelSpec, w: Weights | None) -> str:
    have = [f"{spec.id}.{t}" for t in spec.published_tags]
    what = f"'{spec.id}.{w.tag}' has no published weights" if w else f"'{spec.id}' has no pretrained tags"
    lines = [what + (f" ({w.notes})" if w and w.notes else "") + "."]
    lines.append(f"Tags with weights: {', '.join(have)}." if have else "No tag of this model has weights yet.")
    lines.append(f"Use mmzoo.load('{spec.id}', pretrained=False) (or mmzoo.create) for the architecture alone")
    if w and w.converter:
        lines[-1] += f", or convert the authors' checkpoint with `mmzoo convert {spec.id}.{w.tag} <file>`."
    else:
        lines[-1] += ", or train it (`mmzoo fit`) and publish it with `mmzoo push`."
    return " ".join(lines)


def _registry_folder(spec: ModelSpec, tag: str | None, revision: str | None, token) -> tuple[Path, Weights]:
    if tag is None and spec.default_tag is None:
        raise NoPublishedWeightsError(_no_weights_message(spec, None))
    w = spec.weights_for(tag)
    if not w.available:
        raise NoPublishedWeightsError(_no_weights_message(spec, w))
    if revision is None:
        local = _local_repo(_converted_repo(spec, w))
        if local is not None:
            return local, w
    hub_error: MmzooError | None = None
    if w.hub_repo:
        try:
            return _hf_fetch(w.hub_repo, revision or w.revision, token), w
        except (OfflineNotCachedError, RepoNotFoundError) as err:
            hub_error = err
    if w.original_url and w.converter:
        from mmzoo.convert import convert

        try:
            original = download_original(w.original_url, w.original_sha256)
        except (OfflineNotCachedError, RepoNotFoundError) as err:
            if hub_error is None:
                raise
            raise type(err)(f"{hub_error} Falling back to the original checkpoint failed too: {err}") from err
        return convert(f"{spec.id}.{w.tag}", original, push_to_local_hub=True), w
    assert hub_error is not None
    raise hub_error


def download_original(url: str, sha256: str | None = None) -> Path:
    """Download an original (authors') checkpoint into `originals_dir()` once, with a progress
    bar, and return its path; the sha256 is checked when given. The file is not read here."""
    from huggingface_hub.utils import tqdm

    from mmzoo.convert import verify_sha256

    name = Path(urllib.parse.urlparse(url).path).name or "original"
    dest = originals_dir() / hashlib.sha256(url.encode()).hexdigest()[:16] / name
    if dest.is_file():
        return dest
    if hf_offline():
        raise OfflineNotCachedError(
            f"HF_HUB_OFFLINE is set and the original checkpoint {url} is not cached at {dest}. Download "
            f"it elsewhere and put it there, or run `mmzoo convert <id.tag> <file>` on a copy."
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(name + ".incomplete")
    request = urllib.request.Request(url, headers={"User-Agent": f"mmzoo/{_version()}"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response, open(partial, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"Downloading {name}", file=sys.stderr) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError) as err:
        partial.unlink(missing_ok=True)
        raise RepoNotFoundError(
            f"Could not download the original checkpoint {url} ({err}). Download it yourself and run "
            "`mmzoo convert <id.tag> <file>`."
        ) from err
    if sha256:
        try:
            verify_sha256(partial, sha256)
        except ChecksumMismatchError:
            partial.unlink(missing_ok=True)
            raise
    os.replace(partial, dest)
    return dest


def _as_local_folder(name: str | os.PathLike) -> Path | None:
    if not isinstance(name, os.PathLike) and str(name).startswith(HF_PREFIX):
        return None
    path = Path(name).expanduser()
    explicit = isinstance(name, os.PathLike) or str(name).startswith((".", "/", "~", "\\")) or (
        os.sep in str(name) and not _REPO_ID.match(str(name).partition("@")[0])
    )
    if path.is_dir() and ((path / CONFIG_NAME).is_file() or explicit):
        return path
    if explicit:
        raise RepoNotFoundError(f"No folder at {path}. Give a folder holding {CONFIG_NAME} + {WEIGHTS_NAME}.")
    return None


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def pull(name: str | os.PathLike, revision: str | None = None, token: str | bool | None = None) -> Path:
    """Resolve `name` (registry 'id[.tag]', 'hf-hub:owner/repo[@rev]', 'owner/repo', or a folder)
    to a local folder holding its files, downloading into the caches as needed. Weights recorded
    with a sha256 in the registry are verified."""
    from mmzoo.convert import verify_sha256

    folder = _as_local_folder(name)
    if folder is not None:
        return folder
    name = str(name)
    if name.startswith(HF_PREFIX):
        return _hf_fetch(*_parse_repo(name[len(HF_PREFIX):], revision), token)
    if "/" in name:
        return _fetch_repo(*_parse_repo(name, revision), token)
    spec = get_spec(name)
    folder, w = _registry_folder(spec, split_name(name)[1], revision, token)
    if w.sha256:
        verify_sha256(folder / WEIGHTS_NAME, w.sha256)
    return folder


def load_pretrained_state(
    name: str, tag: str | None = None, revision: str | None = None, token: str | bool | None = None
) -> dict[str, torch.Tensor]:
    """The state dict of a registry tag's weights ('id.tag', or `name` + `tag`), sha256-checked,
    for a model built elsewhere (e.g. by LightningCLI from its own arguments). Tied weights are
    present under every name, so `model.load_state_dict(state, strict=True)` works."""
    spec = get_spec(name)
    folder, w = _registry_folder(spec, tag or split_name(name)[1], revision, token)
    return _read_verified_weights(folder, w.sha256)


def load(
    name: str | os.PathLike,
    pretrained: bool = True,
    map_location: str | torch.device = "cpu",
    revision: str | None = None,
    token: str | bool | None = None,
    **overrides: Any,
):
    """Load a model in eval mode.

    `name` is resolved in this order: (1) a local folder with config.json; (2)
    'hf-hub:owner/repo[@revision]' on the Hugging Face Hub; (3) a registry id or 'id.tag'
    (`pretrained=False` builds the architecture; otherwise the tag's weights come from the local
    hub, else its Hub repo, else the authors' original file through its converter); (4) a bare
    'owner/repo': the local hub, then the Hugging Face Hub. `overrides` replace constructor
    arguments; weights must still fit them exactly.
    """
    folder = _as_local_folder(name)
    if folder is not None:
        return load_folder(folder, pretrained, map_location, **overrides)
    name = str(name)
    if name.startswith(HF_PREFIX):
        folder = _hf_fetch(*_parse_repo(name[len(HF_PREFIX):], revision), token, with_weights=pretrained)
        return load_folder(folder, pretrained, map_location, **overrides)
    if "/" in name:
        folder = _fetch_repo(*_parse_repo(name, revision), token, with_weights=pretrained)
        return load_folder(folder, pretrained, map_location, **overrides)
    spec = get_spec(name)
    tag = split_name(name)[1]
    if not pretrained:
        if tag is not None:
            spec.weights_for(tag)  # an unknown tag is an error even without weights
        model = spec.build(**overrides)
        model.zoo_tag = None
        model.to(map_location)
        model.eval()
        return model
    folder, w = _registry_folder(spec, tag, revision, token)
    model = load_folder(
        folder, True, map_location, expected_sha256=w.sha256, expected_model_id=spec.id, **overrides
    )
    model.zoo_tag = w.tag
    return model


def _swap_in(staging: Path, dest: Path) -> None:
    """Replace `dest` by `staging` with renames; the previous version survives until the new one
    is in place (and is restored by `_recover_interrupted` if we die in between)."""
    if not dest.exists():
        os.rename(staging, dest)
        return
    backup = _backup_of(dest)
    if backup.exists():
        shutil.rmtree(backup)
    os.rename(dest, backup)
    try:
        os.rename(staging, dest)
    except BaseException:
        os.rename(backup, dest)
        raise
    shutil.rmtree(backup, ignore_errors=True)


def install_local(write, repo_id: str) -> Path:
    """Publish into the local hub atomically: `write(staging_folder)` fills a folder beside the
    destination, which then replaces `<hub>/<repo_id>`. If `write` fails or the process dies,
    the previous version of the repo stays in place."""
    _check_repo_id(repo_id)
    dest = local_hub_dir() / repo_id
    dest.parent.mkdir(parents=True, exist_ok=True)
    _recover_interrupted(dest)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.incoming-", dir=dest.parent))
    try:
        write(staging)
        _swap_in(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return dest


def push(
    model,
    repo_id: str,
    *,
    hub: str = "local",
    token: str | bool | None = None,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    card: str | None = None,
    model_id: str | None = None,
) -> str:
    """Publish `model` (a zoo model, a Lightning .ckpt path, or an exported folder) as
    config.json + model.safetensors + README.md.

    `hub="local"` writes `<MMZOO_HUB>/<repo_id>` atomically and returns that folder; `hub="hf"`
    writes the same folder to a temporary directory and uploads it with
    `HfApi.create_repo(exist_ok=True)` + `HfApi.upload_folder`, returning
    'hf-hub:<repo_id>@<commit>' (loadable with `mmzoo.load`). `model_id` names the zoo id of a
    .ckpt when it cannot be inferred (see `model_from_checkpoint`).
    """
    _check_repo_id(repo_id)
    if isinstance(model, (str, os.PathLike)):
        source = Path(model)
        if card is None and source.is_dir() and (source / CARD_NAME).is_file():
            card = (source / CARD_NAME).read_text(encoding="utf-8")
        model = model_from_checkpoint(source, model_id=model_id)
    _model_id_of(model)
    if hub == "local":
        if revision not in (None, "main"):
            raise ValueError("The local hub keeps one version per repo: push without revision, or use hub='hf'.")
        return str(install_local(lambda folder: save_pretrained(model, folder, card=card), repo_id))
    if hub not in ("hf", "huggingface"):
        raise ValueError(f"hub must be 'local' or 'hf', not {hub!r}.")
    if hf_offline():
        raise MmzooError("HF_HUB_OFFLINE is set: unset it to push to the Hugging Face Hub, or push with hub='local'.")
    from huggingface_hub import HfApi

    api = HfApi(endpoint=_hf_endpoint(), token=token, library_name="mmzoo", library_version=_version())
    with tempfile.TemporaryDirectory(prefix="mmzoo-push-") as tmp:
        save_pretrained(model, tmp, card=card)
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        if revision and revision != "main":
            api.create_branch(repo_id, branch=revision, repo_type="model", exist_ok=True)
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=tmp,
            repo_type="model",
            revision=revision,
            commit_message=commit_message or f"Upload {model.zoo_id} with mmzoo {_version()}",
        )
    return f"{HF_PREFIX}{repo_id}@{info.oid}"


def _infer_model_id(hparams: Mapping[str, Any], state: Mapping[str, torch.Tensor], path: Path) -> str:
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


def model_from_checkpoint(path: str | os.PathLike, model_id: str | None = None):
    """A zoo model from an exported folder (config.json + model.safetensors) or from a Lightning
    `.ckpt` written by `mmzoo fit` / a Trainer.

    A .ckpt is read with torch's restricted `weights_only` unpickler (tensors and plain
    containers only; no code is executed). The model id comes from `model_id`, from the
    checkpoint's "mmzoo" entry, or is inferred from the hyper-parameters and tensor shapes.
    """
    import pickle

    path = Path(path)
    if path.is_dir():
        return load_folder(path)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint or folder at {path}.")
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
    hparams = dict(ckpt.get("hyper_parameters") or {})
    hparams = {k: v for k, v in hparams.items() if not k.startswith("_")}
    state = ckpt["state_dict"]
    recorded = ckpt.get("mmzoo") if isinstance(ckpt.get("mmzoo"), dict) else {}
    model_id = model_id or recorded.get("model_id") or _infer_model_id(hparams, state, path)
    spec = get_spec(model_id)
    model = _build(spec, hparams, str(path))
    load_state_dict_strict(model, state, str(path))
    model.zoo_id = spec.id
    model.zoo_tag = None
    model.eval()
    return model

