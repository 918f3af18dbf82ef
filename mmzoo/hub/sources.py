"""Where a repo folder comes from, and where a pushed one goes.

Three sources, tried in this order for a registry tag (see `registry_folder`):

1. the local hub, a directory in the repo layout (`$MMZOO_HUB`, default `~/.cache/mmzoo/hub`,
   `<root>/<owner>/<name>/`), written atomically so a failed push never loses the previous one;
2. the Hugging Face Hub, reached only through `huggingface_hub` (its cache, token, revisions
   and offline mode);
3. the authors' original file, downloaded once into `originals_dir()` and turned into a repo
   folder by `mmzoo.convert.convert`. The converter package sits above the hub, so it is
   resolved by its dotted path when needed, never imported here.

The offline policy is `mmzoo.offline.hf_offline`; the environment variables (`MMZOO_HUB`,
`MMZOO_ORIGINALS`, `HF_ENDPOINT`, `HF_HOME`, `HF_HUB_CACHE`, `HF_HUB_OFFLINE`) are read when a
function is called, not when mmzoo is imported.
"""
from __future__ import annotations

import hashlib
import importlib
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable

from mmzoo.errors import (
    ChecksumMismatchError,
    MmzooError,
    NoPublishedWeightsError,
    OfflineNotCachedError,
    RepoNotFoundError,
)
from mmzoo.hub.names import HF_PREFIX, check_repo_id
from mmzoo.hub.repo import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, mmzoo_version, verify_sha256
from mmzoo.offline import hf_cache_dir, hf_offline
from mmzoo.registry import ModelSpec, Weights

__all__ = [
    "local_hub_dir",
    "originals_dir",
    "hf_cache_dir",
    "install_local",
    "local_repo",
    "hf_fetch",
    "fetch_repo",
    "registry_folder",
    "converted_repo",
    "download_original",
    "upload_to_hf",
]

#: The function that turns an original checkpoint into a local-hub repo, imported at run time.
CONVERT_ENTRY = "mmzoo.convert:convert"


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


def _hf_endpoint() -> str | None:
    endpoint = os.environ.get("HF_ENDPOINT", "").strip().rstrip("/")
    return endpoint or None


def _endpoint_name() -> str:
    return _hf_endpoint() or "https://huggingface.co"


# --------------------------------------------------------------------------------------------
# The local hub
# --------------------------------------------------------------------------------------------


def _backup_of(dest: Path) -> Path:
    return dest.parent / f".{dest.name}.previous"


def _recover_interrupted(dest: Path) -> None:
    """A push killed between its two renames leaves the previous version as a backup: restore it."""
    backup = _backup_of(dest)
    if backup.is_dir() and not dest.exists():
        os.rename(backup, dest)


def local_repo(repo_id: str) -> Path | None:
    """The local-hub folder of `repo_id`, or None when the local hub does not hold it."""
    dest = local_hub_dir() / repo_id
    _recover_interrupted(dest)
    return dest if (dest / CONFIG_NAME).is_file() else None


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


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _apply_umask(folder: Path) -> None:
    """Give `folder` and everything in it the modes a plain `mkdir` / `open` would have had
    (0777 / 0666, less the umask; executable files keep x where the umask allows): the staging
    folder comes from `mkdtemp` (0700) and writers may use temporary files (0600), which would
    otherwise leave a published repo unreadable by the group and others."""
    mask = _current_umask()
    os.chmod(folder, 0o777 & ~mask)
    for dirpath, dirnames, filenames in os.walk(folder):
        for d in dirnames:
            os.chmod(os.path.join(dirpath, d), 0o777 & ~mask)
        for f in filenames:
            path = os.path.join(dirpath, f)
            if os.path.islink(path):
                continue
            full = 0o777 if os.stat(path).st_mode & 0o100 else 0o666
            os.chmod(path, full & ~mask)


