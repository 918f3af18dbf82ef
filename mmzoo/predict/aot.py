"""Arrow of Time on a video file: forward / backward probability and class activation maps.

``mmzoo predict --model aot-tcam-vgg16 --input video.avi --output_dir out`` decodes the video
(short side ``short_side`` = the model's crop), computes the TV-L1 flow of every window of
``num_segments x flow_frames`` flows (stride = half a window), scores each window played forwards
with T-CAM (Wei et al., CVPR 2018) and writes, per window, ``cam_<start>.png`` (the frame at the
window's start with the CAM of "forward" overlaid: red = evidence for forward, blue = for
backward) and ``aot.json`` (``{"video", "windows": [{"start", "p_forward", "cam": file}],
"p_forward": mean}``). The CAM is the classifier applied at every position of the fusion maps
(``TCAM.cam``), upsampled to the crop.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch


__all__ = ["cam_overlay", "predict_input"]


def cam_overlay(frame: np.ndarray, cam: np.ndarray) -> np.ndarray:
    """RGB ``frame`` (H, W, 3 uint8) blended with a signed CAM (h, w): red > 0, blue < 0."""
    import cv2

    h, w = frame.shape[:2]
    c = cv2.resize(cam.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    c = c / (np.abs(c).max() + 1e-6)
    heat = np.zeros_like(frame, dtype=np.float32)
    heat[..., 0] = np.clip(c, 0, 1) * 255
    heat[..., 2] = np.clip(-c, 0, 1) * 255
    return np.clip(0.5 * frame + 0.5 * heat, 0, 255).astype(np.uint8)


@torch.no_grad()
def predict_input(model: Any, path: str, output_dir: str, query: str | None = None, top_k: int = 10,
                  flow_method: str = "tvl1", flow_bound: float = 20.0) -> dict[str, Any]:
    """Score the windows of ``path`` and write the CAM images and ``aot.json`` (module docstring)."""
    import cv2

    from mmzoo.data.decode import read_video_clip
    from mmzoo.data.flow import compute_flow, dequantise, quantise

    hp = model.hparams
    if hp.num_classes != 1:
        raise ValueError("CAM prediction needs the forward/backward T-CAM (num_classes=1)")
    frames = read_video_clip(path, short_side=hp.crop_size).frames.numpy()
    h, w = frames.shape[1:3]
    y, x = (h - hp.crop_size) // 2, (w - hp.crop_size) // 2
    frames = frames[:, y:y + hp.crop_size, x:x + hp.crop_size]
    window = hp.num_segments * hp.flow_frames
    if len(frames) < window + 1:
        raise ValueError(f"{path}: {len(frames)} frames, T-CAM needs {window + 1}")
    flow = dequantise(quantise(compute_flow(frames, flow_method), flow_bound), flow_bound) / flow_bound
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    starts = list(range(0, len(flow) - window + 1, max(1, window // 2)))
    x = torch.stack([torch.from_numpy(flow[s:s + window]).reshape(-1, *flow.shape[-2:]) for s in starts])
    x = x.to(next(model.parameters()).device)
    cams = model.cam(x)[:, 0].cpu().numpy()
    probs = torch.sigmoid(torch.from_numpy(cams).flatten(1).mean(1)).tolist()
    windows = []
    for s, cam, p in zip(starts, cams, probs):
        name = f"cam_{s:05d}.png"
        cv2.imwrite(str(out / name), cv2.cvtColor(cam_overlay(frames[s], cam), cv2.COLOR_RGB2BGR))
        windows.append({"start": s, "p_forward": p, "cam": name})
    result = {"video": str(path), "windows": windows, "p_forward": float(np.mean(probs))}
    (out / "aot.json").write_text(json.dumps(result, indent=2))
    return result
