"""`mmzoo predict --model <stmn id> --input VIDEO_OR_FRAME_FOLDER`: draw STMN detections.

Runs an STMN-family detector (:class:`mmzoo.models.stmn.STMN`; Xiao, PhD thesis ch. 3) on a
video file or a folder of frames, as the thesis's test protocol does (Sec. 3.4): frames resized
to the model's short side, windows of ``test_window`` frames sampled 1 in ``test_stride`` sliding
by ``test_window_step`` (:meth:`STMN.detect_snippet`), Seq-NMS over the whole input when the model
enables it. Writes the frames with boxes drawn, ``detections.mp4`` for a video input
and ``detections.json``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

import torch

from mmzoo.data.constants import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["predict_video", "predict_input"]


def _load_frames(path: Path) -> tuple[torch.Tensor, Optional[float]]:
    """uint8 T,H,W,C frames of a video file or a folder of JPEG / PNG frames (sorted by name)."""
    if path.is_dir():
        from torchvision.io import ImageReadMode, decode_image

        files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".jpeg", ".jpg", ".png"))
        if not files:
            raise FileNotFoundError(f"{path}: no .JPEG / .jpg / .png frames in this folder")
        frames = [decode_image(str(p), mode=ImageReadMode.RGB).permute(1, 2, 0) for p in files]
        return torch.stack(frames), None
    from mmzoo.data.decode import VideoReader

    with VideoReader(path) as r:
        clip = r.frames_in_range(0.0, None)
        fps = r.fps
    frames = clip.frames if hasattr(clip, "frames") else clip[0]
    return torch.as_tensor(frames), fps


def _detect(model: Any, frames: torch.Tensor, dev: torch.device) -> list[dict]:
    """Per-frame detections in pixels of ``frames`` (uint8 T,H,W,C): the model's test windows
    (:meth:`STMN.detect_snippet`), each window's frames scaled when it runs."""
    from mmzoo.data.transforms import normalize, scaled_size, short_side_scale, to_cthw_float

    hp = model.hparams
    t, h, w, _ = frames.shape
    _, short = scaled_size(h, w, hp.short_side, hp.max_side)

    def load(pos):
        clip = to_cthw_float(frames[pos])
        clip, _ = short_side_scale(clip, short)
        clip = normalize(clip, IMAGENET_MEAN, IMAGENET_STD)
        return clip[None].to(dev), [tuple(clip.shape[-2:])] * len(pos)

    nh, nw = load([0])[0].shape[-2:]
    scale = torch.tensor([nw / w, nh / h, nw / w, nh / h], device=dev)
    dets = model.detect_snippet(t, load=load)
    return [{"boxes": d["boxes"] / scale, "scores": d["scores"], "labels": d["labels"]} for d in dets]


@torch.no_grad()
def predict_video(model: Any, path: str | os.PathLike, out_dir: str | os.PathLike, draw_threshold: float = 0.3,
                  device: Optional[str] = None) -> dict:
    """Detect objects in a video file or a frame folder and write the results to ``out_dir``.

    Writes ``frames/%06d.jpg`` with boxes, class names and scores drawn (and ``detections.mp4``
    when the input is a video), and ``detections.json``: ``{"source", "classes", "frames":
    [{"frame", "detections": [{"box": [x1, y1, x2, y2], "score", "label", "class"}]}]}`` with
    boxes in pixels of the input frames (every detection, not only the drawn ones). Frames are
    processed in the model's test windows (``test_window`` frames, 1 in ``test_stride``, sliding by
    ``test_window_step``) with Seq-NMS over the whole input when the model enables it. Returns the
    JSON dict.
    """
    from PIL import Image
    from torchvision.utils import draw_bounding_boxes

    path, out_dir = Path(path), Path(out_dir)
    frames, fps = _load_frames(path)
    model.eval()
    dev = torch.device(device) if device else next(model.parameters()).device
    model.to(dev)
    dets = _detect(model, frames, dev)
    names = model.class_names
    (out_dir / "frames").mkdir(parents=True, exist_ok=True)
    record = {"source": str(path), "classes": list(names[1:]), "frames": []}
    drawn = []
    for i, d in enumerate(dets):
        boxes, scores, labels = d["boxes"].cpu(), d["scores"].cpu(), d["labels"].cpu()
        record["frames"].append({"frame": i, "detections": [
            {"box": [round(float(v), 2) for v in b], "score": float(s), "label": int(lab), "class": names[int(lab)]}
            for b, s, lab in zip(boxes, scores, labels)]})
        keep = scores >= draw_threshold
        img = frames[i].permute(2, 0, 1)
        if keep.any():
            text = [f"{names[int(lab)]} {float(s):.2f}" for s, lab in zip(scores[keep], labels[keep])]
            img = draw_bounding_boxes(img, boxes[keep], labels=text, colors="red", width=2)
        drawn.append(img.permute(1, 2, 0))
        Image.fromarray(drawn[-1].numpy()).save(out_dir / "frames" / f"{i:06d}.jpg", quality=92)
    if fps is not None:
        from mmzoo.data.media import write_mp4

        arr = torch.stack(drawn)
        arr = arr[:, : arr.shape[1] // 2 * 2, : arr.shape[2] // 2 * 2]
        write_mp4(out_dir / "detections.mp4", arr.numpy(), fps=fps)
    (out_dir / "detections.json").write_text(json.dumps(record, indent=1))
    return record


def predict_input(model: Any, path: str, output_dir: str, query: Optional[str] = None, top_k: int = 10) -> dict:
    """The `mmzoo predict --input` entry point of the STMN family: :func:`predict_video`, then a
    one-line summary (``query`` and ``top_k`` do not apply to detectors)."""
    result = predict_video(model, path, output_dir)
    n = sum(len(f["detections"]) for f in result["frames"])
    print(f"{len(result['frames'])} frames, {n} detections; drawn frames and detections.json in {output_dir}")
    return result
