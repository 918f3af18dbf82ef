"""Model cards: every card in model_cards/ is valid Hugging Face card metadata for a registered id,
and every registered zoo id has one."""
from __future__ import annotations

import pytest

from mmzoo.cards import card_path, cards_dir, render_card, split_front_matter, validate_card
from mmzoo.registry import all_specs

GOOD = """---
license: apache-2.0
library_name: mmzoo
tags: [video]
datasets: [ave]
model-index:
- name: demo-model
  results:
  - task: {type: video-classification}
    dataset: {name: AVE, type: ave}
    metrics:
    - {type: accuracy, value: 77.86, name: segment accuracy}
---
# demo
"""


def zoo_ids() -> list[str]:
    """Ids registered by mmzoo's own model modules (not ids tests register on the fly)."""
    return [i for i, s in all_specs().items() if s.cls.__module__.startswith("mmzoo.models.")]


def test_every_card_is_valid_and_names_a_registered_id():
    ids = set(zoo_ids())
    problems: dict[str, list[str]] = {}
    for path in sorted(cards_dir().glob("*.md")):
        found = validate_card(path.read_text(encoding="utf-8"))
        if path.stem not in ids:
            found.append(f"'{path.stem}' is not a registered model id (the file must be model_cards/<id>.md)")
        if found:
            problems[path.name] = found
    assert problems == {}


def test_every_registered_id_has_a_card():
    missing = [i for i in zoo_ids() if not card_path(i).is_file()]
    assert missing == [], f"ids without model_cards/<id>.md: {missing}"


def test_generated_cards_are_valid_for_every_id():
    for model_id in zoo_ids():
        assert validate_card(render_card(model_id), require_results=False) == [], model_id


def test_validator_accepts_a_good_card():
    assert validate_card(GOOD) == []
    meta, body = split_front_matter(GOOD)
    assert meta["model-index"][0]["results"][0]["metrics"][0]["value"] == 77.86 and body == "# demo\n"


@pytest.mark.parametrize(
    "text, problem",
    [
        ("# no front matter\n", "does not start with"),
        ("---\nlicense: mit\n", "not closed"),
        ("---\nlicense: [mit\n---\n", "not valid YAML"),
        (GOOD.replace("license: apache-2.0\n", ""), "missing 'license'"),
        (GOOD.replace("library_name: mmzoo", "library_name: timm"), "'library_name' must be 'mmzoo'"),
        (GOOD.replace("value: 77.86", "value: high"), "numeric 'value'"),
        (GOOD.replace("dataset: {name: AVE, type: ave}", "dataset: {name: AVE}"), "dataset.name and dataset.type"),
        (GOOD.split("model-index")[0] + "---\n", "'model-index' must be a non-empty list"),
    ],
)
def test_validator_rejects_bad_cards(text, problem):
    assert any(problem in p for p in validate_card(text)), validate_card(text)


def test_readme_lists_exactly_the_registered_data_names():
    import re
    from pathlib import Path

    from mmzoo.data import all_datamodules

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    para = text[text.index("Registered data names:"):].split("\n\n", 1)[0]
    assert re.findall(r"`([a-z0-9-]+)`", para) == sorted(all_datamodules())
