"""Finding the files a DataModule argument names, and naming that argument as the CLI flag.

A path given as an argument is used *as given* first (absolute, or relative to the working
directory, as a shell user expects), and only then looked up under the dataset root (and the
extra sub-folders a DataModule names, e.g. ``annotations/``). An argument left at its default is
looked up among the file names the dataset is distributed under (e.g. Kinetics' ``val.csv`` of
the CVDF mirror and ``validate.csv`` of DeepMind's archive). Errors name the argument as the
``mmzoo`` flag (``--data.val_csv``), list every path tried, and are :class:`LayoutError` s.
"""
from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from mmzoo.data.video_dataset import LayoutError

__all__ = ["default_num_workers", "find_path", "flag", "report_missing"]


def flag(name: str) -> str:
    """The CLI flag of DataModule argument ``name``: ``--data.<name>``."""
    return f"--data.{name}"


def _exists(p: Path, kind: Literal["file", "dir"]) -> bool:
    return p.is_file() if kind == "file" else p.is_dir()


def find_path(
    arg: str,
    value: str | os.PathLike | None,
    root: Path,
    *,
    defaults: Sequence[str] = (),
    under: Sequence[str] = ("",),
    kind: Literal["file", "dir"] = "file",
    what: str = "file",
) -> Path:
    """The existing path for argument ``arg``.

    ``value`` given: ``value`` as given (absolute, or relative to the working directory), then
    ``root/<u>/value`` for each ``u`` in ``under``. ``value`` None: ``root/<d>`` for each ``d`` in
    ``defaults``. Raises :class:`LayoutError` naming ``--data.<arg>`` and the paths tried.
    """
    if value is not None:
        given = Path(value).expanduser()
        tried = [given] if given.is_absolute() else [given, *((root / u / given) for u in under)]
    else:
        tried = [root / d for d in defaults]
    seen: list[Path] = []
    for p in tried:
        if p not in seen:
            seen.append(p)
            if _exists(p, kind):
                return p
    shown = ", ".join(str(p) for p in seen)
    if value is not None:
        raise LayoutError(f"{what} not found: {flag(arg)} {value} (tried: {shown})")
    raise LayoutError(f"{what} not found: none of {shown} exists (set {flag(arg)} to its path)")


def default_num_workers() -> int:
    """DataLoader workers when ``num_workers`` is not given: ``min(4, CPUs - 1)``, at least 1.

    CPUs are the ones this process may run on (``os.sched_getaffinity``, else ``os.cpu_count``),
    the count Lightning uses for its "does not have many workers" check, which this value passes.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(4, cpus - 1))


def report_missing(dm, missing: list[str], what: str, split: str, source: str = "annotated") -> None:
    """Apply a DataModule's ``missing_videos`` policy to the listed videos not found on disk
    (``"list:line: path"`` entries): ``"error"`` raises one :class:`LayoutError` naming the first
    five and the flag that skips them; ``"skip"`` warns and keeps them in ``dm.missing_videos``.
    ``what`` names the list they come from ("the val split", "UCF101 trainlist01"); ``source``
    says how the warning calls them ("annotated" in a CSV / JSON, "listed" in a split list)."""
    if not missing:
        return
    if dm.missing_videos_policy == "error":
        raise LayoutError(f"{len(missing)} video(s) of {what} are missing, e.g.: " + "; ".join(missing[:5])
                          + f" ({flag('missing_videos')} skip drops them with a warning)")
    msg = f"[{dm.datamodule_name}] {split}: {len(missing)} {source} video(s) missing and skipped, e.g. {missing[0]}"
    logging.getLogger(type(dm).__module__).warning(msg)
    warnings.warn(msg, stacklevel=3)
    dm.missing_videos.extend(missing)
