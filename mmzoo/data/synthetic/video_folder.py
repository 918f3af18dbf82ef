"""A tiny folder of videos for self-supervised correspondence training (TimeCycle).

Each video shows one textured square moving at constant velocity over a static textured
background, written as a real mp4 (``videos/clip_k.mp4``, PyAV) and/or as a folder of JPEG
frames (``frames/clip_k/000001.jpg``, the layout the authors extract VLOG into).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mmzoo.data.media import write_jpeg_frames, write_mp4

__all__ = ["moving_patch_frames", "write_video_folder"]


def moving_patch_frames(rng: np.random.Generator, num_frames: int, size: int, patch: int,
                        velocity: tuple[int, int]) -> np.ndarray:
    """``(T, size, size, 3)`` uint8: a textured ``patch`` square moving by ``velocity`` (dx, dy)
    pixels per frame (wrapping around) over a textured background."""
    bg = rng.integers(0, 256, size=(size // 8 + 1, size // 8 + 1, 3)).repeat(8, 0).repeat(8, 1)[:size, :size]
    bg = (bg * 0.5 + 64).astype(np.uint8)
    tex = rng.integers(0, 256, size=(patch // 4, patch // 4, 3)).repeat(4, 0).repeat(4, 1).astype(np.uint8)
    x0, y0 = rng.integers(0, size - patch, size=2)
    out = np.empty((num_frames, size, size, 3), dtype=np.uint8)
    for t in range(num_frames):
        img = bg.copy()
        x = (x0 + velocity[0] * t) % (size - patch)
        y = (y0 + velocity[1] * t) % (size - patch)
        img[y : y + tex.shape[0], x : x + tex.shape[1]] = tex
        out[t] = img
    return out


def write_video_folder(root: str | Path, num_videos: int = 2, num_frames: int = 12, size: int = 64, patch: int = 24,
                       mp4: bool = True, frame_folders: bool = True, seed: int = 0) -> Path:
    """Write ``num_videos`` moving-patch videos under ``root`` (mp4 files and/or frame folders)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for k in range(num_videos):
        v = tuple(int(a) for a in rng.integers(2, 5, size=2))
        frames = moving_patch_frames(rng, num_frames, size, patch, v)
        if mp4:
            write_mp4(root / "videos" / f"clip_{k}.mp4", frames, fps=12)
        if frame_folders:
            write_jpeg_frames(root / "frames" / f"clip_{k}", frames, pattern="{:06d}.jpg", start=1)
    return root
