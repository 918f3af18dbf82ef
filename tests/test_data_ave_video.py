"""AVE video mode: real mp4 decoding, per-segment ResNet/VGGish extraction, cache in the released format."""
from __future__ import annotations

import json
import warnings

import h5py
import numpy as np
import pytest
import torch

import mmzoo.data.ave_features as ave_features
from mmzoo.data.ave import AVE_CLASSES, AVEDataModule
from mmzoo.data.ave_features import FeatureExtractionError, decode_segments
from mmzoo.data.synthetic.ave import class_colour, class_tone_hz, write_ave

FAST = dict(visual_backbone="resnet18", pretrained_backbone=False, num_workers=0, batch_size=2, progress=False)


@pytest.fixture(scope="module")
def ave_vid(tmp_path_factory):
    # 2 classes x 1 video... write_ave needs >= 3 per class, so trim the annotation rows to 3 videos
    root = tmp_path_factory.mktemp("ave_vid")
    info = write_ave(root, num_videos_per_class=3, classes=[AVE_CLASSES[0], AVE_CLASSES[2]], with_features=False,
                     layout="flat", header=True, with_order_h5=False, degenerate_row=False, seed=5)
    return info


def _subset(info, tmp_path, rows):
    """Annotations + split lists restricted to ``rows`` (same files, fewer lines), sharing the videos."""
    from mmzoo.data.synthetic.ave import HEADER

    keep = [info["rows"][i] for i in rows]
    d = tmp_path / "ave"
    d.mkdir()
    (d / "AVE").symlink_to(info["video_dir"], target_is_directory=True)
    line = lambda r: f"{r['category']}&{r['video_id']}&good&{r['start']}&{r['end']}\n"  # noqa: E731
    (d / "Annotations.txt").write_text(HEADER + "\n" + "".join(line(r) for r in keep))
    for s, name in (("train", "trainSet.txt"), ("val", "valSet.txt"), ("test", "testSet.txt")):
        (d / name).write_text(HEADER + "\n" + "".join(line(r) for r in keep if r["split"] == s))
    return d, keep


def test_decode_segments_centre_frames_colour_and_tone(ave_vid):
    r = [x for x in ave_vid["rows"] if 0 < x["start"] and x["end"] < 10][0]
    seg = decode_segments(ave_vid["video_dir"] / f"{r['video_id']}.mp4")
    assert seg["frames"].shape == (10, 64, 64, 3)
    assert seg["frame_indices"].tolist() == [8 * t + 4 for t in range(10)]  # 8 fps: centre = 0.5 s in
    assert seg["audio"].shape == (160000,)
    colour = torch.tensor(class_colour(r["class_index"]), dtype=torch.float32)
    for t in range(10):
        frame = seg["frames"][t].float()
        hits = ((frame - colour).abs().amax(-1) < 40).float().mean()
        spec = np.abs(np.fft.rfft(seg["audio"][t * 16000 : (t + 1) * 16000].numpy()))
        if r["start"] <= t < r["end"]:
            assert hits > 0.05  # the class-coloured square is visible
            assert abs(np.argmax(spec) - class_tone_hz(r["class_index"])) < 3  # 1 Hz bins
        else:
            assert hits == 0
            assert spec.max() < 0.2 * len(spec) * 0.35  # no tone, only quiet noise


def test_video_mode_extracts_once_and_reads_cache(ave_vid, tmp_path, monkeypatch):
    # 3 rows on 2 videos: the repeated id under two labels + one test video
    rep = [r["row"] for r in ave_vid["rows"] if r["video_id"] == ave_vid["rows"][0]["video_id"]]
    test_row = ave_vid["splits"]["test"][0]
    val_row = ave_vid["splits"]["val"][0]
    root, keep = _subset(ave_vid, tmp_path, rep + [val_row, test_row])
    cache = tmp_path / "cache"
    dm = AVEDataModule(root=str(root), cache_dir=str(cache), **FAST)
    assert dm.visual_dim == 512  # resnet18 last stage, known before extraction
    with pytest.warns(UserWarning, match="RANDOMLY INITIALISED VGGish"):
        dm.prepare_data()
    dm.setup()
    assert dm.resolved_mode == "video"
    assert [e["meta"]["row"] for e in dm.datasets["train"].entries] == [0, 1]
    for split, ds in dm.datasets.items():
        for e in ds.entries:
            assert e["label"].tolist() == keep[e["meta"]["row"]]["labels"]
    a, b = dm.datasets["train"][0], dm.datasets["train"][1]
    assert a["meta"]["video_id"] == b["meta"]["video_id"] and a["label"].tolist() != b["label"].tolist()
    assert torch.equal(a["visual"], b["visual"]) and torch.equal(a["audio"], b["audio"])  # same clip
    assert a["visual"].shape == (10, 7, 7, 512) and a["audio"].shape == (10, 128)
    assert torch.isfinite(a["visual"]).all() and a["audio"].std() > 0
    # event segments differ from background segments in both modalities (real decoded content)
    t_ev = dm.datasets["test"][0]
    lab = t_ev["label"]
    if (lab == 28).any() and (lab != 28).any():
        ev, bg = lab != 28, lab == 28
        assert (t_ev["audio"][ev].mean(0) - t_ev["audio"][bg].mean(0)).abs().max() > 1e-3
    # the cache is the released format
    (folder,) = [p for p in cache.iterdir()]
    manifest = json.loads((folder / "extraction.json").read_text())
    assert manifest["num_rows"] == 4 and manifest["num_videos"] == 3 and manifest["visual_dim"] == 512
    assert manifest["visual_pretrained_loaded"] is False and manifest["skipped"] == {}
    with h5py.File(folder / "visual_feature.h5") as f:
        assert f["avadataset"].shape == (4, 10, 7, 7, 512)
    with h5py.File(folder / "labels.h5") as f:
        assert f["avadataset"][()].argmax(-1).tolist() == [r["labels"] for r in keep]
    batch = next(iter(dm.train_dataloader()))
    assert batch["visual"].shape == (2, 10, 7, 7, 512) and batch["label"].dtype == torch.long
    # a second DataModule with the same settings reuses the cache without extracting
    monkeypatch.setattr(ave_features, "extract_ave_features", lambda *a, **k: pytest.fail("re-extracted"))
    dm2 = AVEDataModule(root=str(root), cache_dir=str(cache), **FAST)
    dm2.setup()
    assert torch.equal(dm2.datasets["test"][0]["visual"], t_ev["visual"])


