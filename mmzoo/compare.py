"""`mmzoo compare`: one reported metric of the zoo's ids against their GFLOPs, as a table and an
SVG chart (accuracy vs compute), read from the catalogue (no torch import).

The numbers are the theses' (each id's `reported`), not reproductions; GFLOPs are measured on
the full-size model at its example input (multiply-adds, the README table's column). The chart
has a log GFLOPs axis, one labelled point per id, and writes plain SVG (no plotting library).
"""
from __future__ import annotations

import fnmatch
import html
import math
from collections import Counter
from typing import Any, Iterator

from mmzoo.errors import CompareError
from mmzoo.registry import did_you_mean

__all__ = ["metric_names", "points", "render_svg", "reported_numbers"]


def reported_numbers(reported: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, int | float]]:
    """(name, number) pairs of a possibly nested `reported` record, in order; nested keys are
    joined with a space ("charades_map": 43.7, or "ablation top1": ...)."""
    for key, value in reported.items():
        name = f"{prefix} {key}".strip()
        if isinstance(value, dict):
            yield from reported_numbers(value, name)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            yield name, value


def _selected(index: dict[str, dict[str, Any]], pattern: str | None) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in index.items() if pattern is None or fnmatch.fnmatch(k, pattern)}


def metric_names(index: dict[str, dict[str, Any]], pattern: str | None = None) -> Counter:
    """How many selected ids report each metric name."""
    return Counter(name for rec in _selected(index, pattern).values() for name, _ in reported_numbers(rec["reported"]))


def points(index: dict[str, dict[str, Any]], metric: str, pattern: str | None = None) -> list[tuple[str, float, float]]:
    """(id, GFLOPs, value) of every selected id that reports `metric` and has a GFLOPs count,
    sorted by GFLOPs then id."""
    selected = _selected(index, pattern)
    if not selected:
        raise CompareError(f"no model id matches {pattern!r}")
    out = []
    for model_id, rec in selected.items():
        values = dict(reported_numbers(rec["reported"]))
        if metric in values and rec.get("gflops"):
            out.append((model_id, float(rec["gflops"]), float(values[metric])))
    if not out:
        names = metric_names(index, pattern)
        raise CompareError(f"no selected id reports {metric!r} with a GFLOPs count.{did_you_mean(metric, names, n=3)} "
                           f"Most reported: {', '.join(n for n, _ in names.most_common(6))}.")
    return sorted(out, key=lambda p: (p[1], p[0]))


def render_svg(pts: list[tuple[str, float, float]], metric: str, width: int = 720, height: int = 440) -> str:
    """An SVG scatter of `pts` ((id, GFLOPs, value)): log-scaled GFLOPs on x, the metric on y."""
    left, right, top, bottom = 70, 30, 40, 60
    lx = [math.log10(g) for _, g, _ in pts]
    x0, x1 = math.floor(min(lx)), math.ceil(max(lx))
    x1 = x1 if x1 > x0 else x0 + 1
    vals = [v for _, _, v in pts]
    pad = max((max(vals) - min(vals)) * 0.1, 1.0)
    y0, y1 = min(vals) - pad, max(vals) + pad

    def sx(g: float) -> float:
        return left + (math.log10(g) - x0) / (x1 - x0) * (width - left - right)

    def sy(v: float) -> float:
        return height - bottom - (v - y0) / (y1 - y0) * (height - top - bottom)

    esc = html.escape
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
           f'font-size="11">', f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{width / 2:.0f}" y="20" text-anchor="middle" font-size="14">{esc(metric)} vs GFLOPs '
           f'(reported by the theses; mmzoo GFLOPs)</text>',
           f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="black"/>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="black"/>']
    for e in range(x0, x1 + 1):
        x = sx(10.0**e)
        out.append(f'<line x1="{x:.1f}" y1="{height - bottom}" x2="{x:.1f}" y2="{height - bottom + 5}" stroke="black"/>')
        out.append(f'<text x="{x:.1f}" y="{height - bottom + 18}" text-anchor="middle">{10.0**e:g}</text>')
    for i in range(5):
        v = y0 + (y1 - y0) * i / 4
        y = sy(v)
        out.append(f'<line x1="{left - 5}" y1="{y:.1f}" x2="{left}" y2="{y:.1f}" stroke="black"/>')
        out.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{v:.1f}</text>')
    out.append(f'<text x="{width / 2:.0f}" y="{height - 15}" text-anchor="middle">GFLOPs (multiply-adds, log scale)</text>')
    out.append(f'<text x="18" y="{height / 2:.0f}" text-anchor="middle" transform="rotate(-90 18 {height / 2:.0f})">'
               f'{esc(metric)}</text>')
    for model_id, g, v in pts:
        x, y = sx(g), sy(v)
        out.append(f'<circle class="point" data-id="{esc(model_id)}" cx="{x:.2f}" cy="{y:.2f}" r="4" fill="#1f77b4">'
                   f'<title>{esc(model_id)}: {v:g} at {g:.1f} GFLOPs</title></circle>')
        out.append(f'<text x="{x + 6:.1f}" y="{y - 6:.1f}">{esc(model_id)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
