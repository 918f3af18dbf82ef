"""`mmzoo extract --dense` and `mmzoo extract --merge` through the CLI on a synthetic Kinetics
(real mp4 files, the official CSV) with a tiny random SlowFast: every row is the model's
``forward_features`` of one window of the model's clip, decoded here independently with PyAV;
the ``times`` of each row are its window's; a video shorter than one window is skipped and listed
(``mmzoo predict --input`` refuses it); two shards merged equal a one-process run, and shards that
disagree, overlap or did not finish are refused naming the file."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import av
import h5py
import numpy as np
import pytest
import torch

import mmzoo
from mmzoo.cli import main
from mmzoo.extract import read_features

_MODEL = dict(depth=14, width=8, slow_frames=2, alpha=4, crop_size=32, num_classes=3)
# 8 frames 2 apart: one window spans 16 frames; the videos are 32 x 40, so the test scale 32 only crops
_DATA = dict(version="any", num_frames=8, alpha=4, crop_size=32, train_scale=[32, 40], test_scale=32,
             test_crop_size=32, num_clips=3, num_crops=1, num_workers=0)
SPAN = 16


def _flags(prefix: str, args: dict) -> list[str]:
    return [x for k, v in args.items() for x in (f"--{prefix}.{k}", json.dumps(v) if isinstance(v, list) else str(v))]


@pytest.fixture(scope="module")
def kinetics(tmp_path_factory):
    from mmzoo.data.media import write_mp4
    from mmzoo.data.synthetic import write_kinetics

    root = tmp_path_factory.mktemp("kinetics")
    write_kinetics(root, per_class={"train": 1, "val": 1}, num_frames=40, size=(32, 40))
    videos = sorted((root / "val").rglob("*.mp4"))
    rng = np.random.default_rng(0)  # textured frames: a wrong frame or crop changes the features
    write_mp4(videos[0], rng.integers(0, 256, (40, 32, 40, 3), dtype=np.uint8), 30.0)
    write_mp4(videos[1], rng.integers(0, 256, (12, 32, 40, 3), dtype=np.uint8), 30.0)  # shorter than a window
    return root, [str(v) for v in videos]


def _extract(root, out, *extra):
    return Path(main(["extract", "--model", "slowfast-r50-4x16", "--data", "kinetics", "--data.root", str(root),
                      "--output", str(out), "--split", "test", "--pretrained", "false", "--no_progress", "--dense",
                      *_flags("model", _MODEL), *_flags("data", _DATA), *extra]))


def _pyav_frames(path: str) -> np.ndarray:
    with av.open(path) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def _expected_rows(path: str, starts: list[int]) -> torch.Tensor:
    """forward_features of each window decoded here: frames s, s + 2, ..., centre 32 x 32 crop,
    (x / 255 - mean) / std, slow pathway = fast frames at linspace(0, 7, 2)."""
    from mmzoo.registry import get_spec

    torch.manual_seed(0)
    model = mmzoo.create("slowfast-r50-4x16", **_MODEL).eval()
    inp = get_spec("slowfast-r50-4x16").input
    frames = _pyav_frames(path)
    mean, std = torch.tensor(inp.mean).view(3, 1, 1, 1), torch.tensor(inp.std).view(3, 1, 1, 1)
    rows = []
    for s in starts:
        clip = torch.from_numpy(frames[s:s + SPAN:2, :, 4:36]).permute(3, 0, 1, 2).float()  # 40 wide: x0 = 4
        fast = (clip / 255 - mean) / std
        slow = fast[:, torch.linspace(0, 7, 2).long()]
        with torch.no_grad():
            rows.append(model.forward_features(video=[slow[None], fast[None]])["pooled"])
    return torch.cat(rows)


@pytest.fixture(scope="module")
def one_process(kinetics, tmp_path_factory):
    root, videos = kinetics
    out = tmp_path_factory.mktemp("dense")
    return _extract(root, out), out


def test_dense_rows_are_the_windows_features_with_their_times(kinetics, one_process):
    _, videos = kinetics
    manifest_path, out = one_process
    manifest = json.loads(manifest_path.read_text())
    feats = read_features(out / "features.h5")
    assert sorted(feats) == sorted(v for v in videos if v != videos[1])  # all but the short video
    assert feats[videos[2]].shape == (2, feats[videos[0]].shape[1])  # consecutive windows 0-16, 16-32 of 40
    assert torch.allclose(torch.from_numpy(feats[videos[0]]), _expected_rows(videos[0], [0, 16]), atol=1e-5)
    with h5py.File(out / "features.h5", "r") as f:
        assert sorted(f["times"]) == sorted(f["features"])
        for k in f["times"]:
            assert f["times"][k].attrs["video"] == f["features"][k].attrs["video"] and f["times"][k].attrs["fps"] == 30
            assert np.allclose(f["times"][k][()], [[0, 16 / 30], [16 / 30, 32 / 30]])
    # the 12-frame video: skipped and listed, with predict's reason
    assert [s["video"] for s in manifest["skipped"]] == [videos[1]]
    assert "12 frames; one window needs 16 (8 frames at stride 2)" in manifest["skipped"][0]["reason"]
    w = manifest["window"]
    assert (w["mode"], w["frames_per_window"], w["frame_stride"], w["window_frames"], w["step_frames"]) == (
        "dense", 8, 2, 16, None)


def test_dense_stride_frames_and_seconds(kinetics, tmp_path):
    root, videos = kinetics
    _extract(root, tmp_path / "f", "--stride_frames", "8")
    feats = read_features(tmp_path / "f" / "features.h5")[videos[0]]
    assert torch.allclose(torch.from_numpy(feats), _expected_rows(videos[0], [0, 8, 16, 24]), atol=1e-5)
    _extract(root, tmp_path / "s", "--stride_sec", "0.3", "--batch_size", "2")  # 9 frames at 30 fps
    with h5py.File(tmp_path / "s" / "features.h5", "r") as f:
        name = next(k for k in f["times"] if f["times"][k].attrs["video"] == videos[0])
        times, rows = f["times"][name][()], f["features"][name][()]
    assert np.allclose(times[:, 0], [0, 9 / 30, 18 / 30]) and np.allclose(times[:, 1] - times[:, 0], 16 / 30)
    assert torch.allclose(torch.from_numpy(rows), _expected_rows(videos[0], [0, 9, 18]), atol=1e-5)


def test_window_step_needs_dense_and_one_step(kinetics, tmp_path):
    root, _ = kinetics
    base = ["extract", "--model", "slowfast-r50-4x16", "--data", "kinetics", "--data.root", str(root), "--output",
            str(tmp_path), "--pretrained", "false"]
    with pytest.raises(ValueError, match="add --dense"):
        main(base + ["--stride_frames", "4", *_flags("data", _DATA), *_flags("model", _MODEL)])
    with pytest.raises(SystemExit):
        main(base + ["--dense", "--stride_frames", "4", "--stride_sec", "1"])


def test_resuming_with_other_window_is_refused(kinetics, one_process, tmp_path):
    root, _ = kinetics
    _, out = one_process
    shutil.copytree(out, tmp_path / "o")
    with pytest.raises(ValueError, match=r"manifest.json: written with another window"):
        _extract(root, tmp_path / "o", "--stride_frames", "8")


@pytest.fixture(scope="module")
def two_shards(kinetics, tmp_path_factory):
    root, _ = kinetics
    out = tmp_path_factory.mktemp("shards")
    for r in (0, 1):
        _extract(root, out, "--shard", str(r), "--num_shards", "2")
    return out


def test_merged_shards_equal_one_process(one_process, two_shards, tmp_path):
    manifest_path, out = one_process
    merged = Path(main(["extract", "--merge", str(two_shards), "--output", str(tmp_path / "m")]))
    one, two = json.loads(manifest_path.read_text()), json.loads(merged.read_text())
    assert two.pop("merged_from") == ["manifest.rank0.json", "manifest.rank1.json"]
    assert two == one  # written, skipped (from the other shard), window, shape, shard [0, 1]
    with h5py.File(out / "features.h5", "r") as a, h5py.File(tmp_path / "m" / "features.h5", "r") as b:
        for group in ("features", "times"):
            assert sorted(a[group]) == sorted(b[group])
            for k in a[group]:
                assert np.array_equal(a[group][k][()], b[group][k][()])
                assert dict(a[group][k].attrs) == dict(b[group][k].attrs)
    with pytest.raises(FileExistsError, match="features.h5 already exists"):
        main(["extract", "--merge", str(two_shards), "--output", str(tmp_path / "m")])


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_merge_refuses_disagreeing_overlapping_or_unfinished_shards(two_shards, tmp_path):
    from mmzoo.extract_merge import merge_shards

    bad = _copy(two_shards, tmp_path / "pool")  # a shard extracted with another pooling
    m = json.loads((bad / "manifest.rank1.json").read_text())
    (bad / "manifest.rank1.json").write_text(json.dumps({**m, "pooling": "max"}))
    with pytest.raises(ValueError, match=r"manifest.rank1.json: pooling 'max' differs from manifest.rank0.json's"):
        merge_shards(bad)
    bad = _copy(two_shards, tmp_path / "sha")
    (bad / "manifest.rank1.json").write_text(json.dumps({**m, "weights": {"source": "x", "sha256": "ab"}}))
    with pytest.raises(ValueError, match=r"manifest.rank1.json: weights"):
        merge_shards(bad)

    bad = _copy(two_shards, tmp_path / "dup")  # shard 0's video also in shard 1
    with h5py.File(bad / "features.rank0.h5", "r") as a, h5py.File(bad / "features.rank1.h5", "a") as b:
        name = sorted(a["features"])[0]
        a.copy(a["features"][name], b.require_group("features"), name=name)
        video = a["features"][name].attrs["video"]
    m1 = json.loads((bad / "manifest.rank1.json").read_text())
    (bad / "manifest.rank1.json").write_text(json.dumps({**m1, "written": m1["written"] + [video]}))
    with pytest.raises(ValueError, match=r"features.rank1.h5: video .* is also in .*features.rank0.h5"):
        merge_shards(bad)

    bad = _copy(two_shards, tmp_path / "unfinished")  # rank 0's manifest lists what its file lacks
    with h5py.File(bad / "features.rank0.h5", "a") as f:
        del f["features"][next(iter(f["features"]))]
    with pytest.raises(ValueError, match=r"features.rank0.h5: holds 1 videos, manifest.rank0.json lists 2 "
                                         r"\(first difference"):
        merge_shards(bad)

    bad = _copy(two_shards, tmp_path / "missing")
    (bad / "manifest.rank1.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"manifest.rank1.json missing \(1 of 2 shards\)"):
        merge_shards(bad)
