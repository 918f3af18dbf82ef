"""`mmzoo predict --input video.mp4` for the AVE event localisers: per-segment probabilities in JSON
checked against the model run by hand on independently extracted features, the timeline picture
(ten segments, their frames, decisions and probability strip) and the attention overlay."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import mmzoo
from mmzoo.cli import main
from mmzoo.data.ave_features import ExtractionConfig, decode_segments, extract_ave_features
from mmzoo.data.media import write_mp4
from mmzoo.hub.repo import save_pretrained
from mmzoo.predict.ave import PANEL_WIDTH, THUMB_WIDTH, label_colour

FPS, SIZE, RATE = 8, 96, 16000


def _video(path, seconds=10, audio=True, seed=0):
    """Grey block noise; from 3 s to 8 s a white square moving right and a 440 Hz tone (achromatic
    frames, so any colour in the attention picture comes from the heat map)."""
    rng = np.random.default_rng(seed)
    n = seconds * FPS
    grey = rng.integers(90, 166, size=(n, SIZE // 8, SIZE // 8), dtype=np.uint8).repeat(8, 1).repeat(8, 2)
    frames = np.repeat(grey[..., None], 3, axis=3)
    for i in range(3 * FPS, min(8 * FPS, n)):
        x = (i - 3 * FPS) * (SIZE - 32) // (5 * FPS)
        frames[i, 32:64, x:x + 32] = 235
    wav = None
    if audio:
        t = np.arange(seconds * RATE) / RATE
        wav = 0.02 * rng.standard_normal(seconds * RATE)
        ev = (t >= 3) & (t < 8)
        wav[ev] += 0.3 * np.sin(2 * np.pi * 440 * t[ev])
    return write_mp4(path, frames, FPS, None if wav is None else wav.astype(np.float32), RATE)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """The video and its features extracted independently (the predictor's default: ResNet-152,
    offline so seeded random weights, random VGGish)."""
    root = tmp_path_factory.mktemp("ave_predict")
    video = _video(root / "event.mp4")
    with pytest.warns(UserWarning):
        manifest = extract_ave_features([video], root / "feats", ExtractionConfig(), device="cpu", progress=False)
    import h5py

    with h5py.File(root / "feats" / "visual_feature.h5") as f:
        visual = torch.from_numpy(f["avadataset"][:])
    with h5py.File(root / "feats" / "audio_feature.h5") as f:
        audio = torch.from_numpy(f["avadataset"][:])
    return {"video": video, "visual": visual, "audio": audio, "manifest": manifest, "root": root}


@pytest.fixture(scope="module")
def predicted(clip, tmp_path_factory):
    """``predicted(model_id)``: one CLI run per model id, shared by the tests of this module."""
    runs = {}

    def get(model_id):
        if model_id not in runs:
            runs[model_id] = _run(model_id, clip, tmp_path_factory.mktemp(model_id))
        return runs[model_id]

    return get


def _run(model_id, clip, tmp_path, top_k=4):
    torch.manual_seed(1)
    model = mmzoo.create(model_id).eval()
    folder = save_pretrained(model, tmp_path / "model")
    out = tmp_path / "pred"
    with pytest.warns(UserWarning, match="RANDOMLY INITIALISED"):
        main(["predict", "--model", str(folder), "--input", str(clip["video"]), "--output_dir", str(out),
              "--top_k", str(top_k)])
    with torch.no_grad():
        ref = model.forward_with_attention(clip["visual"], clip["audio"])
    return model, out, json.loads((out / "predictions.json").read_text()), ref


@pytest.mark.parametrize("model_id", ["cmcoatt-avsdn", "avsdn"])
def test_json_matches_model_on_independent_features(model_id, clip, predicted):
    model, out, res, ref = predicted(model_id)
    probs = torch.softmax(ref["logits"][0], dim=-1)
    assert len(res["segments"]) == 10
    got = torch.tensor([s["probabilities"] for s in res["segments"]])
    torch.testing.assert_close(got, probs, atol=1e-6, rtol=1e-5)
    for t, s in enumerate(res["segments"]):
        k = int(probs[t].argmax())
        assert (s["class_index"], s["label"], s["background"]) == (k, model.class_names[k], k == 28)
        assert [e["index"] for e in s["top_k"]] == probs[t].topk(4).indices.tolist()
        assert (s["start"], s["end"]) == (t, t + 1)
    # the features the model saw are those of the extractor, written in the released format
    assert res["features"]["visual_backbone"] == "resnet152.tv_in1k"
    assert res["features"]["visual_pretrained_loaded"] is clip["manifest"]["visual_pretrained_loaded"]
    assert any("VGGish has RANDOM weights" in w for w in res["warnings"])
    assert (out / "features" / "visual_feature.h5").is_file()
    # events: runs of one non-background decision
    covered = [t for e in res["events"] for t in range(e["start"], e["end"])]
    assert covered == [t for t in range(10) if not res["segments"][t]["background"]]
    if model_id == "avsdn":  # no spatial attention: no picture, and the JSON says why
        assert not (out / "attention.png").exists()
        assert res["attention"]["file"] is None and "no spatial attention" in res["attention"]["skipped"]
    else:
        assert res["attention"]["file"] == "attention.png"
        torch.testing.assert_close(torch.tensor(res["attention"]["maps"]), ref["attention"][0], atol=1e-6, rtol=1e-5)


def test_timeline_shows_ten_segments_their_frames_decisions_and_probabilities(clip, predicted):
    _, out, res, _ = predicted("avsdn")
    img = np.asarray(Image.open(out / "timeline.png").convert("RGB")).astype(int)
    lay = res["timeline"]
    assert img.shape[:2] == (lay["size"][1], lay["size"][0])
    boxes = lay["thumbnails"]
    assert len(boxes) == 10 and [b[0] for b in boxes] == sorted(b[0] for b in boxes)
    frames = decode_segments(clip["video"])["frames"].numpy()
    thumbs = [np.asarray(Image.fromarray(f).resize((THUMB_WIDTH, THUMB_WIDTH), Image.BILINEAR)).astype(int)
              for f in frames]
    for t, (x0, y0, x1, y1) in enumerate(boxes):
        shown = img[y0:y1, x0:x1]
        assert np.abs(shown - thumbs[t]).mean() < 1.0  # segment t shows the frame of segment t ...
        other = thumbs[(t + 1) % 10]
        assert np.abs(shown - other).mean() > 5.0  # ... not its neighbour's
    for (x0, y0, x1, y1), s in zip(lay["labels"], res["segments"]):
        assert tuple(img[y1 - 2, x1 - 3]) == label_colour(s["class_index"], s["background"])
    rows = [r["class_index"] for r in lay["strip_rows"]]
    assert rows[-1] == 28 and all(s["class_index"] in rows for s in res["segments"])
    for k, cells in zip(rows, lay["strip_cells"]):
        for t, (x0, y0, x1, y1) in enumerate(cells):
            shade = round(255 * (1 - res["segments"][t]["probabilities"][k]))
            assert tuple(img[y0 + 3, x1 - 4]) == (shade, shade, 255)


def test_attention_overlay_heat_follows_the_map(predicted):
    _, out, res, _ = predicted("cmcoatt-avsdn")
    img = np.asarray(Image.open(out / "attention.png").convert("RGB")).astype(int)
    maps = np.array(res["attention"]["maps"])  # [10, 49]
    panels = res["attention"]["panels"]
    assert len(panels) == 10
    for m, (x0, y0, x1, y1) in zip(maps, panels):
        assert x1 - x0 == PANEL_WIDTH
        cw, ch = (x1 - x0) / 7, (y1 - y0) / 7
        # red minus blue at each cell's centre: the frame is grey, so this is the heat map alone
        heat = np.array([img[int(y0 + (r // 7 + 0.5) * ch), int(x0 + (r % 7 + 0.5) * cw)] for r in range(49)])
        warmth = heat[:, 0] - heat[:, 2]
        hot, cold = int(m.argmax()), int(m.argmin())
        assert warmth[hot] > warmth[cold] + 150
        assert warmth[hot] >= warmth.max() - 10 and warmth[cold] <= warmth.min() + 10
        assert np.corrcoef(warmth, m)[0, 1] > 0.8


@pytest.mark.parametrize("case", ["short", "silent"])
def test_wrong_length_or_silent_video_is_one_line_error_naming_the_file(case, tmp_path, capsys):
    video = _video(tmp_path / f"{case}.mp4", seconds=4 if case == "short" else 10, audio=case == "short")
    with pytest.raises(SystemExit) as err:
        main(["predict", "--model", "avsdn", "--pretrained", "false", "--input", str(video),
              "--output_dir", str(tmp_path / "out")])
    assert err.value.code == 1
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("mmzoo predict: error")]
    assert len(lines) == 1 and str(video) in lines[0]
    assert ("4.00 s long" if case == "short" else "no audio track") in lines[0]
    assert not (tmp_path / "out").exists()


def test_backbone_must_give_the_models_width(clip, tmp_path):
    from mmzoo.data.ave_features import FeatureExtractionError
    from mmzoo.predict.ave import predict_input

    model = mmzoo.create("avsdn").eval()  # visual_dim 2048
    with pytest.raises(FeatureExtractionError, match="'resnet18' gives 512-d maps but the model reads 2048-d"):
        predict_input(model, str(clip["video"]), str(tmp_path / "o"), visual_backbone="resnet18")
    with pytest.raises(FeatureExtractionError, match="no default backbone"):
        predict_input(mmzoo.create("avsdn", visual_dim=768), str(clip["video"]), str(tmp_path / "o"))
