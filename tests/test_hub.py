"""The local hub, repo folders, conversion and every loading error, offline (see conftest)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import safetensors.torch
import torch
from hf_server import (
    TINY_ID,
    register_tiny,
    trained_tiny,
    unregister,
    write_authors_checkpoint,
)

import mmzoo
from mmzoo import hub
from mmzoo.cards import split_front_matter, validate_card
from mmzoo.convert import convert, sha256_file
from mmzoo.errors import (
    ChecksumMismatchError,
    CorruptWeightsError,
    IncompatibleConfigError,
    MissingKeysError,
    NoPublishedWeightsError,
    OfflineNotCachedError,
    UnknownModelError,
)
from mmzoo.registry import Weights

X = torch.randn(5, 6, generator=torch.Generator().manual_seed(1))


@pytest.fixture
def tiny():
    register_tiny([
        Weights("demo", hub_repo="zootest/mlp-demo", dataset="synthetic-blobs", metrics={"top1": 91.5}),
        Weights("raw", notes="not trained yet"),
        Weights("orig", original_url="https://example.invalid/mlp.pth", converter="hf_server:convert_authors_checkpoint"),
    ])
    register_tiny([], model_id="zootest-bare")
    yield
    unregister(TINY_ID, "zootest-bare")


def reregister(**changes):
    """Re-register the tiny id with the 'demo' record changed (e.g. a sha256)."""
    register_tiny([Weights("demo", hub_repo="zootest/mlp-demo", **changes), Weights("raw")])


def test_push_load_round_trip_through_local_hub(tiny):
    model = trained_tiny(hidden=5)
    path = Path(mmzoo.push(model, "me/mlp"))
    assert path == hub.local_hub_dir() / "me" / "mlp"
    assert sorted(p.name for p in path.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((path / "config.json").read_text())
    assert config["format_version"] == 1 and config["model_id"] == TINY_ID
    assert config["mmzoo_version"] == mmzoo.__version__
    assert config["kwargs"] == {"in_dim": 6, "hidden": 5, "num_classes": 3, "act": "relu", "tied_head": False}
    assert config["input"] == {"shapes": {"x": "B,in_dim"}}  # the typed InputConfig replaced the free-form "data" dict

    for source in ("me/mlp", str(path), path):
        loaded = mmzoo.load(source)
        assert not loaded.training and loaded.zoo_id == TINY_ID
        assert torch.equal(loaded(X), model(X))
        assert torch.equal(loaded.norm.running_var, model.norm.running_var)
    assert hub.pull("me/mlp") == path


def test_config_alone_rebuilds_and_overrides_win(tiny):
    model = trained_tiny(hidden=5, act="gelu")
    folder = hub.save_pretrained(model, Path(mmzoo.push(model, "me/mlp")))
    arch = mmzoo.load(folder, pretrained=False)
    assert arch.fc1.out_features == 5 and isinstance(arch.act, torch.nn.GELU)
    assert not torch.equal(arch.fc1.weight, model.fc1.weight)  # no weights read
    assert mmzoo.load(folder, pretrained=False, num_classes=7)(X).shape == (5, 7)
    with pytest.raises(MissingKeysError) as err:
        mmzoo.load(folder, num_classes=7)
    assert "fc2.weight (file (3, 5) vs model (7, 5))" in str(err.value)


def test_tied_and_non_contiguous_tensors_survive(tiny):
    model = trained_tiny(tied_head=True)
    assert not model.mix.is_contiguous()
    folder = Path(mmzoo.push(model, "zootest/mlp-demo"))
    with safetensors.safe_open(folder / "model.safetensors", "pt") as f:
        names, meta = set(f.keys()), f.metadata()
    assert len({"fc2.weight", "aux.weight"} & names) == 1  # the shared tensor is stored once
    assert json.loads(meta["mmzoo.aliases"]) == {"fc2.bias": "aux.bias", "fc2.weight": "aux.weight"}
    loaded = mmzoo.load("zootest/mlp-demo")
    assert loaded.aux.weight.data_ptr() == loaded.fc2.weight.data_ptr()
    assert torch.equal(loaded(X), model(X)) and torch.equal(loaded.mix, model.mix)
    # The state dict for models built elsewhere (the CLI) has every name: torch's strict load works.
    fresh = mmzoo.create(TINY_ID, tied_head=True)
    fresh.load_state_dict(hub.load_pretrained_state(TINY_ID, "demo"), strict=True)
    assert torch.equal(fresh.eval()(X), model(X))
    # A file deduplicated by another writer (no alias metadata) still loads: tied names count once.
    safetensors.torch.save_model(model, str(folder / "model.safetensors"))
    assert torch.equal(mmzoo.load(folder)(X), model(X))


def test_interrupted_push_keeps_previous_version(tiny, monkeypatch):
    v1 = trained_tiny(seed=1)
    folder = Path(mmzoo.push(v1, "me/mlp"))
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    real_save_file = safetensors.torch.save_file

    def dies_midway(tensors, filename, metadata=None):
        real_save_file(tensors, filename, metadata)
        with open(filename, "r+b") as f:  # half of the file is on disk when the "crash" happens
            f.truncate(Path(filename).stat().st_size // 2)
        raise OSError("No space left on device")

    with monkeypatch.context() as patch, pytest.raises(OSError, match="No space left"):
        patch.setattr(safetensors.torch, "save_file", dies_midway)
        mmzoo.push(trained_tiny(seed=2), "me/mlp")

    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert sorted(p.name for p in folder.parent.iterdir()) == ["mlp"]  # no staging folder left
    assert torch.equal(mmzoo.load("me/mlp")(X), v1(X))

    # A process killed between the two renames of a push leaves only the backup: it is restored.
    folder.rename(folder.parent / ".mlp.previous")
    assert torch.equal(mmzoo.load("me/mlp")(X), v1(X))
    v3 = trained_tiny(seed=3)
    mmzoo.push(v3, "me/mlp")
    assert torch.equal(mmzoo.load("me/mlp")(X), v3(X))
    assert sorted(p.name for p in folder.parent.iterdir()) == ["mlp"]


def test_generated_and_explicit_cards(tiny, tmp_path):
    model = trained_tiny()
    model.zoo_tag = "demo"
    folder = hub.save_pretrained(model, tmp_path / "repo")
    text = (folder / "README.md").read_text()
    assert validate_card(text) == []
    meta, body = split_front_matter(text)
    assert meta["library_name"] == "mmzoo" and meta["datasets"] == ["synthetic-blobs"]
    assert meta["model-index"][0]["results"][0]["metrics"] == [{"type": "top1", "value": 91.5}]
    assert json.loads((folder / "config.json").read_text())["dataset"] == "synthetic-blobs"
    custom = "---\nlicense: mit\nlibrary_name: mmzoo\n---\n# mine\n"
    path = Path(mmzoo.push(model, "me/carded", card=custom))
    assert (path / "README.md").read_text() == custom
    # An exported folder pushed again keeps its card.
    assert (Path(mmzoo.push(path, "me/copy")) / "README.md").read_text() == custom


def test_unknown_id_and_tag(tiny):
    with pytest.raises(UnknownModelError, match="Did you mean: zootest-mlp"):
        mmzoo.load("zootest-mpl")
    with pytest.raises(UnknownModelError, match="Known tags: demo, raw, orig"):
        mmzoo.load("zootest-mlp.nope")
    with pytest.raises(UnknownModelError):
        mmzoo.load("zootest-mlp.nope", pretrained=False)


def test_tag_without_weights(tiny):
    with pytest.raises(NoPublishedWeightsError) as err:
        mmzoo.load("zootest-mlp.raw")
    msg = str(err.value)
    assert "zootest-mlp.demo" in msg and "zootest-mlp.orig" in msg and "zootest-mlp.raw" not in msg.split("Tags with")[1]
    assert "pretrained=False" in msg and "not trained yet" in msg
    with pytest.raises(NoPublishedWeightsError, match="has no pretrained tags"):
        mmzoo.load("zootest-bare")
    assert mmzoo.load("zootest-mlp.raw", pretrained=False).fc1.out_features == 8


def test_offline_and_not_cached(tiny):
    with pytest.raises(OfflineNotCachedError, match="HF_HUB_OFFLINE is set") as err:
        mmzoo.load("zootest-mlp.demo")
    assert "zootest/mlp-demo" in str(err.value)
    with pytest.raises(OfflineNotCachedError, match="not in the local hub either"):
        mmzoo.load("nobody/nothing")
    with pytest.raises(OfflineNotCachedError):
        hub.pull("hf-hub:nobody/nothing@v2")
    with pytest.raises(OfflineNotCachedError, match="original checkpoint"):
        hub.download_original("https://example.invalid/mlp.pth")


def test_local_hub_copy_of_registry_tag_and_checksums(tiny):
    model = trained_tiny()
    folder = Path(mmzoo.push(model, "zootest/mlp-demo"))
    loaded = mmzoo.load("zootest-mlp.demo")  # offline: the local hub copy is used
    assert loaded.zoo_tag == "demo" and torch.equal(loaded(X), model(X))
    assert mmzoo.load("zootest-mlp")(X).equal(model(X))  # the default tag is the first one

    digest = sha256_file(folder / "model.safetensors")
    reregister(sha256=digest)
    assert torch.equal(mmzoo.load("zootest-mlp.demo")(X), model(X))
    assert hub.pull("zootest-mlp.demo") == folder

    reregister(sha256="ab" * 32)
    with pytest.raises(ChecksumMismatchError) as err:
        mmzoo.load("zootest-mlp.demo")
    assert err.value.expected == "ab" * 32 and err.value.actual == digest
    assert str(folder / "model.safetensors") in str(err.value) and "NOT loaded" in str(err.value)
    with pytest.raises(ChecksumMismatchError):
        hub.pull("zootest-mlp.demo")


def test_corrupt_and_truncated_safetensors(tiny):
    folder = Path(mmzoo.push(trained_tiny(), "me/mlp"))
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptWeightsError, match="truncated") as err:
        mmzoo.load("me/mlp")
    assert str(weights) in str(err.value)
    torch.save(trained_tiny().state_dict(), weights)  # a pickle where safetensors belongs
    with pytest.raises(CorruptWeightsError, match="not a readable safetensors file"):
        mmzoo.load(folder)
    weights.unlink()
    with pytest.raises(CorruptWeightsError, match="missing"):
        mmzoo.load(folder)


def test_state_dict_mismatch_lists_keys(tiny):
    folder = Path(mmzoo.push(trained_tiny(), "me/mlp"))
    tensors = safetensors.torch.load_file(folder / "model.safetensors")
    tensors.pop("fc1.bias")
    tensors["extra.weight"] = torch.zeros(2)
    safetensors.torch.save_file(tensors, folder / "model.safetensors")
    with pytest.raises(MissingKeysError) as err:
        mmzoo.load(folder)
    assert err.value.missing == ["fc1.bias"] and err.value.unexpected == ["extra.weight"]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"model_id": "zootest-mpl"}, "names model id 'zootest-mpl'.*Did you mean: zootest-mlp"),
        ({"format_version": 2}, "format_version 2.*upgrade"),
        ({"mmzoo_version": "99.0.0"}, "newer major version"),
        ({"kwargs": {"in_dim": 6, "no_such_arg": 1}}, "cannot be built"),
    ],
)
def test_incompatible_config(tiny, change, message):
    folder = Path(mmzoo.push(trained_tiny(), "me/mlp"))
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(IncompatibleConfigError, match=message):
        mmzoo.load(folder)


def test_folder_errors(tmp_path):
    with pytest.raises(IncompatibleConfigError, match="has no config.json"):
        mmzoo.load(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(IncompatibleConfigError, match="not valid JSON"):
        mmzoo.load(tmp_path)
    with pytest.raises(Exception, match="No folder"):
        mmzoo.load("./definitely-not-here")
    with pytest.raises(ValueError, match="not a repo id"):
        mmzoo.push(torch.nn.Linear(1, 1), "../escape")


def test_convert_original_checkpoint(tiny, tmp_path, capsys):
    reference = trained_tiny(seed=7)
    original = tmp_path / "mlp_authors.pth"
    write_authors_checkpoint(reference, original)

    out = convert("zootest-mlp.orig", original, output_dir=tmp_path / "out")
    # this converter reads with torch's weights_only loader: no full unpickling, no trust notice
    assert "unpickling can execute arbitrary code" not in capsys.readouterr().err
    assert out == tmp_path / "out" and (out / "model.safetensors").is_file()
    assert torch.equal(mmzoo.load(out)(X), reference(X))
    # the local hub now holds the converted tag, so load needs no network and no pickle
    assert (hub.local_hub_dir() / "mmzoo-converted" / "zootest-mlp.orig" / "config.json").is_file()
    loaded = mmzoo.load("zootest-mlp.orig")
    assert loaded.zoo_tag == "orig" and torch.equal(loaded(X), reference(X))
    assert json.loads((out / "config.json").read_text())["tag"] == "orig"

    register_tiny([Weights("orig", original_url="u", original_sha256="00" * 32, converter="hf_server:convert_authors_checkpoint")])
    with pytest.raises(ChecksumMismatchError, match="expected the original file"):
        convert("zootest-mlp.orig", original, push_to_local_hub=False, output_dir=tmp_path / "o2")
    register_tiny([Weights("orig", original_url="u", sha256="11" * 32, converter="hf_server:convert_authors_checkpoint")])
    with pytest.raises(ChecksumMismatchError, match="converted weights differ"):
        convert("zootest-mlp.orig", original, output_dir=tmp_path / "o3")
    assert not (tmp_path / "o3").exists()
    register_tiny([Weights("orig", original_url="u", converter="hf_server:convert_wrong_keys")])
    with pytest.raises(MissingKeysError, match="encoder.weight"):
        convert("zootest-mlp.orig", original, push_to_local_hub=False, output_dir=tmp_path / "o4")
    with pytest.raises(NoPublishedWeightsError, match="no converter"):
        convert("zootest-bare", original)


def test_push_from_lightning_checkpoint(tiny, tmp_path):
    import pytorch_lightning as pl

    torch.manual_seed(0)
    model = mmzoo.create(TINY_ID, hidden=4)
    samples = [{"x": torch.randn(6), "label": torch.tensor(i % 3)} for i in range(16)]
    batches = torch.utils.data.DataLoader(samples, batch_size=8)
    trainer = pl.Trainer(
        max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, accelerator="cpu", default_root_dir=tmp_path,
    )
    trainer.fit(model, train_dataloaders=batches)
    ckpt = tmp_path / "last.ckpt"
    trainer.save_checkpoint(ckpt)
    model.eval()

    # ZooModule.on_save_checkpoint records the id: the checkpoint needs no hint.
    raw = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert raw["mmzoo"]["model_id"] == TINY_ID
    assert torch.equal(hub.model_from_checkpoint(ckpt)(X), model(X))
    # Without that entry (e.g. a checkpoint of another tool), two ids share TinyMLP and the
    # checkpoint alone cannot say which one it is.
    untagged = tmp_path / "untagged.ckpt"
    torch.save({k: v for k, v in raw.items() if k != "mmzoo"}, untagged)
    with pytest.raises(IncompatibleConfigError, match="matching ids: zootest-bare, zootest-mlp"):
        mmzoo.push(str(untagged), "me/from-ckpt")
    ckpt = untagged
    folder = Path(mmzoo.push(str(ckpt), "me/from-ckpt", model_id=TINY_ID))
    loaded = mmzoo.load(folder)
    assert loaded.hparams.hidden == 4 and torch.equal(loaded(X), model(X))
    assert json.loads((folder / "config.json").read_text())["model_id"] == TINY_ID
    unregister("zootest-bare")  # now the hyper-parameters and shapes identify the id
    assert torch.equal(hub.model_from_checkpoint(ckpt)(X), model(X))
    with pytest.raises(UnknownModelError):
        hub.model_from_checkpoint(ckpt, model_id="zootest-nope")


def test_real_zoo_model_round_trip_with_its_card():
    """A registered family model (the thesis's best AVE model) through push/load, with its real card."""
    from mmzoo.cards import card_path
    from mmzoo.registry import all_specs

    model_id = "cmcoatt-avsdn"
    assert model_id in all_specs()
    torch.manual_seed(0)
    model = mmzoo.create(model_id, visual_dim=64, region_dim=32, hidden_dim=16).eval()
    path = Path(mmzoo.push(model, "me/avsdn-small"))
    card = card_path(model_id)
    if card.is_file():
        assert (path / "README.md").read_text() == card.read_text()
    loaded = mmzoo.load("me/avsdn-small")
    assert type(loaded) is type(model) and loaded.init_kwargs() == model.init_kwargs()
    example = model.example_input(2)
    with torch.no_grad():
        a, b = model.run_forward(example), loaded.run_forward(example)
    flat_a = a if isinstance(a, torch.Tensor) else torch.cat([t.flatten() for t in torch.utils._pytree.tree_leaves(a)])
    flat_b = b if isinstance(b, torch.Tensor) else torch.cat([t.flatten() for t in torch.utils._pytree.tree_leaves(b)])
    assert torch.equal(flat_a, flat_b)


def test_local_hub_modes_follow_the_umask(tiny):
    """The staging folder is a temporary one (0700) and writers may use temporary files (0600):
    a published repo must still be readable by the group and others as the umask allows."""
    import os
    import stat
    import tempfile

    from mmzoo.hub.sources import install_local

    def write(folder: Path) -> None:
        (folder / "sub").mkdir()
        fd, tmp = tempfile.mkstemp(dir=folder)  # 0600, as a temporary-file writer leaves it
        os.close(fd)
        os.replace(tmp, folder / "config.json")
        fd, tmp = tempfile.mkstemp(dir=folder / "sub")
        os.close(fd)
        os.replace(tmp, folder / "sub" / "weights.bin")

    old = os.umask(0o022)
    try:
        dest = install_local(write, "me/modes")
        pushed = Path(mmzoo.push(trained_tiny(hidden=5), "me/mlp-modes"))
    finally:
        os.umask(old)

    def mode(p: Path) -> int:
        return stat.S_IMODE(p.stat().st_mode)

    for root in (dest, pushed):
        assert mode(root) == 0o755, root
        for p in root.rglob("*"):
            assert mode(p) == (0o755 if p.is_dir() else 0o644), p
    assert mode(dest / "sub" / "weights.bin") == 0o644
