"""The README's zoo table, generated from the registry (`python -m mmzoo.zoo_table --write`).

A test regenerates it and compares with README.md, so the table cannot drift from the code.
"""
from __future__ import annotations

import argparse
import functools
import re
from pathlib import Path

from mmzoo.info import measure
from mmzoo.registry import all_specs

START = "<!-- zoo-table:start -->"
END = "<!-- zoo-table:end -->"


def _numbers(reported: dict, prefix: str = ""):
    """(key path, number) pairs of a possibly nested `reported` dict, in order."""
    for key, value in reported.items():
        name = f"{prefix} {key}".strip()
        if isinstance(value, dict):
            yield from _numbers(value, name)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            yield name, value


def _fmt_reported(reported: dict) -> str:
    return "; ".join(f"{k} {v}" for k, v in list(_numbers(reported))[:2]) or "-"


@functools.lru_cache(maxsize=1)
def render() -> str:
    """Markdown table: id, task, params, GFLOPs, the paper's headline numbers, weight tags."""
    rows = [
        "| id | task | params (M) | GFLOPs | paper reports | tags (weights) |",
        "|---|---|---:|---:|---|---|",
    ]
    for model_id, spec in all_specs().items():
        size = measure(model_id)
        gflops = "n/a" if size["gflops"] is None else f"{size['gflops']:.1f}"
        tags = ", ".join(
            f"`.{w.tag}` ({'published' if w.hub_repo else 'convert from original' if w.available else 'none yet'})"
            for w in spec.weights
        ) or "-"
        rows.append(
            f"| `{model_id}` | {spec.task} | {size['params'] / 1e6:.2f} | {gflops} "
            f"| {_fmt_reported(dict(spec.reported))} | {tags} |"
        )
    return "\n".join(rows)


def replace_in(text: str, table: str) -> str:
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise ValueError(f"README has no {START} ... {END} block")
    return pattern.sub(f"{START}\n{table}\n{END}", text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="rewrite the table in README.md")
    parser.add_argument("--readme", default=str(Path(__file__).resolve().parents[1] / "README.md"))
    args = parser.parse_args()
    table = render()
    if args.write:
        path = Path(args.readme)
        path.write_text(replace_in(path.read_text(), table))
    else:
        print(table)


if __name__ == "__main__":
    main()
