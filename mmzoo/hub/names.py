"""One parser for every way of naming a model to `mmzoo.load` / `mmzoo.hub.pull`.

===============================  ===================================================
``stmn-r101``                    a registry id (its default tag)
``avslowfast-r50-4x16.k400``     a registry id and a pretrained tag
``hf-hub:owner/name[@rev]``      a repo on the Hugging Face Hub only
``owner/name[@rev]``             a repo: the local hub (``MMZOO_HUB``) first, then the Hugging Face Hub
``./folder``, ``/abs/folder``    a local folder in the repo layout (also any ``os.PathLike``)
===============================  ===================================================

A string that could mean two of these is refused instead of guessed: ``owner/name`` when a
path of that name exists in the working directory, and a registered id when a folder of that
name holding ``config.json`` exists. The error gives the unambiguous spellings.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mmzoo.errors import MmzooError, RepoNotFoundError, UnknownModelError
from mmzoo.hub.repo import CONFIG_NAME, WEIGHTS_NAME
from mmzoo.registry import get_spec, split_name

__all__ = ["HF_PREFIX", "ModelName", "parse_name", "check_repo_id"]

HF_PREFIX = "hf-hub:"
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
_PATH_STARTS = (".", "/", "~", "\\")

Kind = Literal["folder", "hf", "repo", "registry"]


@dataclass(frozen=True)
class ModelName:
    """A parsed name. `kind` says which fields are set: "folder" -> `path`; "hf" (Hugging Face
    Hub only) and "repo" (local hub, then Hugging Face Hub) -> `repo_id`, `revision`;
    "registry" -> `model_id` (the name as written, 'id' or 'id.tag'), `tag`, `revision`."""

    kind: Kind
    path: Path | None = None
    repo_id: str | None = None
    revision: str | None = None
    model_id: str | None = None
    tag: str | None = None


def check_repo_id(repo_id: str) -> None:
    """Raise a ValueError unless `repo_id` is 'owner/name' (letters, digits, '-', '_', '.')."""
    if not isinstance(repo_id, str) or not _REPO_ID.match(repo_id) or ".." in repo_id:
        raise ValueError(
            f"'{repo_id}' is not a repo id: use 'owner/name' (letters, digits, '-', '_', '.'), "
            "e.g. 'someone/my-finetune'."
        )


def _split_revision(text: str, revision: str | None) -> tuple[str, str | None]:
    repo_id, at, rev = text.partition("@")
    if at and revision and rev != revision:
        raise ValueError(f"'{text}' pins revision '{rev}' but revision='{revision}' was also given; use one.")
    check_repo_id(repo_id)
    return repo_id, (rev if at else revision)


def _existing_folder(path: Path) -> ModelName:
    if not path.is_dir():
        raise RepoNotFoundError(f"No folder at {path}. Give a folder holding {CONFIG_NAME} + {WEIGHTS_NAME}.")
    return ModelName("folder", path=path)


def _is_registered(name: str) -> bool:
    try:
        get_spec(name)
    except UnknownModelError:
        return False
    return True


def parse_name(name: str | os.PathLike, revision: str | None = None) -> ModelName:
    """Classify `name` (see the module docstring); `revision` pins a Hub revision (an '@rev'
    in the name is the same, and giving two different ones is a ValueError).

    Raises `RepoNotFoundError` for a path spelling with no folder behind it, and `MmzooError`
    for a name that is both an existing local path and a repo id or registered id.
    """
    if isinstance(name, os.PathLike):
        return _existing_folder(Path(name).expanduser())
    text = str(name)
    if text.startswith(HF_PREFIX):
        repo_id, rev = _split_revision(text[len(HF_PREFIX):], revision)
        return ModelName("hf", repo_id=repo_id, revision=rev)
    path = Path(text).expanduser()
    looks_like_repo = bool(_REPO_ID.match(text.partition("@")[0]))
    if text.startswith(_PATH_STARTS) or (os.sep in text and not looks_like_repo):
        return _existing_folder(path)
    if "/" in text:
        if looks_like_repo and path.exists():
            raise MmzooError(
                f"'{text}' is ambiguous: it is a path in the working directory ({path.absolute()}) and "
                f"also a repo id. Write './{text}' for the folder, or '{HF_PREFIX}{text}' for the repo "
                "on the Hugging Face Hub."
            )
        repo_id, rev = _split_revision(text, revision)
        return ModelName("repo", repo_id=repo_id, revision=rev)
    if path.is_dir() and (path / CONFIG_NAME).is_file():
        if _is_registered(text):
            raise MmzooError(
                f"'{text}' is ambiguous: it is a registered model id and also a folder holding "
                f"{CONFIG_NAME} ({path.absolute()}). Write './{text}' for the folder; for the registry "
                "id, load from another working directory or rename the folder."
            )
        return ModelName("folder", path=path)
    return ModelName("registry", model_id=text, tag=split_name(text)[1], revision=revision)
