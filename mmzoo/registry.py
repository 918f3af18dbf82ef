"""Model registry: ids, weight tags and the metadata `mmzoo list` / `mmzoo info` report.

A model family registers its ids from its own module under `mmzoo/models/` with the
`@register_model` class decorator (stack it once per id); nothing here needs editing to add
a model. Ids are lowercase kebab (`method-backbone[-variant]`); a pretrained tag follows a dot
(`avslowfast-r50-4x16.k400`).
"""
from __future__ import annotations

import difflib
import fnmatch
import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

__all__ = [
    "Weights",
    "ModelSpec",
    "register_model",
    "get_spec",
    "split_name",
    "list_models",
    "all_specs",
    "UnknownModelError",
]


class UnknownModelError(KeyError):
    """Raised for an id that no module registered; the message lists the closest ids."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain.
        return str(self.args[0])


@dataclass(frozen=True)
class Weights:
    """One pretrained tag of a model id and where its weights come from.

    `hub_repo` (+ `revision`) names a Hub repository in mmzoo's layout (config.json,
    model.safetensors, README.md); `None` means nothing has been published for this tag yet.
    `sha256` is the checksum of `model.safetensors`; when set, `load` refuses a file that
    does not match. Where the original authors released a checkpoint, `original_url`,
    `original_sha256` and `converter` (a dotted path "module:function" taking the path of the
    original file and returning an mmzoo state dict) let `load` / `mmzoo convert` build the
    weights from the original file. A converter that may need full unpickling takes
    `allow_pickle: bool = False` and must read only with loaders that cannot run code unless it
    is True (only the explicit `mmzoo convert` command passes True).
    """

    tag: str
    hub_repo: str | None = None
    revision: str = "main"
    sha256: str | None = None
    original_url: str | None = None
    original_sha256: str | None = None
    converter: str | None = None
    dataset: str = ""
    metrics: Mapping[str, float] = field(default_factory=dict)
    notes: str = ""

    @property
    def available(self) -> bool:
        """True when `load` has a source for these weights (a Hub repo or an original file)."""
        return self.hub_repo is not None or (self.original_url is not None and self.converter is not None)


@dataclass(frozen=True)
class ModelSpec:
    """Everything the zoo knows about one model id."""

    id: str
    cls: type
    defaults: Mapping[str, Any]
    task: str
    paper: str
    inputs: Mapping[str, Any]
    weights: tuple[Weights, ...] = ()
    default_tag: str | None = None
    reported: Mapping[str, Any] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)
    family: str = ""

    @property
    def tags(self) -> list[str]:
        return [w.tag for w in self.weights]

    @property
    def published_tags(self) -> list[str]:
        return [w.tag for w in self.weights if w.available]

    def weights_for(self, tag: str | None) -> Weights:
        """The Weights record of `tag` (the default tag when None)."""
        tag = tag or self.default_tag
        for w in self.weights:
            if w.tag == tag:
                return w
        known = ", ".join(self.tags) or "none"
        raise UnknownModelError(f"Model '{self.id}' has no tag '{tag}'. Known tags: {known}.")

    def build(self, **overrides: Any):
        """Construct the architecture with the registered defaults, `overrides` winning."""
        kwargs = {**self.defaults, **overrides}
        model = self.cls(**kwargs)
        model.zoo_id = self.id
        return model


_REGISTRY: dict[str, ModelSpec] = {}
_IMPORTED = False


def register_model(
    model_id: str,
    *,
    defaults: Mapping[str, Any] | None = None,
    task: str,
    paper: str,
    inputs: Mapping[str, Any],
    weights: Sequence[Weights] = (),
    default_tag: str | None = None,
    reported: Mapping[str, Any] | None = None,
    data: Mapping[str, Any] | None = None,
    family: str = "",
) -> Callable[[type], type]:
    """Class decorator registering `model_id` as `cls(**defaults)`.

    Stack it once per id when one class serves several ids. `reported` holds the metrics the
    paper reports for this configuration (shown by `mmzoo info`); `data` the input config
    (frames, sampling rate, crop, mean/std, audio front end) written into config.json.
    """
    if model_id != model_id.lower() or " " in model_id or "." in model_id:
        raise ValueError(f"Model id '{model_id}' must be lowercase kebab-case without dots.")
    weights = tuple(weights)
    if default_tag is None and weights:
        default_tag = weights[0].tag
    if default_tag is not None and default_tag not in [w.tag for w in weights]:
        raise ValueError(f"default_tag '{default_tag}' of '{model_id}' is not one of its weights.")

    def decorator(cls: type) -> type:
        if model_id in _REGISTRY and _REGISTRY[model_id].cls is not cls:
            raise ValueError(f"Model id '{model_id}' is registered twice.")
        _REGISTRY[model_id] = ModelSpec(
            id=model_id,
            cls=cls,
            defaults=dict(defaults or {}),
            task=task,
            paper=paper,
            inputs=dict(inputs),
            weights=weights,
            default_tag=default_tag,
            reported=dict(reported or {}),
            data=dict(data or {}),
            family=family or cls.__module__.rsplit(".", 1)[-1],
        )
        return cls

    return decorator


def _import_model_modules() -> None:
    """Import every module under mmzoo.models so that each registers its ids."""
    global _IMPORTED
    if _IMPORTED:
        return
    _IMPORTED = True
    import mmzoo.models as pkg

    for info in pkgutil.walk_packages(pkg.__path__, prefix="mmzoo.models."):
        importlib.import_module(info.name)


def all_specs() -> dict[str, ModelSpec]:
    _import_model_modules()
    return dict(sorted(_REGISTRY.items()))


def split_name(name: str) -> tuple[str, str | None]:
    """'avslowfast-r50-4x16.k400' -> ('avslowfast-r50-4x16', 'k400'); no tag -> None."""
    model_id, _, tag = name.partition(".")
    return model_id, (tag or None)


def get_spec(name: str) -> ModelSpec:
    """The spec of an id (a '.tag' suffix is ignored); unknown ids suggest the closest ones."""
    model_id, _ = split_name(name)
    specs = all_specs()
    if model_id not in specs:
        close = difflib.get_close_matches(model_id, list(specs), n=5, cutoff=0.4)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UnknownModelError(
            f"Unknown model id '{model_id}'.{hint} `mmzoo list` shows all {len(specs)} ids."
        )
    return specs[model_id]


def list_models(pattern: str | None = None, pretrained: bool = False) -> list[str]:
    """Registered ids matching the glob `pattern`; with `pretrained=True`, 'id.tag' for every tag
    whose weights can be obtained."""
    names: list[str] = []
    for model_id, spec in all_specs().items():
        if pretrained:
            names += [f"{model_id}.{t}" for t in spec.published_tags]
        else:
            names.append(model_id)
    if pattern:
        names = [n for n in names if fnmatch.fnmatch(n, pattern)]
    return names
