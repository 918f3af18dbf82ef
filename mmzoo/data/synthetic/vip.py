"""A tiny VIP_Fine in the released layout: JPEG frames, palette-PNG part and human id maps,
grayscale instance-part id maps with their ``.txt`` tables, lists.

Each video is a camera panning over a scene with ``people`` "persons" (default one) made of three
part rectangles (ids 2 hair, 13 face, 4 upper-clothes), textured, so part propagation is
checkable. Person ``h`` (1-based) is id ``h`` in ``Human_ids``; its part ``p`` is instance-part id
``20 (h - 1) + p`` in ``Instance_ids`` (the CIHP numbering), listed as ``"<id> <p> <h>"``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from mmzoo.data.media import write_jpeg_frames
from mmzoo.data.synthetic.davis import write_mask

__all__ = ["instance_ids_from", "write_vip"]

PARTS = ((2, 0, 8), (13, 8, 8), (4, 16, 16))  # (part id, top offset, height) of a 24-px wide person


def write_vip(root: str | Path, splits: dict[str, list[str]] | None = None, num_frames: int = 5, height: int = 64,
              width: int = 96, velocity: int = 8, seed: int = 0, people: int = 1) -> dict[str, np.ndarray]:
    """Write the videos (default: one "val", one "train"); returns each video's ``(T, H, W)`` part ids
    (the person and instance-part maps written beside them follow the module docstring)."""
    root = Path(root)
    splits = splits or {"val": ["vip-val"], "train": ["vip-train"]}
    rng = np.random.default_rng(seed)
    (root / "lists").mkdir(parents=True, exist_ok=True)
    written = {}
    for split, names in splits.items():
        (root / "lists" / f"{split}_videos.txt").write_text("".join(f"{n}\n" for n in names))
        for name in names:
            cw = width + velocity * num_frames
            scene = rng.integers(0, 256, size=(height // 2 + 1, cw // 2 + 1, 3)).repeat(2, 0).repeat(2, 1)[:height, :cw]
            scene = scene.astype(np.uint8)
            parts = np.zeros((height, cw), dtype=np.uint8)
            person = np.zeros((height, cw), dtype=np.uint8)
            x0, y0 = width // 2 + velocity * (num_frames - 1) // 2, 16
            for h in range(people):
                x = x0 - 32 * h
                for pid, top, ph in PARTS:
                    parts[y0 + top : y0 + top + ph, x : x + 24] = pid
                    person[y0 + top : y0 + top + ph, x : x + 24] = h + 1
            frames = np.stack([scene[:, velocity * t : velocity * t + width] for t in range(num_frames)])
            ids = np.stack([parts[:, velocity * t : velocity * t + width] for t in range(num_frames)])
            humans = np.stack([person[:, velocity * t : velocity * t + width] for t in range(num_frames)])
            folder = root / "Images" / name
            for t in range(num_frames):  # one annotated frame every 25 frames of the video
                fn = f"{25 * t + 1:06d}"
                write_jpeg_frames(folder, frames[t : t + 1], pattern="{:06d}.jpg", start=25 * t + 1)
                write_mask(root / "Annotations" / "Category_ids" / name / f"{fn}.png", ids[t])
                write_mask(root / "Annotations" / "Human_ids" / name / f"{fn}.png", humans[t])
                inst = instance_ids_from(ids[t], humans[t])
                folder_i = root / "Annotations" / "Instance_ids" / name
                folder_i.mkdir(parents=True, exist_ok=True)
                Image.fromarray(inst.astype(np.uint8)).save(folder_i / f"{fn}.png")  # mode "L"
                rows = sorted({(int(i), int(p), int(h)) for i, p, h in zip(inst[inst > 0], ids[t][inst > 0],
                                                                         humans[t][inst > 0])})
                (folder_i / f"{fn}.txt").write_text("".join(f"{i} {p} {h}\n" for i, p, h in rows))
            written[name] = ids
    return written


def instance_ids_from(parts: np.ndarray, humans: np.ndarray) -> np.ndarray:
    """Instance-part ids ``20 (h - 1) + p`` (0 where either map is 0), the numbering written above."""
    parts, humans = parts.astype(np.int64), humans.astype(np.int64)
    return np.where((parts > 0) & (humans > 0), 20 * (humans - 1) + parts, 0)
