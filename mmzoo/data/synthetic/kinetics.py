"""A tiny Kinetics dataset in the official layout, read back by ``KineticsDataModule`` in tests,
the demo and the data benchmark.

:func:`write_kinetics` writes

* ``root/annotations/{train,val,test}.csv`` with the release columns
  ``label,youtube_id,time_start,time_end,split`` (``test.csv`` optional, same format);
* one real mp4 per row at ``root/<split>/<label>/<youtube_id>_<start:06d>_<end:06d>.mp4``
  (H.264 + AAC via :func:`mmzoo.data.media.write_mp4`), or, with ``flat=True``,
  ``root/<split>/<youtube_id>_...mp4``.

Content: class ``k`` (index in the sorted class list) is a frame filled with a class colour,
and a tone of ``300 + 100 k`` Hz. The top-left 8x8 block of frame ``t`` has grey level
``min(4 t, 255)`` so that decoded frame indices can be checked from pixels. Rows listed in
``no_audio`` get a video-only file; ``corrupt`` rows get a file of random bytes.

With ``av_events=True`` sound and motion co-occur (for audio-visual synchronisation tests): each
video gets events at random times (:func:`event_times`, about one every ``event_every`` seconds);
during an event a white 12x12 square moves across the frame centre for ``event_seconds`` and the
audio holds a noise burst of amplitude 0.8 over the same span; outside events the frame is the
plain class colour and the audio is the class tone at amplitude 0.05.

:func:`write_mini_kinetics_lists` writes Mini-Kinetics list files over such a dataset, in the
format of either distribution: AR-Net's ``mini_{train,val}_videofolder.txt`` (+
``minik_classInd.txt``) or S3D's ``{train,val}_ytid_list.txt`` (see :mod:`mmzoo.data.kinetics`).
"""
from __future__ import annotations

import colorsys
import csv
import random
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mmzoo.data.media import write_mp4

__all__ = ["DEFAULT_CLASSES", "write_kinetics", "write_mini_kinetics_lists"]

DEFAULT_CLASSES = ("abseiling", "playing drums", "tickling")
_ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"


def _colour(k: int) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb((k * 0.381966) % 1.0, 0.8, 0.9)
    return int(r * 255), int(g * 255), int(b * 255)


def class_frames(k: int, num_frames: int, height: int, width: int) -> np.ndarray:
    """The frames written for a video of class ``k`` (see the module docstring)."""
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    frames[:] = np.array(_colour(k), dtype=np.uint8)
    for t in range(num_frames):
        frames[t, :8, :8] = min(4 * t, 255)
    return frames


def class_audio(k: int, seconds: float, sample_rate: int) -> np.ndarray:
    n = int(round(seconds * sample_rate))
    return (0.4 * np.sin(2 * np.pi * (300 + 100 * k) * np.arange(n) / sample_rate)).astype(np.float32)


