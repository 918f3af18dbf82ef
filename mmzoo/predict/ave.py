"""`mmzoo predict --model <ave id> --input video.mp4`: audio-visual events over ten 1-s segments.

Runs an AVE event localiser (:class:`mmzoo.models.ave.AVEventLocalizer`: AVSDN, CM-CoAtt, AVEL,
the naive LSTM; Lin, MSc thesis NTU 2019, Sec. 3.0.2-3.0.4) on one 10-second video, the length of
every AVE video (Sec. 4.0.1):

1. the input features are extracted with the zoo's AVE extractor
   (:func:`mmzoo.data.ave_features.extract_ave_features`, the same code as the ``ave``
   DataModule's video mode): per 1-s segment one frame (the centre frame by default) through the
   visual backbone, ``7 x 7 x Cv``, and one 128-d VGGish embedding of the segment's audio. The
   backbone follows the model's ``visual_dim``: 2048 -> ResNet-152 (``resnet152.tv_in1k``, the
   thesis's "ResNet-151", Sec. 3.0.2 / 4.0.2); 512 -> VGG-19 pool5 (``vgg19.tv_in1k``, the
   ``7 x 7 x 512`` maps of Tian et al.'s released features; the thesis calls their backbone
   VGG16 [AMBIG], pass ``visual_backbone="vgg16.tv_in1k"`` for that reading). Other widths need
   ``visual_backbone``. Weights that cannot be had (offline, no cache; VGGish without
   ``vggish_weights``) give the extractor's warned, seeded random initialisation, and the JSON
   says so. The features are kept in ``OUT/features/`` in the released AVE format;
2. the model gives per-segment logits ``m_t`` over the 28 events + background; the decision is
   the model's own evaluation rule (``SegmentAccuracy``, Sec. 4.0.2, Tian's ``compute_acc``):
   argmax over all ``C + 1`` classes, background when that argmax is the last class;
3. it writes

* ``predictions.json``: ``{"video", "model", "duration", "segments": [{"index", "start", "end",
  "frame_index", "probabilities" (softmax of m_t, C + 1 floats), "top_k": [{"index", "label",
  "score"}], "class_index", "label", "score", "background"}], "events" (runs of one event label:
  ``label``, ``class_index``, ``start``, ``end`` in s, ``mean_score``), "class_names",
  "background_index", "decision", "features" (backbone, frame rule, whether pretrained weights
  were really loaded), "warnings", "timeline", "attention"}``;
* ``timeline.png``: the ten segments left to right: the frame the model saw, the decided label
  (event colour, grey for background) with its probability, and a probability strip (rows: the
  classes that reach the top 3 of some segment and background; cell darkness = probability);
* ``attention.png`` for models with a spatial attention (``attention`` in add / dot / cmcoatt:
  AVEL's audio-guided attention, CM-CoAtt's co-attention, Eqs. 3.6-3.7): each segment's frame
  with its ``7 x 7`` map ``M_t`` (``out["attention"]``, softmax over the 49 regions) upsampled
  bilinearly and blended in as a heat map, scaled per segment from its smallest (blue) to its
  largest (red) weight; the range is printed under each frame. The grid covers what the backbone
  saw: the whole frame (``frame_resize="squash"``) or the centre square (``"center_crop"``).
  Models without a spatial map (``attention="none"``: the regions are averaged) get no file
  (a stale one from an earlier run is removed) and ``"attention": {"file": null, "skipped": why}``.

A video that is not 10 s long (9.5-10.5 s accepted) or has no audio track is refused with a
one-line error naming the file.
"""
from __future__ import annotations

import colorsys
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

__all__ = ["BACKBONE_FOR_DIM", "label_colour", "heat_colours", "predict_input"]

#: visual_dim of the model -> timm backbone whose last stage gives those 7x7 maps.
BACKBONE_FOR_DIM = {2048: "resnet152.tv_in1k", 512: "vgg19.tv_in1k"}
NUM_SEGMENTS = 10
DURATION_TOLERANCE = 0.5  # s; the extractor calls a video "short" below 9.5 s
BACKGROUND_COLOUR = (150, 150, 150)
THUMB_WIDTH = 128
PANEL_WIDTH = 160
STRIP_CLASSES_PER_SEGMENT = 3


