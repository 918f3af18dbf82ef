"""The hub's entry points: `load`, `pull`, `load_pretrained_state` and `push`.

Each parses its name once (`mmzoo.hub.names.parse_name`), asks `mmzoo.hub.sources` for the
folder, and reads or writes it with `mmzoo.hub.repo`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from mmzoo.hub.checkpoint import model_from_checkpoint
from mmzoo.hub.names import ModelName, check_repo_id, parse_name
from mmzoo.hub.repo import CARD_NAME, WEIGHTS_NAME, load_folder, mmzoo_version, model_id_of, read_verified_weights, save_pretrained, verify_sha256
from mmzoo.hub.sources import fetch_repo, hf_fetch, install_local, registry_folder, upload_to_hf
from mmzoo.registry import get_spec, split_name

__all__ = ["load", "pull", "load_pretrained_state", "push"]


def _repo_folder(parsed: ModelName, token, with_weights: bool) -> Path:
    """The local folder of a parsed "folder", "hf" or "repo" name."""
    if parsed.kind == "folder":
        return parsed.path
    if parsed.kind == "hf":
        return hf_fetch(parsed.repo_id, parsed.revision, token, with_weights=with_weights)
    return fetch_repo(parsed.repo_id, parsed.revision, token, with_weights=with_weights)


def pull(name: str | os.PathLike, revision: str | None = None, token: str | bool | None = None) -> Path:
    """Resolve `name` (registry 'id[.tag]', 'hf-hub:owner/repo[@rev]', 'owner/repo', or a folder)
    to a local folder holding its files, downloading into the caches as needed. Weights recorded
    with a sha256 in the registry are verified."""
    parsed = parse_name(name, revision)
    if parsed.kind != "registry":
        return _repo_folder(parsed, token, with_weights=True)
    folder, w = registry_folder(get_spec(parsed.model_id), parsed.tag, parsed.revision, token)
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
    folder, w = registry_folder(spec, tag or split_name(name)[1], revision, token)
    return read_verified_weights(folder, w.sha256)


def load(
    name: str | os.PathLike,
    pretrained: bool = True,
    map_location: str | torch.device = "cpu",
    revision: str | None = None,
    token: str | bool | None = None,
    **overrides: Any,
):
    """Load a model in eval mode.

    `name` is parsed by `mmzoo.hub.names.parse_name`: (1) a local folder ('./dir', an absolute
    path, an `os.PathLike`); (2) 'hf-hub:owner/repo[@revision]' on the Hugging Face Hub; (3) a
    registry id or 'id.tag' (`pretrained=False` builds the architecture; otherwise the tag's
    weights come from the local hub, else its Hub repo, else the authors' original file through
    its converter); (4) a bare 'owner/repo': the local hub, then the Hugging Face Hub. A name
    that is also an existing local path is refused. `overrides` replace constructor arguments;
    weights must still fit them exactly.
    """
    parsed = parse_name(name, revision)
    if parsed.kind != "registry":
        folder = _repo_folder(parsed, token, with_weights=pretrained)
        return load_folder(folder, pretrained, map_location, **overrides)
    spec = get_spec(parsed.model_id)
    if not pretrained:
        if parsed.tag is not None:
            spec.weights_for(parsed.tag)  # an unknown tag is an error even without weights
        model = spec.build(**overrides)
        model.zoo_tag = None
        model.to(map_location)
        model.eval()
        return model
    folder, w = registry_folder(spec, parsed.tag, parsed.revision, token)
    model = load_folder(
        folder, True, map_location, expected_sha256=w.sha256, expected_model_id=spec.id, **overrides
    )
    model.zoo_tag = w.tag
    return model


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
    evaluation: dict | str | os.PathLike | None = None,
) -> str:
    """Publish `model` (a zoo model, a Lightning .ckpt path, or an exported folder) as
    config.json + model.safetensors + README.md.

    `hub="local"` writes `<MMZOO_HUB>/<repo_id>` atomically and returns that folder; `hub="hf"`
    writes the same folder to a temporary directory and uploads it with
    `HfApi.create_repo(exist_ok=True)` + `HfApi.upload_folder`, returning
    'hf-hub:<repo_id>@<commit>' (loadable with `mmzoo.load`). `model_id` names the zoo id of a
    .ckpt when it cannot be inferred (see `model_from_checkpoint`). `evaluation`: the results JSON
    of `mmzoo test` (a dict or its path), recorded in config.json and the card with its protocol
    (:mod:`mmzoo.hub.protocol`).
    """
    check_repo_id(repo_id)
    if isinstance(evaluation, (str, os.PathLike)):
        import json

        evaluation = json.loads(Path(evaluation).read_text(encoding="utf-8"))
    if isinstance(model, (str, os.PathLike)):
        source = Path(model)
        if card is None and source.is_dir() and (source / CARD_NAME).is_file():
            card = (source / CARD_NAME).read_text(encoding="utf-8")
        model = model_from_checkpoint(source, model_id=model_id)
    model_id_of(model)

    def write(folder: Path) -> None:
        save_pretrained(model, folder, card=card, evaluation=evaluation)

    if hub == "local":
        if revision not in (None, "main"):
            raise ValueError("The local hub keeps one version per repo: push without revision, or use hub='hf'.")
        return str(install_local(write, repo_id))
    if hub not in ("hf", "huggingface"):
        raise ValueError(f"hub must be 'local' or 'hf', not {hub!r}.")
    message = commit_message or f"Upload {model.zoo_id} with mmzoo {mmzoo_version()}"
    return upload_to_hf(write, repo_id, token=token, private=private, revision=revision, commit_message=message)
