"""`mmzoo predict --input video.mp4` for the video classifiers: per-window top-k labels in JSON and
an annotated mp4, checked against the model run by hand on the same windows."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import mmzoo
from mmzoo.cli import main
from mmzoo.data.constants import KINETICS_MEAN, KINETICS_STD
from mmzoo.data.decode import read_video_clip
from mmzoo.data.synthetic.kinetics import write_kinetics
from mmzoo.hub.repo import save_pretrained

TINY = {"slowfast-r50-4x16": dict(depth=14, width=8, slow_frames=2, alpha=4, crop_size=32, num_classes=5),
        "i3d-r50-8x8": dict(depth=14, width=8, frames=8, crop_size=32, num_classes=5)}


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    truth = write_kinetics(tmp_path_factory.mktemp("k"), per_class={"train": 1}, num_frames=72, size=(40, 48), seed=3)
    return truth["rows"]["train"][0]["path"]


@pytest.mark.parametrize("model_id", sorted(TINY))
def test_windows_top_k_and_annotated_video(model_id, video, tmp_path):
    torch.manual_seed(0)
    model = mmzoo.create(model_id, **TINY[model_id]).eval()
    folder = save_pretrained(model, tmp_path / "tiny")
    out = tmp_path / "pred"
    main(["predict", "--model", str(folder), "--input", video, "--output_dir", str(out), "--top_k", "3"])
    res = json.loads((out / "predictions.json").read_text())
    stride = mmzoo.model_info(model_id)["input"]["sampling_rate"]
    span = 8 * stride  # 8 frames at the id's stride
    assert [(w["start"], w["end"]) for w in res["windows"]] == [(s, s + span) for s in range(0, 72 - span + 1, span)]

    frames = read_video_clip(video, short_side=32).frames.numpy()
    h, w = frames.shape[1:3]
    y, x = (h - 32) // 2, (w - 32) // 2
    mean, std = torch.tensor(KINETICS_MEAN).view(3, 1, 1, 1), torch.tensor(KINETICS_STD).view(3, 1, 1, 1)
    probs = []
    for win in res["windows"]:
        sel = frames[win["start"]:win["end"]:stride, y:y + 32, x:x + 32]
        clip = (torch.from_numpy(np.ascontiguousarray(sel)).permute(3, 0, 1, 2).float() / 255 - mean) / std
        with torch.no_grad():
            p = model(clip[None])[0].softmax(-1)
        probs.append(p)
        top = win["top_k"]["class"]
        assert [e["index"] for e in top] == p.topk(3).indices.tolist()
        assert [e["score"] for e in top] == pytest.approx(p.topk(3).values.tolist(), abs=1e-5)
    video_p = torch.stack(probs).mean(0)
    assert [e["index"] for e in res["top_k"]["class"]] == video_p.topk(3).indices.tolist()

    drawn = read_video_clip(out / "predictions.mp4").frames.numpy()
    assert drawn.shape[0] == 72 and drawn.shape[1:3] == (h, w)
    band = slice(0, 8)
    # the label band is darkened and carries white text: darker on average, with bright pixels in it
    assert drawn[:, band].mean() < frames[:, band].mean() - 10
    assert drawn[:, band].max() > 200


def test_an_audio_visual_classifier_is_refused_in_one_line(video, tmp_path, capsys):
    model = mmzoo.create("avslowfast-r50-4x16", depth=14, width=8, slow_frames=2, alpha=4, crop_size=32,
                         num_classes=5, audio_frames=32, mel_bins=16)
    folder = save_pretrained(model, tmp_path / "av")
    with pytest.raises(SystemExit) as e:
        main(["predict", "--model", str(folder), "--input", video, "--output_dir", str(tmp_path / "o")])
    assert e.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "avslowfast" in err[0].lower()
