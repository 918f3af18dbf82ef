"""Tiny AudioSet in the distributed layout: the segment CSVs, ``class_labels_indices.csv`` and clips.

Writes ``root/{balanced_train,unbalanced_train,eval}_segments.csv`` with the three ``#`` comment
lines of the release, ``", "`` separators and quoted label lists, ``root/class_labels_indices.csv``
(``index,mid,display_name``, names quoted) and, for every segment not in ``missing``, an mp4 (H.264
+ AAC) named ``<ytid>_<start_ms>_<end_ms>.mp4`` in the folder named like its CSV
(``root/eval_segments/`` ...). Content: a segment's first label ``k`` fixes both its colour
(:func:`mmzoo.data.synthetic.kinetics.class_frames`) and its tone
(:func:`mmzoo.data.synthetic.esc50.class_tone`): sound and picture co-occur, so audio-visual
correspondence is learnable.
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmzoo.data.media import write_mp4
from mmzoo.data.synthetic.esc50 import class_tone
from mmzoo.data.synthetic.kinetics import class_frames

__all__ = ["DEFAULT_AUDIOSET_CLASSES", "write_audioset"]

DEFAULT_AUDIOSET_CLASSES = (("/m/09x0r", "Speech"), ("/m/05zppz", "Male speech, man speaking"), ("/m/0bt9lr", "Dog"))
_ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"


def write_audioset(
    root: str | Path,
    classes: Sequence[tuple[str, str]] = DEFAULT_AUDIOSET_CLASSES,
    per_class: dict[str, int] | None = None,
    seconds: float = 2.0,
    fps: float = 10.0,
    size: tuple[int, int] = (48, 64),
    sample_rate: int = 48000,
    missing: Sequence[tuple[str, int]] = (),
    seed: int = 0,
) -> dict[str, Any]:
    """``per_class``: segments per class and CSV (``{"balanced": 2, "eval": 1}``; ``"unbalanced"``
    optional, written empty of clips otherwise as a one-row CSV). ``missing``: ``(csv key, row)``
    pairs listed but not written. Segments of class ``k`` also carry label ``k + 1`` every other
    row (multi-label). Returns ``{"root", "rows": {key: [dict(ytid, start, end, labels, line,
    path)]}}``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    per_class = dict(per_class or {"balanced": 2, "eval": 1})
    per_class.setdefault("unbalanced", 1)
    rng = random.Random(seed)
    with open(root / "class_labels_indices.csv", "w") as f:
        f.write("index,mid,display_name\n")
        f.writelines(f'{i},{mid},"{name}"\n' for i, (mid, name) in enumerate(classes))
    out: dict[str, Any] = {"root": str(root), "rows": {}}
    missing = set(map(tuple, missing))
    for key, n in per_class.items():
        rows = []
        for k in range(len(classes)):
            for j in range(n):
                ytid = "".join(rng.choice(_ID_CHARS) for _ in range(11))
                start = float(rng.randrange(0, 300))
                labels = [k] + ([(k + 1) % len(classes)] if j % 2 else [])
                rows.append({"ytid": ytid, "start": start, "end": start + 10.0, "labels": labels})
        n_label = sum(len(r["labels"]) for r in rows)
        lines = ["# Segments csv created Sun Mar  5 10:54:31 2017",
                 (f"# num_ytids={len(rows)}, num_segs={len(rows)}, num_unique_labels={len(classes)}, "
                 f"num_positive_labels={n_label}"),
                 "# YTID, start_seconds, end_seconds, positive_labels"]
        for i, r in enumerate(rows):
            mids = ",".join(classes[c][0] for c in r["labels"])
            lines.append(f'{r["ytid"]}, {r["start"]:.3f}, {r["end"]:.3f}, "{mids}"')
            r["line"] = i + 4
        name = f"{key}_train_segments" if key != "eval" else "eval_segments"
        (root / f"{name}.csv").write_text("\n".join(lines) + "\n")
        for i, r in enumerate(rows):
            r["path"] = str(root / name / f"{r['ytid']}_{int(r['start'] * 1000)}_{int(r['end'] * 1000)}.mp4")
            if (key, i) in missing or (key == "unbalanced" and key not in per_class):
                continue
            k = r["labels"][0]
            frames = class_frames(k, round(seconds * fps), *size)
            write_mp4(r["path"], frames, fps, audio=class_tone(k, seconds, sample_rate, seed=i), sample_rate=sample_rate)
        out["rows"][key] = rows
    return out
