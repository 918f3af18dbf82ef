"""`mmzoo predict --input video.mp4` for PSN (its untrimmed-video test protocol, Wang thesis ch. 5)
and for the optical-flow stream of IPL (TV-L1 flow as the EPIC-Kitchens release; thesis ch. 4),
through the CLI, checked against the model run by hand on inputs computed here without mmzoo:
frames decoded with PyAV, the 1-fps grid and TSN segment centres by formula, the flow by OpenCV's
Dual TV-L1 itself, quantised by the release's formula and JPEG-coded with OpenCV / decoded with
torchvision. Frame sizes equal the models' test short side, so no resize is involved."""
from __future__ import annotations


import av
import cv2
import numpy as np
import pytest
import torch
from test_predict_classify import check_top, pyav_frames
from test_predict_classify import run as run_cli
from torchvision.io import decode_jpeg

import mmzoo
from mmzoo.cli import main
from mmzoo.hub.repo import save_pretrained
from mmzoo.predict.flow import EPIC_FLOW_BOUND, EPIC_FLOW_STRIDE

# (imported at collection: mmzoo.predict.classify still registers "ipl" itself when first imported;
# importing the flow module after it, as here, leaves PREDICTORS["ipl"] on the flow-aware predictor)

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# crop 28: the id's 256 short side for 224 crops gives round(28 * 256 / 224) = 32, the video's height
PSN_TINY = dict(num_classes=5, num_segments=8, num_selected=3, recognizer_layers=[1, 1, 1, 1],
                recognizer_channels=[8, 8, 8, 8], recognizer_stem_width=8, crop_size=28, sampler_pretrained=False,
                sampler_repeats=[1, 1, 1], sampler_channels=[8, 16, 16, 16, 32], crm_filters=[8, 8, 8], crm_out_dim=8)
IPL_TINY = dict(width_multiplier=0.125, frames=8, crop_size=32, num_verbs=5, num_nouns=6, top_k=2)


