"""Tiny DCASE scene-classification set in the layout of ``scenes_stereo.zip`` (+ test set, fold lists).

Writes ``root/scenes_stereo/<scene><NN>.wav`` (stereo 16-bit PCM; the real recordings are 30 s at
44.1 kHz, here ``seconds`` long), optionally ``root/scenes_stereo_testset/`` and the DCASE-toolbox
fold lists ``root/evaluation_setup/fold<k>_{train,test,evaluate}.txt``. Scene ``k`` (index in the
sorted scene list) sounds like :func:`mmzoo.data.synthetic.esc50.class_tone` ``(k)``.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmzoo.data.synthetic.esc50 import class_tone, write_wav

__all__ = ["write_dcase2014"]


def write_dcase2014(
    root: str | Path,
    scenes: Sequence[str] = ("bus", "office", "park"),
    per_scene: int = 5,
    seconds: float = 3.0,
    sample_rate: int = 44100,
    test_per_scene: int = 0,
    fold_lists: bool = False,
) -> dict[str, Any]:
    """Returns ``{"root", "dev": [file names], "test": [file names], "lists": {fold: (train, evaluate)}}``."""
    root = Path(root)
    out: dict[str, Any] = {"root": str(root), "dev": [], "test": [], "lists": {}}
    order = sorted(scenes)
    for folder, n, key in (("scenes_stereo", per_scene, "dev"), ("scenes_stereo_testset", test_per_scene, "test")):
        for scene in scenes:
            for j in range(n):
                name = f"{scene}{2 * j + 1:02d}.wav"  # non-consecutive numbers, as in the release
                tone = class_tone(order.index(scene), seconds, sample_rate, seed=len(out[key]))
                write_wav(root / folder / name, np.stack([tone, 0.9 * tone]), sample_rate)
                out[key].append(name)
    if fold_lists:
        setup = root / "evaluation_setup"
        setup.mkdir(parents=True, exist_ok=True)
        for fold in range(1, 6):
            test = [n for i, n in enumerate(sorted(out["dev"])) if i % 5 == fold - 1]
            train = [n for n in sorted(out["dev"]) if n not in test]
            scene = lambda n: n[:-6]
            (setup / f"fold{fold}_train.txt").write_text("".join(f"scenes_stereo/{n}\t{scene(n)}\n" for n in train))
            (setup / f"fold{fold}_test.txt").write_text("".join(f"scenes_stereo/{n}\n" for n in test))
            (setup / f"fold{fold}_evaluate.txt").write_text("".join(f"scenes_stereo/{n}\t{scene(n)}\n" for n in test))
            out["lists"][fold] = (train, test)
    return out
