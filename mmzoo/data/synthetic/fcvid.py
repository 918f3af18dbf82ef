"""A tiny FCVID in the release layout, read back by ``FCVIDDataModule``.

:func:`write_fcvid` writes ``root/materials/FCVID_VideoName_TrainTestSplit.txt`` (``<category>/
<video>.mp4 train|test``), ``root/materials/FCVID_Label.txt`` (one 0/1 row per video, one column
per class, space-separated), optionally ``root/materials/FCVID_Category.txt`` (class names), and
the videos at ``root/FCVID/<category>/<video>.mp4``. Content as
:func:`mmzoo.data.synthetic.activitynet.untrimmed_frames` (background noise, class colour on the
evidence seconds; ``rare`` classes show it in ``rare_seconds`` seconds only). ``multi_label``
videos also carry the next class's label (FCVID is multi-label).
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mmzoo.data.media import write_mp4
from mmzoo.data.synthetic.activitynet import evidence_seconds, untrimmed_frames

__all__ = ["DEFAULT_FCVID_CLASSES", "write_fcvid"]

DEFAULT_FCVID_CLASSES = ("baseballGame", "makingCake", "panda")


def write_fcvid(
    root: str | Path,
    classes: Sequence[str] = DEFAULT_FCVID_CLASSES,
    per_class: dict[str, int] | None = None,
    rare: Sequence[str] = (),
    num_seconds: int = 25,
    fps: int = 1,
    common_fraction: float = 0.5,
    rare_seconds: int = 3,
    size: tuple[int, int] = (32, 40),
    multi_label: int = 0,
    missing: int = 0,
    with_category_file: bool = True,
    seed: int = 0,
) -> dict[str, Any]:
    """Write the dataset; returns ``{"root", "classes", "videos": {rel: {"split", "classes",
    "evidence", "path"}}, "missing": [...]}``. ``per_class`` defaults to ``{"train": 2, "test": 1}``."""
    root = Path(root)
    per_class = per_class or {"train": 2, "test": 1}
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    classes = list(classes)
    videos: dict[str, Any] = {}
    n = 0
    for split, count in per_class.items():
        for k, c in enumerate(classes):
            for _ in range(count):
                rel = f"{c}/{c}_{n:05d}.mp4"
                n += 1
                ev_count = rare_seconds if c in rare else max(1, round(common_fraction * num_seconds))
                labels = [k]
                if multi_label > 0 and len([v for v in videos.values() if len(v["classes"]) > 1]) < multi_label:
                    labels.append((k + 1) % len(classes))
                videos[rel] = {"split": split, "classes": labels, "class_index": k,
                               "evidence": evidence_seconds(num_seconds, ev_count, rng), "path": None}
    missing_rels = [r for r, v in videos.items() if v["split"] == "test"][:missing]
    mat = root / "materials"
    mat.mkdir(parents=True, exist_ok=True)
    (mat / "FCVID_VideoName_TrainTestSplit.txt").write_text(
        "".join(f"{rel} {v['split']}\n" for rel, v in videos.items()))
    rows = []
    for v in videos.values():
        row = ["0"] * len(classes)
        for c in v["classes"]:
            row[c] = "1"
        rows.append(" ".join(row) + "\n")
    (mat / "FCVID_Label.txt").write_text("".join(rows))
    if with_category_file:
        (mat / "FCVID_Category.txt").write_text("".join(f"{c}\n" for c in classes))
    for rel, v in videos.items():
        if rel in missing_rels:
            continue
        frames = untrimmed_frames(v["class_index"], num_seconds, fps, v["evidence"], size, nrng)
        v["path"] = str(write_mp4(root / "FCVID" / rel, frames, fps=fps))
    return {"root": root, "classes": classes, "videos": videos, "missing": missing_rels}
