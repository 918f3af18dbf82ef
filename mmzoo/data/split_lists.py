"""The part UCF101 and HMDB51 share: action datasets distributed as class folders of videos plus
official split files (splits 1-3), where the videos and split files are, and the missing-videos
policy. Each subclass reads its own split-file format (``_validate_layout`` / ``_records``)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from mmzoo.data.clips import ClipDataModule
from mmzoo.data.paths import flag

__all__ = ["SplitListDataModule"]


class SplitListDataModule(ClipDataModule):
    """Split ``split`` (1, 2 or 3) of a class-folder video dataset; its test list is also the
    validation list. ``mmzoo fit`` links ``num_classes`` to the model's ``num_classes``.

    Args:
        root: dataset folder.
        split: official split 1, 2 or 3.
        video_dir: the folder of the class folders (default: the dataset's folder under ``root``).
        splits_dir: the folder of the split files (default: the dataset's folder under ``root``).
        missing_videos: ``"error"`` or ``"skip"`` (drop listed videos that are absent, warned and
            counted in ``self.missing_videos``).
        **kwargs: the clip settings of :class:`~mmzoo.data.clips.ClipDataModule` and the loader
            settings of :class:`~mmzoo.data.base.ZooDataModule`.
    """

    model_links = ("num_classes",)

    def __init__(
        self,
        root: str,
        split: int = 1,
        video_dir: str | None = None,
        splits_dir: str | None = None,
        missing_videos: Literal["error", "skip"] = "error",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if split not in (1, 2, 3):
            raise ValueError(f"{flag('split')} must be 1, 2 or 3, got {split!r}")
        if missing_videos not in ("error", "skip"):
            raise ValueError(f"{flag('missing_videos')} must be 'error' or 'skip', got {missing_videos!r}")
        self.root = Path(root)
        self.split = split
        self._video_dir_arg, self._splits_dir_arg = video_dir, splits_dir
        self.missing_videos_policy = missing_videos
        self.missing_videos: list[str] = []
        self.train_split, self.val_split, self.test_split = "train", "test", "test"
        self.classes: list[str] | None = None
        self.video_dir: Path | None = None
        self.splits_dir: Path | None = None

    @property
    def num_classes(self) -> int:
        if self.classes is None:
            self._validate_layout()
        return len(self.classes)
