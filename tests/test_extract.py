"""`mmzoo extract` (mmzoo.extract) through the CLI on a synthetic Kinetics (real mp4 files, the
official CSV): the HDF5 sequences equal the model's own features of each view, the manifest
records model, weights sha256, protocol and skipped videos, an interrupted run resumes without
recomputing what was written, and a corrupt video is listed, not replaced."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import h5py
import pytest
import torch

import mmzoo
from mmzoo.cli import main
from mmzoo.extract import pool_feature, read_features

_MODEL = dict(depth=14, width=8, slow_frames=2, alpha=4, crop_size=32, num_classes=3)
_DATA = dict(version="any", num_frames=8, alpha=4, crop_size=32, train_scale=[32, 40], test_scale=32,
             test_crop_size=32, num_clips=3, num_crops=1, num_workers=0)


def _flags(prefix: str, args: dict) -> list[str]:
    return [x for k, v in args.items() for x in (f"--{prefix}.{k}", json.dumps(v) if isinstance(v, list) else str(v))]


@pytest.fixture(scope="module")
def kinetics(tmp_path_factory):
    from mmzoo.data.synthetic import write_kinetics

    root = tmp_path_factory.mktemp("kinetics")
    info = write_kinetics(root, per_class={"train": 1, "val": 2}, num_frames=8, corrupt=[("val", 1)])
    return root, info


def test_pool_feature_hand_computed():
    x = torch.arange(12.0).view(1, 2, 3, 2)  # B, C, T, F
    assert torch.equal(pool_feature(x, "mean"), torch.tensor([[2.5, 8.5]]))
    assert torch.equal(pool_feature(x, "max"), torch.tensor([[5.0, 11.0]]))
    assert pool_feature(x, "none") is x
    v = torch.ones(2, 4)
    assert pool_feature(v, "mean") is v
    with pytest.raises(ValueError, match="pooling"):
        pool_feature(x, "median")


def _extract(root, out, *extra):
    return main(["extract", "--model", "slowfast-r50-4x16", "--data", "kinetics", "--data.root", str(root),
                 "--output", str(out), "--split", "test", "--pretrained", "false", "--no_progress",
                 *_flags("model", _MODEL), *_flags("data", _DATA), *extra])


def test_extract_writes_each_views_features_and_a_manifest(kinetics, tmp_path):
    root, _ = kinetics
    manifest_path = _extract(root, tmp_path / "out")
    manifest = json.loads(Path(manifest_path).read_text())
    feats = read_features(tmp_path / "out" / "features.h5")
    # 6 test (= val) videos, one corrupt: 5 written, 1 skipped with its reason
    assert manifest["videos"] == 5 and len(feats) == 5
    assert len(manifest["skipped"]) == 1 and manifest["skipped"][0]["video"] not in feats
    assert manifest["skipped"][0]["reason"]
    assert manifest["model"] == "slowfast-r50-4x16" and manifest["layer"] == "pooled"
    assert manifest["input_protocol"]["num_clips"] == 3 and manifest["input_protocol"]["num_frames"] == 8
    assert manifest["weights"]["sha256"] is None and manifest["mmzoo_version"] == mmzoo.__version__

    # the same model and the DataModule's own views, computed here
    from mmzoo.data.kinetics import KineticsDataModule

    torch.manual_seed(0)
    model = mmzoo.create("slowfast-r50-4x16", **_MODEL).eval()
    ds = KineticsDataModule(root=str(root), **_DATA).dataset("test")  # the val videos, 3 clips each
    key = sorted(feats)[0]
    r = [str(rec.source) for rec in ds.records].index(key)
    with torch.no_grad():
        rows = [model.features(video=[p[None] for p in ds[r * 3 + k]["video"]]) for k in range(3)]
    expected = torch.cat(rows).numpy()
    assert feats[key].shape == (3, model.head.fc.in_features)  # T = num_clips views x the pooled width
    assert torch.allclose(torch.from_numpy(feats[key]), torch.from_numpy(expected), atol=1e-5)


def test_extract_resumes_without_recomputing(kinetics, tmp_path):
    root, _ = kinetics
    out = tmp_path / "out"
    _extract(root, out)
    with h5py.File(out / "features.h5", "a") as f:
        names = sorted(f["features"])
        f["features"][names[0]].attrs["kept"] = 1  # a marker a rewrite would lose
        gone = f["features"][names[1]].attrs["video"]
        del f["features"][names[1]]  # as if the run had stopped before this video
    before = read_features(out / "features.h5")
    _extract(root, out)
    after = read_features(out / "features.h5")
    assert set(after) == set(before) | {gone}
    with h5py.File(out / "features.h5", "r") as f:
        assert f["features"][names[0]].attrs["kept"] == 1
    assert json.loads((out / "manifest.json").read_text())["videos"] == 5


def test_extract_records_the_weights_sha256_and_shards(kinetics, tmp_path):
    root, _ = kinetics
    torch.manual_seed(0)
    model = mmzoo.create("slowfast-r50-4x16", **_MODEL)
    folder = Path(mmzoo.push(model, "someone/tiny-slowfast"))
    sha = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    outs = []
    for shard in (0, 1):
        path = main(["extract", "--model", "someone/tiny-slowfast", "--data", "kinetics", "--data.root", str(root),
                     "--output", str(tmp_path / "out"), "--split", "test", "--no_progress", "--shard", str(shard),
                     "--num_shards", "2", *_flags("data", _DATA)])
        outs.append(json.loads(Path(path).read_text()))
    assert all(m["weights"]["sha256"] == sha for m in outs)
    assert not set(outs[0]["written"]) & set(outs[1]["written"])
    assert len(outs[0]["written"]) + len(outs[1]["written"]) == 5
    assert (tmp_path / "out" / "features.rank1.h5").is_file()


def test_unknown_layer_names_the_available_ones(kinetics, tmp_path):
    root, _ = kinetics
    with pytest.raises(ValueError, match=r"--layer 'res9'.*\['fast', 'pooled', 'slow'\]"):
        _extract(root, tmp_path / "out", "--layer", "res9")


# --------------------------------------------------------------------------- extract -> train
def test_round_trip_extracted_expert_trains_t2vlad(tmp_path):
    """MSR-VTT's raw mp4s -> `mmzoo extract` (a non-local I3D, 1024-d pooled res5, as S3D's
    expert) -> the expert pickle the MSR-VTT DataModule reads -> one `mmzoo fit` step of T2VLAD
    on that expert alone; the DataModule's s3d tokens are exactly the extracted rows."""
    import pickle

    from mmzoo.data.msrvtt import MSRVTTDataModule
    from mmzoo.data.synthetic import write_msrvtt
    from mmzoo.extract import to_expert_pickle

    root = tmp_path / "msrvtt"
    write_msrvtt(root, num_videos=8, captions_per_video=2, num_mp4=8)
    nl = dict(depth=14, width=32, frames=8, crop_size=32, nonlocal_placement="custom",
              nonlocal_positions=[[], [0], [0], []])
    main(["extract", "--model", "nl-i3d-r50", "--data", "video-folder", "--data.root", str(root / "videos" / "all"),
          "--output", str(tmp_path / "ext"), "--pretrained", "false", "--no_progress", "--data.frames", "8",
          "--data.short_side", "40", "--data.crop_size", "32", "--data.num_workers", "0", *_flags("model", nl)])
    expert = root / "structured-symlinks" / "mmt_feats" / "features.s3d.pkl"
    to_expert_pickle(tmp_path / "ext" / "features.h5", expert)
    with open(expert, "rb") as f:
        written = pickle.load(f)
    assert sorted(written) == sorted(f"video{i}" for i in range(8))
    assert all(v.shape == (1, 1024) for v in written.values())

    dm = MSRVTTDataModule(root=str(root), experts=["s3d"], num_workers=0)
    item = dm.dataset("train")[0]
    vid = item["video_id"]
    assert torch.allclose(item["experts"]["s3d"][0], torch.from_numpy(written[vid][0]))
    assert float(item["experts"]["s3d"][1:].abs().sum()) == 0.0  # zero padding after the one token

    bert = json.dumps(dict(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=64, max_position_embeddings=64))
    run = tmp_path / "run"
    main(["fit", "--model", "t2vlad", "--data", "msrvtt", "--data.root", str(root), "--data.experts", "[s3d]",
          "--model.experts", "[s3d]", "--model.expert_dims", "[1024]", "--model.expert_max_tokens", "[30]",
          "--model.text_encoder_config", bert, "--model.text_encoder_init", "random", "--model.embed_dim", "16",
          "--model.transformer_ffn_dim", "16", "--model.num_clusters", "3", "--model.text_max_tokens", "8",
          "--data.batch_size", "2", "--data.num_workers", "0", "--trainer.accelerator", "cpu", "--trainer.max_steps",
          "1", "--trainer.limit_val_batches", "1", "--trainer.num_sanity_val_steps", "0", "--trainer.logger", "false",
          "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(run), "--seed_everything", "0"])
    ckpt = torch.load(sorted(run.rglob("last.ckpt"))[-1], map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 1
    assert ckpt["hyper_parameters"]["experts"] == ["s3d"]
