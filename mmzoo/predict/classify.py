"""Video classifiers (SlowFast, Non-local C2D / I3D) on a video file: top-k labels over time.

``mmzoo predict --model <id> --input video.mp4 --output_dir out`` decodes the video at the
model's short side, cuts it into consecutive windows of the model's clip (``T`` frames at the
id's sampling stride, ``T`` and the crop read from ``example_input``, so narrowed models work too),
classifies the centre crop of each window and averages the window probabilities for the video
(softmax; sigmoid for multi-label heads; verbs and nouns separately for EPIC heads). It writes

* ``predictions.json``: ``{"video", "windows": [{"start", "end", "top_k": {head: [{"index",
  "label", "score"}]}}], "top_k": {head: [...]}}`` (frame indices; ``label`` is the class name
  when the model has ``class_names``, else the index as text);
* ``predictions.mp4``: every decoded frame with its window's top-k drawn in a band at the top
  (an odd height or width loses its last row or column: H.264 needs even sizes).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmzoo.predict import register_predictor

__all__ = ["annotate", "predict_input"]


def _clip_shape(model: Any) -> tuple[int, int]:
    """(frames, crop) of the model's full-rate clip, from its example input."""
    video = model.example_input(1)["video"]
    clip = video[-1] if isinstance(video, (list, tuple)) else video
    return int(clip.shape[2]), int(clip.shape[-1])


def _probabilities(out: Any, head: str) -> dict[str, torch.Tensor]:
    if isinstance(out, dict):  # verb / noun heads
        return {k: v.softmax(-1) for k, v in out.items()}
    return {"class": out.sigmoid() if head == "multilabel" else out.softmax(-1)}


def _top(prob: torch.Tensor, k: int, names: list[str] | None) -> list[dict[str, Any]]:
    scores, idx = prob.topk(min(k, prob.numel()))
    return [{"index": int(i), "label": names[int(i)] if names else str(int(i)), "score": float(s)}
            for s, i in zip(scores, idx)]


def annotate(frame: np.ndarray, lines: list[str]) -> np.ndarray:
    """RGB ``frame`` with ``lines`` written in white on a dark band along its top."""
    import cv2

    out = frame.copy()
    h, w = out.shape[:2]
    scale = max(0.3, min(w, h) / 400)
    step = int(24 * scale) + 4
    band = min(h, step * len(lines) + 4)
    out[:band] = (out[:band].astype(np.float32) * 0.35).astype(np.uint8)
    for j, text in enumerate(lines):
        cv2.putText(out, text, (4, step * (j + 1) - 3), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1,
                    cv2.LINE_AA)
    return out


@torch.no_grad()
def predict_input(model: Any, path: str, output_dir: str, query: str | None = None, top_k: int = 5) -> dict[str, Any]:
    """Classify the windows of ``path`` and write the JSON and annotated video (module docstring)."""
    from mmzoo.data.decode import read_video_clip
    from mmzoo.data.media import write_mp4
    from mmzoo.registry import get_spec

    if getattr(model, "uses_audio", False):
        raise ValueError(f"{type(model).__name__} also takes audio: predict it through its DataModule "
                         "(`mmzoo test --data kinetics ...`); file prediction covers video-only classifiers")
    spec = get_spec(model.zoo_id)
    inp = spec.input
    frames_needed, crop = _clip_shape(model)
    stride = int(inp.sampling_rate or 1)
    short = max(crop, int(round(crop * (inp.short_side or crop) / (inp.test_crop or crop))))
    clip = read_video_clip(path, short_side=short)
    frames = clip.frames.numpy()
    fps = float(clip.fps) if getattr(clip, "fps", None) else 30.0
    span = frames_needed * stride
    if len(frames) < span:
        raise ValueError(f"{path}: {len(frames)} frames; one {model.zoo_id} window needs {span} "
                         f"({frames_needed} frames at stride {stride})")
    h, w = frames.shape[1:3]
    y, x = (h - crop) // 2, (w - crop) // 2
    mean = torch.tensor(inp.mean).view(3, 1, 1, 1)
    std = torch.tensor(inp.std).view(3, 1, 1, 1)
    device = next(model.parameters()).device
    head = getattr(model.hparams, "head", "single")
    names = getattr(model.hparams, "class_names", None)
    model.eval()
    windows, probs = [], []
    for s in range(0, len(frames) - span + 1, span):
        sel = frames[s:s + span:stride, y:y + crop, x:x + crop]
        video = ((torch.from_numpy(np.ascontiguousarray(sel)).permute(3, 0, 1, 2).float() / 255 - mean) / std)
        p = {k: v[0].cpu() for k, v in _probabilities(model(video[None].to(device)), head).items()}
        probs.append(p)
        windows.append({"start": s, "end": s + span, "top_k": {k: _top(v, top_k, names if k == "class" else None)
                                                               for k, v in p.items()}})
    mean_p = {k: torch.stack([p[k] for p in probs]).mean(0) for k in probs[0]}
    result = {"video": str(path), "model": model.zoo_id, "windows": windows,
              "top_k": {k: _top(v, top_k, names if k == "class" else None) for k, v in mean_p.items()}}
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "predictions.json").write_text(json.dumps(result, indent=2))
    drawn = []
    for t, frame in enumerate(frames):
        win = windows[min(t // span, len(windows) - 1)]
        lines = [f"{e['label']} {e['score']:.2f}" for k in win["top_k"] for e in win["top_k"][k][:3]]
        drawn.append(annotate(frame, lines))
    drawn = np.stack(drawn)[:, : h - h % 2, : w - w % 2]  # H.264 / yuv420p: even sizes (drop one row / column)
    write_mp4(out / "predictions.mp4", drawn, fps)
    return result


register_predictor("slowfast", "mmzoo.predict.classify:predict_input")
register_predictor("nonlocal_net", "mmzoo.predict.classify:predict_input")
