"""AVE round trip through the CLI: a synthetic AVE root (real mp4 files with audio, the official
annotation and split files, the authors' feature files) -> `mmzoo extract --data ave --split all`
(ten 1-s segment views per video, T = 10) with tiny random-weight zoo models -> the AVE
DataModule reads the features.h5 (--data.visual_features / --data.audio_features) -> `mmzoo fit`
trains AVEL on them. The DataModule's tensors are the h5 rows, the h5 rows are the model's
features of each segment's frames decoded here by hand, and a partial or wrong-T file is refused
in one line naming it."""
from __future__ import annotations

import json
import math
import shutil
import urllib.parse
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import mmzoo
from mmzoo.cli import main
from mmzoo.data.ave import AVEDataModule
from mmzoo.data.ave_files import AVEDataError
from mmzoo.extract import read_features

I3D = dict(depth=14, width=8, frames=8, crop_size=32, num_classes=3)  # res5: 256 channels
AUDIONET = dict(depth=14, width=8, num_classes=3)  # log-mel 128 x 80 (2.064 s), pooled: 256
AVEL = ["--model.region_dim", "8", "--model.hidden_dim", "8", "--model.add_hidden", "8", "--model.add_proj", "4",
        "--model.avel_fc_dim", "8"]


def _flags(prefix: str, args: dict) -> list[str]:
    return [x for k, v in args.items() for x in (f"--{prefix}.{k}", str(v))]


def _extract(root, out, model, model_args, *extra):
    return Path(main(["extract", "--model", model, "--data", "ave", "--data.root", str(root), "--output", str(out),
                      "--split", "all", "--pretrained", "false", "--no_progress", "--device", "cpu",
                      "--data.num_workers", "0", *_flags("model", model_args), *extra]))


@pytest.fixture(scope="module")
def ave(tmp_path_factory):
    """10 videos (3 classes x 3, one id on two rows, one all-background row) and a visual
    extraction with a tiny I3D: pooled 256-d vector per segment, 32 x 32 centre crops of the
    64 x 64 frames (short side kept at 64)."""
    from mmzoo.data.synthetic import write_ave

    root = tmp_path_factory.mktemp("ave")
    info = write_ave(root, num_videos_per_class=3, seed=3)
    out = root.parent / f"{root.name}-i3d"
    _extract(root, out, "i3d-r50-8x8", I3D, "--data.segment_short_side", "64", "--data.segment_crop", "32")
    yield root, info, out
    shutil.rmtree(out, ignore_errors=True)


def test_extract_writes_ten_segment_rows_per_video_equal_to_the_model_on_each_segment(ave):
    root, info, out = ave
    manifest = json.loads((out / "manifest.json").read_text())
    feats = read_features(out / "features.h5")
    ids = {r["video_id"] for r in info["rows"]}
    assert set(feats) == ids and manifest["videos"] == len(ids) == 10  # every split, each id once
    assert manifest["data"] == "ave" and manifest["split"] == "all" and manifest["feature_shape"] == [256]
    assert manifest["input_protocol"]["input_mode"] == "segments"
    assert manifest["input_protocol"]["segment_frames"] == 8  # the model's frames per clip
    assert "floor((k + (i + 0.5) / 8) * fps)" in manifest["window"]
    assert all(v.shape == (10, 256) for v in feats.values())

    # segment k of one video by hand: frames floor((k + (i + 0.5) / 8) * fps), i < 8 (8 fps: 8k + i),
    # short side 32, centre crop 32, the model's mean / std, through the same random-weight model
    from mmzoo.data.constants import KINETICS_MEAN, KINETICS_STD
    from mmzoo.data.decode import read_video_clip

    vid = info["rows"][4]["video_id"]
    path = info["video_dir"] / f"{vid}.mp4"
    torch.manual_seed(0)
    model = mmzoo.create("i3d-r50-8x8", **I3D).eval()
    clips = []
    for k in range(10):
        idx = [math.floor((k + (i + 0.5) / 8) * 8) for i in range(8)]
        assert idx == [8 * k + i for i in range(8)]
        frames = read_video_clip(path, frame_indices=idx).frames.float() / 255  # 64 x 64: short side 64, no resize
        x = frames[:, 16:48, 16:48].permute(3, 0, 1, 2)  # centre 32 x 32 of 64 x 64, C T H W
        mean, std = torch.tensor(KINETICS_MEAN).view(3, 1, 1, 1), torch.tensor(KINETICS_STD).view(3, 1, 1, 1)
        clips.append((x - mean) / std)
    with torch.no_grad():
        want = model.forward_features(video=torch.stack(clips))["pooled"]
    assert torch.allclose(torch.from_numpy(feats[vid]), want, atol=1e-5)
    assert not torch.allclose(want[0], want[5])  # segments differ: a shifted window would not match


