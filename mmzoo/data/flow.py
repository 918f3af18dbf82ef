"""Optical flow: compute it (OpenCV TV-L1), store it in a documented cache, read it back exactly.

Computation: :func:`compute_flow` returns the flow from frame ``t`` to frame ``t + 1`` of a clip,
``float32 (T - 1, 2, H, W)`` in pixels (channel 0 = x / horizontal, 1 = y / vertical), with
OpenCV's Dual TV-L1 (``cv2.optflow.DualTVL1OpticalFlow_create``, default parameters: the TV-L1
flow of the two-stream literature and of Arrow of Time, Wei et al. CVPR 2018) on grey frames,
or Farneback (``method="farneback"``, much faster; for tests and quick experiments).

Cache layout (:class:`FlowCache`, one folder per video and direction)::

    <cache root>/<video key>/<direction>/meta.json   {"format", "bound", "method", "num_flows", "height", "width"}
    <cache root>/<video key>/<direction>/flow_x_00001.png ... flow_y_00001.png ...   ("png" / "jpg")
    <cache root>/<video key>/<direction>/flow.npy                                    ("npy")

``direction`` is ``forward`` (flow of the clip as recorded) or ``backward`` (flow of the
time-reversed clip: from frame ``t + 1`` to ``t``, stored in reversed-time order, so that
reading ``backward`` gives the flow a reversed video would produce). File numbering starts at 1
(the denseflow / TSN convention).

Formats:

* ``"png"`` and ``"jpg"``: the standard 8-bit flow images of the two-stream releases:
  ``q = round((clip(f, -bound, bound) + bound) * 255 / (2 bound))``, read back as
  ``q * 2 bound / 255 - bound`` (``bound`` = 20 px by default). PNG is lossless after this
  quantisation: :func:`read_flow` returns exactly :func:`dequantise` ( :func:`quantise` (flow)).
  JPEG adds compression loss (as in the released flow of UCF101 / Kinetics two-stream work).
* ``"npy"``: float32, lossless: the flow is read back bit for bit.

Precomputed flow shipped with a dataset (JPEG pairs such as ``flow_x_00001.jpg`` /
``flow_y_00001.jpg``, or Arrow of Time's ``flowx_0001.jpg``) is read by
:func:`read_flow_images` with the release's name pattern and bound.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np

from mmzoo.errors import DataError

__all__ = [
    "FlowCache",
    "FlowFormat",
    "FlowMethod",
    "compute_flow",
    "dequantise",
    "quantise",
    "read_flow",
    "read_flow_images",
    "write_flow",
]

FlowMethod = Literal["tvl1", "farneback"]
FlowFormat = Literal["png", "jpg", "npy"]
_PATTERN = "flow_{axis}_{index:05d}.{ext}"


def _grey(frame: np.ndarray) -> np.ndarray:
    import cv2

    if frame.ndim == 2:
        return np.ascontiguousarray(frame, dtype=np.uint8)
    return cv2.cvtColor(np.ascontiguousarray(frame, dtype=np.uint8), cv2.COLOR_RGB2GRAY)


def compute_flow(frames: np.ndarray, method: FlowMethod = "tvl1") -> np.ndarray:
    """Flow between consecutive ``frames`` (``T, H, W[, 3]`` uint8 RGB or grey) ->
    ``float32 (T - 1, 2, H, W)``."""
    import cv2

    frames = np.asarray(frames)
    if frames.ndim not in (3, 4) or len(frames) < 2:
        raise ValueError(f"need at least 2 frames (T, H, W[, 3]); got shape {frames.shape}")
    grey = [_grey(f) for f in frames]
    if method == "tvl1":
        tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
        calc = lambda a, b: tvl1.calc(a, b, None)
    elif method == "farneback":
        calc = lambda a, b: cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 9, 3, 5, 1.1, 0)
    else:
        raise ValueError(f"unknown flow method {method!r} (tvl1 or farneback)")
    out = np.empty((len(grey) - 1, 2, *grey[0].shape), dtype=np.float32)
    for t in range(len(grey) - 1):
        out[t] = calc(grey[t], grey[t + 1]).transpose(2, 0, 1)
    return out


def quantise(flow: np.ndarray, bound: float = 20.0) -> np.ndarray:
    """The standard 8-bit flow image values (module docstring)."""
    q = np.round((np.clip(flow, -bound, bound) + bound) * (255.0 / (2 * bound)))
    return q.astype(np.uint8)


def dequantise(q: np.ndarray, bound: float = 20.0) -> np.ndarray:
    """Inverse of :func:`quantise` up to its rounding: ``q * 2 bound / 255 - bound`` (float32)."""
    return (q.astype(np.float32) * np.float32(2 * bound / 255.0) - np.float32(bound)).astype(np.float32)


def write_flow(folder: str | Path, flow: np.ndarray, fmt: FlowFormat = "png", bound: float = 20.0,
               method: str = "") -> Path:
    """Write ``flow`` (``N, 2, H, W``) into ``folder`` in the cache layout; returns the folder."""
    import cv2

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    flow = np.asarray(flow, dtype=np.float32)
    if flow.ndim != 4 or flow.shape[1] != 2:
        raise ValueError(f"flow must be (N, 2, H, W), got {flow.shape}")
    if fmt == "npy":
        np.save(folder / "flow.npy", flow)
    elif fmt in ("png", "jpg"):
        q = quantise(flow, bound)
        params = [cv2.IMWRITE_JPEG_QUALITY, 95] if fmt == "jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 3]
        for i in range(len(q)):
            for c, axis in enumerate("xy"):
                if not cv2.imwrite(str(folder / _PATTERN.format(axis=axis, index=i + 1, ext=fmt)), q[i, c], params):
                    raise DataError(f"could not write {folder / _PATTERN.format(axis=axis, index=i + 1, ext=fmt)}")
    else:
        raise ValueError(f"unknown flow format {fmt!r} (png, jpg or npy)")
    meta = {"format": fmt, "bound": bound, "method": method, "num_flows": int(flow.shape[0]),
            "height": int(flow.shape[2]), "width": int(flow.shape[3])}
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder


def read_flow_images(folder: str | Path, num_flows: int, bound: float = 20.0, pattern: str = _PATTERN,
                     ext: str = "jpg", first: int = 1) -> np.ndarray:
    """Flow stored as x / y 8-bit image pairs named by ``pattern`` (``{axis}``, ``{index}``,
    ``{ext}``) -> ``float32 (num_flows, 2, H, W)``; a missing or unreadable image is a
    :class:`DataError` naming it."""
    import cv2

    folder = Path(folder)
    out = None
    for i in range(num_flows):
        for c, axis in enumerate("xy"):
            path = folder / pattern.format(axis=axis, index=first + i, ext=ext)
            img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) if path.is_file() else None
            if img is None:
                raise DataError(f"flow image missing or unreadable: {path}")
            if out is None:
                out = np.empty((num_flows, 2, *img.shape), dtype=np.float32)
            elif img.shape != out.shape[2:]:
                raise DataError(f"{path}: size {img.shape}, the other flow images are {out.shape[2:]}")
            out[i, c] = dequantise(img, bound)
    return out


def read_flow(folder: str | Path) -> np.ndarray:
    """A cache folder written by :func:`write_flow` -> ``float32 (N, 2, H, W)``."""
    folder = Path(folder)
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        raise DataError(f"flow cache folder without meta.json: {folder}")
    try:
        meta = json.loads(meta_path.read_text())
        fmt, n = meta["format"], int(meta["num_flows"])
    except (ValueError, KeyError) as err:
        raise DataError(f"{meta_path}: malformed flow cache metadata ({err})") from None
    if fmt == "npy":
        flow = np.load(folder / "flow.npy", allow_pickle=False)
    else:
        flow = read_flow_images(folder, n, float(meta["bound"]), ext=fmt)
    if flow.shape != (n, 2, meta["height"], meta["width"]):
        raise DataError(f"{folder}: flow of shape {flow.shape}, meta.json says {(n, 2, meta['height'], meta['width'])}")
    return flow


class FlowCache:
    """Flow of whole videos, computed once per (video, direction) and read back from ``root``.

    Args:
        root: cache folder (layout in the module docstring); ``None`` keeps nothing on disk.
        method / fmt / bound: how the flow is computed and stored.
    """

    def __init__(self, root: str | Path | None, method: FlowMethod = "tvl1", fmt: FlowFormat = "png",
                 bound: float = 20.0) -> None:
        self.root = Path(root) if root is not None else None
        self.method, self.fmt, self.bound = method, fmt, bound

    def folder(self, key: str, direction: str) -> Path | None:
        return None if self.root is None else self.root / key / direction

    def get(self, key: str, direction: Literal["forward", "backward"], frames: Callable[[], np.ndarray]) -> np.ndarray:
        """The ``direction`` flow of video ``key``; ``frames()`` decodes the video when the cache
        has no such entry (or is disabled). Cached values are returned as read back from disk,
        so a cache hit and a miss give the same numbers."""
        folder = self.folder(key, direction)
        if folder is not None and (folder / "meta.json").is_file():
            return read_flow(folder)
        clip = frames()
        if direction == "backward":
            clip = clip[::-1]
        flow = compute_flow(clip, self.method)
        if folder is None:
            if self.fmt == "npy":
                return flow
            return dequantise(quantise(flow, self.bound), self.bound)  # what the cache would return (png)
        write_flow(folder, flow, self.fmt, self.bound, self.method)
        return read_flow(folder)
