"""A tiny DAVIS-2017 in the official layout: JPEG frames, palette-PNG instance masks, ImageSets.

Each sequence is a camera panning by a known number of pixels per frame over a textured scene
with textured squares (objects 1, 2, ...); the masks are exact. ``write_davis`` returns, per
sequence, the ``(T, H, W)`` id maps it wrote, for tests.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mmzoo.data.media import write_jpeg_frames

__all__ = ["DAVIS_PALETTE", "write_davis"]


def _palette() -> list[int]:
    """The 256-colour palette DAVIS annotations carry (the PASCAL VOC colour map)."""
    pal = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal


DAVIS_PALETTE = _palette()


def write_mask(path: Path, ids: np.ndarray) -> None:
    from PIL import Image

    im = Image.fromarray(ids.astype(np.uint8), mode="P")
    im.putpalette(DAVIS_PALETTE)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)


def sequence_frames(rng: np.random.Generator, num_frames: int, height: int, width: int, num_objects: int,
                    size: int, velocity: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """``(T, H, W, 3)`` frames and ``(T, H, W)`` ids of a camera panning over a textured scene.

    The scene (textures of 2 x 2-pixel cells) holds ``num_objects`` squares of side ``size``, one
    per row; frame t is the window of the scene shifted by ``t x velocity`` (dx, dy) pixels, so
    every object moves by ``-velocity`` per frame and nothing is ever disoccluded inside the
    frame (new content only enters at the border)."""
    dx, dy = velocity
    ch, cw = height + abs(dy) * num_frames, width + abs(dx) * num_frames
    scene = rng.integers(0, 256, size=(ch // 2 + 1, cw // 2 + 1, 3)).repeat(2, 0).repeat(2, 1)[:ch, :cw]
    scene = scene.astype(np.uint8)
    scene_ids = np.zeros((ch, cw), dtype=np.uint8)
    ox = abs(dx) * num_frames if dx < 0 else 0
    oy = abs(dy) * num_frames if dy < 0 else 0
    for k in range(num_objects):
        x = ox + width // 2 - size // 2 + (dx * (num_frames - 1)) // 2
        y = oy + 8 + k * (size + 8)
        tex = rng.integers(0, 256, size=(size // 2, size // 2, 3)).repeat(2, 0).repeat(2, 1)
        scene[y : y + size, x : x + size] = tex
        scene_ids[y : y + size, x : x + size] = k + 1
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    ids = np.zeros((num_frames, height, width), dtype=np.uint8)
    for t in range(num_frames):
        y0, x0 = oy + dy * t, ox + dx * t
        frames[t] = scene[y0 : y0 + height, x0 : x0 + width]
        ids[t] = scene_ids[y0 : y0 + height, x0 : x0 + width]
    return frames, ids


def write_davis(root: str | Path, sequences: dict[str, list[str]] | None = None, num_frames: int = 6,
                height: int = 64, width: int = 96, num_objects: int = 1, object_size: int = 24,
                velocity: tuple[int, int] = (8, 0), resolution: str = "480p", seed: int = 0) -> dict[str, np.ndarray]:
    """Write the sequences (default: one "val" and one "train" sequence) under ``root``."""
    root = Path(root)
    sequences = sequences or {"val": ["synthetic-val"], "train": ["synthetic-train"]}
    rng = np.random.default_rng(seed)
    written = {}
    sets = root / "ImageSets" / "2017"
    sets.mkdir(parents=True, exist_ok=True)
    for split, names in sequences.items():
        (sets / f"{split}.txt").write_text("".join(f"{n}\n" for n in names))
        for name in names:
            frames, ids = sequence_frames(rng, num_frames, height, width, num_objects, object_size, velocity)
            write_jpeg_frames(root / "JPEGImages" / resolution / name, frames, pattern="{:05d}.jpg", start=0, quality=95)
            for t in range(num_frames):
                write_mask(root / "Annotations" / resolution / name / f"{t:05d}.png", ids[t])
            written[name] = ids
    return written
