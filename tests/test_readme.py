"""README's zoo table is generated from the catalogue (`mmzoo/zoo_index.json`, itself checked
against the live registry id by id in tests/test_models_every_id.py) and must match it."""
from pathlib import Path

from mmzoo import zoo_table
from mmzoo.catalog import load_index
from mmzoo.registry import all_specs

README = Path(__file__).resolve().parents[1] / "README.md"


def test_zoo_table_in_readme_matches_registry():
    text = README.read_text()
    expected = zoo_table.replace_in(text, zoo_table.render(load_index()))
    assert text == expected, "README zoo table is stale: run `python -m mmzoo.zoo_table --write`"


def test_zoo_table_lists_every_id_once():
    table = zoo_table.render(load_index())
    assert sorted(load_index()) == sorted(all_specs()), "zoo_index.json is stale: run `python -m mmzoo.zoo_table --write`"
    for model_id in all_specs():
        assert table.count(f"| `{model_id}` |") == 1


def test_readme_names_the_test_command_that_ci_runs():
    ci = (README.parent / ".ci" / "run").read_text()
    assert "make test" in ci and "make test" in README.read_text()
