"""Synthetic videos for Arrow of Time tests: one where time's direction is visible, one where it is not.

:func:`write_aot_folder` writes ``root/{train,test}/<name>.avi`` (MPEG-4 AVI via
:func:`mmzoo.data.synthetic.ucf101.write_avi`), the ``source="folder"`` layout of the
``arrow-of-time`` DataModule.

* ``content="falling"``: one to three bright squares fall under gravity from rest
  (``y(t) = y0 + g t^2 / 2``) over a smooth dark background: played forwards they accelerate
  downwards, backwards they decelerate upwards, so the arrow of time is learnable;
* ``content="noise"``: static (TV snow, every frame independent uniform noise): its statistics
  are the same forwards and backwards, so nothing beyond chance can be learnt.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np

from mmzoo.data.synthetic.ucf101 import write_avi

__all__ = ["falling_frames", "write_aot_folder"]


def falling_frames(rng: np.random.Generator, num_frames: int, size: int) -> np.ndarray:
    """Frames of squares falling from rest (module docstring)."""
    yy, xx = np.mgrid[0:size, 0:size]
    background = (30 + 20 * np.sin(xx / 5.0 + rng.uniform(0, 6)) * np.cos(yy / 7.0)).astype(np.float32)
    frames = np.repeat(background[None, :, :, None], num_frames, 0).repeat(3, -1)
    for _ in range(rng.integers(1, 4)):
        side = int(rng.integers(4, 7))
        x0 = int(rng.integers(0, size - side))
        y0 = float(rng.uniform(0, size * 0.15))
        g = float(rng.uniform(0.45, 0.6)) * size / 32
        colour = rng.uniform(160, 255, 3)
        for t in range(num_frames):
            y = round(y0 + 0.5 * g * t * t)
            if y >= size:
                break
            frames[t, y:y + side, x0:x0 + side] = colour
    return np.clip(frames, 0, 255).astype(np.uint8)


def write_aot_folder(root: str | Path, content: Literal["falling", "noise"] = "falling", train: int = 32,
                     test: int = 16, num_frames: int = 10, size: int = 32, fps: float = 25.0,
                     seed: int = 0) -> dict[str, Any]:
    """Write the folder; returns ``{"root", "train": [paths], "test": [paths]}``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {"root": str(root), "train": [], "test": []}
    for split, n in (("train", train), ("test", test)):
        for i in range(n):
            if content == "falling":
                frames = falling_frames(rng, num_frames, size)
            elif content == "noise":
                frames = rng.integers(0, 256, (num_frames, size, size, 3), dtype=np.uint8)
            else:
                raise ValueError(f"unknown content {content!r}")
            out[split].append(str(write_avi(root / split / f"{content}_{i:03d}.avi", frames, fps)))
    return out
