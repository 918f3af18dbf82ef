"""A tiny Something-Something v1 / v2 in the released layouts, read back by
``SomethingSomethingDataModule`` (layouts in :mod:`mmzoo.data.something_something`).

:func:`write_something_something` writes, for ``version="v1"``, JPEG frame folders
``20bn-something-something-v1/<id>/00001.jpg ...`` and the ``;``-separated CSV lists; for ``"v2"``,
``20bn-something-something-v2/<id>.webm`` (VP9, else VP8, through PyAV) and the JSON lists (with
bracketed templates and placeholders, as released). Both have the labels file with
``num_classes`` templates (174 by default), the first ones real templates with left / right pairs
(:data:`TEMPLATES`).

Content: the left half of every frame has the colour of the video's class, the right half is
black, and the top-left 4x4 block of frame ``t`` has grey level ``min(8 t, 255)``: a flipped clip is
recognised from its pixels, decoded frame indices from the block.
"""
from __future__ import annotations

import json
import random
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mmzoo.data.media import write_jpeg_frames
from mmzoo.data.synthetic.kinetics import _colour

__all__ = ["PROPOSALS_FILE", "TEMPLATES", "write_something_something", "write_synthetic_proposals", "write_webm"]

#: File name of the proposals the synthetic writers put beside the dataset (``--data.proposals``).
PROPOSALS_FILE = "strg_proposals.safetensors"

#: The first templates of the synthetic label list: two left / right pairs, sideless templates,
#: and one template naming a side without a mirrored partner in this list.
TEMPLATES = [
    "Pushing something from left to right",
    "Pushing something from right to left",
    "Turning the camera left while filming something",
    "Turning the camera right while filming something",
    "Holding something",
    "Putting something on a surface",
    "Moving something away from the camera",
    "Tilting something with something on it until it falls off to the left",
]


def write_webm(path: str | Path, frames: np.ndarray, fps: float) -> Path:
    """Write uint8 RGB ``T, H, W, 3`` frames (even sides) as a VP9 (else VP8) webm file."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    codec = "libvpx-vp9" if "libvpx-vp9" in av.codecs_available else "libvpx"
    with av.open(str(path), mode="w", format="webm") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": "10", "b:v": "0", "deadline": "realtime", "cpu-used": "8"}
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
            vf.pts = i
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_synthetic_proposals(path: str | Path, videos: dict[str, list[int]], dataset: str, layout: str,
                              proposals_per_frame: int = 4) -> Path:
    """A proposals file (:mod:`mmzoo.data.proposals` format) with boxes drawn by hand, not by an
    RPN: per frame ``t`` the whole frame, its left half, a box moving right by 2 % of the width per
    frame (``[0.1 + 0.02 t, 0.1, 0.5 + 0.02 t, 0.6]``, so consecutive frames overlap) and padding."""
    import torch

    from mmzoo.data.proposals import ProposalFile, write_proposals

    out = {}
    for vid, numbers in videos.items():
        boxes = torch.zeros(len(numbers), proposals_per_frame, 4)
        for i in range(len(numbers)):
            fixed = [[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.5, 1.0], [0.1 + 0.02 * i, 0.1, 0.5 + 0.02 * i, 0.6]]
            n = min(len(fixed), max(proposals_per_frame - 1, 1))
            boxes[i, :n] = torch.tensor(fixed[:n])
        out[vid] = (torch.tensor(numbers), boxes)
    return write_proposals(path, ProposalFile(out, dataset, layout, proposals_per_frame, 1, "synthetic (by hand)"))


def _frames(k: int, num_frames: int, height: int, width: int) -> np.ndarray:
    frames = np.zeros((num_frames, height, width, 3), dtype=np.uint8)
    frames[:, :, : width // 2] = np.array(_colour(k), dtype=np.uint8)
    for t in range(num_frames):
        frames[t, :4, :4] = min(8 * t, 255)
    return frames


def write_something_something(
    root: str | Path,
    version: Literal["v1", "v2"] = "v1",
    num_videos: dict[str, int] | None = None,
    num_classes: int = 174,
    used_classes: int = 4,
    labels: dict[str, list[int]] | None = None,
    num_frames: int = 24,
    fps: float = 12.0,
    size: tuple[int, int] = (48, 64),
    seed: int = 0,
    proposals_per_frame: int = 4,
) -> dict[str, Any]:
    """Write the dataset; returns ``{"root", "classes", "rows": {split: [dict(id, label, template)]}}``.

    Args:
        root: output folder.
        version: ``"v1"`` (frames + CSV) or ``"v2"`` (webm + JSON).
        num_videos: videos per split (``{"train": 3, "validation": 2, "test": 1}`` by default).
        num_classes: templates in the labels file (174, the release's count).
        used_classes: random labels come from classes ``0..used_classes-1``.
        labels: ``{split: [class of each video]}`` instead of random labels.
        num_frames / fps / size: frames per video, frame rate (12 as released), ``(height, width)``.
        proposals_per_frame: also write ``root/strg_proposals.safetensors`` (hand-drawn boxes, see
            :func:`write_synthetic_proposals`) with this many boxes per frame; 0: none.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    num_videos = dict(num_videos or {"train": 3, "validation": 2, "test": 1})
    classes = (TEMPLATES + [f"Synthetic template {k}" for k in range(len(TEMPLATES), num_classes)])[:num_classes]
    if version == "v1":
        (root / "something-something-v1-labels.csv").write_text("".join(c + "\n" for c in classes))
    else:
        (root / "something-something-v2-labels.json").write_text(json.dumps({c: str(i) for i, c in enumerate(classes)}))
    out: dict[str, Any] = {"root": str(root), "classes": classes, "rows": {}, "version": version}
    next_id = 1000
    for split, n in num_videos.items():
        rows = []
        for i in range(n):
            next_id += rng.randint(1, 50)
            vid = str(next_id)
            k = labels[split][i] if labels and split in labels else rng.randrange(used_classes)
            frames = _frames(k, num_frames, *size)
            if version == "v1":
                write_jpeg_frames(root / "20bn-something-something-v1" / vid, frames, pattern="{:05d}.jpg", start=1)
            else:
                write_webm(root / "20bn-something-something-v2" / f"{vid}.webm", frames, fps)
            rows.append({"id": vid, "label": k, "template": classes[k]})
        if version == "v1":
            text = "".join((f"{r['id']}\n" if split == "test" else f"{r['id']};{r['template']}\n") for r in rows)
            (root / f"something-something-v1-{split}.csv").write_text(text)
        else:
            items = []
            for r in rows:
                if split == "test":
                    items.append({"id": r["id"]})
                    continue
                bracketed = r["template"].replace("something", "[something]")
                items.append({"id": r["id"], "label": r["template"].lower(), "template": bracketed,
                              "placeholders": ["a cup"] * bracketed.count("[something]")})
            (root / f"something-something-v2-{split}.json").write_text(json.dumps(items, indent=1))
        out["rows"][split] = rows
    if proposals_per_frame:
        numbers = list(range(1, num_frames + 1)) if version == "v1" else list(range(num_frames))
        videos = {r["id"]: numbers for rows in out["rows"].values() for r in rows}
        out["proposals"] = str(write_synthetic_proposals(root / PROPOSALS_FILE, videos, "something-something",
                                                         "frames" if version == "v1" else "video", proposals_per_frame))
    return out