def install_local(write: Callable[[Path], object], repo_id: str) -> Path:
    """Publish into the local hub atomically: `write(staging_folder)` fills a folder beside the
    destination, which then replaces `<hub>/<repo_id>`. If `write` fails or the process dies,
    the previous version of the repo stays in place. Folders and files get the modes the umask
    allows (0755 / 0644 with the usual 022), not those of the temporary staging folder."""
    check_repo_id(repo_id)
    dest = local_hub_dir() / repo_id
    dest.parent.mkdir(parents=True, exist_ok=True)
    _recover_interrupted(dest)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.incoming-", dir=dest.parent))
    try:
        write(staging)
        _apply_umask(staging)
        _swap_in(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return dest


# --------------------------------------------------------------------------------------------
# The Hugging Face Hub
# --------------------------------------------------------------------------------------------


def hf_fetch(
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
        cache_dir=hf_cache_dir(),
        endpoint=_hf_endpoint(),
        token=token,
        local_files_only=offline,
        library_name="mmzoo",
        library_version=mmzoo_version(),
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
                f"({hf_cache_dir()}){context}. Run `mmzoo pull` for it once with network access (or "
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


def fetch_repo(repo_id: str, revision: str | None, token, with_weights: bool = True) -> Path:
    """A bare 'owner/name': the local hub first (unless a revision is pinned), then the HF Hub."""
    if revision is None:
        local = local_repo(repo_id)
        if local is not None:
            return local
    return hf_fetch(
        repo_id, revision, token, with_weights,
        context=f"; it is not in the local hub either ({local_hub_dir() / repo_id})",
    )


def upload_to_hf(
    write: Callable[[Path], object],
    repo_id: str,
    *,
    token: str | bool | None,
    private: bool,
    revision: str | None,
    commit_message: str,
) -> str:
    """`write(folder)` into a temporary folder, then upload it in one commit with
    `HfApi.create_repo(exist_ok=True)` + `HfApi.upload_folder` (creating the branch `revision`
    first); returns 'hf-hub:<repo_id>@<commit>'."""
    check_repo_id(repo_id)
    if hf_offline():
        raise MmzooError("HF_HUB_OFFLINE is set: unset it to push to the Hugging Face Hub, or push with hub='local'.")
    from huggingface_hub import HfApi

    api = HfApi(endpoint=_hf_endpoint(), token=token, library_name="mmzoo", library_version=mmzoo_version())
    with tempfile.TemporaryDirectory(prefix="mmzoo-push-") as tmp:
        write(Path(tmp))
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        if revision and revision != "main":
            api.create_branch(repo_id, branch=revision, repo_type="model", exist_ok=True)
        info = api.upload_folder(
            repo_id=repo_id, folder_path=tmp, repo_type="model", revision=revision, commit_message=commit_message,
        )
    return f"{HF_PREFIX}{repo_id}@{info.oid}"


# --------------------------------------------------------------------------------------------
# Registry tags and the authors' original files
# --------------------------------------------------------------------------------------------


def converted_repo(spec: ModelSpec, w: Weights) -> str:
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


def _run_converter(name: str, original: Path) -> Path:
    """Convert `original` for registry name 'id.tag' into the local hub, through `CONVERT_ENTRY`."""
    module_name, _, attr = CONVERT_ENTRY.partition(":")
    convert = getattr(importlib.import_module(module_name), attr)
    return convert(name, original, push_to_local_hub=True)


def registry_folder(spec: ModelSpec, tag: str | None, revision: str | None, token) -> tuple[Path, Weights]:
    """The folder of a registry tag's weights and its `Weights` record: the local hub, else the
    record's Hub repo, else the authors' original file converted into the local hub."""
    if tag is None and spec.default_tag is None:
        raise NoPublishedWeightsError(_no_weights_message(spec, None))
    w = spec.weights_for(tag)
    if not w.available:
        raise NoPublishedWeightsError(_no_weights_message(spec, w))
    if revision is None:
        local = local_repo(converted_repo(spec, w))
        if local is not None:
            return local, w
    hub_error: MmzooError | None = None
    if w.hub_repo:
        try:
            return hf_fetch(w.hub_repo, revision or w.revision, token), w
        except (OfflineNotCachedError, RepoNotFoundError) as err:
            hub_error = err
    if w.original_url and w.converter:
        try:
            original = download_original(w.original_url, w.original_sha256)
        except (OfflineNotCachedError, RepoNotFoundError) as err:
            if hub_error is None:
                raise
            raise type(err)(f"{hub_error} Falling back to the original checkpoint failed too: {err}") from err
        return _run_converter(f"{spec.id}.{w.tag}", original), w
    assert hub_error is not None
    raise hub_error


def download_original(url: str, sha256: str | None = None) -> Path:
    """Download an original (authors') checkpoint into `originals_dir()` once, with a progress
    bar, and return its path; the sha256 is checked when given. The file is not read here."""
    from huggingface_hub.utils import tqdm

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
    request = urllib.request.Request(url, headers={"User-Agent": f"mmzoo/{mmzoo_version()}"})
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
