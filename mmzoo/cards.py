"""Model cards: the `README.md` of every published repo.

A card is Hugging Face model-card markdown: YAML front matter between `---` lines (`license`,
`library_name: mmzoo`, `tags`, `datasets`, `model-index` with the results the paper reports),
then prose. Hand-written cards live in `model_cards/<id>.md` at the repository root; for an id
without one, `render_card` generates a minimal card from the registry so every pushed repo still
carries valid metadata.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import yaml

__all__ = [
    "cards_dir",
    "card_path",
    "read_card",
    "split_front_matter",
    "validate_card",
    "render_card",
    "card_for",
    "transfer_section",
]


def cards_dir() -> Path:
    """`model_cards/` next to the `mmzoo` package (the repository root of a source checkout)."""
    import mmzoo

    return Path(mmzoo.__file__).resolve().parents[1] / "model_cards"


def card_path(model_id: str) -> Path:
    """Where the hand-written card of `model_id` lives (the file may not exist)."""
    return cards_dir() / f"{model_id}.md"


def read_card(model_id: str) -> str | None:
    """The hand-written card of `model_id`, or None when there is none."""
    path = card_path(model_id)
    return path.read_text(encoding="utf-8") if path.is_file() else None


def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """Parse a card into (metadata, markdown body). Raises ValueError if the front matter is
    missing, unterminated, not valid YAML, or not a mapping."""
    lines = text.lstrip("\ufeff").splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        raise ValueError("the card does not start with a '---' YAML front-matter block")
    for end in range(1, len(lines)):
        if lines[end].strip() == "---":
            break
    else:
        raise ValueError("the YAML front matter is not closed by a '---' line")
    try:
        meta = yaml.safe_load("".join(lines[1:end]))
    except yaml.YAMLError as err:
        raise ValueError(f"the front matter is not valid YAML: {err}") from err
    if not isinstance(meta, dict):
        raise ValueError("the front matter must be a YAML mapping (key: value lines)")
    return meta, "".join(lines[end + 1 :])


def _model_index_problems(model_index: Any) -> list[str]:
    problems: list[str] = []
    if not isinstance(model_index, list) or not model_index:
        return ["'model-index' must be a non-empty list"]
    for i, entry in enumerate(model_index):
        if not isinstance(entry, dict) or not entry.get("name"):
            problems.append(f"model-index[{i}] needs a 'name'")
            continue
        results = entry.get("results")
        if not isinstance(results, list) or not results:
            problems.append(f"model-index[{i}] ('{entry['name']}') has no 'results'")
            continue
        for j, res in enumerate(results):
            where = f"model-index[{i}].results[{j}]"
            if not isinstance(res, dict):
                problems.append(f"{where} must be a mapping")
                continue
            if not isinstance(res.get("task"), dict) or not res["task"].get("type"):
                problems.append(f"{where} needs task.type")
            if not isinstance(res.get("dataset"), dict) or not res["dataset"].get("name") or not res["dataset"].get("type"):
                problems.append(f"{where} needs dataset.name and dataset.type")
            metrics = res.get("metrics")
            if not isinstance(metrics, list) or not metrics:
                problems.append(f"{where} needs a non-empty 'metrics' list")
                continue
            for k, m in enumerate(metrics):
                if not isinstance(m, dict) or not m.get("type") or not isinstance(m.get("value"), (int, float)):
                    problems.append(f"{where}.metrics[{k}] needs 'type' and a numeric 'value'")
    return problems


def validate_card(text: str, require_results: bool = True) -> list[str]:
    """Problems that keep `text` from being a valid mmzoo card (empty list = valid).

    Checks the front matter mmzoo requires (license, `library_name: mmzoo`, a model-index whose
    results each name a task, a dataset and numeric metrics), then lets huggingface_hub's own
    `ModelCard` parser read it, as the Hub does on upload.
    """
    try:
        meta, _ = split_front_matter(text)
    except ValueError as err:
        return [str(err)]
    problems: list[str] = []
    if not meta.get("license"):
        problems.append("missing 'license'")
    if meta.get("library_name") != "mmzoo":
        problems.append(f"'library_name' must be 'mmzoo' (got {meta.get('library_name')!r})")
    if "model-index" in meta or require_results:
        problems += _model_index_problems(meta.get("model-index"))
    if not problems:
        from huggingface_hub import ModelCard

        try:
            ModelCard(text, ignore_metadata_errors=False)
        except Exception as err:  # noqa: BLE001 - report whatever the Hub's parser rejects
            problems.append(f"huggingface_hub rejects the metadata: {err}")
    return problems


def _results_from(metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"type": str(k), "value": float(v)} for k, v in metrics.items() if isinstance(v, (int, float))]


def render_card(model_id: str, tag: str | None = None, kwargs: Mapping[str, Any] | None = None) -> str:
    """A generated card for `model_id` (used when `model_cards/<id>.md` does not exist).

    The front matter carries the registry's facts: the paper, the tag's dataset and metrics
    (as a model-index when there are numeric ones), and the constructor arguments in the body.
    """
    from mmzoo import __version__
    from mmzoo.registry import get_spec

    spec = get_spec(model_id)
    weights = None
    if tag or spec.default_tag:
        try:
            weights = spec.weights_for(tag)
        except KeyError:
            weights = None
    meta: dict[str, Any] = {
        "license": "apache-2.0",
        "library_name": "mmzoo",
        "tags": ["mmzoo", "pytorch-lightning", spec.task] if spec.task else ["mmzoo", "pytorch-lightning"],
    }
    if weights is not None and weights.dataset:
        meta["datasets"] = [weights.dataset]
    metrics = _results_from(weights.metrics) if weights is not None else []
    if not metrics:
        metrics = _results_from(spec.reported)
    if metrics:
        meta["model-index"] = [
            {
                "name": f"{model_id}.{weights.tag}" if weights is not None else model_id,
                "results": [
                    {
                        "task": {"type": spec.task or "other"},
                        "dataset": {
                            "name": (weights.dataset if weights is not None and weights.dataset else "reported"),
                            "type": (weights.dataset if weights is not None and weights.dataset else "reported"),
                        },
                        "metrics": metrics,
                    }
                ],
            }
        ]
    front = yaml.safe_dump(meta, sort_keys=False)
    body = [
        f"# {model_id}",
        "",
        f"An mmzoo model (task: {spec.task or 'unspecified'}). Paper: {spec.paper or 'unspecified'}.",
        "",
        "This card was generated by mmzoo because the repository has no hand-written card for this id.",
        "",
        "```python",
        "import mmzoo",
        'model = mmzoo.load("hf-hub:<owner>/<this repo>")',
        "```",
    ]
    if kwargs:
        body += ["", "Constructor arguments:", "", "```yaml", yaml.safe_dump(dict(kwargs), sort_keys=True).rstrip(), "```"]
    body += ["", f"Written by mmzoo {__version__}."]
    return f"---\n{front}---\n\n" + "\n".join(body) + "\n"


#: Constructor arguments of a `transfer` model (mmzoo.models.transfer) that state its protocol.
_TRANSFER_KEYS = ("source", "source_kwargs", "source_weights", "protocol", "num_classes", "dropout", "head_bn",
                  "bn_mode", "precise_bn_batches", "freeze_bn", "layer_decay", "base_lr", "base_batch_size",
                  "weight_decay", "lr_schedule")


def transfer_section(kwargs: Mapping[str, Any]) -> str:
    """The "Transfer protocol" section of the card of a model trained with `--model transfer`:
    the source network and its weights, the new head and what was trained, one table row each."""
    rows = [f"| `{k}` | `{kwargs[k]!r}` |" for k in _TRANSFER_KEYS if k in kwargs]
    return "\n".join([
        "## Transfer protocol", "",
        (f"A new linear classifier ({kwargs.get('num_classes')} classes) on the pooled features of "
         f"`{kwargs.get('source')}` (weights: `{kwargs.get('source_weights')}`), trained with the "
         f"`{kwargs.get('protocol')}` protocol (mmzoo.models.transfer)."), "",
        "| argument | value |", "|---|---|", *rows, "",
    ])


def card_for(model_id: str, tag: str | None = None, kwargs: Mapping[str, Any] | None = None) -> str:
    """The hand-written card of `model_id` if the repository has one, else a generated one; a
    `transfer` model's card ends with its protocol (`transfer_section`)."""
    card = read_card(model_id) or render_card(model_id, tag=tag, kwargs=kwargs)
    if kwargs and "protocol" in kwargs and "source" in kwargs:
        card = card.rstrip("\n") + "\n\n" + transfer_section(kwargs)
    return card
