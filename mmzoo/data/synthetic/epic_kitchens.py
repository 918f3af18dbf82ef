"""A tiny EPIC-Kitchens-55 / -100 dataset in the official layouts, read back by
``EpicKitchensDataModule`` in tests and benchmarks.

:func:`write_epic` writes, for ``version="100"``::

    root/annotations/EPIC_100_train.csv, EPIC_100_validation.csv, EPIC_100_test_timestamps.csv,
                     EPIC_100_verb_classes.csv, EPIC_100_noun_classes.csv,
                     EPIC_100_unseen_participant_ids_{validation,test}.csv, EPIC_100_tail_{verbs,nouns}.csv
    root/P01/rgb_frames/P01_01/frame_0000000001.jpg ...      (write_frames)
    root/P01/videos/P01_01.MP4                               (write_videos, H.264 + AAC)

and for ``version="55"``::

    root/annotations/EPIC_train_action_labels.csv, EPIC_test_s1_timestamps.csv,
                     EPIC_test_s2_timestamps.csv, EPIC_verb_classes.csv, EPIC_noun_classes.csv,
                     EPIC_many_shot_{verbs,nouns,actions}.csv
    root/frames_rgb_flow/rgb/{train,test}/P01/P01_01/frame_0000000001.jpg ...
    root/videos/{train,test}/P01/P01_01.MP4

With ``write_objects``, object detections for SAOA (thesis ch. 3): ``root/objects/EPIC_objects.h5``
(:mod:`mmzoo.data.epic_objects` format: every video's 2 fps grid frames, ``OBJECT_TOP_K`` boxes each,
box k of frame f = ``object_box(k)`` and feature = ``object_feature(f, k)``) and, for EPIC-55, the
release's ``annotations/EPIC_train_object_labels.csv`` with its ``object_detection_images/train/
P01/P01_01/0000000001.jpg`` images (two labelled frames per training video).

With ``write_flow``, the released optical flow too (greyscale JPEGs, one folder per component)::

    root/P01/flow_frames/P01_01/{u,v}/frame_0000000001.jpg ...                  (EPIC-100)
    root/frames_rgb_flow/flow/{train,test}/P01/P01_01/{u,v}/frame_0000000001.jpg ...  (EPIC-55)

at the release's flow frame rate: ``num_frames // 2`` flow frames for the 2018 videos (``PXX_YY``,
flow at stride 2), ``num_frames - 1`` for the 2020 ones (``PXX_1YY``). Flow frame ``j`` (1-based) is
uniformly ``flow_value(j, "u")`` / ``flow_value(j, "v")`` so tests can tell which one was read.

Content: video frame ``t`` (0-based; file ``frame_{t+1:010d}.jpg``) is grey outside action
segments and has the colour of the segment's verb class inside; its top-left 8x8 block has grey
level ``(4 t) % 256``. The audio is a tone of ``300 + 100 * noun`` Hz during segments, silence
elsewhere. The same frames are written as JPEGs and as the video.
"""
from __future__ import annotations

import colorsys
import csv
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmzoo.data.media import write_jpeg_frames, write_mp4

__all__ = ["OBJECT_DIM", "OBJECT_TOP_K", "flow_value", "format_timestamp", "object_box", "object_feature", "write_epic"]

VERBS = ("take", "put", "open", "close", "wash")
NOUNS = ("plate", "cup", "door", "tap", "knife", "pan")
DEFAULT_VIDEOS = {
    "100": {"train": ["P01_01", "P02_101"], "val": ["P01_11"], "test": ["P03_101"]},
    "55": {"train": ["P01_01", "P26_01"], "s1": ["P01_05"], "s2": ["P32_01"]},
}


OBJECT_DIM, OBJECT_TOP_K = 16, 5


def object_box(k: int) -> tuple[float, float, float, float]:
    """Box k (x0, y0, x1, y1, pixels) of every synthetic detection frame."""
    return (4.0 * k, 2.0 * k, 4.0 * k + 16, 2.0 * k + 12)


def object_feature(frame: int, k: int) -> np.ndarray:
    """Feature of box k of frame ``frame``: ``frame + k / 10`` in channel 0, ``k`` in channel 1, 1 elsewhere."""
    f = np.ones(OBJECT_DIM, np.float32)
    f[0], f[1] = frame + k / 10, k
    return f