def label_colour(k: int, background: bool = False) -> tuple[int, int, int]:
    """Colour of class ``k`` in the pictures: grey for background, else golden-ratio hue steps."""
    if background:
        return BACKGROUND_COLOUR
    r, g, b = colorsys.hsv_to_rgb((k * 0.618034) % 1.0, 0.75, 0.85)
    return int(r * 255), int(g * 255), int(b * 255)


def heat_colours(heat: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (any shape) -> RGB uint8 (shape + 3): blue (0) - cyan - green - yellow - red (1)."""
    h = np.clip(np.asarray(heat, np.float32), 0.0, 1.0)
    r = np.clip(2.0 * h - 0.5, 0.0, 1.0) * 255.0
    g = np.clip(1.5 - np.abs(4.0 * h - 2.0), 0.0, 1.0) * 255.0
    b = np.clip(1.5 - 2.0 * h, 0.0, 1.0) * 255.0
    return np.rint(np.stack([r, g, b], axis=-1)).astype(np.uint8)


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _fit(draw, text: str, font, width: int) -> str:
    """``text`` shortened with an ellipsis until it fits in ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def _backbone_for(model: Any, visual_backbone: Optional[str]) -> str:
    from mmzoo.data.ave_features import FeatureExtractionError, visual_dim_of

    dim = int(model.hparams.visual_dim)
    name = visual_backbone or BACKBONE_FOR_DIM.get(dim)
    if name is None:
        raise FeatureExtractionError(
            f"the model reads {dim}-d visual maps and no default backbone gives them "
            f"({', '.join(f'{d}: {n}' for d, n in BACKBONE_FOR_DIM.items())}); call "
            "mmzoo.predict.ave.predict_input(..., visual_backbone='<timm name>') with the backbone of its training features"
        )
    got = visual_dim_of(name)
    if got != dim:
        raise FeatureExtractionError(f"visual_backbone '{name}' gives {got}-d maps but the model reads {dim}-d ones")
    return name


def _check_video(path: Path, frame_position: float) -> dict[str, Any]:
    """The segments' frames (decode_segments) of a 10-s video with sound; one-line errors naming it."""
    from mmzoo.data.ave_features import FeatureExtractionError, decode_segments
    from mmzoo.data.decode import NoAudioStreamError

    try:
        seg = decode_segments(path, NUM_SEGMENTS, frame_position)
    except NoAudioStreamError as err:
        raise NoAudioStreamError(path, "no audio track; AVE models hear each 1-s segment (VGGish), "
                                 "so the video needs its sound") from err
    duration = float(seg["duration"])
    if not abs(duration - NUM_SEGMENTS) <= DURATION_TOLERANCE:
        raise FeatureExtractionError(
            f"{path}: {duration:.2f} s long; AVE models label exactly {NUM_SEGMENTS} one-second segments, so the "
            f"video must last {NUM_SEGMENTS} s ({NUM_SEGMENTS - DURATION_TOLERANCE:g}-{NUM_SEGMENTS + DURATION_TOLERANCE:g} s "
            "accepted); cut a 10-s clip first, e.g. ffmpeg -ss START -t 10 -i IN.mp4 OUT.mp4"
        )
    return seg


def _extract(path: Path, out: Path, config: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Run the zoo's extractor on ``path`` into ``out/features`` (replacing an earlier run's)."""
    import h5py

    from mmzoo.data.ave_features import MANIFEST, extract_ave_features

    target = out / "features"
    if target.exists() and not (target / MANIFEST).is_file():
        raise FileExistsError(f"{target} exists and is not an AVE feature folder written by mmzoo; "
                              "choose another --output_dir")
    scratch = Path(tempfile.mkdtemp(prefix=".features-", dir=out))
    try:
        manifest = extract_ave_features([path], scratch / "features", config, device=str(device),
                                        batch_videos=1, progress=False)
        if target.exists():
            shutil.rmtree(target)
        (scratch / "features").rename(target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    with h5py.File(target / "visual_feature.h5", "r") as f:
        visual = torch.from_numpy(f["avadataset"][:])
    with h5py.File(target / "audio_feature.h5", "r") as f:
        audio = torch.from_numpy(f["avadataset"][:])
    return visual, audio, manifest


def _events(labels: list[int], scores: list[float], background: int, names: list[str]) -> list[dict]:
    runs: list[dict] = []
    for t, k in enumerate(labels):
        if k == background:
            continue
        if runs and runs[-1]["class_index"] == k and runs[-1]["end"] == t:
            runs[-1]["end"] = t + 1
            runs[-1]["_s"].append(scores[t])
        else:
            runs.append({"label": names[k], "class_index": k, "start": t, "end": t + 1, "_s": [scores[t]]})
    for r in runs:
        r["mean_score"] = float(np.mean(r.pop("_s")))
    return runs


def _square(frame: np.ndarray) -> np.ndarray:
    """The centre square of ``frame`` (the region a ``center_crop`` backbone input covers)."""
    h, w = frame.shape[:2]
    s = min(h, w)
    y, x = (h - s) // 2, (w - s) // 2
    return frame[y:y + s, x:x + s]


def _resized(frame: np.ndarray, width: int):
    from PIL import Image

    h, w = frame.shape[:2]
    height = max(1, int(round(h * width / w)))
    return Image.fromarray(frame).resize((width, height), Image.BILINEAR)


def _draw_timeline(frames: np.ndarray, segments: list[dict], names: list[str], background: int,
                   title: str, subtitle: str, path: Path) -> dict[str, Any]:
    """timeline.png; returns its layout (pixel boxes of the thumbnails, label cells, strip rows)."""
    from PIL import Image, ImageDraw

    thumbs = [_resized(f, THUMB_WIDTH) for f in frames]
    th = thumbs[0].height
    gap, left, top = 4, 150, 44
    font, small = _font(12), _font(10)
    probs = np.array([s["probabilities"] for s in segments])  # [T, C]
    rows = sorted({int(k) for p in probs for k in np.argsort(-p)[:STRIP_CLASSES_PER_SEGMENT]} - {background},
                  key=lambda k: -probs[:, k].max())
    rows.append(background)
    label_h, cell_h = 34, 16
    strip_top = top + 18 + th + gap + label_h + 10
    width = left + len(frames) * (THUMB_WIDTH + gap) + gap
    height = strip_top + len(rows) * cell_h + 8
    img = Image.new("RGB", (width, height), (255, 255, 255))
    d = ImageDraw.Draw(img)
    d.text((gap, 4), _fit(d, title, font, width - 2 * gap), fill=(0, 0, 0), font=font)
    d.text((gap, 22), _fit(d, subtitle, small, width - 2 * gap), fill=(90, 90, 90), font=small)
    d.text((gap, top + 18 + th // 2 - 6), "frame", fill=(0, 0, 0), font=font)
    d.text((gap, top + 18 + th + gap + 10), "decision", fill=(0, 0, 0), font=font)
    layout: dict[str, Any] = {"thumbnails": [], "labels": [], "strip_rows": [], "strip_cells": []}
    for t, (thumb, seg) in enumerate(zip(thumbs, segments)):
        x = left + gap + t * (THUMB_WIDTH + gap)
        d.text((x, top), f"{seg['start']}-{seg['end']} s", fill=(0, 0, 0), font=small)
        img.paste(thumb, (x, top + 18))
        layout["thumbnails"].append([x, top + 18, x + THUMB_WIDTH, top + 18 + th])
        y = top + 18 + th + gap
        colour = label_colour(seg["class_index"], seg["background"])
        d.rectangle([x, y, x + THUMB_WIDTH - 1, y + label_h - 1], fill=colour)
        ink = (0, 0, 0) if sum(colour) > 380 else (255, 255, 255)
        d.text((x + 3, y + 2), _fit(d, seg["label"], font, THUMB_WIDTH - 6), fill=ink, font=font)
        d.text((x + 3, y + 18), f"p = {seg['score']:.2f}", fill=ink, font=small)
        layout["labels"].append([x, y, x + THUMB_WIDTH, y + label_h])
    for j, k in enumerate(rows):
        y = strip_top + j * cell_h
        d.text((gap, y + 2), _fit(d, names[k], small, left - 2 * gap), fill=(0, 0, 0), font=small)
        layout["strip_rows"].append({"class_index": k, "label": names[k]})
        cells = []
        for t in range(len(frames)):
            x = left + gap + t * (THUMB_WIDTH + gap)
            p = float(probs[t, k])
            shade = int(round(255 * (1.0 - p)))
            d.rectangle([x, y, x + THUMB_WIDTH - 1, y + cell_h - 2], fill=(shade, shade, 255), outline=(220, 220, 220))
            d.text((x + 3, y + 2), f"{p:.2f}", fill=(0, 0, 0) if p < 0.5 else (255, 255, 255), font=small)
            cells.append([x, y, x + THUMB_WIDTH, y + cell_h - 1])
        layout["strip_cells"].append(cells)
    img.save(path, optimize=True)
    return {"file": path.name, "size": [width, height], **layout}


def _draw_attention(frames: np.ndarray, maps: np.ndarray, segments: list[dict], resize: str, title: str,
                    path: Path) -> dict[str, Any]:
    """attention.png: each frame with its 7x7 map blended in; returns the panels' pixel boxes."""
    from PIL import Image, ImageDraw

    grid = int(round(maps.shape[-1] ** 0.5))
    views = [f if resize == "squash" else _square(f) for f in frames]
    panels = [np.asarray(_resized(v, PANEL_WIDTH)) for v in views]
    ph = panels[0].shape[0]
    gap, top, caption = 4, 24, 30
    cols = 5
    nrows = -(-len(panels) // cols)
    width = cols * (PANEL_WIDTH + gap) + gap
    height = top + nrows * (ph + caption + gap)
    img = Image.new("RGB", (width, height), (255, 255, 255))
    d = ImageDraw.Draw(img)
    font, small = _font(12), _font(10)
    d.text((gap, 4), _fit(d, title, font, width - 2 * gap), fill=(0, 0, 0), font=font)
    boxes = []
    for t, (panel, m) in enumerate(zip(panels, maps)):
        cell = torch.from_numpy(np.asarray(m, np.float32).reshape(1, 1, grid, grid))
        up = torch.nn.functional.interpolate(cell, size=panel.shape[:2], mode="bilinear", align_corners=False)[0, 0]
        lo, hi = float(m.min()), float(m.max())
        heat = ((up - lo) / (hi - lo) if hi > lo else torch.full_like(up, 0.5)).numpy()
        blended = np.rint(0.45 * panel.astype(np.float32) + 0.55 * heat_colours(heat)).astype(np.uint8)
        x = gap + (t % cols) * (PANEL_WIDTH + gap)
        y = top + (t // cols) * (ph + caption + gap)
        img.paste(Image.fromarray(blended), (x, y))
        boxes.append([x, y, x + panel.shape[1], y + ph])
        seg = segments[t]
        d.text((x, y + ph + 2), _fit(d, f"{seg['start']}-{seg['end']} s: {seg['label']}", small, PANEL_WIDTH),
               fill=(0, 0, 0), font=small)
        d.text((x, y + ph + 15), _fit(d, f"{lo:.4f} (blue) - {hi:.4f} (red)", small, PANEL_WIDTH),
               fill=(90, 90, 90), font=small)
    img.save(path, optimize=True)
    return {"file": path.name, "size": [width, height], "panels": boxes, "grid": grid,
            "region_order": "row-major: region r is row r // 7, column r % 7 of the frame"}


@torch.no_grad()
def predict_input(model: Any, path: str, output_dir: str, query: Optional[str] = None, top_k: int = 10, *,
                  visual_backbone: Optional[str] = None, pretrained_backbone: bool = True,
                  vggish_weights: Optional[str] = None, frame_position: float = 0.5,
                  frame_resize: str = "squash", seed: int = 0) -> dict[str, Any]:
    """Localise the events of the 10-s video ``path`` and write the files of the module docstring.

    The keyword arguments are the extraction settings of :class:`mmzoo.data.ave_features.ExtractionConfig`
    (they must match those of the model's training features); ``query`` is unused.
    """
    from mmzoo.data.ave_features import ExtractionConfig

    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    video = Path(path)
    seg = _check_video(video, frame_position)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = ExtractionConfig(visual_backbone=_backbone_for(model, visual_backbone),
                              pretrained_backbone=pretrained_backbone, frame_position=frame_position,
                              frame_resize=frame_resize, vggish_weights=vggish_weights,
                              num_segments=NUM_SEGMENTS, seed=seed)
    device = next(model.parameters()).device
    visual, audio, manifest = _extract(video, out, config, device)
    was_training = model.training
    model.eval()
    try:
        res = model.forward_with_attention(visual.to(device), audio.to(device))
    finally:
        model.train(was_training)
    probs = torch.softmax(res["logits"].float(), dim=-1)[0].cpu()  # [T, C]
    n_cls = probs.shape[-1]
    background = n_cls - 1
    names = list(model.class_names) if getattr(model, "class_names", None) else [str(i) for i in range(n_cls)]
    frames = seg["frames"].numpy()
    segments = []
    for t in range(NUM_SEGMENTS):
        scores, idx = probs[t].topk(min(top_k, n_cls))
        k = int(probs[t].argmax())
        segments.append({
            "index": t, "start": t, "end": t + 1, "frame_index": int(seg["frame_indices"][t]),
            "probabilities": probs[t].tolist(),
            "top_k": [{"index": int(i), "label": names[int(i)], "score": float(s)} for s, i in zip(scores, idx)],
            "class_index": k, "label": names[k], "score": float(probs[t, k]), "background": k == background,
        })
    warnings_: list[str] = []
    if not manifest["visual_pretrained_loaded"]:
        warnings_.append(f"visual backbone {config.visual_backbone} has RANDOM weights (ImageNet weights not available)")
    if not manifest["vggish_pretrained_loaded"]:
        warnings_.append("VGGish has RANDOM weights (no vggish_weights given)")
    model_name = getattr(model, "zoo_id", None) or type(model).__name__
    result: dict[str, Any] = {
        "video": str(video), "model": model_name, "duration": float(seg["duration"]),
        "segments": segments,
        "events": _events([s["class_index"] for s in segments], [s["score"] for s in segments], background, names),
        "class_names": names, "background_index": background,
        "decision": f"argmax of softmax(m_t) over all {n_cls} classes per 1-s segment; background when it is "
                    f"class {background} (the model's evaluation, SegmentAccuracy)",
        "features": {"folder": "features", "visual_backbone": config.visual_backbone,
                     "visual_pretrained_loaded": manifest["visual_pretrained_loaded"],
                     "vggish_pretrained_loaded": manifest["vggish_pretrained_loaded"],
                     "frame_position": frame_position, "frame_resize": frame_resize, "seed": seed},
        "warnings": warnings_,
    }
    weights = "; ".join(warnings_) if warnings_ else "pretrained feature extractors"
    title = f"{model_name} on {video.name}: event per 1-s segment (grey = background)"
    result["timeline"] = _draw_timeline(frames, segments, names, background, title, f"features: {weights}",
                                        out / "timeline.png")
    att_file = out / "attention.png"
    if res.get("attention") is not None:
        maps = res["attention"][0].float().cpu().numpy()  # [T, 49]
        kind = getattr(model.hparams, "attention", "spatial")
        result["attention"] = {
            **_draw_attention(frames, maps, segments, frame_resize,
                              f"{model_name}: '{kind}' attention over the 7x7 regions, per segment "
                              "(blue = its smallest, red = its largest weight)", att_file),
            "kind": kind, "maps": maps.tolist(),
        }
    else:
        att_file.unlink(missing_ok=True)
        kind = getattr(model.hparams, "attention", None)
        result["attention"] = {"file": None, "skipped": f"{model_name} has no spatial attention (attention={kind!r}: "
                                                        "the 49 regions are averaged), so no attention.png"}
    (out / "predictions.json").write_text(json.dumps(result, indent=2))
    return result
