"""Tiny ESC-50 in the layout of the GitHub release, and the WAV writer of the synthetic audio sets.

:func:`write_wav` writes 16-bit PCM WAV (the format of ESC-50 and the DCASE scene sets) with the
standard library's :mod:`wave`. :func:`write_esc50` writes ``root/meta/esc50.csv`` (the release's
7 columns and its ``True`` / ``False`` ``esc10`` flags) and ``root/audio/<fold>-<src>-<take>-<target>.wav``.
Content: clip of class ``k`` is a tone of ``class_hz(k)`` Hz plus a little noise, so the label is
in the sound.
"""
from __future__ import annotations

import csv
import wave
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DEFAULT_ESC_CLASSES", "class_hz", "class_tone", "write_esc50", "write_wav"]

DEFAULT_ESC_CLASSES = ("dog", "rooster", "rain")


def class_hz(k: int) -> float:
    return 400.0 + 1500.0 * k


def class_tone(k: int, seconds: float, sample_rate: int, seed: int = 0) -> np.ndarray:
    """Tone of class ``k`` with a little deterministic noise (float32 in [-1, 1])."""
    n = round(seconds * sample_rate)
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sample_rate
    return (0.5 * np.sin(2 * np.pi * class_hz(k) * t) + 0.02 * rng.standard_normal(n)).astype(np.float32)


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int) -> Path:
    """16-bit PCM WAV of ``audio`` (``(S,)`` mono or ``(channels, S)``, floats in [-1, 1])."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.asarray(audio, dtype=np.float32)
    if a.ndim == 1:
        a = a[None]
    pcm = (np.clip(a, -1, 1) * 32767).astype("<i2").T.copy()  # interleaved frames
    with wave.open(str(path), "wb") as w:
        w.setnchannels(a.shape[0])
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(pcm.tobytes())
    return path


def write_esc50(
    root: str | Path,
    classes: Sequence[str] = DEFAULT_ESC_CLASSES,
    per_fold: int = 1,
    num_folds: int = 5,
    seconds: float = 5.0,
    sample_rate: int = 44100,
    esc10_classes: Sequence[str] = ("dog", "rain"),
    missing: Sequence[str] = (),
) -> dict[str, Any]:
    """Write ``per_fold`` clips of every class in every fold; ``missing`` names files listed in the
    CSV but not written. Returns ``{"root", "csv", "rows": [dict(filename, fold, target, category,
    esc10, line)]}``."""
    root = Path(root)
    (root / "meta").mkdir(parents=True, exist_ok=True)
    rows = []
    src = 100000
    for fold in range(1, num_folds + 1):
        for target, cat in enumerate(classes):
            for j in range(per_fold):
                src += 7
                take = "ABCDEFGH"[j]
                name = f"{fold}-{src}-{take}-{target}.wav"
                rows.append({"filename": name, "fold": fold, "target": target, "category": cat,
                                 "esc10": cat in esc10_classes, "src_file": src, "take": take})
    csv_path = root / "meta" / "esc50.csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["filename", "fold", "target", "category", "esc10", "src_file", "take"])
        for i, r in enumerate(rows):
            w.writerow([r["filename"], r["fold"], r["target"], r["category"], str(r["esc10"]), r["src_file"], r["take"]])
            r["line"] = i + 2
    for i, r in enumerate(rows):
        if r["filename"] not in missing:
            write_wav(root / "audio" / r["filename"], class_tone(r["target"], seconds, sample_rate, seed=i), sample_rate)
    return {"root": str(root), "csv": str(csv_path), "rows": rows}
