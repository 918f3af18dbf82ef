"""JHMDB (Jhuang et al. 2013) for pose propagation, as distributed (`--data jhmdb`).

Layout (the ``JHMDB`` release: ``Rename_Images.tar.gz``, ``joint_positions.zip``,
``splits.zip``)::

    <root>/Rename_Images/<class>/<video>/00001.png ...            frames
    <root>/joint_positions/<class>/<video>/joint_positions.mat    pos_img: 2 x 15 x T (x; y), pixels,
                                                                  1-based (MATLAB)
    <root>/splits/<class>_test_split<k>.txt                      "<video>.avi <1|2>" (1 train, 2 test)

One sample is one video: ``video`` ``(3, T, S, S)`` frames resized to ``frame_size`` squared and
normalised; ``keypoints`` ``(T, 15, 2)`` joint (x, y) in 0-based pixels of the original frames;
``keypoint_visible`` ``(T, 15)`` (all joints are annotated in JHMDB: all True);
``keypoint_scale`` ``(T,)`` the person size of each frame for PCK (0.6 x the diagonal of the
joints' box, :func:`mmzoo.metrics.pck.person_scale`); ``image_size`` ``(2,)`` (H, W); ``video_id``.
The thesis evaluates the test videos (label 2) of split 1 (Table 2.2).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from mmzoo.data.base import ZooDataModule
from mmzoo.data.constants import IMAGENET_MEAN, IMAGENET_STD
from mmzoo.data.davis import read_rgb, resize_normalize
from mmzoo.data.registry import register_datamodule
from mmzoo.data.video_dataset import AnnotationError, LayoutError
from mmzoo.metrics.pck import person_scale
from mmzoo.registry import InputConfig

__all__ = ["NUM_JOINTS", "JhmdbDataModule", "JhmdbVideos", "read_joint_positions", "read_split_file"]

NUM_JOINTS = 15
FRAME_EXTENSIONS = (".png", ".jpg")


def read_joint_positions(path: Path) -> np.ndarray:
    """``(T, 15, 2)`` 0-based (x, y) from a JHMDB ``joint_positions.mat`` (``pos_img`` 2 x 15 x T)."""
    import scipy.io

    try:
        mat = scipy.io.loadmat(str(path))
    except (OSError, ValueError, TypeError) as e:
        raise AnnotationError(path, None, f"cannot read MATLAB file ({e})") from e
    if "pos_img" not in mat:
        raise AnnotationError(path, None, f"no 'pos_img' variable (found {sorted(k for k in mat if not k.startswith('__'))})")
    pos = np.asarray(mat["pos_img"], dtype=np.float64)
    if pos.ndim != 3 or pos.shape[0] != 2 or pos.shape[1] != NUM_JOINTS:
        raise AnnotationError(path, None, f"pos_img must be 2 x {NUM_JOINTS} x T, got {pos.shape}")
    return pos.transpose(2, 1, 0) - 1.0


def read_split_file(path: Path) -> list[tuple[str, int]]:
    """(video name without .avi, 1 train / 2 test) per line of a JHMDB split file."""
    out = []
    for line_no, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
            raise AnnotationError(path, line_no, f"expected '<video>.avi <1|2>', got {line.strip()!r}")
        out.append((parts[0].removesuffix(".avi"), int(parts[1])))
    return out


class JhmdbVideos(Dataset):
    def __init__(self, videos: list[tuple[str, list[Path], Path]], frame_size: int | None, mean, std) -> None:
        self.videos, self.frame_size, self.mean, self.std = videos, frame_size, mean, std

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, i: int) -> dict[str, Any]:
        name, frames, mat = self.videos[i]
        kp = read_joint_positions(mat)
        if kp.shape[0] != len(frames):
            raise AnnotationError(mat, None, f"pos_img has {kp.shape[0]} frames but {frames[0].parent} holds {len(frames)}")
        imgs = np.stack([read_rgb(p) for p in frames])
        keypoints = torch.from_numpy(kp).float()
        visible = torch.ones(keypoints.shape[:2], dtype=torch.bool)
        return {"video": resize_normalize(imgs, self.frame_size, self.mean, self.std), "keypoints": keypoints,
                "keypoint_visible": visible, "keypoint_scale": person_scale(keypoints, visible),
                "image_size": torch.tensor(imgs.shape[1:3]), "video_id": name, "meta": {"mat": str(mat)}}


@register_datamodule("jhmdb")
class JhmdbDataModule(ZooDataModule):
    """JHMDB videos of one split for pose propagation (val and test loaders: the split's test
    videos; train: its training videos).

    Args:
        root: the JHMDB folder (Rename_Images/, joint_positions/, splits/).
        split: split number k of ``<class>_test_split<k>.txt`` (1 in the thesis).
        frame_size: frames resized to this square size (320 as for DAVIS; not stated for JHMDB
            in the thesis); None keeps 320 x 240.
        classes: action classes to use (None: every class with a split file).
        mean / std: normalisation (ImageNet).
    """

    targets = ("keypoints",)
    persistent_workers = False

    def __init__(self, root: str, split: Literal[1, 2, 3] = 1, frame_size: int | None = 320,
                 classes: list[str] | None = None, mean: tuple[float, float, float] = IMAGENET_MEAN,
                 std: tuple[float, float, float] = IMAGENET_STD, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.root = Path(root)
        self.eval_batch_size = 1  # one whole video per evaluation batch

    @classmethod
    def defaults_from_input(cls, cfg: InputConfig) -> dict[str, Any]:
        return {k: getattr(cfg, k) for k in ("mean", "std") if getattr(cfg, k) is not None}

    def _videos(self, subset: int) -> list[tuple[str, list[Path], Path]]:
        hp = self.hparams
        split_dir = self.root / "splits"
        files = sorted(split_dir.glob(f"*_test_split{hp.split}.txt"))
        if hp.classes is not None:
            files = [split_dir / f"{c}_test_split{hp.split}.txt" for c in hp.classes]
        if not files:
            raise LayoutError(f"no JHMDB split files {split_dir}/<class>_test_split{hp.split}.txt (is --data.root "
                              f"{self.root} the folder holding Rename_Images/, joint_positions/, splits/?)")
        out = []
        for f in files:
            if not f.is_file():
                raise LayoutError(f"JHMDB split file not found: {f}")
            cls = f.name[: -len(f"_test_split{hp.split}.txt")]
            for name, label in read_split_file(f):
                if label != subset:
                    continue
                img_dir = self.root / "Rename_Images" / cls / name
                frames = sorted(p for p in img_dir.glob("*") if p.suffix.lower() in FRAME_EXTENSIONS) if img_dir.is_dir() else []
                if not frames:
                    raise LayoutError(f"{f}: video {name!r} has no frames in {img_dir}")
                mat = self.root / "joint_positions" / cls / name / "joint_positions.mat"
                if not mat.is_file():
                    raise LayoutError(f"{f}: video {name!r} has no joint positions: {mat} is missing")
                out.append((f"{cls}/{name}", frames, mat))
        return out

    def setup(self, stage: str | None = None) -> None:
        hp = self.hparams
        test = JhmdbVideos(self._videos(2), hp.frame_size, hp.mean, hp.std)
        self.datasets = {"val": test, "test": test}
        if stage in (None, "fit"):
            self.datasets["train"] = JhmdbVideos(self._videos(1), hp.frame_size, hp.mean, hp.std)
