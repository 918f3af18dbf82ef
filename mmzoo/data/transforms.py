"""Clip transforms on tensors, shared by every DataModule.

Layout: decoders return uint8 ``T,H,W,C``; :func:`to_cthw_float` turns that into float
``C,T,H,W`` in [0, 1], the layout of every transform below and of the batch field ``video``.
Boxes are float ``(N, 4)`` ``x1, y1, x2, y2`` in pixels of the current frame; every geometric
transform takes optional ``boxes`` and returns them moved with the pixels.

Random transforms take an optional ``torch.Generator`` so that tests (and workers) are
reproducible.
"""
from __future__ import annotations

import math
from typing import Any, Literal, Sequence

import torch
import torch.nn.functional as F

from mmzoo.data.samplers import spatial_crop_offsets

__all__ = [
    "KINETICS_MEAN",
    "KINETICS_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "to_cthw_float",
    "to_normalized_cthw",
    "resize_short_side_uint8",
    "short_side_scale",
    "random_short_side_scale",
    "crop",
    "random_crop",
    "center_crop",
    "three_crops",
    "horizontal_flip",
    "random_horizontal_flip",
    "normalize",
    "pack_pathway",
    "slow_indices",
    "scaled_size",
    "to_devkit_boxes",
    "short_side_size",
    "bilinear_taps",
    "crop_plan",
    "finish_crops",
    "finish_deferred_clips",
    "eval_crop_offsets",
    "deferred_view",
    "eval_view",
    "scaled_clip",
    "view_of_scaled",
]

#: The mean / std used by PySlowFast for Kinetics-trained SlowFast models.
from mmzoo.data.constants import IMAGENET_MEAN, IMAGENET_STD, KINETICS_MEAN, KINETICS_STD  # noqa: E402  re-exported


def to_cthw_float(frames: torch.Tensor) -> torch.Tensor:
    """uint8 ``T,H,W,C`` -> float32 ``C,T,H,W`` in [0, 1]."""
    if frames.ndim != 4 or frames.shape[-1] not in (1, 3):
        raise ValueError(f"expected T,H,W,C frames, got shape {tuple(frames.shape)}")
    return frames.permute(3, 0, 1, 2).float().div_(255.0)


