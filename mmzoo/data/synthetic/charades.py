"""A tiny Charades v1 dataset in the official layout, read back by ``CharadesDataModule``.

:func:`write_charades` writes

* ``root/Charades_v1_classes.txt``: ``num_classes`` lines ``cNNN <name>`` (157 by default, the
  release's count, so that models built for Charades fit it);
* ``root/Charades_v1_train.csv`` / ``root/Charades_v1_test.csv`` with the release's eleven
  columns (``id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,
  length``; ``script`` and ``descriptions`` hold commas and are quoted, as in the release) and an
  ``actions`` field ``"c002 0.40 1.20;c005 0.00 0.80"`` (empty for videos listed in ``no_actions``);
* ``layout="video"``: one real mp4 per video at ``root/Charades_v1_480/<id>.mp4`` (H.264 + AAC, at
  ``fps``); ``layout="frames"``: JPEG frames ``root/Charades_v1_rgb/<id>/<id>-000001.jpg ...`` at 24
  fps; ``layout="both"`` writes both.

Content: frame ``t`` is filled with the colour of the video's first action class, and its top-left
8x8 block has grey level ``min(8 t, 255)`` so that decoded frame indices can be read back from
pixels. Actions are drawn from the first ``used_classes`` classes with intervals inside the video.
"""
from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mmzoo.data.media import write_jpeg_frames, write_mp4
from mmzoo.data.synthetic.kinetics import _colour, class_audio

__all__ = ["CHARADES_COLUMNS", "write_charades"]

CHARADES_COLUMNS = ["id", "subject", "scene", "quality", "relevance", "verified", "script", "objects",
                    "descriptions", "actions", "length"]  # fmt: skip
_ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def _frames(k: int, num_frames: int, height: int, width: int) -> np.ndarray:
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    frames[:] = np.array(_colour(k), dtype=np.uint8)
    for t in range(num_frames):
        frames[t, :8, :8] = min(8 * t, 255)
    return frames


def write_charades(
    root: str | Path,
    num_videos: dict[str, int] | None = None,
    num_classes: int = 157,
    used_classes: int = 4,
    layout: Literal["video", "frames", "both"] = "video",
    num_frames: int = 48,
    fps: float = 24.0,
    size: tuple[int, int] = (64, 80),
    with_audio: bool = True,
    sample_rate: int = 16000,
    no_actions: Sequence[tuple[str, int]] = (),
    actions: dict[tuple[str, int], str] | None = None,
    seed: int = 0,
    proposals_per_frame: int = 4,
) -> dict[str, Any]:
    """Write the dataset; returns a description for tests.

    Args:
        root: output folder.
        num_videos: videos per split, ``{"train": 3, "test": 2}`` by default.
        num_classes: lines of the class list (157 as released).
        used_classes: actions are drawn from classes ``0..used_classes-1``.
        layout: ``"video"``, ``"frames"`` or ``"both"`` (see the module docstring).
        num_frames / fps / size: frames per video, the mp4's frame rate (frames are always 24 fps,
            the release's) and ``(height, width)``.
        with_audio / sample_rate: write an AAC track (a tone per first class) in the mp4s.
        no_actions: ``(split, row)`` pairs written with an empty ``actions`` field.
        actions: ``(split, row)`` -> ``actions`` text written verbatim instead of random actions.
        proposals_per_frame: also write STRG region proposals ``root/strg_proposals.safetensors``
            (hand-drawn boxes for every frame of the frame layout, else of the videos; see
            :func:`mmzoo.data.synthetic.something_something.write_synthetic_proposals`); 0: none.

    Returns:
        ``{"root", "classes", "csv": {split: path}, "rows": {split: [dict(id, actions [(class,
        start, end)], length, line, video, frames)]}, "num_frames", "fps", "size"}``.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    num_videos = dict(num_videos or {"train": 3, "test": 2})
    rng = random.Random(seed)
    classes = [f"Synthetic action {k}" for k in range(num_classes)]
    (root / "Charades_v1_classes.txt").write_text("".join(f"c{k:03d} {c}\n" for k, c in enumerate(classes)))
    actions = dict(actions or {})
    no_actions = set(map(tuple, no_actions))
    out: dict[str, Any] = {"root": str(root), "classes": classes, "csv": {}, "rows": {}, "num_frames": num_frames,
                           "fps": fps, "size": tuple(size)}  # fmt: skip
    used: set[str] = set()
    for split, n in num_videos.items():
        rows = []
        for i in range(n):
            vid = "".join(rng.choice(_ID_CHARS) for _ in range(5))
            while vid in used:
                vid = "".join(rng.choice(_ID_CHARS) for _ in range(5))
            used.add(vid)
            length = num_frames / fps
            acts: list[tuple[int, float, float]] = []
            if (split, i) not in no_actions:
                for _ in range(rng.randint(1, 3)):
                    s = round(rng.uniform(0, length * 0.8), 2)
                    acts.append((rng.randrange(used_classes), s, round(min(length, s + rng.uniform(0.2, length / 2)), 2)))
            text = actions.get((split, i), ";".join(f"c{c:03d} {s:.2f} {e:.2f}" for c, s, e in acts))
            k = acts[0][0] if acts else 0
            row = {"id": vid, "actions": acts, "actions_text": text, "length": length, "line": i + 2}
            frames = _frames(k, num_frames, *size)
            if layout in ("video", "both"):
                mp4 = root / "Charades_v1_480" / f"{vid}.mp4"
                audio = class_audio(k, length, sample_rate) if with_audio else None
                write_mp4(mp4, frames, fps, audio, sample_rate)
                row["video"] = str(mp4)
            if layout in ("frames", "both"):
                folder = root / "Charades_v1_rgb" / vid
                n24 = max(1, round(length * 24.0))
                pick = np.minimum((np.arange(n24) * fps / 24.0).astype(int), num_frames - 1)
                write_jpeg_frames(folder, frames[pick], pattern=vid + "-{:06d}.jpg", start=1)
                row["frames"] = str(folder)
            rows.append(row)
        path = root / f"Charades_v1_{split}.csv"
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(CHARADES_COLUMNS)
            for r in rows:
                w.writerow([r["id"], "SUBJ", "Kitchen", 6, 7, "Yes", "A person opens a door, then sits.",
                            "door;chair", "Person opens the door, sits on a chair.", r["actions_text"],
                            f"{r['length']:.2f}"])  # fmt: skip
        out["csv"][split] = str(path)
        out["rows"][split] = rows
    if proposals_per_frame:
        from mmzoo.data.synthetic.something_something import PROPOSALS_FILE, write_synthetic_proposals

        n24 = max(1, round(num_frames / fps * 24.0))
        numbers = list(range(1, n24 + 1)) if layout != "video" else list(range(num_frames))
        videos = {r["id"]: numbers for rows in out["rows"].values() for r in rows}
        out["proposals"] = str(write_synthetic_proposals(root / PROPOSALS_FILE, videos, "charades",
                                                         "video" if layout == "video" else "frames", proposals_per_frame))
    return out
