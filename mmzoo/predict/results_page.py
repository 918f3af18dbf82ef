"""A self-contained HTML page of a text-to-video ranking (T2VLAD, Wang's thesis ch. 6, §6.3.4).

The thesis shows its retrieval results as a query sentence above the videos ranked for it, a
strip of frames per video, with the ground-truth video marked (Fig. 6.4). :func:`write_results_page`
writes the same for one ``mmzoo predict --model t2vlad --query TEXT`` run:

* ``results.html``: the query, then the top-k videos in rank order, each with its rank, video
  id, score, :data:`THUMBNAILS` frames decoded with the zoo's reader (:mod:`mmzoo.data.decode`)
  and embedded as base64 JPEG ``data:`` URIs (the page needs no other file), and, when the
  feature set's annotations are known, the video's ground-truth captions. A video that has the
  query among its captions is the query's ground-truth video: its row (and that caption) is
  highlighted; when it is ranked below the top-k the page says at which rank. Every text
  (query, captions, ids, paths) is HTML-escaped.
* ``results.json``: what the page shows apart from the pictures (rows, decoded frame indices,
  ground-truth ranks) and ``missing_videos``, the shown videos that have no readable mp4 and
  why; such a video gets a "no video" placeholder on the page instead of frames.

Frames: ``THUMBNAILS`` frames at the centres of equal segments of the video
(index ``floor((k + 1/2) n / THUMBNAILS)`` of ``n`` frames, as the ``msrvtt`` DataModule samples
its frames), scaled down (never up) to a short side of :data:`THUMB_SHORT_SIDE` pixels by the
decoder.
"""
from __future__ import annotations

import base64
import html
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

__all__ = ["THUMBNAILS", "THUMB_SHORT_SIDE", "PageRow", "thumbnail_indices", "read_thumbnails", "jpeg_data_uri",
           "ground_truth_videos", "collect_rows", "render_html", "write_results_page"]

THUMBNAILS = 4
THUMB_SHORT_SIDE = 96
JPEG_QUALITY = 90
PAGE = "results.html"
PAGE_JSON = "results.json"


@dataclass
class PageRow:
    """One ranked video as the page shows it (``frames`` uint8 ``[T, H, W, 3]``, or None with
    ``missing`` saying why there is no video)."""

    rank: int
    video_id: str
    score: float
    video_path: Optional[str] = None
    frames: Optional[np.ndarray] = None
    frame_indices: list[int] = field(default_factory=list)
    missing: Optional[str] = None
    captions: Optional[list[str]] = None
    matched_captions: list[int] = field(default_factory=list)  # indices of captions equal to the query

    @property
    def ground_truth(self) -> bool:
        return bool(self.matched_captions)


def thumbnail_indices(num_frames: int, count: int = THUMBNAILS) -> list[int]:
    """Frame indices at the centres of ``count`` equal segments of a ``num_frames``-frame video."""
    n = max(int(num_frames), 1)
    return [min(int((k + 0.5) * n / count), n - 1) for k in range(count)]


def read_thumbnails(path: str | Path, count: int = THUMBNAILS, short_side: int = THUMB_SHORT_SIDE) -> tuple[np.ndarray, list[int]]:
    """``(frames uint8 [count, H, W, 3], decoded frame indices)`` of the video at ``path``; the
    decoder scales frames whose short side exceeds ``short_side`` down to it."""
    from mmzoo.data.decode import VideoReader

    with VideoReader(path) as r:
        info = r.info
        scale = short_side if min(info.height, info.width) > short_side else None
        clip = r.frames_by_index(thumbnail_indices(info.num_frames, count), short_side=scale)
    return clip.frames.numpy(), [int(i) for i in clip.frame_indices]


