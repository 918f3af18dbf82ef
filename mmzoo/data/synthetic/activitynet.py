"""A tiny ActivityNet v1.3 in the official layout, read back by ``ActivityNetDataModule``.

:func:`write_activitynet` writes ``root/activity_net.v1-3.min.json`` (``version``, a two-level
``taxonomy`` whose leaves are the classes, ``database`` with ``subset``, ``annotations`` [segment,
label], ``duration``, ``resolution``, ``url``) and one real video per entry at
``root/videos/v_<id>.<ext>`` (H.264 in mp4 or mkv via :func:`mmzoo.data.media.write_mp4`).

Content (:func:`untrimmed_frames`, shared with the FCVID writer): every second of a video shows
either a *background* frame (grey noise, the same distribution in every class) or the class's
*evidence* frame (a flat class colour with a little noise). Ordinary classes show their evidence
in ``common_fraction`` of the seconds; the ``rare`` classes in ``rare_seconds`` seconds only.
The returned ``truth`` names, per video, the seconds that carry evidence, so a test can check
which frames a sampler picks.
"""
from __future__ import annotations

import colorsys
import json
import random
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mmzoo.data.media import write_mp4

__all__ = ["DEFAULT_ANET_CLASSES", "evidence_seconds", "untrimmed_frames", "write_activitynet"]

DEFAULT_ANET_CLASSES = ("Drinking coffee", "Playing guitarra", "Spinning")
_ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"


def _colour(k: int) -> np.ndarray:
    r, g, b = colorsys.hsv_to_rgb((k / 3.0 + 0.08 * (k // 3)) % 1.0, 0.9, 0.9)
    return np.array([r * 255, g * 255, b * 255], dtype=np.float32)


def evidence_seconds(num_seconds: int, count: int, rng: random.Random) -> list[int]:
    """``count`` distinct seconds of ``num_seconds`` (sorted)."""
    return sorted(rng.sample(range(num_seconds), min(count, num_seconds)))


def untrimmed_frames(k: int, num_seconds: int, fps: int, evidence: Sequence[int], size: tuple[int, int],
                     rng: np.random.Generator) -> np.ndarray:
    """uint8 ``(num_seconds * fps, H, W, 3)``: background noise, class-``k`` colour on ``evidence`` seconds."""
    h, w = size
    frames = np.empty((num_seconds, h, w, 3), dtype=np.float32)
    ev = set(evidence)
    for s in range(num_seconds):
        if s in ev:
            frames[s] = _colour(k) + rng.normal(0, 8, (h, w, 3))
        else:
            frames[s] = rng.uniform(60, 190) + rng.normal(0, 30, (h, w, 1))
    frames = np.clip(frames, 0, 255).astype(np.uint8)
    return np.repeat(frames, fps, axis=0)


def _youtube_id(rng: random.Random) -> str:
    return "".join(rng.choice(_ID_CHARS) for _ in range(11))


def write_activitynet(
    root: str | Path,
    classes: Sequence[str] = DEFAULT_ANET_CLASSES,
    per_class: dict[str, int] | None = None,
    rare: Sequence[str] = (),
    num_seconds: int = 25,
    fps: int = 1,
    common_fraction: float = 0.5,
    rare_seconds: int = 3,
    size: tuple[int, int] = (32, 40),
    ext: str = ".mp4",
    missing: int = 0,
    seed: int = 0,
) -> dict[str, Any]:
    """Write the dataset; returns ``{"root", "json", "classes", "videos": {id: {"subset", "label",
    "evidence", "path"}}, "missing": [ids without a file]}``.

    ``per_class``: videos per class and subset (default ``{"training": 2, "validation": 1}``);
    ``missing``: that many validation entries get no video file (YouTube removals)."""
    root = Path(root)
    per_class = per_class or {"training": 2, "validation": 1}
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    classes = list(classes)
    taxonomy = [{"nodeId": 0, "nodeName": "Root", "parentId": None, "parentName": None},
                {"nodeId": 1, "nodeName": "Activities", "parentId": 0, "parentName": "Root"}]
    taxonomy += [{"nodeId": 2 + i, "nodeName": c, "parentId": 1, "parentName": "Activities"} for i, c in enumerate(classes)]
    order = sorted(classes)
    database: dict[str, Any] = {}
    videos: dict[str, Any] = {}
    for subset, n in per_class.items():
        for c in classes:
            k = order.index(c)
            for _ in range(n):
                vid = _youtube_id(rng)
                count = rare_seconds if c in rare else max(1, round(common_fraction * num_seconds))
                ev = evidence_seconds(num_seconds, count, rng)
                anns = [{"segment": [float(ev[0]), float(ev[-1] + 1)], "label": c}]
                database[vid] = {"subset": subset, "annotations": anns if subset != "testing" else [],
                                 "duration": float(num_seconds), "resolution": f"{size[1]}x{size[0]}",
                                 "url": f"https://www.youtube.com/watch?v={vid}"}
                videos[vid] = {"subset": subset, "label": c, "class_index": k, "evidence": ev, "path": None}
    missing_ids = [v for v, e in videos.items() if e["subset"] == "validation"][:missing]
    (root / "videos").mkdir(parents=True, exist_ok=True)
    for vid, e in videos.items():
        if vid in missing_ids:
            continue
        frames = untrimmed_frames(e["class_index"], num_seconds, fps, e["evidence"], size, nrng)
        e["path"] = str(write_mp4(root / "videos" / f"v_{vid}{ext}", frames, fps=fps))
    path = root / "activity_net.v1-3.min.json"
    path.write_text(json.dumps({"version": "VERSION 1.3", "taxonomy": taxonomy, "database": database}))
    return {"root": root, "json": path, "classes": order, "videos": videos, "missing": missing_ids}