def _write_objects(root: Path, version: str, num_frames: int, fps: float, size: tuple[int, int],
                   video_ids: list[str], train_ids: list[str], participants: dict[str, str]) -> dict[str, Any]:
    from PIL import Image

    from mmzoo.data.epic_objects import grid_frames, write_objects

    videos = {}
    for vid in video_ids:
        frames = grid_frames(1, num_frames, fps, 2.0)
        k = OBJECT_TOP_K
        counts = np.full(len(frames), k, np.int64)
        counts[-1] = 2  # the last frame keeps only two detections
        videos[vid] = {"frames": frames, "boxes": np.tile(np.array([object_box(i) for i in range(k)], np.float32), (len(frames), 1, 1)),
                       "scores": np.tile(np.linspace(0.9, 0.5, k, dtype=np.float32), (len(frames), 1)), "counts": counts,
                       "features": np.stack([np.stack([object_feature(f, i) for i in range(k)]) for f in frames]),
                       "width": size[1], "height": size[0], "fps": fps}
    out = {"objects": str(write_objects(root / "objects" / "EPIC_objects.h5", videos, OBJECT_DIM, OBJECT_TOP_K, 2.0,
                                        detector="synthetic"))}
    if version == "55":
        rows = []
        for vid in train_ids:
            d = root / "object_detection_images" / "train" / participants[vid] / vid
            d.mkdir(parents=True, exist_ok=True)
            for frame, noun, boxes in ((1, 0, "[(2, 4, 10, 20)]"), (31, 1, "[(0, 0, 8, 8), (20, 30, 12, 16)]")):
                Image.fromarray(np.full((size[0], size[1], 3), 90, np.uint8)).save(d / f"{frame:010d}.jpg")
                rows.append([noun, NOUNS[noun], participants[vid], vid, frame, boxes])
            rows.append([2, NOUNS[2], participants[vid], vid, 61, "[]"])
        with open(root / "annotations" / "EPIC_train_object_labels.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["noun_class", "noun", "participant_id", "video_id", "frame", "bounding_boxes"])
            w.writerows(rows)
        out["object_labels"] = str(root / "annotations" / "EPIC_train_object_labels.csv")
    return out


def flow_value(j: int, axis: str) -> int:
    """Grey level of synthetic flow frame ``j`` (1-based): u = 10 j mod 250, v = 250 - u."""
    u = (10 * j) % 250
    return u if axis == "u" else 250 - u


def _write_flow(folder: Path, count: int, size: tuple[int, int]) -> None:
    from PIL import Image

    for axis in ("u", "v"):
        d = folder / axis
        d.mkdir(parents=True, exist_ok=True)
        for j in range(1, count + 1):
            Image.fromarray(np.full(size, flow_value(j, axis), dtype=np.uint8), mode="L").save(
                d / f"frame_{j:010d}.jpg", format="JPEG", quality=95)


def format_timestamp(seconds: float) -> str:
    """Seconds -> ``HH:MM:SS.ff`` (the annotation files' format)."""
    cs = int(round(seconds * 100))
    h, rem = divmod(cs, 360000)
    m, rem = divmod(rem, 6000)
    s, f = divmod(rem, 100)
    return f"{h:02d}:{m:02d}:{s:02d}.{f:02d}"


def _colour(k: int) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb((k * 0.381966) % 1.0, 0.8, 0.9)
    return int(r * 255), int(g * 255), int(b * 255)


def write_epic(
    root: str | Path,
    version: str = "100",
    videos: dict[str, list[str]] | None = None,
    segments_per_video: int = 2,
    num_frames: int = 90,
    fps: float = 30.0,
    size: tuple[int, int] = (48, 64),
    sample_rate: int = 16000,
    write_frames: bool = True,
    write_videos: bool = True,
    no_audio_videos: Sequence[str] = (),
    write_flow: bool = False,
    write_objects: bool = False,
    seed: int = 0,
) -> dict[str, Any]:
    """Write the dataset; returns ``{"root", "version", "num_verbs", "num_nouns", "fps",
    "num_frames", "csv": {split: path}, "rows": {split: [dict(row fields + verb_class, noun_class,
    line)]}, "frames_dirs": {video_id: path}, "videos": {video_id: path}}``.

    Segment ``j`` of a video covers frame numbers ``start = 6 + 40 j`` to ``start + 24``
    (inclusive, 1-based) with matching timestamps ``(frame - 1) / fps``."""
    if version not in ("55", "100"):
        raise ValueError(f"version must be '55' or '100', got {version!r}")
    root = Path(root)
    rng = random.Random(seed)
    videos = videos or DEFAULT_VIDEOS[version]
    ann = root / "annotations"
    ann.mkdir(parents=True, exist_ok=True)
    names = {
        "100": {"train": "EPIC_100_train.csv", "val": "EPIC_100_validation.csv", "test": "EPIC_100_test_timestamps.csv",
                "verbs": "EPIC_100_verb_classes.csv", "nouns": "EPIC_100_noun_classes.csv"},
        "55": {"train": "EPIC_train_action_labels.csv", "s1": "EPIC_test_s1_timestamps.csv",
               "s2": "EPIC_test_s2_timestamps.csv", "verbs": "EPIC_verb_classes.csv", "nouns": "EPIC_noun_classes.csv"},
    }[version]  # fmt: skip
    # class files
    with open(ann / names["verbs"], "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "key", "instances", "category"] if version == "100" else ["verb_id", "class_key", "verbs"])
        for i, v in enumerate(VERBS):
            w.writerow([i, v, f"['{v}']", v] if version == "100" else [i, v, f"['{v}']"])
    with open(ann / names["nouns"], "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "key", "instances", "category"] if version == "100" else ["noun_id", "class_key", "nouns"])
        for i, n in enumerate(NOUNS):
            w.writerow([i, n, f"['{n}']", "things"] if version == "100" else [i, n, f"['{n}']"])

    labelled_cols = (
        ["narration_id", "participant_id", "video_id", "narration_timestamp", "start_timestamp", "stop_timestamp",
         "start_frame", "stop_frame", "narration", "verb", "verb_class", "noun", "noun_class", "all_nouns",
         "all_noun_classes"]
        if version == "100" else
        ["uid", "participant_id", "video_id", "narration", "start_timestamp", "stop_timestamp", "start_frame",
         "stop_frame", "verb", "verb_class", "noun", "noun_class", "all_nouns", "all_noun_classes"]
    )  # fmt: skip
    test_cols = (
        ["narration_id", "participant_id", "video_id", "narration_timestamp", "start_timestamp", "stop_timestamp",
         "start_frame", "stop_frame"]
        if version == "100" else
        ["uid", "participant_id", "video_id", "start_timestamp", "stop_timestamp", "start_frame", "stop_frame"]
    )  # fmt: skip
    out: dict[str, Any] = {"root": str(root), "version": version, "num_verbs": len(VERBS), "num_nouns": len(NOUNS),
                           "fps": fps, "num_frames": num_frames, "csv": {}, "rows": {}, "frames_dirs": {},
                           "videos": {}, "flow_dirs": {}, "flow_counts": {}}  # fmt: skip
    uid = 0
    # EPIC-55: the labelled rows of all non-test splits share EPIC_train_action_labels.csv
    file_rows: dict[str, list[dict]] = {}
    for split, vids in videos.items():
        labelled = split in ("train", "val")
        key = "train" if (version == "55" and labelled) else split
        media_split = "train" if labelled else "test"
        for vid in vids:
            participant = vid.split("_")[0]
            frames = np.full((num_frames, size[0], size[1], 3), 128, dtype=np.uint8)
            audio = np.zeros(int(round(num_frames / fps * sample_rate)), dtype=np.float32)
            for j in range(segments_per_video):
                start, stop = 6 + 40 * j, 6 + 40 * j + 24
                if stop > num_frames:
                    raise ValueError(f"num_frames={num_frames} too small for {segments_per_video} segments")
                v, n = rng.randrange(len(VERBS)), rng.randrange(len(NOUNS))
                frames[start - 1 : stop] = np.array(_colour(v), dtype=np.uint8)
                a0, a1 = int(round((start - 1) / fps * sample_rate)), int(round(stop / fps * sample_rate))
                audio[a0:a1] = 0.4 * np.sin(2 * np.pi * (300 + 100 * n) * np.arange(a1 - a0) / sample_rate)
                row = {
                    "uid": uid, "narration_id": f"{vid}_{j}", "participant_id": participant, "video_id": vid,
                    "narration_timestamp": format_timestamp((start - 1) / fps),
                    "start_timestamp": format_timestamp((start - 1) / fps),
                    "stop_timestamp": format_timestamp((stop - 1) / fps),
                    "start_frame": start, "stop_frame": stop, "narration": f"{VERBS[v]} {NOUNS[n]}",
                    "verb": VERBS[v], "verb_class": v, "noun": NOUNS[n], "noun_class": n,
                    "all_nouns": f"['{NOUNS[n]}']", "all_noun_classes": f"[{n}]", "split": split,
                }  # fmt: skip
                uid += 1
                file_rows.setdefault(key, []).append(row)
                out["rows"].setdefault(split, []).append(row)
            for t in range(num_frames):
                frames[t, :8, :8] = (4 * t) % 256
            if version == "100":
                fdir = root / participant / "rgb_frames" / vid
                vpath = root / participant / "videos" / f"{vid}.MP4"
            else:
                fdir = root / "frames_rgb_flow" / "rgb" / media_split / participant / vid
                vpath = root / "videos" / media_split / participant / f"{vid}.MP4"
            if write_flow:
                fl = (root / participant / "flow_frames" / vid if version == "100"
                      else root / "frames_rgb_flow" / "flow" / media_split / participant / vid)
                count = num_frames // 2 if len(vid.split("_")[1]) == 2 else num_frames - 1
                _write_flow(fl, count, size)
                out["flow_dirs"][vid], out["flow_counts"][vid] = str(fl), count
            if write_frames:
                write_jpeg_frames(fdir, frames, pattern="frame_{:010d}.jpg", start=1)
                out["frames_dirs"][vid] = str(fdir)
            if write_videos:
                write_mp4(vpath, frames, fps, None if vid in no_audio_videos else audio, sample_rate)
                out["videos"][vid] = str(vpath)
    if version == "100":  # evaluation-subset lists of the release (one column each)
        (ann / "EPIC_100_unseen_participant_ids_validation.csv").write_text("participant_id\nP01\n")
        (ann / "EPIC_100_unseen_participant_ids_test.csv").write_text("participant_id\nP03\n")
        (ann / "EPIC_100_tail_verbs.csv").write_text("verb\n3\n4\n")
        (ann / "EPIC_100_tail_nouns.csv").write_text("noun\n4\n5\n")
        out["tail_verbs"], out["tail_nouns"] = [3, 4], [4, 5]
        out["unseen_participants"] = {"val": ["P01"], "test": ["P03"]}
    if version == "55":  # many-shot lists of the release: verbs / nouns / (verb, noun) pairs
        (ann / "EPIC_many_shot_verbs.csv").write_text("verb_class,verb\n0,take\n1,put\n")
        (ann / "EPIC_many_shot_nouns.csv").write_text("noun_class,noun\n0,plate\n1,cup\n")
        (ann / "EPIC_many_shot_actions.csv").write_text('action_class,verb_class,noun_class,action\n"(0, 0)",0,0,take plate\n'
                                                        '"(1, 1)",1,1,put cup\n')  # fmt: skip
        out["many_shot_verbs"], out["many_shot_nouns"], out["many_shot_actions"] = [0, 1], [0, 1], [(0, 0), (1, 1)]
    if write_objects:
        ids = [v for vids in videos.values() for v in vids]
        train_ids = [v for split, vids in videos.items() if split in ("train", "val") for v in vids]
        out.update(_write_objects(root, version, num_frames, fps, size, ids, train_ids, {v: v.split("_")[0] for v in ids}))
    for key, rows in file_rows.items():
        path = ann / names[key]
        cols = labelled_cols if key in ("train", "val") else test_cols
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(cols)
            for i, r in enumerate(rows):
                w.writerow([r[c] for c in cols])
                r["line"] = i + 2
                r["csv"] = str(path)
        out["csv"][key] = str(path)
    return out
