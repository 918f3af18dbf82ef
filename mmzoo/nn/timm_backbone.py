"""timm models with ImageNet weights when they can be had, and a loud random init when not.

Used by every family that starts from a timm backbone (R-FCN / Fast R-CNN trunks, the AVE
feature extractor). The network policy is mmzoo's one offline switch, `mmzoo.offline.hf_offline`
(``HF_HUB_OFFLINE``): when it is on, the weights are looked up in the local caches only (the
Hugging Face cache through `huggingface_hub.try_to_load_from_cache`, torch's hub cache for
timm's legacy URLs) and handed to timm as a file, so no request is made; when it is off, timm
downloads them as usual. Either way, weights that cannot be had give a warning and a random
(optionally seeded) initialisation, never a crash.
"""
from __future__ import annotations

import os
import warnings
from typing import Any, Optional
from urllib.parse import urlparse

import torch

from mmzoo.offline import hf_cache_dir, hf_offline

__all__ = ["create_timm_model", "cached_timm_weights"]

# The files timm reads from a Hub repo when its pretrained config names none: safetensors first.
_HUB_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def _on_meta() -> bool:
    try:
        return torch.get_default_device().type == "meta"
    except AttributeError:  # pragma: no cover - older torch
        return False


def cached_timm_weights(name: str) -> Optional[str]:
    """The path of `name`'s pretrained weights in a local cache, or None; makes no request.

    Looks where timm would have downloaded them: the Hugging Face cache for its `hf_hub_id`
    (at the pinned revision when the id carries '@rev'), or torch's hub cache for the `url` of a
    config without a Hub repo.
    """
    from huggingface_hub import try_to_load_from_cache
    from timm.models import get_pretrained_cfg

    try:
        cfg = get_pretrained_cfg(name)
    except RuntimeError:  # an unknown pretrained tag: nothing can be cached for it
        return None
    if cfg is None:
        return None
    if cfg.hf_hub_id:
        repo_id, _, revision = cfg.hf_hub_id.partition("@")
        for filename in (cfg.hf_hub_filename,) if cfg.hf_hub_filename else _HUB_WEIGHT_FILES:
            found = try_to_load_from_cache(repo_id, filename, cache_dir=hf_cache_dir(), revision=revision or None)
            if isinstance(found, str) and os.path.isfile(found):
                return found
    elif cfg.url:  # timm's legacy download location, used only by configs without a Hub repo
        path = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(urlparse(cfg.url).path))
        if os.path.isfile(path):
            return path
    return None


def _pretrained(name: str, kwargs: dict[str, Any]) -> torch.nn.Module:
    """timm's pretrained model, from the caches only when offline (FileNotFoundError if not there)."""
    import timm

    if not hf_offline():
        return timm.create_model(name, pretrained=True, **kwargs)
    path = cached_timm_weights(name)
    if path is None:
        raise FileNotFoundError(
            "HF_HUB_OFFLINE is set and they are not in the Hugging Face cache or torch's hub cache"
        )
    overlay = {**(kwargs.pop("pretrained_cfg_overlay", None) or {}), "file": path}
    return timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs)


def create_timm_model(name: str, pretrained: bool, seed: Optional[int] = None, fallback_hint: str = "",
                      **kwargs: Any) -> tuple[torch.nn.Module, bool]:
    """`timm.create_model(name, **kwargs)` with its pretrained weights when `pretrained` and they
    can be loaded; otherwise randomly initialised (seeded by `seed` when given) with a warning
    ending in `fallback_hint`. Returns (model, whether pretrained weights were loaded). Nothing
    is downloaded on the meta device, nor when `mmzoo.offline.hf_offline()` is true."""
    import timm

    if pretrained and not _on_meta():
        try:
            return _pretrained(name, dict(kwargs)), True
        except Exception as e:  # noqa: BLE001 - offline / hub unreachable / unknown tag: say so, fall back
            warnings.warn(f"ImageNet weights of timm '{name}' unreachable ({type(e).__name__}: {e}); "
                          f"using a RANDOMLY INITIALISED backbone. {fallback_hint}".rstrip(), stacklevel=3)
    if seed is None:
        return timm.create_model(name, pretrained=False, **kwargs), False
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return timm.create_model(name, pretrained=False, **kwargs), False
