"""Every registered id, one parametrised test each (timm's ``test_models.py`` pattern).

For each id: the full-size model builds on the meta device and its parameter count and GFLOPs
are the README zoo table's; a tiny configuration of the same class runs ``example_input`` through
``forward``; ``config.json`` round-trips through the local hub (same id, constructor arguments,
input contract and weights). A new id is covered the moment it registers; a family whose class is
not in ``TINY`` (tests/_tiny.py) fails here until it says how to build a small instance.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from _tiny import tiny_kwargs

import mmzoo
from mmzoo.catalog import load_index
from mmzoo.info import measure, model_info
from mmzoo.registry import InputConfig, all_specs

README = Path(__file__).resolve().parents[1] / "README.md"
IDS = sorted(all_specs())


def _readme_rows() -> dict[str, tuple[float, str]]:
    rows = {}
    for line in README.read_text().splitlines():
        m = re.match(r"\| `([a-z0-9-]+)` \| [^|]+ \| ([0-9.]+) \| ([0-9.]+|n/a) \|", line)
        if m:
            rows[m.group(1)] = (float(m.group(2)), m.group(3))
    return rows


def _tiny(model_id: str):
    kwargs = tiny_kwargs(model_id)
    torch.manual_seed(0)
    return mmzoo.create(model_id, **kwargs).eval()


def _tensors(out):
    if isinstance(out, torch.Tensor):
        yield out
    elif isinstance(out, dict):
        for v in out.values():
            yield from _tensors(v)
    elif isinstance(out, (list, tuple)):
        for v in out:
            yield from _tensors(v)


@pytest.mark.parametrize("model_id", IDS)
def test_full_size_on_meta_matches_the_readme_table_and_the_catalogue(model_id):
    rows = _readme_rows()
    assert model_id in rows, f"{model_id} is missing from the README zoo table"
    params_m, gflops = rows[model_id]
    size = measure(model_id)
    assert round(size["params"] / 1e6, 2) == params_m
    assert gflops != "n/a" and size["gflops"] is not None, f"{model_id}: GFLOPs must be countable on the meta device"
    assert round(size["gflops"], 1) == float(gflops)
    # what `mmzoo list` / `info` print without importing the model equals the live registry
    live = json.loads(json.dumps(model_info(model_id, measured=size), default=str))
    assert load_index().get(model_id) == live, "mmzoo/zoo_index.json is stale: run `python -m mmzoo.zoo_table --write`"


@pytest.mark.parametrize("model_id", IDS)
def test_example_input_runs_through_a_tiny_configuration(model_id):
    model = _tiny(model_id)
    example = model.example_input(2)
    assert isinstance(example, dict), "example_input must return forward's keyword arguments"
    with torch.no_grad():
        out = model(**example)
    tensors = list(_tensors(out))
    assert tensors, f"{model_id}: forward returned no tensor"
    assert all(torch.isfinite(t.float()).all() for t in tensors if t.is_floating_point())


@pytest.mark.parametrize("model_id", IDS)
def test_config_json_round_trips(model_id):
    model = _tiny(model_id)
    folder = Path(mmzoo.push(model, f"every-id/{model_id}"))
    config = json.loads((folder / "config.json").read_text())
    spec = all_specs()[model_id]
    assert config["model_id"] == model_id
    assert config["kwargs"] == json.loads(json.dumps(model.init_kwargs()))
    assert InputConfig.from_dict(config["input"]) == spec.input
    loaded = mmzoo.load(f"every-id/{model_id}")
    assert type(loaded) is type(model) and loaded.zoo_id == model_id
    mine, theirs = model.state_dict(), loaded.state_dict()
    assert mine.keys() == theirs.keys()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)
