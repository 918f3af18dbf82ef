"""`mmzoo predict --input ... --predictor.KEY VALUE` (keyword arguments of the family's predictor)
and the two-stream ensemble's file prediction (IPL / SAOA two-stream rows, Wang thesis chs. 3-4:
a weighted mean of the RGB and flow streams' softmax probabilities).

Checked through the CLI against the models run by hand on inputs made here without mmzoo: frames
decoded with PyAV, PySlowFast's centre test view written out (``crops`` of test_predict_classify),
TV-L1 flow by OpenCV itself, quantised by the release's formula, JPEG-coded by OpenCV and decoded
by torchvision (``tvl1_flow_images`` of test_predict_psn_flow). Frames are 32 x 40: the tiny
models' test short side, so the only geometry is the centre 32-pixel crop (columns 4..35)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from _tiny import TINY
from test_predict_classify import check_top, crops
from test_predict_psn_flow import pyav_frames, tvl1_flow_images, write_video

import mmzoo
from mmzoo.cli import main
from mmzoo.errors import NotSupportedError
from mmzoo.hub.repo import save_pretrained
from mmzoo.predict import predict_input

IPL = TINY["IPL"]  # 8 frames at the ids' stride 2: windows of 16 frames, 32-pixel crops
HALF = (0.5, 0.5, 0.5)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """34 frames of a blurred texture sliding 1 px per frame (TV-L1 finds its motion) plus noise."""
    import cv2

    rng = np.random.default_rng(4)
    texture = cv2.GaussianBlur(rng.integers(0, 256, (32, 120), dtype=np.uint8), (5, 5), 1.5)
    frames = np.stack([np.repeat(texture[:, 60 - t:100 - t, None], 3, axis=2) for t in range(34)])
    frames = np.clip(frames.astype(int) + rng.integers(-20, 21, frames.shape), 0, 255).astype(np.uint8)
    path = tmp_path_factory.mktemp("v") / "v.mp4"
    write_video(path, frames, 30.0)
    return path, pyav_frames(path)


def cli(model, path, tmp_path, *flags: str, name: str = "pred"):
    folder = save_pretrained(model, tmp_path / f"{name}-model")
    out = tmp_path / name
    main(["predict", "--model", str(folder), "--input", str(path), "--output_dir", str(out), "--top_k", "3", *flags])
    return json.loads((out / "predictions.json").read_text()), out


def one_line_error(capsys, argv) -> str:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_window_stride_option_sets_the_window_starts(video, tmp_path):
    path, native = video
    torch.manual_seed(0)
    model = mmzoo.create("ipl-i3d-rgb", **IPL).eval()
    default, _ = cli(model, path, tmp_path, name="default")
    assert [(w["start"], w["end"]) for w in default["windows"]] == [(0, 16), (16, 32)]
    res, out = cli(model, path, tmp_path, "--predictor.window_stride", "6", name="stride6")
    # overlapping windows of 16 frames every 6 frames that fit in 34 frames
    assert [(w["start"], w["end"]) for w in res["windows"]] == [(0, 16), (6, 22), (12, 28), (18, 34)]
    verbs = []
    for w in res["windows"]:
        with torch.no_grad():
            o = model(crops(native[w["start"]:w["end"]:2], 32, 32, HALF, HALF))
        verbs.append(o["verb"][0].softmax(-1))
        check_top(w["top_k"]["verb"], verbs[-1])
        check_top(w["top_k"]["noun"], o["noun"][0].softmax(-1))
    check_top(res["top_k"]["verb"], torch.stack(verbs).mean(0))
    assert len(pyav_frames(out / "predictions.mp4")) == 34


def test_flow_options_reach_the_flow_predictor(video, tmp_path):
    path, native = video
    torch.manual_seed(1)
    model = mmzoo.create("ipl-i3d-flow", **IPL).eval()
    res, _ = cli(model, path, tmp_path, "--predictor.flow_stride=1", "--predictor.method", "tvl1")
    assert (res["flow"]["stride"], res["flow"]["bound"], res["flow"]["method"]) == (1, 20.0, "tvl1")
    # stride 1: RGB frame numbers s+1, s+3, ..., s+15 are flow frames s+1, ..., s+15 (not s/2+1 ..)
    assert [(w["start"], tuple(w["flow_frames"])) for w in res["windows"]] == [(0, (1, 15)), (16, (17, 31))]
    w = res["windows"][1]
    flow = tvl1_flow_images(native, stride=1)  # flow frame n (1-based) = pair (n-1, n)
    x = torch.from_numpy(flow[16:31:2, :, :, 4:36]).permute(1, 0, 2, 3).float() / 255
    with torch.no_grad():
        o = model(((x - 0.5) / 0.5)[None])
    check_top(w["top_k"]["verb"], o["verb"][0].softmax(-1))
    check_top(w["top_k"]["noun"], o["noun"][0].softmax(-1))


def test_two_stream_ensemble_fuses_the_members_with_its_weights(video, tmp_path):
    path, native = video
    torch.manual_seed(2)
    model = mmzoo.create("ipl-i3d-2stream", member_kwargs=[IPL, IPL], weights=[2.0, 1.0]).eval()
    res, out = cli(model, path, tmp_path)
    assert res["members"] == [{"id": "ipl-i3d-rgb", "input": "video", "weight": 2.0},
                              {"id": "ipl-i3d-flow", "input": "flow", "weight": 1.0}]
    assert (res["flow"]["stride"], res["flow"]["bound"]) == (2, 20.0)
    assert [(w["start"], w["end"], tuple(w["flow_frames"])) for w in res["windows"]] == [
        (0, 16, (1, 8)), (16, 32, (9, 16))]
    rgb, flow_model = model.members
    flow = tvl1_flow_images(native)  # flow frame n = RGB frames (2n-2, 2n)
    fused = {"verb": [], "noun": []}
    for w in res["windows"]:
        s = w["start"]
        x = torch.from_numpy(flow[s // 2:s // 2 + 8, :, :, 4:36]).permute(1, 0, 2, 3).float() / 255
        with torch.no_grad():
            o_rgb = rgb(crops(native[s:s + 16:2], 32, 32, HALF, HALF))
            o_flow = flow_model(((x - 0.5) / 0.5)[None])
        for head in ("verb", "noun"):
            p = (2.0 * o_rgb[head][0].softmax(-1) + 1.0 * o_flow[head][0].softmax(-1)) / 3.0
            fused[head].append(p)
            check_top(w["top_k"][head], p)
        pv, pn = fused["verb"][-1], fused["noun"][-1]
        best = int((pv[:, None] * pn[None, :]).flatten().argmax())
        assert w["top_k"]["action"][0]["index"] == best
    check_top(res["top_k"]["verb"], torch.stack(fused["verb"]).mean(0))
    check_top(res["top_k"]["noun"], torch.stack(fused["noun"]).mean(0))
    assert len(pyav_frames(out / "predictions.mp4")) == 34


def test_unknown_option_is_one_line_naming_close_matches(tmp_path, capsys):
    missing = str(tmp_path / "missing.mp4")
    err = one_line_error(capsys, ["predict", "--model", "ipl-i3d-rgb", "--input", missing,
                                  "--predictor.windw_stride", "8"])
    assert "--predictor.windw_stride" in err and "did you mean --predictor.window_stride" in err
    assert err.endswith("accepted keys: window_stride, flow_stride, method, bound")
    err = one_line_error(capsys, ["predict", "--model", "cmcoatt-avsdn", "--input", missing,
                                  "--predictor.visual_backbon", "resnet18"])
    assert "did you mean --predictor.visual_backbone" in err and "vggish_weights" in err
    # a saved model folder: checked once loaded, before reading the input
    folder = save_pretrained(mmzoo.create("ensemble", member_kwargs=[IPL, IPL]), tmp_path / "ens")
    err = one_line_error(capsys, ["predict", "--model", str(folder), "--input", missing, "--predictor.flowstride", "1"])
    assert "did you mean --predictor.flow_stride" in err and "mmzoo.predict.ensemble.predict_input" in err


def test_bad_option_values_are_one_line(tmp_path, capsys, video):
    folder = save_pretrained(mmzoo.create("ipl-i3d-rgb", **IPL), tmp_path / "rgb")
    base = ["predict", "--model", str(folder), "--input", str(video[0]), "--output_dir", str(tmp_path / "o")]
    assert "window_stride must be a positive number of frames, got 0" in one_line_error(
        capsys, [*base, "--predictor.window_stride", "0"])
    assert "ipl-i3d-rgb reads RGB frames: --predictor.flow_stride applies to flow models" in one_line_error(
        capsys, [*base, "--predictor.flow_stride", "1"])
    assert not (tmp_path / "o" / "predictions.json").exists()


def test_ensemble_member_reading_objects_is_refused(video, tmp_path):
    saoa = TINY["SAOA"]
    model = mmzoo.create("ensemble", members=["saoa-i3d-rgb", "saoa-i3d-flow"], member_kwargs=[saoa, saoa])
    with pytest.raises(NotSupportedError, match=r"saoa-i3d-rgb reads object detections .*--data.objects"):
        predict_input(model, str(video[0]), str(tmp_path / "o"))


def test_help_lists_the_options_of_each_family(capsys):
    with pytest.raises(SystemExit) as e:
        main(["predict", "--input", "x", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "  ensemble: window_stride=None, flow_stride=2, method='tvl1', bound=20.0" in text
    assert "  psn: decode_fps=-1.0" in text
    assert "  ave: visual_backbone=None, pretrained_backbone=True, vggish_weights=None" in text
