"""mmzoo: a PyTorch Lightning model zoo for video and multimodal learning.

Everything a notebook needs::

    import mmzoo
    mmzoo.list_models("avsdn*")
    mmzoo.model_info("cmcoatt-avsdn")
    model = mmzoo.create("cmcoatt-avsdn", num_classes=29)   # architecture, no weights
    model = mmzoo.load("cmcoatt-avsdn.ave")                 # weights from the Hub / local hub
    mmzoo.push(model, "someone/my-finetune")
"""
from __future__ import annotations

from typing import Any

from mmzoo.registry import Weights, list_models, register_model

__version__ = "0.1.0"
__all__ = ["load", "create", "list_models", "model_info", "push", "register_model", "Weights", "__version__"]


def create(name: str, **overrides: Any):
    """Build the architecture of `name` ('id' or 'id.tag') without weights; `overrides` replace
    the registered constructor defaults (e.g. `num_classes=31`)."""
    from mmzoo.registry import get_spec

    return get_spec(name).build(**overrides)


def load(name: str, pretrained: bool = True, map_location: str = "cpu", revision: str | None = None, **overrides: Any):
    """Load a model in eval mode from a registry id / 'id.tag', 'hf-hub:owner/repo', a local hub
    repo id, or a folder holding config.json + model.safetensors. See `mmzoo.hub.load`."""
    from mmzoo.hub import load as _load

    return _load(name, pretrained=pretrained, map_location=map_location, revision=revision, **overrides)


def push(model, repo_id: str, **kwargs: Any) -> str:
    """Publish `model` as config.json + model.safetensors + README.md. See `mmzoo.hub.push`."""
    from mmzoo.hub import push as _push

    return _push(model, repo_id, **kwargs)


def model_info(name: str) -> dict:
    """Task, paper, inputs, parameter count, GFLOPs, tags and reported metrics of a model id."""
    from mmzoo.info import model_info as _info

    return _info(name)