def jpeg_data_uri(frame: np.ndarray, quality: int = JPEG_QUALITY) -> str:
    """``data:image/jpeg;base64,...`` of one uint8 ``[H, W, 3]`` frame."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(frame)).save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _normalise(text: str) -> str:
    """Case, spacing and final punctuation do not matter when matching the query to a caption."""
    return re.sub(r"[\s.!?]+$", "", " ".join(text.lower().split()))


def ground_truth_videos(query: str, captions: dict[str, Sequence[str]]) -> dict[str, list[int]]:
    """``{video_id: [caption indices]}`` of the videos having ``query`` among their captions."""
    q = _normalise(query)
    out = {}
    for vid, caps in captions.items():
        hit = [i for i, c in enumerate(caps) if _normalise(c) == q]
        if hit:
            out[vid] = hit
    return out


def collect_rows(ranked: Sequence[tuple[str, float]], top_k: int, video_dir: Optional[str | Path],
                 captions: Optional[dict[str, Sequence[str]]] = None, query: Optional[str] = None,
                 no_video_reason: str = "no video folder known") -> list[PageRow]:
    """The first ``top_k`` of ``ranked`` (``[(video_id, score)]`` best first) with their frames
    (``video_dir/<video_id>.mp4``), captions and ground-truth marks."""
    from mmzoo.data.decode import DecodeError

    truth = ground_truth_videos(query, captions) if captions is not None and query else {}
    rows = []
    for rank, (vid, score) in enumerate(ranked[:top_k], 1):
        row = PageRow(rank=rank, video_id=str(vid), score=float(score), matched_captions=truth.get(vid, []),
                      captions=None if captions is None else list(captions.get(vid, [])))
        if video_dir is None:
            row.missing = no_video_reason
        else:
            path = Path(video_dir) / f"{vid}.mp4"
            row.video_path = str(path)
            if not path.is_file():
                row.missing = f"{path}: not found"
            else:
                try:
                    row.frames, row.frame_indices = read_thumbnails(path)
                except DecodeError as e:
                    row.missing = f"unreadable ({e})"
        rows.append(row)
    return rows


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em;color:#222}
h1{font-size:1.3em;margin:0 0 .4em}
.query{font-size:1.15em;margin:.3em 0}
.query q{font-weight:600}
.meta,.note{color:#555;font-size:.9em;margin:.2em 0}
.missing-list{color:#a33}
table{border-collapse:collapse;margin-top:.8em}
th,td{border-bottom:1px solid #ddd;padding:6px 8px;vertical-align:top;text-align:left}
td.rank,td.score{font-variant-numeric:tabular-nums;white-space:nowrap}
tr.gt{background:#e7f6e7;outline:2px solid #3a3}
.frames{white-space:nowrap}
.frames img{margin-right:3px;border:1px solid #ccc}
.no-video{display:inline-block;width:380px;height:72px;line-height:72px;text-align:center;
  background:repeating-linear-gradient(45deg,#eee,#eee 8px,#f7f7f7 8px,#f7f7f7 16px);color:#777;border:1px dashed #aaa}
.captions ol{margin:0;padding-left:1.6em;max-height:9em;overflow-y:auto;font-size:.88em;min-width:22em}
.captions li.match{font-weight:600}
mark{background:#bfe8bf}
.badge{font-size:.75em;background:#3a3;color:#fff;border-radius:3px;padding:1px 4px;margin-left:4px}
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _row_html(row: PageRow) -> str:
    cls = "result gt" if row.ground_truth else "result"
    if row.frames is not None:
        imgs = "".join(
            f'<img class="thumb" src="{jpeg_data_uri(f)}" width="{f.shape[1]}" height="{f.shape[0]}" '
            f'data-frame-index="{i}" alt="{_e(row.video_id)} frame {i}">' for f, i in zip(row.frames, row.frame_indices))
    else:
        imgs = f'<span class="no-video" title="{_e(row.missing)}">no video</span>'
    if row.captions is None:
        caps = '<span class="note">captions not available</span>'
    else:
        items = "".join(f'<li class="match"><mark>{_e(c)}</mark></li>' if i in row.matched_captions else f"<li>{_e(c)}</li>"
                        for i, c in enumerate(row.captions))
        caps = f"<ol>{items}</ol>"
    badge = '<span class="badge">ground truth</span>' if row.ground_truth else ""
    return (f'<tr class="{cls}" data-rank="{row.rank}" data-video-id="{_e(row.video_id)}" data-score="{row.score!r}">'
            f'<td class="rank">{row.rank}</td><td class="video-id">{_e(row.video_id)}{badge}</td>'
            f'<td class="score">{row.score:.4f}</td><td class="frames">{imgs}</td><td class="captions">{caps}</td></tr>')


def render_html(query: str, rows: Sequence[PageRow], *, total: int, source: str = "", model: str = "",
                truth_ranks: Optional[dict[str, int]] = None, captions_note: str = "") -> str:
    """The page: ``query``, the ``rows`` in order, the ground-truth ranks (``{video_id: rank}``
    over the whole ranking of ``total`` videos) and the list of rows without video."""
    truth_ranks = truth_ranks or {}
    shown = {r.video_id for r in rows}
    head = [f'<p class="query">Query: <q id="query">{_e(query)}</q></p>',
            f'<p class="meta">{_e(model)} ranked {total} videos of {_e(source)}; the top {len(rows)} are shown, best first. '
            "Score: the model's text-video similarity s = (s_global + s_local) / 2 (thesis Eq. 6.9-6.11).</p>"]
    if truth_ranks:
        parts = [f"{_e(v)} at rank {k}" + ("" if v in shown else " (not shown)") for v, k in sorted(truth_ranks.items(), key=lambda t: t[1])]
        head.append(f'<p class="note" id="ground-truth">Ground-truth video(s) of this query: {", ".join(parts)}.</p>')
    if captions_note:
        head.append(f'<p class="note">{_e(captions_note)}</p>')
    missing = [r for r in rows if r.missing]
    if missing:
        items = "".join(f'<li data-video-id="{_e(r.video_id)}">{_e(r.video_id)}: {_e(r.missing)}</li>' for r in missing)
        head.append(f'<div class="note missing-list" id="missing-videos">No video for {len(missing)} of the shown '
                    f"videos:<ul>{items}</ul></div>")
    body = "".join(_row_html(r) for r in rows)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>T2VLAD: {_e(query)}</title><style>{_CSS}</style></head><body>\n"
            "<h1>Text-to-video retrieval</h1>\n" + "\n".join(head) +
            '\n<table id="results"><thead><tr><th>rank</th><th>video</th><th>score</th><th>frames</th>'
            f"<th>captions</th></tr></thead><tbody>\n{body}\n</tbody></table>\n</body></html>\n")


def write_results_page(output_dir: str | Path, query: str, ranked: Sequence[tuple[str, float]], top_k: int, *,
                       video_dir: Optional[str | Path], captions: Optional[dict[str, Sequence[str]]] = None,
                       source: str = "", model: str = "", no_video_reason: str = "no video folder known",
                       captions_note: str = "") -> list[PageRow]:
    """Write ``output_dir/results.html`` and ``output_dir/results.json`` for ``ranked`` (every
    video, best first) and return the shown rows. ``captions``: ``{video_id: [caption, ...]}``
    of the ranked videos (None: not available)."""
    rows = collect_rows(ranked, top_k, video_dir, captions, query, no_video_reason)
    truth = ground_truth_videos(query, captions) if captions is not None else {}
    rank_of = {v: k for k, (v, _) in enumerate(ranked, 1)}
    truth_ranks = {v: rank_of[v] for v in truth if v in rank_of}
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / PAGE).write_text(render_html(query, rows, total=len(ranked), source=source, model=model,
                                        truth_ranks=truth_ranks, captions_note=captions_note), encoding="utf-8")
    (out / PAGE_JSON).write_text(json.dumps({
        "query": query, "page": PAGE, "top_k": len(rows), "video_dir": None if video_dir is None else str(video_dir),
        "rows": [{"rank": r.rank, "video_id": r.video_id, "score": r.score, "video": r.video_path,
                  "frame_indices": r.frame_indices, "ground_truth": r.ground_truth,
                  "captions": r.captions} for r in rows],
        "ground_truth": [{"video_id": v, "rank": k} for v, k in sorted(truth_ranks.items(), key=lambda t: t[1])],
        "missing_videos": [{"video_id": r.video_id, "reason": r.missing} for r in rows if r.missing],
    }, indent=1), encoding="utf-8")
    return rows
