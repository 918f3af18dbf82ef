"""A tiny AVE dataset in the official layouts, with events that can be learned from sight and sound.

:func:`write_ave` writes what the two AVE releases contain:

- the dataset release (``AVE_Dataset.zip``): ``Annotations.txt`` (``Category&VideoID&Quality&
  StartTime&EndTime``, optionally with that header line), ``trainSet.txt`` / ``valSet.txt`` /
  ``testSet.txt`` in the same format, and one real mp4 per video id in ``AVE/<VideoID>.mp4``
  (H.264 video + AAC audio, 10 s);
- the authors' code release (``data/`` of AVE-ECCV18): ``train_order.h5`` / ``val_order.h5`` /
  ``test_order.h5`` (key ``order``: row indices into Annotations.txt) and, optionally, the
  feature files with key ``avadataset``: ``visual_feature.h5`` ``[N,10,7,7,512]``,
  ``audio_feature.h5`` ``[N,10,128]``, ``labels.h5`` ``[N,10,29]`` and the weak-setting extras
  ``*_noisy.h5`` (background-only videos).

Content. Class ``k`` (its index in the official AVE class list) is shown during the event
segments as a filled square of a class-specific colour that moves across the frame, and heard as
a class-specific tone (``220 * 2**(k/5)`` Hz plus its octave). Background segments show grey
noise and sound like quiet white noise. The synthetic feature files follow the same idea in
feature space (a class prototype plus noise in event segments, noise elsewhere), so a model reaches
high accuracy in seconds; they are *not* extracted from the videos.

Layouts (``layout=``):

- ``"authors"``: ``root/AVE_Dataset/{Annotations.txt, *Set.txt, AVE/}`` and
  ``root/data/{*_order.h5, *feature*.h5, labels*.h5}`` (the two archives unpacked side by side);
- ``"flat"``: every file directly in ``root`` (``root/AVE/`` for the videos).
"""
from __future__ import annotations

import colorsys
import string
from pathlib import Path
from typing import Any, Literal, Optional, Sequence

import numpy as np

from mmzoo.data.constants import AVE_CLASSES
from mmzoo.data.media import write_mp4

__all__ = ["AVE_CLASSES", "write_ave", "class_colour", "class_tone_hz"]

BACKGROUND = 28
HEADER = "Category&VideoID&Quality&StartTime&EndTime"
_ID_CHARS = string.ascii_letters + string.digits + "-_"


def class_colour(k: int) -> tuple[int, int, int]:
    """RGB colour of class ``k``: hues spread over the colour wheel, fully saturated."""
    r, g, b = colorsys.hsv_to_rgb((k * 0.381966) % 1.0, 1.0, 1.0)  # golden-ratio hue steps
    return int(r * 255), int(g * 255), int(b * 255)


def class_tone_hz(k: int) -> float:
    """Fundamental frequency of class ``k``'s tone."""
    return 220.0 * 2.0 ** (k / 5.0)


def _segment_labels(start: int, end: int, k: int, t: int = 10) -> list[int]:
    return [k if start <= s < end else BACKGROUND for s in range(t)]


