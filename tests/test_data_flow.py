"""Optical flow: TV-L1 recovers a known motion, the cache layout reads back exactly (PNG after its
8-bit quantisation, NPY bit for bit), the backward direction is the reversed clip's flow, and the
"avoid cheating" preprocessing of Arrow of Time removes black borders and camera motion."""
from __future__ import annotations

import json

import numpy as np
import pytest

from mmzoo.data.arrow_of_time import remove_black, stabilise_frames
from mmzoo.data.flow import (
    FlowCache,
    compute_flow,
    dequantise,
    quantise,
    read_flow,
    read_flow_images,
    write_flow,
)
from mmzoo.errors import DataError


def _texture(rng, h=40, w=40):
    import cv2

    img = cv2.GaussianBlur(rng.integers(0, 256, (h, w)).astype(np.uint8), (5, 5), 1.5)
    return np.repeat(img[..., None], 3, -1)


def _shifted(base, dy, dx, n):
    return np.stack([np.roll(base, (dy * t, dx * t), axis=(0, 1)) for t in range(n)])


def test_tvl1_recovers_a_translation_and_the_reverse_is_its_opposite():
    rng = np.random.default_rng(0)
    frames = _shifted(_texture(rng), 1, 2, 3)
    flow = compute_flow(frames, "tvl1")
    assert flow.shape == (2, 2, 40, 40) and flow.dtype == np.float32
    centre = flow[:, :, 8:-8, 8:-8]
    assert abs(float(np.median(centre[:, 0])) - 2.0) < 0.2 and abs(float(np.median(centre[:, 1])) - 1.0) < 0.2
    back = compute_flow(frames[::-1], "tvl1")[:, :, 8:-8, 8:-8]
    assert abs(float(np.median(back[:, 0])) + 2.0) < 0.2


def test_quantisation_is_the_standard_8_bit_map():
    f = np.array([-25.0, -20.0, 0.0, 20.0, 30.0], np.float32)
    assert quantise(f).tolist() == [0, 0, 128, 255, 255]
    assert dequantise(np.array([0, 255], np.uint8)).tolist() == [-20.0, 20.0]


@pytest.mark.parametrize("fmt", ["png", "npy"])
def test_cache_reads_back_exactly(tmp_path, fmt):
    rng = np.random.default_rng(1)
    flow = rng.normal(0, 8, (3, 2, 12, 16)).astype(np.float32)
    folder = write_flow(tmp_path / "v" / "forward", flow, fmt=fmt, bound=20.0, method="tvl1")
    back = read_flow(folder)
    expected = flow if fmt == "npy" else dequantise(quantise(flow, 20.0), 20.0)
    assert back.dtype == np.float32 and np.array_equal(back, expected)
    meta = json.loads((folder / "meta.json").read_text())
    assert meta == {"format": fmt, "bound": 20.0, "method": "tvl1", "num_flows": 3, "height": 12, "width": 16}
    if fmt == "png":
        assert sorted(p.name for p in folder.glob("*.png"))[:2] == ["flow_x_00001.png", "flow_x_00002.png"]


def test_jpeg_is_close_but_lossy_and_shipped_images_read_with_their_pattern(tmp_path):
    rng = np.random.default_rng(2)
    flow = np.repeat(np.linspace(-10, 10, 16, dtype=np.float32)[None, None, None], 12, 2).repeat(2, 1).repeat(2, 0)
    flow += rng.normal(0, 0.5, flow.shape).astype(np.float32)
    back = read_flow(write_flow(tmp_path / "j", flow, fmt="jpg"))
    assert np.abs(back - flow).max() < 1.5
    # the Arrow of Time authors' naming: flowx_0001.jpg / flowy_0001.jpg
    import cv2

    for i in range(2):
        for c, axis in enumerate("xy"):
            cv2.imwrite(str(tmp_path / f"flow{axis}_{i + 1:04d}.png"), quantise(flow[i, c]))
    got = read_flow_images(tmp_path, 2, pattern="flow{axis}_{index:04d}.{ext}", ext="png")
    assert np.array_equal(got, dequantise(quantise(flow[:2])))
    with pytest.raises(DataError, match="flowx_0003.png"):
        read_flow_images(tmp_path, 3, pattern="flow{axis}_{index:04d}.{ext}", ext="png")


def test_flow_cache_computes_once_and_backward_is_the_reversed_clip(tmp_path):
    rng = np.random.default_rng(3)
    frames = _shifted(_texture(rng, 24, 24), 0, 1, 4)
    calls = []

    def decode():
        calls.append(1)
        return frames

    cache = FlowCache(tmp_path, method="farneback", fmt="png")
    fw = cache.get("cls/video", "forward", decode)
    assert np.array_equal(cache.get("cls/video", "forward", decode), fw) and len(calls) == 1
    assert (tmp_path / "cls" / "video" / "forward" / "meta.json").is_file()
    bw = cache.get("cls/video", "backward", decode)
    assert np.array_equal(bw, dequantise(quantise(compute_flow(frames[::-1], "farneback"))))
    assert float(np.median(fw[:, 0])) > 0.5 > -0.5 > float(np.median(bw[:, 0]))


def test_black_borders_and_black_frames_are_removed():
    rng = np.random.default_rng(4)
    frames = np.zeros((5, 30, 40, 3), np.uint8)
    frames[:, 4:26, 6:34] = rng.integers(40, 255, (5, 22, 28, 3))
    frames[2] = 0  # a black frame
    out = remove_black(frames)
    assert out.shape == (4, 22, 28, 3) and out.min(axis=(1, 2, 3)).max() >= 40


def test_stabilisation_removes_a_camera_pan():
    rng = np.random.default_rng(5)
    frames = _shifted(_texture(rng, 48, 48), 0, 2, 5)  # camera panning 2 px / frame
    out = stabilise_frames(frames, "translation")
    assert out.shape[0] == 5 and out.shape[2] < 48
    motion_before = np.abs(frames[1:].astype(float) - frames[:-1]).mean()
    motion_after = np.abs(out[1:].astype(float) - out[:-1]).mean()
    assert motion_after < 0.25 * motion_before
