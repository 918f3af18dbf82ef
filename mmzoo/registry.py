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
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable, Literal, Mapping, Sequence

from mmzoo.errors import UnknownModelError

__all__ = [
    "AudioInput",
    "InputConfig",
    "Weights",
    "ModelSpec",
    "register_model",
    "get_spec",
    "split_name",
    "list_models",
    "all_specs",
    "UnknownModelError",
    "import_submodules",
    "did_you_mean",
]


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
class AudioInput:
    """The audio a model expects: a log-mel spectrogram, VGGish examples, or released features.

    Every field a DataModule needs to produce exactly that input; ``None`` where it does not
    apply (features carry no front end).
    """

    kind: Literal["logmel", "vggish", "features", "waveform"]
    sample_rate: int | None = None
    window_ms: float | None = None
    hop_ms: float | None = None
    n_fft: int | None = None
    n_mels: int | None = None
    num_frames: int | None = None
    mel_scale: str | None = None
    log_offset: float | None = None
    mean: float | None = None
    std: float | None = None


@dataclass(frozen=True)
class InputConfig:
    """The input contract of a model id: what its DataModules must produce.

    ``shapes`` documents each ``forward`` keyword argument (``{"video": "[slow B,3,4,256,256 ; fast
    B,3,32,256,256]"}``). The other fields are the settings a DataModule paired with the model takes
    its defaults from (``mmzoo fit --model <id> --data <name>``; explicit flags still win), and
    what ``config.json`` records: frames per clip (the Fast pathway's for SlowFast), the frame
    stride, the Slow/Fast ratio ``alpha``, crops, the short side and its random training range,
    normalisation, the test views ``(clips, crops)``, the audio front end, the text length, the
    released feature sets. ``datamodules`` names the DataModules the model pairs with (the first
    is its default); an empty tuple means mmzoo has no DataModule for its dataset yet.
    """

    shapes: Mapping[str, str]
    frames: int | None = None
    sampling_rate: int | None = None
    alpha: int | None = None
    train_crop: int | None = None
    test_crop: int | None = None
    short_side: int | None = None
    train_scale: tuple[int, int] | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    test_views: tuple[int, int] | None = None
    audio: AudioInput | None = None
    text_max_length: int | None = None
    features: tuple[str, ...] | None = None
    datamodules: tuple[str, ...] = ()
    notes: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (what config.json stores under ``"input"``); ``None`` fields omitted."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if v is None or v == () or v == "":
                continue
            if f.name == "audio":
                v = {k: a for k, a in asdict(v).items() if a is not None}
            elif isinstance(v, tuple):
                v = list(v)
            elif isinstance(v, Mapping):
                v = dict(v)
            out[f.name] = v
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "InputConfig":
        """Inverse of :meth:`to_dict`; unknown keys are an error naming them."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown input config field(s) {unknown}; known: {sorted(names)}")
        kw = dict(d)
        if kw.get("audio") is not None:
            kw["audio"] = AudioInput(**kw["audio"])
        for k in ("train_scale", "mean", "std", "test_views", "features", "datamodules"):
            if kw.get(k) is not None:
                kw[k] = tuple(kw[k])
        return cls(**kw)


@dataclass(frozen=True)
class ModelSpec:
    """Everything the zoo knows about one model id."""

    id: str
    cls: type
    defaults: Mapping[str, Any]
    task: str
    paper: str
    input: InputConfig
    weights: tuple[Weights, ...] = ()
    default_tag: str | None = None
    reported: Mapping[str, Any] = field(default_factory=dict)
    label_names: tuple[str, ...] | None = None
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
    input: InputConfig,
    weights: Sequence[Weights] = (),
    default_tag: str | None = None,
    reported: Mapping[str, Any] | None = None,
    label_names: Sequence[str] | None = None,
    family: str = "",
) -> Callable[[type], type]:
    """Class decorator registering `model_id` as `cls(**defaults)`.

    Stack it once per id when one class serves several ids. `input` is the model's
    :class:`InputConfig` (the contract its DataModules take their defaults from, printed by
    `mmzoo info` and written into config.json); `reported` holds the metrics the paper reports
    for this configuration; `label_names` the class names of its outputs, when fixed.
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
            input=input,
            weights=weights,
            default_tag=default_tag,
            reported=dict(reported or {}),
            label_names=tuple(label_names) if label_names is not None else None,
            family=family or cls.__module__.rsplit(".", 1)[-1],
        )
        return cls

    return decorator


def import_submodules(package: str) -> None:
    """Import every module under `package` (e.g. "mmzoo.models"), so that each registers itself."""
    pkg = importlib.import_module(package)
    for info in pkgutil.walk_packages(pkg.__path__, prefix=f"{package}."):
        importlib.import_module(info.name)


def did_you_mean(name: str, known: Sequence[str], n: int = 5) -> str:
    """' Did you mean: a, b?' for the closest of `known` to `name`, or '' when none is close."""
    close = difflib.get_close_matches(name, list(known), n=n, cutoff=0.4)
    return f" Did you mean: {', '.join(close)}?" if close else ""


def _import_model_modules() -> None:
    """Import every module under mmzoo.models so that each registers its ids."""
    global _IMPORTED
    if _IMPORTED:
        return
    _IMPORTED = True
    import_submodules("mmzoo.models")


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
        raise UnknownModelError(
            f"Unknown model id '{model_id}'.{did_you_mean(model_id, specs)} `mmzoo list` shows all {len(specs)} ids."
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