def _render_video(
    rng: np.random.Generator, k: Optional[int], start: int, end: int, seconds: int, fps: int, size: int, sr: int
) -> tuple[np.ndarray, np.ndarray]:
    n = seconds * fps
    # grey block noise (8x8 blocks keep the H.264 files small)
    cells = -(-size // 8)
    grey = rng.integers(90, 166, size=(n, cells, cells), dtype=np.uint8)
    grey = np.repeat(np.repeat(grey, 8, axis=1), 8, axis=2)[:, :size, :size]
    frames = np.repeat(grey[..., None], 3, axis=3)
    t_audio = np.arange(seconds * sr) / sr
    wav = 0.02 * rng.standard_normal(seconds * sr)
    if k is not None and end > start:
        colour = np.array(class_colour(k), np.uint8)
        side = size // 3
        f0 = class_tone_hz(k)
        phase = rng.uniform(0, 2 * np.pi)
        for i in range(start * fps, end * fps):
            u = (i - start * fps) / max((end - start) * fps - 1, 1)  # 0..1 over the event
            x = int(round(u * (size - side)))
            y = (size - side) // 2 + int(round(0.25 * (size - side) * np.sin(2 * np.pi * u)))
            frames[i, y : y + side, x : x + side] = colour
        lo, hi = start * sr, end * sr
        tt = t_audio[lo:hi]
        wav[lo:hi] += 0.35 * np.sin(2 * np.pi * f0 * tt + phase) + 0.15 * np.sin(4 * np.pi * f0 * tt + phase)
    return frames, np.clip(wav, -1, 1).astype(np.float32)


def _features(rng: np.random.Generator, labels: Sequence[int], protos_v: np.ndarray, protos_a: np.ndarray):
    t = len(labels)
    visual = np.abs(0.3 * rng.standard_normal((t, 7, 7, protos_v.shape[-1]))).astype(np.float32)
    audio = (0.3 * rng.standard_normal((t, protos_a.shape[-1]))).astype(np.float32)
    for s, lab in enumerate(labels):
        if lab == BACKGROUND:
            continue
        cy, cx = rng.integers(1, 6, size=2)
        visual[s, cy - 1 : cy + 2, cx - 1 : cx + 2] += protos_v[lab]
        audio[s] += protos_a[lab]
    return visual, audio


def _write_h5(path: Path, key: str, array: np.ndarray) -> None:
    import h5py

    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset(key, data=array)


def write_ave(
    root: str | Path,
    num_videos_per_class: int = 4,
    classes: Optional[Sequence[str]] = None,
    seed: int = 0,
    with_features: bool = True,
    with_videos: bool = True,
    layout: Literal["authors", "flat"] = "authors",
    header: bool = False,
    with_split_txt: bool = True,
    with_order_h5: bool = True,
    repeat_video_id: bool = True,
    degenerate_row: bool = True,
    num_noisy: int = 0,
    seconds: int = 10,
    fps: int = 8,
    frame_size: int = 64,
    sample_rate: int = 16000,
    split_fractions: tuple[float, float, float] = (0.5, 0.25, 0.25),
) -> dict[str, Any]:
    """Write a tiny AVE dataset under ``root`` and describe it.

    Args:
        root: output folder.
        num_videos_per_class: videos per class (at least 3: one per split).
        classes: class names, a subset of the 28 AVE classes (default: the first three).
        seed: everything (ids, event boundaries, pixels, audio, features) follows from it.
        with_features: write ``visual_feature.h5`` / ``audio_feature.h5`` / ``labels.h5``.
        with_videos: write ``AVE/<VideoID>.mp4`` (10 s, ``fps``, ``frame_size`` square, AAC audio).
        layout: ``"authors"`` (``AVE_Dataset/`` + ``data/``) or ``"flat"`` (see module docstring).
        header: start Annotations.txt and the split files with the header line.
        with_split_txt / with_order_h5: write the split files of each release.
        repeat_video_id: add one train row that reuses the first video id under another class
            (AVE has 45 such ids), with different event boundaries.
        degenerate_row: add one train row ``<class>&<id>&good&0&0`` (empty event: all background).
        num_noisy: background-only videos in ``*_noisy.h5`` (needs ``with_features``).
        seconds, fps, frame_size, sample_rate: media parameters.
        split_fractions: train / val / test share of each class's videos.

    Returns:
        dict with ``root``, ``annotations`` (path), ``video_dir``, ``feature_dir``, ``classes``
        (names), ``class_indices`` (official AVE indices), ``rows`` (one dict per annotation row:
        ``row``, ``category``, ``class_index``, ``video_id``, ``start``, ``end``, ``split``,
        ``labels`` = the 10 expected segment labels), ``splits`` (split -> row indices),
        ``files`` (every path written) and ``num_noisy``.
    """
    import h5py  # noqa: F401  (fail early when missing)

    root = Path(root)
    classes = list(classes) if classes is not None else list(AVE_CLASSES[:3])
    unknown = [c for c in classes if c not in AVE_CLASSES]
    if unknown:
        raise ValueError(f"not AVE classes: {unknown}")
    if len(set(classes)) != len(classes):
        raise ValueError("classes must be distinct")
    if num_videos_per_class < 3:
        raise ValueError("num_videos_per_class must be >= 3 (one video per split at least)")
    if repeat_video_id and len(classes) < 2:
        raise ValueError("repeat_video_id needs at least two classes")
    if num_noisy and not with_features:
        raise ValueError("num_noisy needs with_features=True (the noisy videos exist only as features)")
    if seconds != 10 and with_features:
        raise ValueError("the released feature format has 10 segments: use seconds=10 with with_features")
    rng = np.random.default_rng(seed)

    if layout == "authors":
        release, code = root / "AVE_Dataset", root / "data"
    elif layout == "flat":
        release = code = root
    else:
        raise ValueError(f"layout must be 'authors' or 'flat'; got {layout!r}")
    video_dir = release / "AVE"

    used: set[str] = set()

    def new_id() -> str:
        while True:
            vid = "".join(rng.choice(list(_ID_CHARS), size=11))
            if vid not in used:
                used.add(vid)
                return vid

    # rows in the order they appear in Annotations.txt: classes interleaved like the real file
    per_class_split = []
    n_tr = max(1, int(round(split_fractions[0] * num_videos_per_class)))
    n_va = max(1, int(round(split_fractions[1] * num_videos_per_class)))
    n_tr = min(n_tr, num_videos_per_class - 2)
    n_va = min(n_va, num_videos_per_class - n_tr - 1)
    for j in range(num_videos_per_class):
        per_class_split.append("train" if j < n_tr else "val" if j < n_tr + n_va else "test")
    rows: list[dict[str, Any]] = []
    for j in range(num_videos_per_class):
        for name in classes:
            k = AVE_CLASSES.index(name)
            if j % 3 == 0:
                start, end = 0, seconds  # whole video (most common in AVE)
            else:
                start = int(rng.integers(0, 5))
                end = int(rng.integers(start + 3, seconds + 1))
            rows.append(dict(category=name, class_index=k, video_id=new_id(), start=start, end=end, split=per_class_split[j]))
    if repeat_video_id:
        other = classes[1]
        rows.append(dict(category=other, class_index=AVE_CLASSES.index(other), video_id=rows[0]["video_id"],
                         start=2, end=6, split="train"))
    if degenerate_row:
        name = classes[0]
        rows.append(dict(category=name, class_index=AVE_CLASSES.index(name), video_id=new_id(), start=0, end=0, split="train"))
    for i, r in enumerate(rows):
        r["row"] = i
        r["labels"] = _segment_labels(r["start"], r["end"], r["class_index"], seconds)

    files: list[Path] = []

    def line(r):
        return f"{r['category']}&{r['video_id']}&good&{r['start']}&{r['end']}"

    release.mkdir(parents=True, exist_ok=True)
    code.mkdir(parents=True, exist_ok=True)
    ann = release / "Annotations.txt"
    ann.write_text(((HEADER + "\n") if header else "") + "".join(line(r) + "\n" for r in rows))
    files.append(ann)
    splits = {s: [r["row"] for r in rows if r["split"] == s] for s in ("train", "val", "test")}
    if with_split_txt:
        for s, fname in (("train", "trainSet.txt"), ("val", "valSet.txt"), ("test", "testSet.txt")):
            p = release / fname
            p.write_text(((HEADER + "\n") if header else "") + "".join(line(rows[i]) + "\n" for i in splits[s]))
            files.append(p)
    if with_order_h5:
        for s in ("train", "val", "test"):
            p = code / f"{s}_order.h5"
            _write_h5(p, "order", np.asarray(splits[s], dtype=np.int64))
            files.append(p)

    if with_videos:
        # one file per video id; a repeated id shows its first row's event (as in AVE, where the
        # same clip carries two labels)
        done: set[str] = set()
        for r in rows:
            if r["video_id"] in done:
                continue
            done.add(r["video_id"])
            k = r["class_index"] if r["end"] > r["start"] else None
            frames, wav = _render_video(rng, k, r["start"], r["end"], seconds, fps, frame_size, sample_rate)
            p = write_mp4(video_dir / f"{r['video_id']}.mp4", frames, fps=fps, audio=wav, sample_rate=sample_rate)
            files.append(p)

    if with_features:
        frng = np.random.default_rng(seed + 1)
        protos_v = np.abs(frng.standard_normal((BACKGROUND, 512))).astype(np.float32) * 1.5
        protos_a = frng.standard_normal((BACKGROUND, 128)).astype(np.float32) * 1.5
        vis = np.zeros((len(rows), seconds, 7, 7, 512), np.float32)
        aud = np.zeros((len(rows), seconds, 128), np.float32)
        lab = np.zeros((len(rows), seconds, BACKGROUND + 1), np.float32)
        for r in rows:
            vis[r["row"]], aud[r["row"]] = _features(frng, r["labels"], protos_v, protos_a)
            lab[r["row"], np.arange(seconds), r["labels"]] = 1.0
        for name, arr in (("visual_feature.h5", vis), ("audio_feature.h5", aud), ("labels.h5", lab)):
            _write_h5(code / name, "avadataset", arr)
            files.append(code / name)
        if num_noisy:
            bg = [BACKGROUND] * seconds
            nv = np.zeros((num_noisy, seconds, 7, 7, 512), np.float32)
            na = np.zeros((num_noisy, seconds, 128), np.float32)
            nl = np.zeros((num_noisy, seconds, BACKGROUND + 1), np.float32)
            for i in range(num_noisy):
                nv[i], na[i] = _features(frng, bg, protos_v, protos_a)
                nl[i, :, BACKGROUND] = 1.0
            for name, arr in (("visual_feature_noisy.h5", nv), ("audio_feature_noisy.h5", na), ("labels_noisy.h5", nl)):
                _write_h5(code / name, "avadataset", arr)
                files.append(code / name)

    return {
        "root": root,
        "annotations": ann,
        "video_dir": video_dir if with_videos else None,
        "feature_dir": code if with_features else None,
        "code_dir": code,
        "release_dir": release,
        "classes": classes,
        "class_indices": [AVE_CLASSES.index(c) for c in classes],
        "rows": rows,
        "splits": splits,
        "files": files,
        "num_noisy": num_noisy,
        "header": header,
        "layout": layout,
    }