def to_normalized_cthw(frames: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 (or float in [0, 255]) ``T,H,W,C`` (any strides, e.g. a crop view) -> contiguous
    float32 ``C,T,H,W`` with ``(x / 255 - mean) / std`` per channel; same result as ``normalize(to_cthw_float(x))`` but one
    pass over contiguous memory."""
    if frames.ndim != 4 or frames.shape[-1] != len(mean) or len(std) != len(mean):
        raise ValueError(f"expected T,H,W,{len(mean)} frames, got shape {tuple(frames.shape)}")
    out = torch.empty((frames.shape[3],) + tuple(frames.shape[:3]), dtype=torch.float32)
    out.copy_(frames.permute(3, 0, 1, 2))
    for ch, (m, s) in enumerate(zip(mean, std)):
        out[ch].mul_(1.0 / (255.0 * s)).sub_(m / s)
    return out


def resize_short_side_uint8(frames: torch.Tensor, size: int) -> torch.Tensor:
    """Resize uint8 ``T,H,W,C`` frames so that the shorter side is ``size`` (bilinear,
    antialiased, torchvision's uint8 kernels); the longer side is ``floor(long * size / short)``."""
    from torchvision.transforms.v2 import functional as VF

    h, w = int(frames.shape[1]), int(frames.shape[2])
    nh, nw = (size, int(w * size / h)) if h <= w else (int(h * size / w), size)
    if (nh, nw) == (h, w):
        return frames
    x = VF.resize(frames.permute(0, 3, 1, 2), [nh, nw], antialias=True)
    return x.permute(0, 2, 3, 1)


def _hw(video: torch.Tensor) -> tuple[int, int]:
    return int(video.shape[-2]), int(video.shape[-1])


def short_side_size(h: int, w: int, size: int) -> tuple[int, int]:
    """``(nh, nw)`` with the shorter side ``size`` and the longer ``floor(long / short * size)``,
    in PySlowFast's float arithmetic (``random_short_side_scale_jitter``, also its test-time
    scaling): the ratio is rounded before the product, which can floor one pixel below
    ``long * size / short`` (100 x 115 at 340: 390, not 391); a frame whose short side already
    is ``size`` keeps its size."""
    if min(h, w) == size:
        return h, w
    if w < h:
        return int(math.floor(float(h) / w * size)), size
    return size, int(math.floor(float(w) / h * size))


def short_side_scale(
    video: torch.Tensor, size: int, boxes: torch.Tensor | None = None, mode: str = "bilinear"
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Resize ``C,T,H,W`` so that the shorter side is ``size`` (aspect ratio kept; the longer side
    is ``floor(long * size / short)`` as in PySlowFast)."""
    h, w = _hw(video)
    nh, nw = short_side_size(h, w, size)
    if (nh, nw) == (h, w):
        return video, boxes
    c, t = video.shape[:2]
    x = video.transpose(0, 1)  # T,C,H,W: T acts as the batch
    x = F.interpolate(x, size=(nh, nw), mode=mode, align_corners=False if mode != "nearest" else None)
    out = x.transpose(0, 1).contiguous()
    if boxes is not None:
        scale = torch.tensor([nw / w, nh / h, nw / w, nh / h], dtype=boxes.dtype)
        boxes = boxes * scale
    return out, boxes


def random_short_side_scale(
    video: torch.Tensor,
    min_size: int,
    max_size: int,
    boxes: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Short-side scale to a size drawn uniformly from ``[min_size, max_size]`` (inclusive)."""
    if min_size > max_size:
        raise ValueError(f"min_size {min_size} > max_size {max_size}")
    size = int(torch.randint(min_size, max_size + 1, (1,), generator=generator))
    return short_side_scale(video, size, boxes)


def crop(
    video: torch.Tensor, y0: int, x0: int, size: int | tuple[int, int], boxes: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Crop ``size`` (``int`` = square, or ``(h, w)``) at ``(y0, x0)``; boxes are shifted and
    clipped to the crop (boxes left with zero area are kept: callers decide whether to drop them,
    so that indices stay aligned with labels)."""
    ch, cw = (size, size) if isinstance(size, int) else size
    h, w = _hw(video)
    if y0 < 0 or x0 < 0 or y0 + ch > h or x0 + cw > w:
        raise ValueError(f"crop ({y0},{x0},{ch},{cw}) outside frame {h}x{w}")
    out = video[..., y0 : y0 + ch, x0 : x0 + cw]
    if boxes is not None:
        shift = torch.tensor([x0, y0, x0, y0], dtype=boxes.dtype)
        boxes = boxes - shift
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, cw)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, ch)
    return out, boxes


def random_crop(
    video: torch.Tensor, size: int, boxes: torch.Tensor | None = None, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Square crop at a uniformly random position."""
    h, w = _hw(video)
    if size > h or size > w:
        raise ValueError(f"crop {size} larger than frame {h}x{w}")
    y0 = int(torch.randint(0, h - size + 1, (1,), generator=generator))
    x0 = int(torch.randint(0, w - size + 1, (1,), generator=generator))
    return crop(video, y0, x0, size, boxes)


def center_crop(
    video: torch.Tensor, size: int, boxes: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    h, w = _hw(video)
    (y0, x0), = spatial_crop_offsets(h, w, size, num_crops=1)
    return crop(video, y0, x0, size, boxes)


def three_crops(video: torch.Tensor, size: int) -> list[torch.Tensor]:
    """The 3 test crops (left/centre/right, or top/centre/bottom for portrait frames)."""
    h, w = _hw(video)
    return [crop(video, y0, x0, size)[0] for y0, x0 in spatial_crop_offsets(h, w, size, num_crops=3)]


def horizontal_flip(
    video: torch.Tensor, boxes: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Mirror left-right; box ``x1, x2`` become ``W - x2, W - x1``."""
    w = int(video.shape[-1])
    out = video.flip(-1)
    if boxes is not None:
        boxes = boxes.clone()
        x1 = w - boxes[:, 2]
        x2 = w - boxes[:, 0]
        boxes[:, 0], boxes[:, 2] = x1, x2
    return out, boxes


def random_horizontal_flip(
    video: torch.Tensor, boxes: torch.Tensor | None = None, p: float = 0.5, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor | None, bool]:
    """Flip with probability ``p``; also returns whether it flipped."""
    flip = bool(torch.rand((1,), generator=generator) < p)
    if flip:
        video, boxes = horizontal_flip(video, boxes)
    return video, boxes, flip


def normalize(video: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``(video - mean) / std`` per channel of a ``C,T,H,W`` (or ``B,C,T,H,W``) tensor."""
    c = video.shape[-4]
    if len(mean) != c or len(std) != c:
        raise ValueError(f"mean/std have {len(mean)}/{len(std)} values for {c} channels")
    shape = (c, 1, 1, 1)
    m = torch.tensor(mean, dtype=video.dtype).view(shape)
    s = torch.tensor(std, dtype=video.dtype).view(shape)
    return (video - m) / s


def slow_indices(num_frames: int, alpha: int, mode: Literal["linspace", "stride"] = "linspace") -> torch.Tensor:
    """Which fast-pathway frames feed the slow pathway.

    ``"linspace"`` (default): ``linspace(0, T-1, T // alpha).long()``, the convention of
    PySlowFast's ``pack_pathway_output`` and PyTorchVideo's ``PackPathway`` (first and last frame
    included; e.g. T=32, alpha=8 -> 0, 10, 20, 31). ``"stride"``: ``arange(0, T, alpha)``, i.e.
    ``frames[::alpha]`` (0, 8, 16, 24)."""
    if alpha <= 0 or num_frames < alpha:
        raise ValueError(f"alpha {alpha} must be in [1, T={num_frames}]")
    if mode == "linspace":
        return torch.linspace(0, num_frames - 1, num_frames // alpha).long()
    if mode == "stride":
        return torch.arange(0, num_frames, alpha, dtype=torch.long)
    raise ValueError(f"mode must be 'linspace' or 'stride', got {mode!r}")


def pack_pathway(
    video: torch.Tensor, alpha: int, mode: Literal["linspace", "stride"] = "linspace"
) -> list[torch.Tensor]:
    """``[slow, fast]`` from a ``(B,) C,T,H,W`` fast clip on any device (time is dim -3)."""
    idx = slow_indices(int(video.shape[-3]), alpha, mode).to(video.device)
    return [video.index_select(-3, idx), video]


def scaled_size(h: int, w: int, short_side: int, max_side: int) -> tuple[float, int]:
    """Scale factor and target short side so that short = short_side and long <= max_side."""
    scale = min(short_side / min(h, w), max_side / max(h, w))
    return scale, max(1, int(round(min(h, w) * scale)))


def to_devkit_boxes(boxes: torch.Tensor, meta: dict) -> torch.Tensor:
    """Boxes of a batch frame (scaled, continuous xyxy) -> the devkit's inclusive pixel
    coordinates of the original frame (undoing the flip, the scaling and the +1 extent)."""
    sx, sy = meta["scale"]
    b = boxes.clone().float()
    if meta["flipped"]:
        w = meta["size"][1]
        b[:, 0], b[:, 2] = w - boxes[:, 2], w - boxes[:, 0]
    b = b / torch.tensor([sx, sy, sx, sy], dtype=b.dtype, device=b.device)
    b[:, 2:] -= 1
    h0, w0 = meta["orig_size"]
    b[:, 0::2] = b[:, 0::2].clamp(0, w0 - 1)
    b[:, 1::2] = b[:, 1::2].clamp(0, h0 - 1)
    return b


# ---------------------------------------------------------------------- deferred geometry
# Training scale jitter + crop + flip as the authors' code does it (PySlowFast
# ``random_short_side_scale_jitter``: ``F.interpolate(mode="bilinear", align_corners=False)`` of
# the whole clip, then ``random_crop`` and ``horizontal_flip``), computed only for the pixels of the
# crop. Bilinear interpolation is separable: output row ``y`` mixes source rows ``i0[y]`` and
# ``i1[y]`` with weight ``w[y]`` on ``i1``, and the same for columns. A worker cuts the source rows
# and columns these taps touch (uint8) and :func:`finish_crops` applies them, batched, wherever the
# batch lives (the accelerator, under a Lightning Trainer).


def bilinear_taps(in_size: int, out_size: int, start: int, length: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source taps ``(i0, i1, w)`` of output positions ``start .. start + length - 1`` when
    ``in_size`` pixels are resized to ``out_size`` by ``F.interpolate(mode="bilinear",
    align_corners=False)``: the same float32 arithmetic as PyTorch's kernels (``scale = in / out``,
    ``src = scale * (dst + 0.5) - 0.5`` (rounded once, as a fused multiply-add) clamped at 0, ``i0 = min(floor(src), in - 1)``,
    ``i1 = i0 + 1`` except at the last pixel, ``w = src - i0``), so that
    ``x[i0] * (1 - w) + x[i1] * w`` is the interpolated value."""
    if in_size < 1 or out_size < 1 or start < 0 or length < 0 or start + length > out_size:
        raise ValueError(f"taps [{start}, {start + length}) outside an output of {out_size} (input {in_size})")
    scale = torch.tensor(in_size, dtype=torch.float32) / torch.tensor(out_size, dtype=torch.float32)
    dst = torch.arange(start, start + length, dtype=torch.float64)
    # one rounding of scale * (dst + 0.5) - 0.5, as the fused multiply-add PyTorch's compiled
    # kernels use (exact in float64: a 24-bit scale times a short half-integer), then float32
    src = (scale.double() * (dst + 0.5) - 0.5).float().clamp_(min=0.0)
    i0 = src.floor().long().clamp_(max=in_size - 1)
    w = (src - i0.float()).clamp_(0.0, 1.0)
    i1 = torch.where(i0 < in_size - 1, i0 + 1, i0)
    return i0, i1, w


def crop_plan(
    h: int, w: int, size: int, y0: int, x0: int, crop: int | tuple[int, int], flip: bool = False
) -> dict[str, Any]:
    """What a worker needs to produce the ``crop`` at ``(y0, x0)`` (optionally mirrored) of a
    ``h x w`` frame short-side scaled to ``size`` (:func:`short_side_size`) without resizing it:
    ``region`` = ``(y_lo, y_hi, x_lo, x_hi)``, the source rows / columns the taps touch, and the
    taps rebased to that region: ``rows`` / ``cols`` (long ``2, crop``: ``i0``, ``i1``) and
    ``row_w`` / ``col_w`` (float32 ``crop``). A flip reverses the column taps."""
    ch, cw = (crop, crop) if isinstance(crop, int) else crop
    nh, nw = short_side_size(h, w, size)
    if y0 < 0 or x0 < 0 or y0 + ch > nh or x0 + cw > nw:
        raise ValueError(f"crop ({y0},{x0},{ch},{cw}) outside the scaled frame {nh}x{nw}")
    r0, r1, rw = bilinear_taps(h, nh, y0, ch)
    c0, c1, cwt = bilinear_taps(w, nw, x0, cw)
    y_lo, y_hi = int(r0[0]), int(r1[-1]) + 1  # taps are monotone
    x_lo, x_hi = int(c0[0]), int(c1[-1]) + 1
    cols = torch.stack([c0, c1]) - x_lo
    if flip:
        cols, cwt = cols.flip(-1), cwt.flip(-1)
    return {"region": (y_lo, y_hi, x_lo, x_hi), "rows": torch.stack([r0, r1]) - y_lo, "row_w": rw,
            "cols": cols, "col_w": cwt, "scaled_size": (nh, nw)}  # fmt: skip


def finish_crops(
    region: torch.Tensor,
    rows: torch.Tensor,
    row_w: torch.Tensor,
    cols: torch.Tensor,
    col_w: torch.Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    batched: bool | None = None,
) -> torch.Tensor:
    """Apply :func:`crop_plan` taps to uint8 source regions and normalise: ``region``
    ``(B,) T, H, W, C`` (zero padding past each sample's own region is never read), ``rows`` /
    ``cols`` ``(B,) 2, crop``, ``row_w`` / ``col_w`` ``(B,) crop`` -> contiguous float32
    ``(B,) C, T, crop_h, crop_w`` equal (to float32 rounding) to ``normalize(flip(crop(
    F.interpolate(x / 255))))``. Source columns are picked on uint8 and mixed, then rows (the
    region has fewer rows than the crop when upscaling); runs on the device of its inputs.
    ``batched``: one ``gather`` per tap over the batch (default on accelerators) or a loop of
    ``index_select`` per sample (default on the CPU, where it is faster); same values."""
    single = region.ndim == 4
    if single:
        region, rows, row_w, cols, col_w = (t.unsqueeze(0) for t in (region, rows, row_w, cols, col_w))
    if region.ndim != 5 or rows.shape[-2] != 2 or cols.shape[-2] != 2:
        raise ValueError(f"expected regions (B,T,H,W,C) and taps (B,2,crop), got {tuple(region.shape)}, "
                         f"{tuple(rows.shape)}, {tuple(cols.shape)}")  # fmt: skip
    b, t, h, w, c = region.shape
    if len(mean) != c or len(std) != c:
        raise ValueError(f"mean/std have {len(mean)}/{len(std)} values for {c} channels")
    ch, cw = rows.shape[-1], cols.shape[-1]
    dev = region.device
    ri, ci = rows.to(dev, torch.long), cols.to(dev, torch.long)
    rw = row_w.to(dev, torch.float32)
    cwt = col_w.to(dev, torch.float32)
    out = torch.empty((b, c, t, ch, cw), dtype=torch.float32, device=dev)
    if not (dev.type != "cpu" if batched is None else batched):  # index_select: faster than gather on CPU
        for i in range(b):
            x = _mix(region[i], 2, ci[i], cwt[i])
            out[i].copy_(_mix(x, 1, ri[i], rw[i]).permute(3, 0, 1, 2))
    else:  # one batched gather per tap
        g = [region.gather(3, ci[:, k].view(b, 1, 1, cw, 1).expand(b, t, h, cw, c)) for k in (0, 1)]
        x = torch.lerp(g[0].float(), g[1].float(), cwt.view(b, 1, 1, cw, 1))  # columns first: on h < ch rows
        g = [x.gather(2, ri[:, k].view(b, 1, ch, 1, 1).expand(b, t, ch, cw, c)) for k in (0, 1)]
        out.copy_(torch.lerp(g[0], g[1], rw.view(b, 1, ch, 1, 1)).permute(0, 4, 1, 2, 3))
    scale = torch.tensor([1.0 / (255.0 * s) for s in std], dtype=torch.float32, device=dev).view(1, c, 1, 1, 1)
    shift = torch.tensor([m / s for m, s in zip(mean, std)], dtype=torch.float32, device=dev).view(1, c, 1, 1, 1)
    out.mul_(scale).sub_(shift)
    return out[0] if single else out


def _mix(x: torch.Tensor, dim: int, taps: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``x[i0] * (1 - w) + x[i1] * w`` along ``dim`` as float32 (``torch.lerp``). Where every weight
    is 0 (an axis that is not resized: the short side already at its target, or the long side of
    such a frame) this is exactly ``x[i0]``: one pick, a slice when the taps are consecutive."""
    if bool(w.any()):
        shape = [1] * x.ndim
        shape[dim] = w.numel()
        return torch.lerp(x.index_select(dim, taps[0]).float(), x.index_select(dim, taps[1]).float(), w.view(shape))
    i0 = taps[0]
    if i0.numel() > 1 and bool((i0[1:] - i0[:-1] == 1).all()):
        return x.narrow(dim, int(i0[0]), i0.numel()).float()
    return x.index_select(dim, i0).float()


def finish_deferred_clips(batch: dict[str, Any]) -> dict[str, Any]:
    """Turn ``video_deferred`` (a collated batch, or one sample) into the ``video`` the model
    takes: gather source rows, mix, gather columns, mix, normalise
    (:func:`~mmzoo.data.transforms.finish_crops`) and pack ``[slow, fast]`` when ``alpha`` is set;
    runs on the device of the tensors. The result equals (to float32 rounding) PySlowFast's
    ``F.interpolate(mode="bilinear", align_corners=False)`` short-side scaling of the whole
    clip followed by the crop, the flip and the normalisation. Returns a new dict with ``video``
    in place of ``video_deferred``; a dict without ``video_deferred`` is returned as is.
    :class:`~mmzoo.data.clips.ClipDataModule` calls it in ``on_after_batch_transfer``; call it
    yourself when iterating its DataLoader (or dataset) without a Trainer."""
    if not isinstance(batch, dict) or "video_deferred" not in batch:
        return batch
    d = batch["video_deferred"]
    video = finish_crops(d["region"], d["rows"], d["row_w"], d["cols"], d["col_w"], d["mean"], d["std"])
    if d["alpha"]:
        video = pack_pathway(video, int(d["alpha"]), d["pathway_mode"])
    out: dict[str, Any] = {"video": video}
    out.update((k, v) for k, v in batch.items() if k != "video_deferred")
    return out


def eval_crop_offsets(h: int, w: int, size: int, crop: int, num_crops: int) -> list[tuple[int, int]]:
    """``(y0, x0)`` of the ``num_crops`` (1 or 3) test crops of a ``h x w`` frame short-side scaled
    to ``size``, in the scaled frame (:func:`short_side_size`): PySlowFast's ``uniform_crop``
    (first / centre / last along the longer side, the other axis centred, an odd margin's centre
    at ``ceil(margin / 2)``; :func:`~mmzoo.data.samplers.spatial_crop_offsets` with
    ``centre="ceil"``)."""
    nh, nw = short_side_size(h, w, size)
    return spatial_crop_offsets(nh, nw, crop, num_crops, centre="ceil")


def deferred_view(
    frames: torch.Tensor,
    size: int,
    y0: int,
    x0: int,
    crop: int,
    flip: bool,
    mean: Sequence[float],
    std: Sequence[float],
    alpha: int | None = None,
    pathway_mode: Literal["linspace", "stride"] = "linspace",
) -> dict[str, Any]:
    """The ``video_deferred`` of one view of native uint8 ``T, H, W, C`` ``frames``: the source
    region of the ``crop`` at ``(y0, x0)`` of the frames short-side scaled to ``size`` (optionally
    mirrored) and its taps (:func:`crop_plan`), with the normalisation / packing settings;
    :func:`finish_deferred_clips` turns it into ``video``."""
    plan = crop_plan(int(frames.shape[1]), int(frames.shape[2]), size, y0, x0, crop, flip)
    ya, yb, xa, xb = plan["region"]
    return {"region": frames[:, ya:yb, xa:xb].contiguous(), "rows": plan["rows"], "row_w": plan["row_w"],
            "cols": plan["cols"], "col_w": plan["col_w"], "mean": tuple(mean), "std": tuple(std),
            "alpha": alpha, "pathway_mode": pathway_mode}  # fmt: skip


def scaled_clip(frames: torch.Tensor, size: int) -> torch.Tensor:
    """Native uint8 ``T, H, W, C`` ``frames`` short-side scaled to ``size`` (:func:`short_side_size`)
    by ``F.interpolate(mode="bilinear", align_corners=False)``: float32 ``T, C, h, w`` in [0, 255],
    channels-last in memory (PyTorch's fast CPU kernel). The CPU way to the pixels of the taps
    path: on a CPU, resizing the whole frame once (and sharing it between the crops of a clip)
    costs less than gathering taps, most of all when downscaling."""
    h, w = int(frames.shape[1]), int(frames.shape[2])
    nh, nw = short_side_size(h, w, size)
    x = frames.permute(0, 3, 1, 2).float()  # T, C, H, W over T, H, W, C memory: channels-last already
    if (nh, nw) != (h, w):
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False)
    return x


def view_of_scaled(
    scaled: torch.Tensor,
    y0: int,
    x0: int,
    crop: int,
    flip: bool,
    mean: Sequence[float],
    std: Sequence[float],
    alpha: int | None = None,
    pathway_mode: Literal["linspace", "stride"] = "linspace",
) -> torch.Tensor | list[torch.Tensor]:
    """The ``crop`` at ``(y0, x0)`` of a :func:`scaled_clip` (optionally mirrored), normalised as
    :func:`finish_crops` does (``x / (255 std) - mean / std``): float ``C, T, crop, crop``, or
    ``[slow, fast]`` with ``alpha``; equal to the taps path to float32 rounding."""
    x = scaled[:, :, y0 : y0 + crop, x0 : x0 + crop]
    if flip:
        x = x.flip(-1)
    out = to_normalized_cthw(x.permute(0, 2, 3, 1), mean, std)  # T, crop, crop, C view -> C, T, crop, crop
    return pack_pathway(out, int(alpha), pathway_mode) if alpha else out


def eval_view(
    frames: torch.Tensor,
    size: int,
    crop: int,
    mean: Sequence[float],
    std: Sequence[float],
    num_crops: int = 1,
    crop_index: int = 0,
    alpha: int | None = None,
    pathway_mode: Literal["linspace", "stride"] = "linspace",
) -> torch.Tensor | list[torch.Tensor]:
    """Test view ``crop_index`` of ``num_crops`` of native uint8 ``T, H, W, C`` ``frames`` as the
    model takes it (float ``C, T, crop, crop``, or ``[slow, fast]`` with ``alpha``): PySlowFast's
    test transform (``F.interpolate(mode="bilinear", align_corners=False)`` to the short side
    ``size``, ``uniform_crop``, ``(x / 255 - mean) / std``; :func:`scaled_clip` +
    :func:`view_of_scaled`); the pixels of :class:`~mmzoo.data.video_dataset.ClipDataset`'s
    evaluation views (and of ``mmzoo predict --input``'s windows)."""
    y0, x0 = eval_crop_offsets(int(frames.shape[1]), int(frames.shape[2]), size, crop, num_crops)[crop_index]
    return view_of_scaled(scaled_clip(frames, size), y0, x0, crop, False, mean, std, alpha, pathway_mode)
