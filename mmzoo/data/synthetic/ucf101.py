"""Tiny UCF101 and the .avi writer of the HMDB51 / UCF101 / Arrow-of-Time synthetic sets.

:func:`write_avi` encodes RGB frames as an AVI file with MPEG-4 Part 2 video (the Xvid-style
codec the UCF101 and HMDB51 releases use), optionally with an MP2 audio track, through PyAV, so
the DataModules decode real AVI containers.

:func:`write_ucf101` writes ``root/UCF-101/<Class>/v_<Class>_gXX_cYY.avi`` and
``root/ucfTrainTestlist/{classInd,trainlist0k,testlist0k}.txt`` (k = 1..3, CRLF line ends as in
the release). Split ``k`` tests on groups ``test_groups[k-1]`` and trains on the others.
Content (``content``): ``"colour"`` gives every video of class ``i`` the class colour of
:func:`mmzoo.data.synthetic.kinetics.class_frames` plus a small per-video brightness offset (the
label is in the pixels); ``"noise"`` gives uniform noise independent of the class (nothing to
learn).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mmzoo.data.synthetic.kinetics import class_frames

__all__ = ["DEFAULT_UCF_CLASSES", "video_content", "write_avi", "write_ucf101"]

DEFAULT_UCF_CLASSES = ("ApplyEyeMakeup", "HandstandPushups", "YoYo")


def write_avi(path: str | Path, frames: np.ndarray, fps: float = 25.0, audio: np.ndarray | None = None,
              sample_rate: int = 16000) -> Path:
    """Write ``frames`` (T, H, W, 3 uint8; even H, W) as MPEG-4 Part 2 in an AVI container, with an
    MP2 mono track of ``audio`` (float in [-1, 1]) when given."""
    from fractions import Fraction

    import av

    frames = np.ascontiguousarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="avi") as out:
        vs = out.add_stream("mpeg4", rate=Fraction(fps).limit_denominator(1001))
        vs.width, vs.height, vs.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        vs.options = {"qscale": "2"}  # near-lossless: the class colours survive the codec
        aus = None
        if audio is not None:
            aus = out.add_stream("mp2", rate=sample_rate)
            aus.layout = "mono"
        for f in frames:
            for p in vs.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
        if aus is not None:
            pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)[None]
            af = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
            af.sample_rate = sample_rate
            for p in aus.encode(af):
                out.mux(p)
            for p in aus.encode():
                out.mux(p)
    return path


def video_content(content: str, k: int, index: int, num_frames: int, size: tuple[int, int],
                  rng: np.random.Generator) -> np.ndarray:
    """Frames of video ``index`` of class ``k`` (see the module docstring)."""
    if content == "colour":
        frames = class_frames(k, num_frames, *size).astype(np.int16) + (index % 5) * 4 - 8
        return np.clip(frames, 0, 255).astype(np.uint8)
    if content == "noise":
        return rng.integers(0, 256, (num_frames, *size, 3), dtype=np.uint8)
    raise ValueError(f"unknown content {content!r}")


def _write_lines(path: Path, lines: Sequence[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())


def write_ucf101(
    root: str | Path,
    classes: Sequence[str] = DEFAULT_UCF_CLASSES,
    groups: int = 3,
    clips_per_group: int = 1,
    test_groups: Sequence[Sequence[int]] = ((1,), (2,), (3,)),
    num_frames: int = 8,
    fps: float = 25.0,
    size: tuple[int, int] = (32, 32),
    content: Literal["colour", "noise"] = "colour",
    audio: bool = False,
    seed: int = 0,
) -> dict[str, Any]:
    """Write the dataset; returns ``{"root", "classes", "videos": [dict(rel, label, group, clip)],
    "splits": {k: {"train": [rel], "test": [rel]}}}``. Video files keep the release's spelling
    quirk for ``HandstandPushups`` (``v_HandStandPushups_...``)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    videos = []
    for k, cls in enumerate(classes):
        file_cls = "HandStandPushups" if cls == "HandstandPushups" else cls
        for g in range(1, groups + 1):
            for c in range(1, clips_per_group + 1):
                rel = f"{cls}/v_{file_cls}_g{g:02d}_c{c:02d}.avi"
                frames = video_content(content, k, len(videos), num_frames, size, rng)
                sound = (0.3 * np.sin(2 * np.pi * (300 + 100 * k) * np.arange(int(num_frames / fps * 16000)) / 16000)
                         if audio else None)
                write_avi(root / "UCF-101" / rel, frames, fps, sound)
                videos.append({"rel": rel, "label": k, "group": g, "clip": c})
    lists = root / "ucfTrainTestlist"
    _write_lines(lists / "classInd.txt", [f"{i + 1} {c}" for i, c in enumerate(classes)])
    splits = {}
    for s, test in enumerate(test_groups, start=1):
        train = [v for v in videos if v["group"] not in test]
        tst = [v for v in videos if v["group"] in test]
        _write_lines(lists / f"trainlist0{s}.txt", [f"{v['rel']} {v['label'] + 1}" for v in train])
        _write_lines(lists / f"testlist0{s}.txt", [v["rel"] for v in tst])
        splits[s] = {"train": [v["rel"] for v in train], "test": [v["rel"] for v in tst]}
    return {"root": str(root), "classes": list(classes), "videos": videos, "splits": splits}
