"""A tiny EGTEA Gaze+ dataset in the distributed layout, read back by ``EgteaDataModule``::

    root/cropped_clips/OP01-R01-PastaSalad/OP01-R01-PastaSalad-1000-2000-F000030-F000060.mp4 ...
    root/action_annotation/action_idx.txt, verb_idx.txt, noun_idx.txt      ("<name> <id>", 1-based)
    root/action_annotation/train_split{1,2,3}.txt, test_split{1,2,3}.txt   ("<clip> <action> <verb> <noun>")

Clip content: every frame has the colour of the clip's verb; its top-left 8x8 block has grey level
``40 * noun``. Each split puts a different third of the clips in its test file.
"""
from __future__ import annotations

import colorsys
from pathlib import Path
from typing import Any

import numpy as np

from mmzoo.data.media import write_mp4

__all__ = ["ACTIONS", "NOUNS", "VERBS", "write_egtea"]

VERBS = ("Take", "Put", "Open", "Cut")
NOUNS = ("bowl", "fridge", "tomato")
#: (verb index, noun index) of each action, in action-id order.
ACTIONS = ((0, 0), (1, 0), (2, 1), (3, 2), (0, 2))
SESSIONS = ("OP01-R01-PastaSalad", "P02-R03-BestScrambledEggs")


def _colour(k: int) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb((k * 0.381966) % 1.0, 0.8, 0.9)
    return int(r * 255), int(g * 255), int(b * 255)


def write_egtea(root: str | Path, clips_per_action: int = 3, num_frames: int = 24, fps: float = 24.0,
                size: tuple[int, int] = (48, 64)) -> dict[str, Any]:
    """Write the dataset; returns ``{"root", "clips": [{"clip", "path", "action", "verb", "noun"}]
    (0-based ids), "splits": {k: {"train": [clip names], "test": [...]}}, "action_pairs"}``."""
    root = Path(root)
    ann = root / "action_annotation"
    ann.mkdir(parents=True, exist_ok=True)
    (ann / "verb_idx.txt").write_text("".join(f"{v} {i + 1}\n" for i, v in enumerate(VERBS)))
    (ann / "noun_idx.txt").write_text("".join(f"{n} {i + 1}\n" for i, n in enumerate(NOUNS)))
    (ann / "action_idx.txt").write_text(
        "".join(f"{VERBS[v]} {NOUNS[n]} {i + 1}\n" for i, (v, n) in enumerate(ACTIONS)))
    clips = []
    k = 0
    for a, (v, n) in enumerate(ACTIONS):
        for c in range(clips_per_action):
            session = SESSIONS[k % len(SESSIONS)]
            start = 1000 * (k + 1)
            name = f"{session}-{start}-{start + 1000}-F{30 * k:06d}-F{30 * k + num_frames:06d}"
            frames = np.empty((num_frames, size[0], size[1], 3), dtype=np.uint8)
            frames[:] = np.array(_colour(v), dtype=np.uint8)
            frames[:, :8, :8] = 40 * n
            path = root / "cropped_clips" / session / f"{name}.mp4"
            write_mp4(path, frames, fps)
            clips.append({"clip": name, "path": str(path), "action": a, "verb": v, "noun": n, "k": k})
            k += 1
    splits = {}
    for s in (1, 2, 3):
        test = [c for c in clips if c["k"] % 3 == s - 1]
        train = [c for c in clips if c["k"] % 3 != s - 1]
        for kind, rows in (("train", train), ("test", test)):
            (ann / f"{kind}_split{s}.txt").write_text(
                "".join(f"{c['clip']} {c['action'] + 1} {c['verb'] + 1} {c['noun'] + 1}\n" for c in rows))
        splits[s] = {"train": [c["clip"] for c in train], "test": [c["clip"] for c in test]}
    return {"root": str(root), "clips": clips, "splits": splits, "action_pairs": list(ACTIONS)}
