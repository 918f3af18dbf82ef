"""A tiny JHMDB in the official layout: PNG frames (Rename_Images), joint_positions.mat files
written with scipy.io.savemat, and split files.

Each video is a camera panning over a textured scene by a known number of pixels per frame;
the 15 "joints" are fixed scene points, so they move by ``-velocity`` per frame.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["write_jhmdb"]


def write_jhmdb(root: str | Path, classes: dict[str, dict[str, int]] | None = None, num_frames: int = 6,
                height: int = 64, width: int = 96, velocity: tuple[int, int] = (8, 0), split: int = 1,
                seed: int = 0) -> dict[str, np.ndarray]:
    """Write ``classes`` = {class: {video: 1 (train) | 2 (test)}}; returns each video's 0-based
    ``(T, 15, 2)`` joints, keyed ``"<class>/<video>"``."""
    import scipy.io
    from PIL import Image

    root = Path(root)
    classes = classes or {"wave": {"wave_a": 2, "wave_b": 1}}
    rng = np.random.default_rng(seed)
    written = {}
    (root / "splits").mkdir(parents=True, exist_ok=True)
    dx, dy = velocity
    if dx < 0 or dy < 0 or dx * (num_frames - 1) + 8 >= width or dy * (num_frames - 1) + 8 >= height:
        raise ValueError(f"velocity {velocity} must be >= 0 and keep part of the scene in every one of {num_frames} frames")
    for cls, videos in classes.items():
        lines = []
        for name, label in videos.items():
            lines.append(f"{name}.avi {label}\n")
            ch, cw = height + abs(dy) * num_frames, width + abs(dx) * num_frames
            scene = rng.integers(0, 256, size=(ch // 2 + 1, cw // 2 + 1, 3)).repeat(2, 0).repeat(2, 1)[:ch, :cw]
            scene = scene.astype(np.uint8)
            # joints at scene points inside every frame: x in [dx (T - 1), width), y likewise
            xs = rng.integers(dx * (num_frames - 1) + 4, width - 4, size=15)
            ys = rng.integers(dy * (num_frames - 1) + 4, height - 4, size=15)
            joints = np.zeros((num_frames, 15, 2))
            folder = root / "Rename_Images" / cls / name
            folder.mkdir(parents=True, exist_ok=True)
            for t in range(num_frames):
                y0, x0 = dy * t, dx * t
                Image.fromarray(scene[y0 : y0 + height, x0 : x0 + width]).save(folder / f"{t + 1:05d}.png")
                joints[t, :, 0] = xs - x0
                joints[t, :, 1] = ys - y0
            mat_dir = root / "joint_positions" / cls / name
            mat_dir.mkdir(parents=True, exist_ok=True)
            pos_img = (joints + 1.0).transpose(2, 1, 0)  # 2 x 15 x T, 1-based as distributed
            scipy.io.savemat(str(mat_dir / "joint_positions.mat"),
                             {"pos_img": pos_img, "pos_world": pos_img / 100.0, "scale": np.ones((1, num_frames)),
                              "viewpoint": "E"})
            written[f"{cls}/{name}"] = joints
        (root / "splits" / f"{cls}_test_split{split}.txt").write_text("".join(lines))
    return written
