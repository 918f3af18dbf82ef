"""mmzoo's one offline policy, on the ground floor so that `nn`, `models` and `hub` share it.

``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) set to a true value means: no network request at
all, not to the Hugging Face Hub, not for original checkpoints, not for timm / transformers
backbone weights; files come from the local caches or the call fails with a clear error.
"""
from __future__ import annotations

import os

__all__ = ["hf_offline", "hf_cache_dir"]

_TRUE = {"1", "ON", "YES", "TRUE"}


def _env_flag(name: str) -> bool | None:
    value = os.environ.get(name)
    if value is None:
        return None
    return value.strip().upper() in _TRUE


def hf_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set now, read at every call
    (not only at import, as huggingface_hub's own constant is)."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        flag = _env_flag(name)
        if flag is not None:
            return flag
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def hf_cache_dir() -> str:
    """The Hugging Face cache named by the environment now: ``HF_HUB_CACHE``, else
    ``$HF_HOME/hub``, else huggingface_hub's default."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE
