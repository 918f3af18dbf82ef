"""Multisensory on a video file: is the sound aligned, and where does it come from.

``mmzoo predict --model multisensory-av --input video.mp4 --output_dir out`` decodes the video
(short side = the model's crop, centre crop) and its audio track (mono, at the model's rate),
cuts it into windows of ``frames`` frames at stride ``sampling_rate`` (the model's input contract;
consecutive, non-overlapping), and for each window writes the class activation map of "aligned"
(Owens & Efros, ECCV 2018, after Zhou et al., CVPR 2016; :meth:`Multisensory.sound_localization_map`)
over the frames:

* ``cam_<start>.mp4``: every frame of the window with the map blended in (red = evidence that
  the sound comes from there);
* ``cam_<start>_<k>.png``: the frame at the middle of each of the map's time steps;
* ``multisensory.json``: ``{"video", "windows": [{"start", "p_aligned", "video": file, "images":
  [files]}], "p_aligned": mean}``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch


__all__ = ["heat_overlay", "predict_input"]


def heat_overlay(frame: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """RGB ``frame`` (H, W, 3 uint8) blended with a map ``heat`` (H, W) scaled to [0, 1] in red."""
    h = np.clip(heat.astype(np.float32), 0.0, 1.0)[..., None]
    red = np.zeros_like(frame, dtype=np.float32)
    red[..., 0] = 255.0
    return np.clip(np.rint(frame * (1 - 0.6 * h) + red * 0.6 * h), 0, 255).astype(np.uint8)


@torch.no_grad()
def predict_input(model: Any, path: str, output_dir: str, query: str | None = None, top_k: int = 10) -> dict[str, Any]:
    """Score the windows of ``path`` and write the sound-localisation maps (module docstring)."""
    import cv2

    from mmzoo.data.decode import read_audio, read_video_clip
    from mmzoo.data.media import write_mp4
    from mmzoo.registry import get_spec

    hp = model.hparams
    if hp.audio_input != "waveform":
        raise ValueError("file prediction runs the raw-waveform Multisensory (audio_input='waveform'); this model "
                         "takes spectrograms: predict through its DataModule instead")
    spec = get_spec(model.zoo_id or "multisensory-av")
    inp = spec.input
    rate = int(inp.audio.sample_rate)
    stride = int(inp.sampling_rate or 1)
    clip = read_video_clip(path, short_side=hp.crop_size)
    frames = clip.frames.numpy()
    fps = float(clip.fps) if getattr(clip, "fps", None) else 30.0
    h, w = frames.shape[1:3]
    y, x = (h - hp.crop_size) // 2, (w - hp.crop_size) // 2
    frames = frames[:, y:y + hp.crop_size, x:x + hp.crop_size]
    span = hp.frames * stride
    if len(frames) < span:
        raise ValueError(f"{path}: {len(frames)} frames; a Multisensory window needs {span} "
                         f"({hp.frames} frames at stride {stride})")
    mean = torch.tensor(inp.mean).view(3, 1, 1, 1)
    std = torch.tensor(inp.std).view(3, 1, 1, 1)
    device = next(model.parameters()).device
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    windows = []
    for s in range(0, len(frames) - span + 1, span):
        sel = frames[s:s + span:stride]
        video = ((torch.from_numpy(sel).permute(3, 0, 1, 2).float() / 255 - mean) / std)[None].to(device)
        t0, t1 = s / fps, (s + span) / fps
        c = 0.5 * (t0 + t1)
        half = 0.5 * hp.audio_samples / rate
        wave = read_audio(path, c - half, c + half, sample_rate=rate, mono=True).reshape(-1)
        wave = torch.nn.functional.pad(wave, (0, max(0, hp.audio_samples - wave.numel())))[:hp.audio_samples]
        cam = model.sound_localization_map(video, wave[None].to(device))[0].cpu()  # (T, H, W)
        p = float(torch.sigmoid(model(video, wave[None].to(device)))[0])
        lo, hi = float(cam.min()), float(cam.max())
        heat = ((cam - lo) / (hi - lo + 1e-6)).numpy()
        blended = np.stack([heat_overlay(f, m) for f, m in zip(sel, heat)])
        name = f"cam_{s:05d}.mp4"
        write_mp4(out / name, blended, fps / stride)
        steps = model.feature_maps(video, wave[None].to(device)).shape[2]
        images = []
        for k in range(steps):
            i = min(len(sel) - 1, int((k + 0.5) * len(sel) / steps))
            img = f"cam_{s:05d}_{k}.png"
            cv2.imwrite(str(out / img), cv2.cvtColor(blended[i], cv2.COLOR_RGB2BGR))
            images.append(img)
        windows.append({"start": s, "p_aligned": p, "video": name, "images": images})
    result = {"video": str(path), "windows": windows, "p_aligned": float(np.mean([w["p_aligned"] for w in windows]))}
    (out / "multisensory.json").write_text(json.dumps(result, indent=2))
    return result