def write_video(path, frames: np.ndarray, fps: float) -> None:
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=int(fps))
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        s.options = {"crf": "0"}
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def test_psn_scores_the_centre_frames_of_the_1fps_grid_and_recognises_the_top_m(tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (90, 32, 48, 3), dtype=np.uint8)  # 9 s at 10 fps
    write_video(tmp_path / "v.mp4", frames, 10.0)
    torch.manual_seed(0)
    model = mmzoo.create("psn-r101-anet", **PSN_TINY).eval()
    torch.nn.init.normal_(model.sampler.score.weight, std=3.0)  # spread q (a random sampler gives ~0.5 each)
    torch.nn.init.normal_(model.recognizer.fc.weight, std=0.5)
    res, out = run_cli(model, tmp_path / "v.mp4", tmp_path)

    # 1-fps grid: frames 0, 10, ..., 80 (9); 8 segments [floor(9i/8), floor(9(i+1)/8)), centre of each
    grid = [10 * k for k in range(9)]
    bounds = [((9 * i) // 8, (9 * (i + 1)) // 8) for i in range(8)]
    picks = [grid[lo + (hi - lo - 1) // 2] for lo, hi in bounds]
    assert [c["frame"] for c in res["candidates"]] == picks == [0, 10, 20, 30, 40, 50, 60, 70]
    assert [c["time"] for c in res["candidates"]] == pytest.approx([f / 10 for f in picks])

    native = pyav_frames(tmp_path / "v.mp4")
    crops = torch.from_numpy(native[picks][:, 2:30, 10:38]).permute(3, 0, 1, 2).float() / 255  # centre 28 of 32 x 48
    m, s = torch.tensor(IMAGENET_MEAN).view(3, 1, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1, 1)
    clip = ((crops - m) / s)[None]
    with torch.no_grad():
        q = model.sampler(clip)[0]
        top = sorted(q.topk(3).indices.tolist())
        logits = model.recognizer.video_logits(clip[:, :, top])[0]  # 3, K
        video_p = (q[top][:, None] * logits).sum(0).softmax(-1)  # Eq. 5.4 (sum), softmax
    assert [c["q"] for c in res["candidates"]] == pytest.approx(q.tolist(), abs=1e-5)
    assert [c["position"] for c in res["candidates"] if c["selected"]] == top
    assert [e["position"] for e in res["selected"]] == top
    assert [e["frame"] for e in res["selected"]] == [picks[i] for i in top]
    assert [e["weight"] for e in res["selected"]] == pytest.approx(q[top].tolist(), abs=1e-5)
    for e, lg in zip(res["selected"], logits):
        check_top(e["top_k"], lg.softmax(-1))
    check_top(res["top_k"]["class"], video_p)
    cost = model.cost_breakdown(28)
    assert res["gflops"]["total"] == pytest.approx(cost["total"]) and cost["total"] > 0
    assert res["gflops"]["total"] == pytest.approx(res["gflops"]["sampler"] + res["gflops"]["recognizer"])
    assert (res["num_segments"], res["num_selected"], res["decode_fps"]) == (8, 3, 1.0)

    strip = cv2.cvtColor(cv2.imread(str(out / "predictions.png")), cv2.COLOR_BGR2RGB)
    assert strip.shape == (28, 8 * 28, 3)
    # the selected tiles are framed in green (bottom-left pixel of each tile), the others are not
    framed = [bool((strip[27, 28 * i] == (0, 255, 0)).all()) for i in range(8)]
    assert framed == [i in top for i in range(8)]
    # an unselected tile below the caption band is the view itself
    other = next(i for i in range(8) if i not in top)
    assert np.abs(strip[20:27, 28 * other + 2:28 * other + 26].astype(int)
                  - native[picks[other]][22:29, 12:36].astype(int)).max() <= 1


def tvl1_flow_images(native: np.ndarray, stride: int = 2) -> np.ndarray:
    """u / v uint8 images of the EPIC release made here: OpenCV's Dual TV-L1 on grey frames
    ``stride`` apart, clipped to +-20 px, ``round((f + 20) * 255 / 40)``, JPEG (quality 95) coded
    by OpenCV and decoded by torchvision -> ``F, 2, H, W``."""
    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in native[::stride]]
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
    out = []
    for a, b in zip(grey[:-1], grey[1:]):
        flow = tvl1.calc(a, b, None)  # H, W, 2 (x, y)
        q = np.round((np.clip(flow, -20, 20) + 20) * (255.0 / 40)).astype(np.uint8)
        chans = []
        for c in range(2):
            ok, buf = cv2.imencode(".jpg", q[..., c], [cv2.IMWRITE_JPEG_QUALITY, 95])
            assert ok
            chans.append(decode_jpeg(torch.from_numpy(buf.ravel()))[0].numpy())
        out.append(np.stack(chans))
    return np.stack(out)


def test_ipl_flow_stream_reads_the_tvl1_flow_of_the_video(tmp_path):
    rng = np.random.default_rng(1)
    texture = cv2.GaussianBlur(rng.integers(0, 256, (32, 160), dtype=np.uint8), (5, 5), 1.5)
    # a texture sliding 1 px per frame to the right: flow x = +2 px between frames 2 apart
    frames = np.stack([np.repeat(texture[:, 80 - t:128 - t, None], 3, axis=2) for t in range(40)])
    write_video(tmp_path / "v.mp4", frames, 30.0)
    torch.manual_seed(2)
    model = mmzoo.create("ipl-i3d-flow", **IPL_TINY).eval()
    res, out = run_cli(model, tmp_path / "v.mp4", tmp_path)

    native = pyav_frames(tmp_path / "v.mp4")
    flow = tvl1_flow_images(native)  # 19 flows of frame pairs (0, 2), (2, 4), ...
    interior = flow[:, 0, 4:-4, 4:-4].astype(float)
    assert np.median(interior) == pytest.approx(127.5 + 2 * 255 / 40, abs=2)  # +2 px: u = 140
    assert np.median(flow[:, 1, 4:-4, 4:-4]) == pytest.approx(127.5, abs=2)  # no vertical motion
    assert len(flow) == 19 and res["flow"]["num_flows"] == 16  # the flow of frames 0..33 only: the 2 windows
    assert (res["flow"]["stride"], res["flow"]["bound"]) == (EPIC_FLOW_STRIDE, EPIC_FLOW_BOUND) == (2, 20.0)

    # windows of 8 RGB frames at stride 2: numbers s+1, s+3, ..., s+15 -> flow frames s/2+1 .. s/2+8
    assert [(w["start"], w["end"], tuple(w["flow_frames"])) for w in res["windows"]] == [
        (0, 16, (1, 8)), (16, 32, (9, 16))]
    verbs, nouns = [], []
    for w in res["windows"]:
        first = w["start"] // 2
        x = torch.from_numpy(flow[first:first + 8, :, :, 8:40]).permute(1, 0, 2, 3).float() / 255  # centre 32 of 48
        with torch.no_grad():
            o = model(((x - 0.5) / 0.5)[None])
        pv, pn = o["verb"][0].softmax(-1), o["noun"][0].softmax(-1)
        verbs.append(pv)
        nouns.append(pn)
        check_top(w["top_k"]["verb"], pv)
        check_top(w["top_k"]["noun"], pn)
    check_top(res["top_k"]["verb"], torch.stack(verbs).mean(0))
    check_top(res["top_k"]["noun"], torch.stack(nouns).mean(0))
    assert pyav_frames(out / "predictions.mp4").shape[0] == 40


def test_saoa_flow_is_refused_in_one_line_naming_the_objects(tmp_path, capsys):
    model = mmzoo.create("saoa-i3d-flow", width_multiplier=0.125, frames=8, crop_size=32, num_verbs=5, num_nouns=6,
                         object_dim=16, num_objects=10)
    folder = save_pretrained(model, tmp_path / "saoa")
    with pytest.raises(SystemExit) as e:
        main(["predict", "--model", str(folder), "--input", str(tmp_path / "missing.mp4"), "--output_dir",
              str(tmp_path / "o")])
    assert e.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "saoa-i3d-flow" in err[0] and "--data.objects" in err[0]
    assert not (tmp_path / "o" / "predictions.json").exists()
