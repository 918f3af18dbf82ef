"""The errors mmzoo raises when a model cannot be found, fetched or loaded.

Every message says what went wrong *and* what to do about it. All of them derive from
`MmzooError`, and each also derives from the closest built-in exception so generic handlers keep
working. This module is on the ground floor: it imports nothing from mmzoo.
"""
from __future__ import annotations

__all__ = [
    "MmzooError",
    "UnknownModelError",
    "UnknownDataError",
    "NoPublishedWeightsError",
    "RepoNotFoundError",
    "OfflineNotCachedError",
    "CorruptWeightsError",
    "ChecksumMismatchError",
    "IncompatibleConfigError",
    "MissingKeysError",
]


class MmzooError(Exception):
    """Base class of mmzoo's hub and loading errors."""


class UnknownModelError(MmzooError, KeyError):
    """An id that no module registered; the message lists the closest ids."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain.
        return str(self.args[0])


class CompareError(MmzooError, ValueError):
    """`mmzoo compare`: a metric no selected id reports, or a pattern matching no id."""


class UnknownDataError(MmzooError, KeyError):
    """A `--data` name that no DataModule registered; the message lists the closest names."""

    def __str__(self) -> str:
        return str(self.args[0])


class NoPublishedWeightsError(MmzooError, LookupError):
    """The requested tag has no weights that `load` could obtain (no Hub repo, no original file)."""


class RepoNotFoundError(MmzooError, LookupError):
    """A repo id is neither in the local hub nor reachable on the Hugging Face Hub."""


class OfflineNotCachedError(MmzooError, ConnectionError):
    """`HF_HUB_OFFLINE` is set and the requested files are not in any local cache."""


class CorruptWeightsError(MmzooError, ValueError):
    """A weights file is truncated, is not a safetensors file, or cannot be decoded."""


class ChecksumMismatchError(MmzooError, ValueError):
    """The sha256 of a file differs from the one the registry records."""

    def __init__(self, path, expected: str, actual: str, hint: str = "") -> None:
        self.path = str(path)
        self.expected = expected
        self.actual = actual
        msg = (
            f"Checksum mismatch for {self.path}: expected sha256 {expected}, got {actual}. "
            "The file is corrupt, was replaced, or belongs to another release; it was NOT loaded. "
            "Delete it and download it again"
        )
        msg += f" ({hint})." if hint else "."
        super().__init__(msg)


class IncompatibleConfigError(MmzooError, ValueError):
    """config.json names an unknown model id, or was written by a newer, incompatible mmzoo."""


class MissingKeysError(MmzooError, RuntimeError):
    """The weights do not fit the architecture: missing, unexpected or mis-shaped tensors."""

    def __init__(self, source: str, missing=(), unexpected=(), mismatched=(), hint: str = "") -> None:
        self.missing = sorted(missing)
        self.unexpected = sorted(unexpected)
        self.mismatched = list(mismatched)
        parts = [f"The weights in {source} do not match the architecture."]
        if self.missing:
            parts.append(f"Missing keys ({len(self.missing)}): {', '.join(self.missing)}.")
        if self.unexpected:
            parts.append(f"Unexpected keys ({len(self.unexpected)}): {', '.join(self.unexpected)}.")
        if self.mismatched:
            shown = ", ".join(f"{k} (file {tuple(a)} vs model {tuple(b)})" for k, a, b in self.mismatched)
            parts.append(f"Shape mismatches ({len(self.mismatched)}): {shown}.")
        parts.append(
            hint
            or "Check that the constructor arguments (config.json kwargs and any overrides) are the ones "
            "these weights were trained with; to use a different head, load with the original "
            "arguments and replace the layer afterwards."
        )
        super().__init__(" ".join(parts))


class NotSupportedError(MmzooError, TypeError):
    """The model does not offer this operation (e.g. `mmzoo predict --input` for a model that
    only predicts from a DataModule)."""


class DataError(MmzooError):
    """A dataset on disk is missing, malformed or unreadable; the message names the file (and
    line). The data layer's own error classes derive from it, so the CLI reports them in one line."""


class ConversionError(MmzooError, ValueError):
    """An original checkpoint does not have the layout its converter expects."""
