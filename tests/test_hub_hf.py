"""The Hugging Face Hub path: the real `huggingface_hub` client against a local HTTP server.

`FakeHub` (tests/hf_server.py) serves repos on 127.0.0.1; `HF_ENDPOINT` points mmzoo at it (mmzoo
reads the variable when called and hands it to `hf_hub_download` / `HfApi`). Offline mode is
lifted for these tests, and restored where a test checks the offline behaviour.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch
from hf_server import FakeHub, TINY_ID, register_tiny, trained_tiny, unregister, write_authors_checkpoint

import mmzoo
from mmzoo import hub
from mmzoo.convert import sha256_file
from mmzoo.errors import ChecksumMismatchError, OfflineNotCachedError, RepoNotFoundError
from mmzoo.registry import Weights

X = torch.randn(4, 6, generator=torch.Generator().manual_seed(2))


@pytest.fixture
def fake_hub(monkeypatch):
    server = FakeHub()
    monkeypatch.setenv("HF_ENDPOINT", server.start())
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    register_tiny([])
    yield server
    server.close()
    unregister(TINY_ID)


def go_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def publish(server: FakeHub, repo_id: str, model, tmp_path: Path, branch: str = "main") -> str:
    folder = hub.save_pretrained(model, tmp_path / f"export-{len(server.requests)}-{id(model)}")
    return server.commit_folder(repo_id, folder, branch=branch)


def test_load_hf_hub_repo_with_the_real_client(fake_hub, tmp_path):
    model = trained_tiny(seed=1, hidden=5)
    sha = publish(fake_hub, "alice/mlp", model, tmp_path)

    loaded = mmzoo.load("hf-hub:alice/mlp")
    assert loaded.hparams.hidden == 5 and not loaded.training
    assert torch.equal(loaded(X), model(X))
    # the files sit in the Hugging Face cache, one snapshot per commit
    snapshot = Path(hub._hf_cache_dir()) / "models--alice--mlp" / "snapshots" / sha
    assert sorted(p.name for p in snapshot.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert hub.pull("hf-hub:alice/mlp") == snapshot
    # config.json is resolved at the branch; everything else at the commit it came from
    assert "/alice/mlp/resolve/main/config.json" in fake_hub.paths("HEAD")
    assert f"/alice/mlp/resolve/{sha}/model.safetensors" in fake_hub.paths("GET")
    # a bare owner/repo not in the local hub also comes from the Hub
    assert torch.equal(mmzoo.load("alice/mlp")(X), model(X))
    # pretrained=False fetches config.json only
    mmzoo.load("hf-hub:alice/mlp", pretrained=False)


def test_revision_pinning(fake_hub, tmp_path):
    v1, v2 = trained_tiny(seed=1), trained_tiny(seed=2)
    sha1 = publish(fake_hub, "alice/mlp", v1, tmp_path)
    fake_hub.add_tag("alice/mlp", "v1.0", sha1)
    sha2 = publish(fake_hub, "alice/mlp", v2, tmp_path)
    assert sha1 != sha2

    assert torch.equal(mmzoo.load("hf-hub:alice/mlp")(X), v2(X))
    assert torch.equal(mmzoo.load("hf-hub:alice/mlp@v1.0")(X), v1(X))
    assert torch.equal(mmzoo.load("hf-hub:alice/mlp", revision=sha1)(X), v1(X))
    assert torch.equal(mmzoo.load("alice/mlp", revision="v1.0")(X), v1(X))
    with pytest.raises(RepoNotFoundError, match="Revision 'v9' does not exist"):
        mmzoo.load("hf-hub:alice/mlp@v9")
    with pytest.raises(ValueError, match="use one"):
        mmzoo.load("hf-hub:alice/mlp@v1.0", revision="main")
    with pytest.raises(RepoNotFoundError, match="does not exist or is private"):
        mmzoo.load("hf-hub:alice/nothing")
    fake_hub.commit("alice/mlp", {}, deletions=["README.md"])  # the card is optional
    assert torch.equal(mmzoo.load("hf-hub:alice/mlp")(X), v2(X))
    fake_hub.commit("alice/mlp", {}, deletions=["model.safetensors"])
    with pytest.raises(RepoNotFoundError, match="has no model.safetensors"):
        mmzoo.load("hf-hub:alice/mlp")


def test_offline_serves_from_the_hf_cache(fake_hub, tmp_path, monkeypatch):
    v1, v2 = trained_tiny(seed=1), trained_tiny(seed=2)
    sha1 = publish(fake_hub, "alice/mlp", v1, tmp_path)
    fake_hub.add_tag("alice/mlp", "v1.0", sha1)
    publish(fake_hub, "alice/mlp", v2, tmp_path)
    mmzoo.load("hf-hub:alice/mlp")  # caches main (= v2) only
    fake_hub.close()
    go_offline(monkeypatch)

    assert torch.equal(mmzoo.load("hf-hub:alice/mlp")(X), v2(X))
    with pytest.raises(OfflineNotCachedError, match="HF_HUB_OFFLINE is set") as err:
        mmzoo.load("hf-hub:alice/mlp@v1.0")
    assert "alice/mlp" in str(err.value) and "v1.0" in str(err.value)
    with pytest.raises(OfflineNotCachedError):
        mmzoo.load("hf-hub:bob/never-downloaded")


def test_registry_tag_served_by_the_hub(fake_hub, tmp_path, monkeypatch):
    model = trained_tiny(seed=3)
    sha = publish(fake_hub, "zoo/mlp-demo", model, tmp_path)
    weights_sha = hashlib.sha256(fake_hub.tree("zoo/mlp-demo")["model.safetensors"]).hexdigest()
    register_tiny([Weights("demo", hub_repo="zoo/mlp-demo", revision=sha, sha256=weights_sha)])

    loaded = mmzoo.load(f"{TINY_ID}.demo")
    assert loaded.zoo_tag == "demo" and torch.equal(loaded(X), model(X))
    assert f"/zoo/mlp-demo/resolve/{sha}/config.json" in fake_hub.paths("HEAD")  # pinned by the record

    # The repo's file is replaced upstream: the recorded checksum refuses it.
    other = trained_tiny(seed=4)
    new_sha = publish(fake_hub, "zoo/mlp-demo", other, tmp_path)
    register_tiny([Weights("demo", hub_repo="zoo/mlp-demo", revision=new_sha, sha256=weights_sha)])
    with pytest.raises(ChecksumMismatchError) as err:
        mmzoo.load(f"{TINY_ID}.demo")
    assert err.value.expected == weights_sha and "models--zoo--mlp-demo" in err.value.path

    # A copy in the local hub wins and needs no request at all.
    register_tiny([Weights("demo", hub_repo="zoo/mlp-demo")])
    mmzoo.push(model, "zoo/mlp-demo")
    before = len(fake_hub.requests)
    assert torch.equal(mmzoo.load(f"{TINY_ID}.demo")(X), model(X))
    assert len(fake_hub.requests) == before


def test_private_repo_needs_the_token(fake_hub, tmp_path):
    fake_hub.create_repo("carol/secret", private=True)
    model = trained_tiny(seed=5)
    publish(fake_hub, "carol/secret", model, tmp_path)
    with pytest.raises(RepoNotFoundError, match="private.*token"):
        mmzoo.load("hf-hub:carol/secret")
    loaded = mmzoo.load("hf-hub:carol/secret", token=fake_hub.token)
    assert torch.equal(loaded(X), model(X))
    auth = [h.get("authorization") for m, p, h in fake_hub.requests if p.startswith("/carol/secret/resolve/")]
    assert f"Bearer {fake_hub.token}" in auth


def test_push_to_the_hub_and_load_back(fake_hub):
    model = trained_tiny(seed=6)
    ref = mmzoo.push(model, "dave/mlp", hub="hf", token=fake_hub.token, commit_message="first upload")
    sha = fake_hub.resolve("dave/mlp", "main")
    assert ref == f"hf-hub:dave/mlp@{sha}"
    tree = fake_hub.tree("dave/mlp")
    assert {"config.json", "model.safetensors", "README.md"} <= set(tree)
    assert json.loads(tree["config.json"])["model_id"] == TINY_ID
    assert fake_hub.repos["dave/mlp"]["commits"][sha]["message"] == "first upload"
    posts = fake_hub.paths("POST")
    assert posts[0] == "/api/repos/create" and "/api/models/dave/mlp/preupload/main" in posts
    assert posts[-1] == "/api/models/dave/mlp/commit/main"
    assert all(h.get("authorization") == f"Bearer {fake_hub.token}" for m, p, h in fake_hub.requests if m == "POST")
    assert torch.equal(mmzoo.load(ref)(X), model(X))

    # Pushing again reuses the repo (create_repo exist_ok) and adds a commit; a branch push leaves main alone.
    model2 = trained_tiny(seed=7)
    ref2 = mmzoo.push(model2, "dave/mlp", hub="hf", token=fake_hub.token)
    assert ref2 != ref and torch.equal(mmzoo.load("hf-hub:dave/mlp")(X), model2(X))
    model3 = trained_tiny(seed=8)
    ref3 = mmzoo.push(model3, "dave/mlp", hub="hf", token=fake_hub.token, revision="dev")
    assert torch.equal(mmzoo.load("hf-hub:dave/mlp@dev")(X), model3(X))
    assert torch.equal(mmzoo.load("hf-hub:dave/mlp")(X), model2(X))
    assert torch.equal(mmzoo.load(ref3)(X), model3(X))


def test_push_to_the_hub_refused_offline(fake_hub, monkeypatch):
    go_offline(monkeypatch)
    with pytest.raises(mmzoo.errors.MmzooError, match="HF_HUB_OFFLINE is set"):
        mmzoo.push(trained_tiny(), "dave/mlp", hub="hf")
    assert fake_hub.requests == []


def test_falls_back_to_the_original_checkpoint(fake_hub, tmp_path, monkeypatch, capsys):
    reference = trained_tiny(seed=9)
    write_authors_checkpoint(reference, tmp_path / "mlp.pth")
    fake_hub.files["authors/mlp.pth"] = (tmp_path / "mlp.pth").read_bytes()
    digest = sha256_file(tmp_path / "mlp.pth")
    url = f"{fake_hub.url}/files/authors/mlp.pth"
    converter = "hf_server:convert_authors_checkpoint"

    register_tiny([Weights("orig", hub_repo="zoo/not-published-yet", original_url=url, original_sha256="00" * 32, converter=converter)])
    with pytest.raises(ChecksumMismatchError):
        mmzoo.load(f"{TINY_ID}.orig")
    assert not any(hub.originals_dir().rglob("mlp.pth*"))  # the bad download is not kept

    register_tiny([Weights("orig", hub_repo="zoo/not-published-yet", original_url=url, original_sha256=digest, converter=converter)])
    loaded = mmzoo.load(f"{TINY_ID}.orig")
    assert torch.equal(loaded(X), reference(X)) and loaded.zoo_tag == "orig"
    assert "/zoo/not-published-yet/resolve/main/config.json" in fake_hub.paths("HEAD")  # the Hub was tried first
    assert "/files/authors/mlp.pth" in fake_hub.paths("GET")
    # the automatic path converts with a safe reader only (full unpickling needs `mmzoo convert`)
    assert "unpickling can execute arbitrary code" not in capsys.readouterr().err
    assert (hub.local_hub_dir() / "zoo" / "not-published-yet" / "model.safetensors").is_file()

    fake_hub.close()
    go_offline(monkeypatch)
    assert torch.equal(mmzoo.load(f"{TINY_ID}.orig")(X), reference(X))  # the converted copy is cached