def event_times(num_seconds: float, every: float, seed: int) -> list[float]:
    """Start times (s) of the events of one ``av_events`` video: one per ``every``-second slot, at a
    random offset within the first half of the slot."""
    rng = random.Random(seed)
    return [slot * every + rng.uniform(0.0, 0.5 * every) for slot in range(int(num_seconds // every))]


def event_media(k: int, num_frames: int, fps: float, size: tuple[int, int], sample_rate: int, times: Sequence[float],
                event_seconds: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Frames and audio of an ``av_events`` video of class ``k`` with events starting at ``times``."""
    frames = class_frames(k, num_frames, *size)
    n = round(num_frames / fps * sample_rate)
    audio = 0.125 * class_audio(k, num_frames / fps, sample_rate)[:n]
    noise = np.random.default_rng(seed).uniform(-0.8, 0.8, n).astype(np.float32)
    h, w = size
    for t0 in times:
        a, b = round(t0 * sample_rate), min(n, round((t0 + event_seconds) * sample_rate))
        audio[a:b] = noise[a:b]
        f0, f1 = int(np.ceil(t0 * fps)), min(num_frames, int(np.ceil((t0 + event_seconds) * fps)))
        for i, f in enumerate(range(f0, f1)):
            x = min(w - 12, w // 4 + 4 * i)
            frames[f, h // 2 - 6 : h // 2 + 6, x : x + 12] = 255
    return frames, audio


def write_kinetics(
    root: str | Path,
    classes: Sequence[str] = DEFAULT_CLASSES,
    per_class: dict[str, int] | None = None,
    num_frames: int = 40,
    fps: float = 30.0,
    size: tuple[int, int] = (64, 80),
    sample_rate: int = 16000,
    no_audio: Sequence[tuple[str, int]] = (),
    corrupt: Sequence[tuple[str, int]] = (),
    flat: bool = False,
    seed: int = 0,
    deepmind_csvs: bool = False,
    av_events: bool = False,
    event_every: float = 1.0,
    event_seconds: float = 0.2,
) -> dict[str, Any]:
    """Write the dataset; returns a description for tests.

    Args:
        root: output folder.
        classes: class names (written as given; the loader sorts them).
        per_class: videos per class and split, e.g. ``{"train": 2, "val": 1}`` (default), a
            ``"test"`` entry adds ``annotations/test.csv``.
        num_frames / fps / size: video length, rate and ``(height, width)`` (even numbers).
        sample_rate: audio rate of the AAC track.
        no_audio / corrupt: ``(split, row_number)`` pairs (row number within the split's CSV,
            0-based) written without audio / as a corrupt file.
        flat: CVDF layout without label folders.
        deepmind_csvs: name and place the lists as DeepMind's archive does (``root/train.csv``,
            ``root/validate.csv``, ``root/test.csv``) instead of ``root/annotations/<split>.csv``.
        av_events / event_every / event_seconds: co-occurring sound and motion events (module
            docstring); each row then also records its ``event_times``.

    Returns:
        ``{"root", "classes" (sorted), "csv": {split: path}, "rows": {split: [dict(label,
        label_index, youtube_id, time_start, time_end, path, has_audio, corrupt, line)]},
        "num_frames", "fps", "size"}``.
    """
    root = Path(root)
    per_class = dict(per_class or {"train": 2, "val": 1})
    rng = random.Random(seed)
    sorted_classes = sorted(classes)
    out: dict[str, Any] = {"root": str(root), "classes": sorted_classes, "csv": {}, "rows": {},
                           "num_frames": num_frames, "fps": fps, "size": tuple(size)}  # fmt: skip
    csv_dir = root if deepmind_csvs else root / "annotations"
    csv_dir.mkdir(parents=True, exist_ok=True)
    seconds = num_frames / fps
    no_audio, corrupt = set(map(tuple, no_audio)), set(map(tuple, corrupt))
    for split, n in per_class.items():
        rows = []
        for label in classes:
            for _ in range(n):
                yid = "".join(rng.choice(_ID_CHARS) for _ in range(11))
                start = rng.randrange(0, 290)
                rows.append({"label": label, "youtube_id": yid, "time_start": start, "time_end": start + 10})
        csv_path = csv_dir / ("validate.csv" if deepmind_csvs and split == "val" else f"{split}.csv")
        with open(csv_path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["label", "youtube_id", "time_start", "time_end", "split"])
            for r in rows:
                w.writerow([r["label"], r["youtube_id"], r["time_start"], r["time_end"], split])
        for i, r in enumerate(rows):
            k = sorted_classes.index(r["label"])
            name = f"{r['youtube_id']}_{r['time_start']:06d}_{r['time_end']:06d}.mp4"
            path = root / split / name if flat else root / split / r["label"] / name
            has_audio = (split, i) not in no_audio
            is_corrupt = (split, i) in corrupt
            if is_corrupt:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(bytes(rng.randrange(256) for _ in range(2048)))
            elif av_events:
                vseed = rng.randrange(2**31)
                r["event_times"] = event_times(seconds, event_every, vseed)
                frames, audio = event_media(k, num_frames, fps, tuple(size), sample_rate, r["event_times"],
                                            event_seconds, vseed)
                write_mp4(path, frames, fps, audio if has_audio else None, sample_rate)
            else:
                audio = class_audio(k, seconds, sample_rate) if has_audio else None
                write_mp4(path, class_frames(k, num_frames, *size), fps, audio, sample_rate)
            r.update(label_index=k, path=str(path), has_audio=has_audio and not is_corrupt,
                     corrupt=is_corrupt, line=i + 2)  # fmt: skip
        out["csv"][split] = str(csv_path)
        out["rows"][split] = rows
    return out


def write_mini_kinetics_lists(
    dataset: dict[str, Any],
    out_dir: str | Path,
    split: str = "arnet",
    classes: Sequence[str] | None = None,
    extra: dict[str, Sequence[str]] | None = None,
    class_file: bool = True,
) -> dict[str, Any]:
    """Write Mini-Kinetics list files naming the videos of ``classes`` in a :func:`write_kinetics`
    ``dataset``.

    Args:
        dataset: the value returned by :func:`write_kinetics`.
        out_dir: folder for the list files.
        split: ``"arnet"``: ``mini_train_videofolder.txt`` / ``mini_val_videofolder.txt`` with lines
            ``images/<split>/<class>/<youtube_id>_<start:06d>_<end:06d> <num_frames> <label>``
            (label = index in the sorted ``classes``; no newline after the last line, as in the
            release) and, with ``class_file``, ``minik_classInd.txt``; ``"s3d"``:
            ``train_ytid_list.txt`` / ``val_ytid_list.txt``, one youtube_id per line.
        classes: the classes to list (default: all of the dataset).
        extra: ``{"train" | "val": [line, ...]}`` lines appended verbatim (e.g. ids absent from the
            CSV, to test the loader's strictness).

    Returns:
        ``{"dir", "files": {split: path}, "classes" (label order), "rows": {split: [dataset rows
        in list order]}}``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    chosen = sorted(classes if classes is not None else dataset["classes"])
    extra = dict(extra or {})
    names = {"arnet": ("mini_train_videofolder.txt", "mini_val_videofolder.txt"),
             "s3d": ("train_ytid_list.txt", "val_ytid_list.txt")}[split]  # fmt: skip
    out: dict[str, Any] = {"dir": str(out_dir), "files": {}, "classes": chosen, "rows": {}}
    for s, fname in zip(("train", "val"), names):
        rows = [r for c in chosen for r in dataset["rows"][s] if r["label"] == c]
        if split == "arnet":
            lines = [
                f"images/{s}/{r['label']}/{r['youtube_id']}_{r['time_start']:06d}_{r['time_end']:06d} "
                f"{dataset['num_frames']} {chosen.index(r['label'])}"
                for r in rows
            ]
            text = "\n".join(lines + list(extra.get(s, ())))
        else:
            text = "".join(f"{x}\n" for x in [r["youtube_id"] for r in rows] + list(extra.get(s, ())))
        (out_dir / fname).write_text(text, encoding="utf-8")
        out["files"][s] = str(out_dir / fname)
        out["rows"][s] = rows
    if split == "arnet" and class_file:
        (out_dir / "minik_classInd.txt").write_text("".join(f"{c}\n" for c in chosen), encoding="utf-8")
    return out