def test_missing_and_corrupt_videos(ave_vid, tmp_path):
    rows = [ave_vid["splits"]["train"][0], ave_vid["splits"]["val"][0], ave_vid["splits"]["test"][0]]
    root, keep = _subset(ave_vid, tmp_path, rows)
    (root / "AVE").unlink()
    (root / "AVE").mkdir()
    for r in keep:
        (root / "AVE" / f"{r['video_id']}.mp4").write_bytes((ave_vid["video_dir"] / f"{r['video_id']}.mp4").read_bytes())
    missing = root / "AVE" / f"{keep[2]['video_id']}.mp4"
    missing.unlink()
    with pytest.raises(FileNotFoundError, match=f"1 video\\(s\\) listed in .* are missing, e.g. {missing}"):
        AVEDataModule(root=str(root), cache_dir=str(tmp_path / "c1"), **FAST).setup()
    missing.write_bytes((ave_vid["video_dir"] / missing.name).read_bytes())
    corrupt = root / "AVE" / f"{keep[0]['video_id']}.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 100)
    with pytest.raises(FeatureExtractionError, match=f"{corrupt}: unreadable video"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        AVEDataModule(root=str(root), input_mode="video", cache_dir=str(tmp_path / "c2"), **FAST).setup()
    assert not (tmp_path / "c2").exists() or not any((tmp_path / "c2").iterdir())  # nothing half-written
    missing.unlink()
    dm = AVEDataModule(root=str(root), cache_dir=str(tmp_path / "c3"), skip_corrupt=True, **FAST)
    with pytest.warns(UserWarning, match=r"skipped 2 unreadable video\(s\)"):
        dm.setup()
    assert dm.skipped_rows == [0, 2]
    assert set(dm.skipped) == {str(corrupt), str(missing)}
    assert len(dm.datasets["train"]) == 0 and len(dm.datasets["val"]) == 1 and len(dm.datasets["test"]) == 0


def test_frame_preprocessing_and_offline_backbone_fallback(monkeypatch):
    import timm

    from mmzoo.data.ave_features import VisualExtractor, _preprocess_frames

    frames = torch.zeros(1, 64, 128, 3, dtype=torch.uint8)
    frames[:, :, :24] = 255  # left strip white: cut by a centre crop, kept by squash
    mean, std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
    sq = _preprocess_frames(frames, "squash", mean, std)
    cc = _preprocess_frames(frames, "center_crop", mean, std)
    assert sq.shape == cc.shape == (1, 3, 224, 224)
    assert sq[0, 0, 112, 10] == pytest.approx(1.0, abs=1e-3) and sq[0, 0, 112, 200] == pytest.approx(-1.0, abs=1e-3)
    assert cc.max() == pytest.approx(-1.0, abs=1e-3)  # the white strip lies outside the central square
    # pretrained weights unreachable (simulated: no network in tests) -> warned, seeded random init
    real = timm.create_model

    def offline(name, pretrained=False, **kw):
        if pretrained:
            raise OSError("We couldn't connect to 'https://huggingface.co' (simulated offline)")
        return real(name, pretrained=False, **kw)

    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.warns(UserWarning, match="RANDOMLY INITIALISED backbone"):
        v = VisualExtractor("resnet18", pretrained=True, seed=0)
    assert v.pretrained_loaded is False and v.dim == 512
    w = VisualExtractor("resnet18", pretrained=False, seed=0)
    x = torch.randn(1, 3, 224, 224)
    assert torch.equal(v(x), w(x))  # seeded random init: the cache is reproducible
