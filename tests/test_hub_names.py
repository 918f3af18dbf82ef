"""The one parser of model names (`mmzoo.hub.names.parse_name`), and the refusal of ambiguous ones."""
from __future__ import annotations

from pathlib import Path

import pytest
from hf_server import TINY_ID, register_tiny, trained_tiny, unregister

import mmzoo
from mmzoo.errors import MmzooError, RepoNotFoundError
from mmzoo.hub import ModelName, parse_name
from mmzoo.registry import Weights


@pytest.fixture
def tiny():
    register_tiny([Weights("demo", hub_repo="zootest/mlp-demo")])
    yield
    unregister(TINY_ID)


@pytest.mark.parametrize(
    "name, revision, expected",
    [
        ("stmn-r101", None, ModelName("registry", model_id="stmn-r101")),
        ("avslowfast-r50-4x16.k400", None, ModelName("registry", model_id="avslowfast-r50-4x16.k400", tag="k400")),
        ("stmn-r101.vid", "abc", ModelName("registry", model_id="stmn-r101.vid", tag="vid", revision="abc")),
        ("hf-hub:someone/my-finetune", None, ModelName("hf", repo_id="someone/my-finetune")),
        ("hf-hub:someone/my-finetune@v1.0", None, ModelName("hf", repo_id="someone/my-finetune", revision="v1.0")),
        ("hf-hub:someone/my-finetune", "dev", ModelName("hf", repo_id="someone/my-finetune", revision="dev")),
        ("someone/my-finetune", None, ModelName("repo", repo_id="someone/my-finetune")),
        ("someone/my.finetune_2@0123abc", None, ModelName("repo", repo_id="someone/my.finetune_2", revision="0123abc")),
    ],
)
def test_name_forms(name, revision, expected, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing in the working directory shadows the names
    assert parse_name(name, revision) == expected


def test_folder_forms(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "exported" / "nested").mkdir(parents=True)
    assert parse_name(tmp_path / "exported") == ModelName("folder", path=tmp_path / "exported")
    assert parse_name(str(tmp_path / "exported")) == ModelName("folder", path=tmp_path / "exported")
    assert parse_name("./exported") == ModelName("folder", path=Path("exported"))
    assert parse_name("exported/nested/") == ModelName("folder", path=Path("exported/nested"))
    # a bare word is a folder only when it holds config.json and is not a registered id
    assert parse_name("exported").kind == "registry"
    (tmp_path / "exported" / "config.json").write_text("{}")
    assert parse_name("exported") == ModelName("folder", path=Path("exported"))
    for missing in ("./nowhere", str(tmp_path / "nowhere"), tmp_path / "nowhere", "a/b/c"):
        with pytest.raises(RepoNotFoundError, match="No folder at"):
            parse_name(missing)


def test_bad_names():
    with pytest.raises(ValueError, match="pins revision 'v1' but revision='v2'"):
        parse_name("hf-hub:someone/repo@v1", revision="v2")
    with pytest.raises(ValueError, match="not a repo id"):
        parse_name("hf-hub:someone/../repo")
    with pytest.raises(ValueError, match="not a repo id"):
        parse_name("hf-hub:no-owner")


def test_repo_id_that_is_also_a_local_path_is_refused(tiny, tmp_path, monkeypatch):
    model = trained_tiny()
    mmzoo.push(model, "me/mlp")  # in the local hub
    monkeypatch.chdir(tmp_path)
    assert mmzoo.load("me/mlp").zoo_id == TINY_ID
    (tmp_path / "me" / "mlp").mkdir(parents=True)  # now also a folder of the working directory
    for call in (lambda: mmzoo.load("me/mlp"), lambda: mmzoo.hub.pull("me/mlp"), lambda: parse_name("me/mlp")):
        with pytest.raises(MmzooError, match="ambiguous") as err:
            call()
        assert "'./me/mlp'" in str(err.value) and "'hf-hub:me/mlp'" in str(err.value)
    # each unambiguous spelling means one thing ('me/mlp@v1' is no path here)
    assert parse_name("me/mlp@v1") == ModelName("repo", repo_id="me/mlp", revision="v1")
    assert parse_name("./me/mlp") == ModelName("folder", path=Path("me/mlp"))
    assert parse_name("hf-hub:me/mlp") == ModelName("hf", repo_id="me/mlp")
    mmzoo.hub.save_pretrained(model, tmp_path / "me" / "mlp")
    assert mmzoo.load("./me/mlp").zoo_source == "me/mlp"


def test_registered_id_that_is_also_a_folder_is_refused(tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mmzoo.hub.save_pretrained(trained_tiny(), tmp_path / TINY_ID)
    with pytest.raises(MmzooError, match="ambiguous") as err:
        mmzoo.load(TINY_ID, pretrained=False)
    assert f"'./{TINY_ID}'" in str(err.value)
    assert mmzoo.load(f"./{TINY_ID}").zoo_id == TINY_ID
