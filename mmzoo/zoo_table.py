"""The README's zoo table and `mmzoo/zoo_index.json` (what `mmzoo list` / `info` read), both
generated from the registry by `python -m mmzoo.zoo_table --write`.

`tests/test_models_every_id.py` compares both with the live registry, so neither can drift from
the code.
"""
from __future__ import annotations

import argparse
import functools
import re
from pathlib import Path

from mmzoo.catalog import (
    NOT_PUBLISHED,
    PUBLISHED,
    build_index,
    weights_status,
    write_index,
)
from mmzoo.compare import reported_numbers

START = "<!-- zoo-table:start -->"
END = "<!-- zoo-table:end -->"


def _fmt_reported(reported: dict) -> str:
    return "; ".join(f"{k} {v}" for k, v in list(reported_numbers(reported))[:2]) or "-"


@functools.lru_cache(maxsize=1)
def index() -> dict:
    """The catalogue of the live registry (measures every id once per process)."""
    return build_index()


def render(idx: dict | None = None) -> str:
    """Markdown table: id, task, params, GFLOPs, the paper's headline numbers, weight tags."""
    rows = [
        "| id | task | params (M) | GFLOPs | paper reports | tags (weights) |",
        "|---|---|---:|---:|---|---|",
    ]
    short = {PUBLISHED: "published", NOT_PUBLISHED: "none yet"}
    for model_id, record in (idx or index()).items():
        gflops = "n/a" if record["gflops"] is None else f"{record['gflops']:.1f}"
        tags = ", ".join(
            f"`.{tag}` ({short.get(weights_status(w), 'convert from original')})" for tag, w in record["tags"].items()
        ) or "-"
        rows.append(
            f"| `{model_id}` | {record['task']} | {record['params'] / 1e6:.2f} | {gflops} "
            f"| {_fmt_reported(record['reported'])} | {tags} |"
        )
    return "\n".join(rows)


def replace_in(text: str, table: str) -> str:
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise ValueError(f"README has no {START} ... {END} block")
    return pattern.sub(f"{START}\n{table}\n{END}", text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="rewrite the table in README.md and mmzoo/zoo_index.json")
    parser.add_argument("--readme", default=str(Path(__file__).resolve().parents[1] / "README.md"))
    args = parser.parse_args()
    table = render()
    if args.write:
        path = Path(args.readme)
        path.write_text(replace_in(path.read_text(), table))
        write_index(index())
    else:
        print(table)


if __name__ == "__main__":
    main()
