"""A tiny HMDB51 in the release layout, read back by ``HMDB51DataModule`` in tests.

:func:`write_hmdb51` writes ``root/<class>/<video>.avi`` (MPEG-4 Part 2 AVI via
:func:`mmzoo.data.synthetic.ucf101.write_avi`) and
``root/testTrainMulti_7030_splits/<class>_test_split{1,2,3}.txt`` with lines ``"<video>.avi <id> "``
(1 train, 2 test, 0 unused; the release's trailing space kept). In split ``k`` the videos with
``i % 3 == k - 1`` are test videos, the last video of each class is unused (0), the others train.
Content as :func:`mmzoo.data.synthetic.ucf101.video_content` (``"colour"``: the label is in the
pixels; ``"noise"``: nothing to learn).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mmzoo.data.synthetic.ucf101 import video_content, write_avi

__all__ = ["DEFAULT_HMDB_CLASSES", "write_hmdb51"]

DEFAULT_HMDB_CLASSES = ("brush_hair", "cartwheel", "ride_bike")


def write_hmdb51(
    root: str | Path,
    classes: Sequence[str] = DEFAULT_HMDB_CLASSES,
    per_class: int = 4,
    num_frames: int = 8,
    fps: float = 30.0,
    size: tuple[int, int] = (32, 32),
    content: Literal["colour", "noise"] = "colour",
    seed: int = 0,
) -> dict[str, Any]:
    """Write the dataset; returns ``{"root", "classes", "splits": {k: {"train": [rel], "test":
    [rel], "unused": [rel]}}, "files": {k: {class: path}}}``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    splits: dict[int, dict[str, list[str]]] = {k: {"train": [], "test": [], "unused": []} for k in (1, 2, 3)}
    files: dict[int, dict[str, str]] = {k: {} for k in (1, 2, 3)}
    n = 0
    for label, cls in enumerate(classes):
        names = [f"{cls}_video_{i}_f_cm_np1_fr_med_{i}.avi" for i in range(per_class)]
        for i, name in enumerate(names):
            write_avi(root / cls / name, video_content(content, label, n, num_frames, size, rng), fps)
            n += 1
        for k in (1, 2, 3):
            lines = []
            for i, name in enumerate(names):
                role = 0 if i == per_class - 1 else (2 if i % 3 == k - 1 else 1)
                lines.append(f"{name} {role} ")
                splits[k][{0: "unused", 1: "train", 2: "test"}[role]].append(f"{cls}/{name}")
            path = root / "testTrainMulti_7030_splits" / f"{cls}_test_split{k}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("\n".join(lines) + "\n")
            files[k][cls] = str(path)
    return {"root": str(root), "classes": sorted(classes), "splits": splits, "files": files}