def test_fit_avel_on_extracted_visual_and_the_authors_audio(ave, tmp_path):
    root, info, out = ave
    dm = AVEDataModule(root=str(root), visual_features=str(out), num_workers=0, progress=False)
    assert (dm.visual_dim, dm.audio_dim, dm.visual_grid) == (256, 128, (1, 1))
    dm.setup()
    feats = read_features(out / "features.h5")
    with h5py.File(info["feature_dir"] / "audio_feature.h5", "r") as f:
        authors_audio = f["avadataset"][()]
    for split in ("train", "val", "test"):
        ds = dm.dataset(split)
        assert len(ds) == len(info["splits"][split])
        for i in range(len(ds)):
            item = ds[i]
            vid, row = item["meta"]["video_id"], item["meta"]["row"]
            assert item["visual"].shape == (10, 1, 1, 256)
            assert torch.equal(item["visual"][:, 0, 0], torch.from_numpy(feats[vid]))
            assert torch.equal(item["audio"], torch.from_numpy(authors_audio[row]))
            assert item["label"].tolist() == info["rows"][row]["labels"]

    run = tmp_path / "run"
    main(["fit", "--model", "avel", "--data", "ave", "--data.root", str(root), "--data.visual_features", str(out),
          *AVEL, "--data.batch_size", "2", "--data.num_workers", "0", "--trainer.accelerator", "cpu",
          "--trainer.max_steps", "2", "--trainer.limit_val_batches", "1", "--trainer.num_sanity_val_steps", "0",
          "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
          "--trainer.default_root_dir", str(run), "--seed_everything", "0"])
    ckpt = torch.load(sorted(run.rglob("last.ckpt"))[-1], map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 2
    assert (ckpt["hyper_parameters"]["visual_dim"], ckpt["hyper_parameters"]["audio_dim"]) == (256, 128)
    assert ckpt["state_dict"]["region_proj.mlp.0.weight"].shape == (8, 256)  # built for the file's width


def test_ave_models_take_a_one_by_one_grid_and_conv3d_says_it_needs_seven():
    """Vector features arrive as a 1 x 1 region grid: every attention reads it (weights are 1),
    except the Conv3D inter-frame encoder, which is defined on the 7 x 7 grid."""
    tiny = dict(visual_dim=16, region_dim=16, hidden_dim=8, inter_hidden=16)
    x = {"visual": torch.randn(2, 10, 1, 1, 16), "audio": torch.randn(2, 10, 128)}
    for model_id in ("cmcoatt-avsdn", "avel", "lstm-ave"):
        logits, attention = mmzoo.create(model_id, **tiny).eval()(**x, return_attention=True)
        assert logits.shape == (2, 10, 29)
        if attention is not None:
            assert torch.allclose(attention, torch.ones(2, 10, 1))
    conv = mmzoo.create("cmcoatt-avsdn", inter_v="conv3d", **tiny).eval()
    with pytest.raises(ValueError, match="needs a 7x7 grid, got 1 regions"):
        conv(**x)


def test_extracted_audio_and_a_spatial_visual_map_both_from_mmzoo_train_avel(ave, tmp_path):
    """Both streams from mmzoo: log-mel AudioNet (its 2.064-s window centred on each segment) and
    I3D res5 maps kept whole (--pooling none: [256, T', 2, 2] -> a 2 x 2 region grid)."""
    root, info, _ = ave
    vis, aud = tmp_path / "vis", tmp_path / "aud"
    _extract(root, vis, "i3d-r50-8x8", I3D, "--data.segment_short_side", "64", "--data.segment_crop", "64",
             "--layer", "res5", "--pooling", "none")
    manifest = json.loads((_extract(root, aud, "audionet-r50", AUDIONET)).read_text())
    assert manifest["input_protocol"]["segment_audio"] == "logmel"
    assert "[k + 0.5 - 1.032, k + 0.5 + 1.032) s at 16000 Hz" in manifest["window"]

    dm = AVEDataModule(root=str(root), visual_features=str(vis), audio_features=str(aud / "features.h5"),
                       num_workers=0, progress=False)
    assert (dm.visual_dim, dm.audio_dim, dm.visual_grid) == (256, 256, (2, 2))
    v, a = read_features(vis / "features.h5"), read_features(aud / "features.h5")
    item = dm.dataset("test")[0]
    vid = item["meta"]["video_id"]
    assert v[vid].shape == (10, 256, 4, 2, 2)
    assert torch.allclose(item["visual"], torch.from_numpy(v[vid].mean(axis=2).transpose(0, 2, 3, 1)))
    assert torch.equal(item["audio"], torch.from_numpy(a[vid]))

    # the AVE models read any square grid: region attention over 4 regions here
    run = tmp_path / "run"
    main(["fit", "--model", "avel", "--data", "ave", "--data.root", str(root), "--data.visual_features", str(vis),
          "--data.audio_features", str(aud), *AVEL, "--data.batch_size", "2", "--data.num_workers", "0",
          "--trainer.accelerator", "cpu", "--trainer.max_steps", "1", "--trainer.limit_val_batches", "1",
          "--trainer.num_sanity_val_steps", "0", "--trainer.logger", "false", "--trainer.enable_progress_bar",
          "false", "--trainer.default_root_dir", str(run), "--seed_everything", "0"])
    ckpt = torch.load(sorted(run.rglob("last.ckpt"))[-1], map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 1 and ckpt["hyper_parameters"]["audio_dim"] == 256


def test_partial_file_is_refused_naming_it_and_a_resumed_extract_completes_it(ave, tmp_path):
    root, info, out = ave
    part = tmp_path / "part"
    shutil.copytree(out, part)
    with h5py.File(part / "features.h5", "a") as f:
        gone = info["rows"][info["splits"]["test"][0]]["video_id"]
        kept = info["rows"][0]["video_id"]
        f["features"][urllib.parse.quote(kept, safe="")].attrs["marker"] = 1  # a rewrite would lose it
        del f["features"][urllib.parse.quote(gone, safe="")]  # as if extraction stopped before this video
    with pytest.raises(AVEDataError) as err:
        AVEDataModule(root=str(root), visual_features=str(part), num_workers=0).setup()
    msg = str(err.value)
    assert "\n" not in msg and str(part / "features.h5") in msg and repr(gone) in msg and "1 of the 10" in msg

    _extract(root, part, "i3d-r50-8x8", I3D, "--data.segment_short_side", "64", "--data.segment_crop", "32")
    with h5py.File(part / "features.h5", "r") as f:
        assert f["features"][urllib.parse.quote(kept, safe="")].attrs["marker"] == 1  # not recomputed
    full, resumed = read_features(out / "features.h5"), read_features(part / "features.h5")
    assert set(resumed) == set(full) and np.allclose(resumed[gone], full[gone], atol=1e-6)
    dm = AVEDataModule(root=str(root), visual_features=str(part), num_workers=0)
    dm.setup()
    assert len(dm.dataset("test")) == len(info["splits"]["test"])


def test_wrong_t_foreign_manifest_and_missing_manifest_are_one_line_errors(ave, tmp_path):
    root, info, out = ave
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    vid = info["rows"][1]["video_id"]
    with h5py.File(bad / "features.h5", "a") as f:
        name = urllib.parse.quote(vid, safe="")
        rows = f["features"][name][:3]
        attrs = dict(f["features"][name].attrs)
        del f["features"][name]
        ds = f["features"].create_dataset(name, data=rows)  # T = 3, e.g. the generic 3-clip window
        ds.attrs.update(attrs)
    with pytest.raises(AVEDataError, match=rf"features\.h5: video '{vid}' has T = 3 rows, AVE needs 10") as err:
        AVEDataModule(root=str(root), visual_features=str(bad), num_workers=0).visual_dim
    assert "\n" not in str(err.value)

    manifest = json.loads((out / "manifest.json").read_text())
    (bad / "manifest.json").write_text(json.dumps({**manifest, "data": "kinetics"}))
    with pytest.raises(AVEDataError, match=r"manifest\.json: extracted with --data 'kinetics', not 'ave'"):
        AVEDataModule(root=str(root), visual_features=str(bad), num_workers=0).setup()
    (bad / "manifest.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"features\.h5: no manifest\.json beside it"):
        AVEDataModule(root=str(root), visual_features=str(bad / "features.h5"), num_workers=0)
    with pytest.raises(FileNotFoundError, match=r"--data\.audio_features .*nowhere: no features\.h5 there"):
        AVEDataModule(root=str(root), audio_features=str(tmp_path / "nowhere"), num_workers=0)


def test_segments_mode_items_follow_the_documented_window(ave):
    """The DataModule's segment items (what `mmzoo extract` reads): frames of segment k only with
    uniform sampling, the model's stride around the segment centre with "stride", and the audio
    window centred on k + 0.5 s."""
    root, info, _ = ave
    dm = AVEDataModule(root=str(root), input_mode="segments", segment_frames=4, segment_short_side=32,
                       segment_crop=32, segment_audio="waveform",
                       segment_audio_args={"sample_rate": 16000, "seconds": 1.0}, num_workers=0)
    ds = dm.dataset("val")
    assert len(ds) == 10 * len({info["rows"][r]["video_id"] for r in info["splits"]["val"]})
    item = ds[13]  # video 1, segment 3
    assert item["segment"] == 3 and item["meta"]["frame_indices"] == [25, 27, 29, 31]  # 8 fps: (3 + (i+.5)/4) * 8
    assert item["meta"]["audio_window"] == [3.0, 4.0] and item["audio"].shape == (16000,)
    assert item["video"].shape == (3, 4, 32, 32)
    from mmzoo.data.decode import read_audio

    track = read_audio(item["meta"]["path"], 0.0, 10.0, sample_rate=16000)  # the whole track, sliced here
    assert torch.allclose(item["audio"], track[48000:64000], atol=1e-4)
    assert not torch.allclose(item["audio"], track[40000:56000], atol=1e-2)  # half a segment off: differs

    stride = AVEDataModule(root=str(root), input_mode="segments", segment_frames=4, segment_sampling="stride",
                           segment_stride=3, segment_short_side=32, segment_crop=32, num_workers=0)
    assert stride.dataset("val")[10]["meta"]["frame_indices"] == [0, 1, 4, 7]  # centre 4: -2 clamped to 0
    assert stride.dataset("val")[19]["meta"]["frame_indices"] == [70, 73, 76, 79]  # centre 76, last frame 79
    with pytest.raises(AVEDataError, match="input_mode='segments' gives raw segment inputs"):
        stride.visual_dim
