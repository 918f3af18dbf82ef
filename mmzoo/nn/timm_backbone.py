"""timm models with ImageNet weights when they can be had, and a loud random init when not.

Used by every family that starts from a timm backbone (R-FCN / Fast R-CNN trunks, the AVE
feature extractor). On a machine that cannot reach the Hub the weights come from the cache at
once, without huggingface_hub's retries, and failing that the model is randomly initialised
with a warning.
"""
from __future__ import annotations

import os
import socket
import warnings
from typing import Any, Optional
from urllib.parse import urlparse

import torch

__all__ = ["create_timm_model"]


def _on_meta() -> bool:
    try:
        return torch.get_default_device().type == "meta"
    except AttributeError:  # pragma: no cover - older torch
        return False


def _hub_unreachable(timeout: float = 3.0) -> bool:
    """True when the Hugging Face endpoint cannot be reached directly (and no proxy is set), so
    that an offline machine uses the cache at once instead of huggingface_hub's retries."""
    from huggingface_hub import constants

    if constants.is_offline_mode() or any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY")):
        return False
    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return False
    except OSError:
        return True


def create_timm_model(name: str, pretrained: bool, seed: Optional[int] = None, fallback_hint: str = "",
                      **kwargs: Any) -> tuple[torch.nn.Module, bool]:
    """`timm.create_model(name, **kwargs)` with its pretrained weights when `pretrained` and they
    can be loaded; otherwise randomly initialised (seeded by `seed` when given) with a warning
    ending in `fallback_hint`. Returns (model, whether pretrained weights were loaded). Nothing
    is downloaded on the meta device."""
    import timm

    if pretrained and not _on_meta():
        from huggingface_hub import constants

        saved = constants.HF_HUB_OFFLINE
        try:
            if _hub_unreachable():
                constants.HF_HUB_OFFLINE = True  # cache only
            return timm.create_model(name, pretrained=True, **kwargs), True
        except Exception as e:  # noqa: BLE001 - offline / hub unreachable / unknown tag: say so, fall back
            warnings.warn(f"ImageNet weights of timm '{name}' unreachable ({type(e).__name__}: {e}); "
                          f"using a RANDOMLY INITIALISED backbone. {fallback_hint}".rstrip(), stacklevel=3)
        finally:
            constants.HF_HUB_OFFLINE = saved
    if seed is None:
        return timm.create_model(name, pretrained=False, **kwargs), False
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return timm.create_model(name, pretrained=False, **kwargs), False
