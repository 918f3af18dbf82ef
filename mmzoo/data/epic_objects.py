"""Object detections for EPIC-Kitchens clips (SAOA, Wang 2021 thesis ch. 3, section 3.2): the
precomputed boxes + RoI features file, its reader and writer, EPIC-55's object annotations
(``EPIC_train_object_labels.csv``) and the detector that writes the file.

The detector of the thesis (Faster R-CNN, ResNeXt-101-FPN, Visual Genome then EPIC object
detection) is expensive, so it runs once per dataset (:func:`extract_objects`, CLI
``mmzoo objects``) and the EPIC DataModule reads its output beside the clips (``--data.objects``).

File format (HDF5, ``format = "mmzoo-epic-objects"``, ``version = 1``)::

    attrs:  format, version, feature_dim (C1), top_k (K), fps (detection rate, 2.0), detector (text)
    /videos/<video_id>/            attrs: width, height (pixels of the frames the detector saw),
                                          fps (the video's frame rate: frame numbers -> seconds)
        frames    int64   (F,)        1-based frame numbers (``frame_%010d.jpg`` of the release)
        boxes     float32 (F, K, 4)   x0, y0, x1, y1 in pixels of those frames
        scores    float32 (F, K)      detection scores, best first
        counts    int64   (F,)        boxes kept in that frame (<= K; rows past it are padding)
        features  float16/32 (F, K, C1)  RoIAlign features max-pooled to vectors

Frames are detected on a grid of ``fps`` per second (frame ``1 + round(k * video_fps / fps)``), as
the thesis's 2 fps; LFB-style precomputed detections (boxes and features per sampled frame of each
video) convert to it one video per group.

Reading (:class:`ObjectFile.window`): for a clip centred at time ``c``, the ``num_frames`` grid
frames nearest ``c + (j - (M - 1) / 2) / fps`` (M = 12 frames over 6 s for the global alignment;
the local alignment keeps the central 4 s through ``times``), their K boxes each: ``N = M K``
features, boxes normalised to ``[0, 1]`` of the frame, a validity mask and each box's time
relative to ``c``. A wanted frame farther than half a grid step from every stored frame has no
boxes (mask False) and is counted (:attr:`ObjectFile.missing_frames`).
"""
from __future__ import annotations

import ast
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from mmzoo.data.video_dataset import (
    AnnotationError,
    LayoutError,
    parse_number,
    read_csv_rows,
)

__all__ = [
    "FORMAT",
    "EpicObjectLabels",
    "ObjectClipDataset",
    "ObjectFile",
    "attach_objects",
    "build_detector",
    "detect_frames",
    "extract_objects",
    "grid_frames",
    "read_object_labels",
    "train_detector",
    "view_boxes",
    "write_objects",
]

FORMAT, VERSION = "mmzoo-epic-objects", 1
OBJECT_LABELS_55 = "EPIC_train_object_labels.csv"
_LABEL_COLUMNS = ["noun_class", "noun", "participant_id", "video_id", "frame", "bounding_boxes"]


# ---------------------------------------------------------------------------------------- file
def write_objects(path: str | Path, videos: dict[str, dict[str, Any]], feature_dim: int, top_k: int = 5,
                  fps: float = 2.0, detector: str = "", half: bool = False) -> Path:
    """Write the file (module docstring). ``videos[video_id]`` holds ``frames`` (F,), ``boxes``
    (F, K, 4), ``scores`` (F, K), ``counts`` (F,), ``features`` (F, K, C1) (arrays or tensors) and
    ``width`` / ``height`` / ``fps``; every shape is checked."""
    import h5py

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.attrs.update(format=FORMAT, version=VERSION, feature_dim=int(feature_dim), top_k=int(top_k), fps=float(fps),
                       detector=str(detector))
        root = f.create_group("videos")
        for vid, d in videos.items():
            arr = {k: np.asarray(d[k].cpu() if isinstance(d[k], torch.Tensor) else d[k])
                   for k in ("frames", "boxes", "scores", "counts", "features")}
            n = len(arr["frames"])
            want = {"boxes": (n, top_k, 4), "scores": (n, top_k), "counts": (n,), "features": (n, top_k, feature_dim)}
            for k, shape in want.items():
                if arr[k].shape != shape:
                    raise ValueError(f"objects of {vid}: {k} has shape {arr[k].shape}, expected {shape}")
            if n and (np.diff(arr["frames"]) <= 0).any():
                raise ValueError(f"objects of {vid}: frame numbers must increase")
            g = root.create_group(vid)
            g.attrs.update(width=int(d["width"]), height=int(d["height"]), fps=float(d["fps"]))
            g["frames"] = arr["frames"].astype(np.int64)
            g["boxes"] = arr["boxes"].astype(np.float32)
            g["scores"] = arr["scores"].astype(np.float32)
            g["counts"] = arr["counts"].astype(np.int64)
            g["features"] = arr["features"].astype(np.float16 if half else np.float32)
    return path


class ObjectFile:
    """Reader of the objects file (module docstring); opened lazily, once per process (safe with
    DataLoader workers).

    Args:
        path: the ``.h5`` file.
        num_frames: M, the detection frames around the clip centre (12: 6 s at 2 fps, the global
            alignment's window; the local alignment's 8 frames / 4 s are its central part).
    """

    def __init__(self, path: str | Path, num_frames: int = 12) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise LayoutError(f"objects file not found: {self.path} (write it with `mmzoo objects`)")
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        self.num_frames = num_frames
        self._h5 = None
        self._pid: int | None = None
        self._cache: dict[str, dict[str, Any]] = {}
        self.missing_frames = 0
        f = self._file()
        if f.attrs.get("format") != FORMAT:
            raise LayoutError(f"{self.path}: not an mmzoo objects file (format attribute {f.attrs.get('format')!r})")
        if int(f.attrs.get("version", -1)) != VERSION:
            raise LayoutError(f"{self.path}: objects file version {f.attrs.get('version')}, this mmzoo reads {VERSION}")
        self.feature_dim, self.top_k = int(f.attrs["feature_dim"]), int(f.attrs["top_k"])
        self.fps = float(f.attrs["fps"])
        self.detector = str(f.attrs.get("detector", ""))
        self.video_ids = set(f["videos"].keys()) if "videos" in f else set()

    def _file(self):
        import os

        import h5py

        if self._h5 is None or self._pid != os.getpid():
            self._h5, self._pid, self._cache = h5py.File(self.path, "r"), os.getpid(), {}
        return self._h5

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_h5": None, "_pid": None, "_cache": {}}

    @property
    def num_objects(self) -> int:
        """N = M K."""
        return self.num_frames * self.top_k

    def video(self, video_id: str) -> dict[str, Any]:
        if video_id not in self._cache:
            f = self._file()
            if video_id not in f["videos"]:
                raise LayoutError(f"{self.path}: no detections for video {video_id}")
            g = f["videos"][video_id]
            self._cache[video_id] = {"frames": g["frames"][()], "attrs": dict(g.attrs), "group": g}
        return self._cache[video_id]

    def window(self, video_id: str, centre_frame: float) -> dict[str, torch.Tensor]:
        """The objects of the clip centred at (1-based, possibly fractional) ``centre_frame``:
        ``features`` (N, C1) float, ``boxes`` (N, 4) normalised x0, y0, x1, y1, ``mask`` (N,) bool,
        ``times`` (N,) seconds from the centre."""
        v = self.video(video_id)
        frames, attrs, g = v["frames"], v["attrs"], v["group"]
        vfps = float(attrs["fps"])
        m, k = self.num_frames, self.top_k
        want = centre_frame + (np.arange(m) - (m - 1) / 2) * vfps / self.fps
        feats = torch.zeros(m, k, self.feature_dim)
        boxes = torch.zeros(m, k, 4)
        mask = torch.zeros(m, k, dtype=torch.bool)
        times = torch.zeros(m, k)
        if len(frames):
            idx = np.clip(np.searchsorted(frames, want), 1, len(frames)) - 1
            nxt = np.clip(idx + 1, 0, len(frames) - 1)
            idx = np.where(np.abs(frames[nxt] - want) < np.abs(frames[idx] - want), nxt, idx)
            ok = np.abs(frames[idx] - want) <= 0.5 * vfps / self.fps + 1e-6
        else:
            idx, ok = np.zeros(m, dtype=np.int64), np.zeros(m, dtype=bool)
        self.missing_frames += int((~ok).sum())
        rows = sorted(set(idx[ok].tolist()))
        if rows:
            counts = g["counts"][rows]
            b = torch.from_numpy(g["boxes"][rows])
            f = torch.from_numpy(g["features"][rows].astype(np.float32))
            pos = {r: i for i, r in enumerate(rows)}
            scale = torch.tensor([attrs["width"], attrs["height"], attrs["width"], attrs["height"]], dtype=torch.float32)
            for j in np.nonzero(ok)[0]:
                i = pos[int(idx[j])]
                c = int(counts[i])
                boxes[j, :c] = b[i, :c] / scale
                feats[j, :c] = f[i, :c]
                mask[j, :c] = True
                times[j] = float(frames[idx[j]] - centre_frame) / vfps
        return {"features": feats.view(m * k, -1), "boxes": boxes.view(m * k, 4), "mask": mask.view(-1),
                "times": times.view(-1)}


def view_boxes(boxes: torch.Tensor, window: tuple[float, float, float, float], size: tuple[int, int],
               flipped: bool = False) -> torch.Tensor:
    """Normalised full-frame boxes -> pixels of a view showing ``window`` (normalised x0, y0, x1, y1
    of the frame) at ``size`` (H, W), mirrored when the view was flipped, clipped to the view."""
    x0, y0, x1, y1 = window
    h, w = size
    out = boxes.clone()
    out[:, 0::2] = (boxes[:, 0::2] - x0) / (x1 - x0) * w
    out[:, 1::2] = (boxes[:, 1::2] - y0) / (y1 - y0) * h
    if flipped:
        out[:, [0, 2]] = w - out[:, [2, 0]]
    out[:, 0::2] = out[:, 0::2].clamp(0, w)
    out[:, 1::2] = out[:, 1::2].clamp(0, h)
    return out


def view_window(cfg, crop_index: int, frame_hw: tuple[int, int]) -> tuple[float, float, float, float]:
    """The part of the full frame (normalised x0, y0, x1, y1) a view of ``cfg``
    (:class:`~mmzoo.data.video_dataset.ClipConfig`) shows. Evaluation views: exact (short side
    ``test_scale``, crop ``crop_index`` of ``num_crops``). Training views: the clip dataset does not
    record its random scale and crop offsets, so the centred crop at the middle of
    ``train_scale`` is assumed (the EPIC DataModule's default ``objects_train_view="full"`` trains
    on evaluation views instead, where this is exact)."""
    from mmzoo.data.samplers import spatial_crop_offsets

    h, w = frame_hw
    if cfg.train:
        short, crop = (cfg.train_scale[0] + cfg.train_scale[1]) / 2, cfg.crop_size
        rh, rw = h * short / min(h, w), w * short / min(h, w)
        y0, x0 = (rh - crop) / 2, (rw - crop) / 2
    else:
        short, crop = cfg.test_scale, cfg.test_crop_size
        rh, rw = (short, int(w * short / h)) if h <= w else (int(h * short / w), short)
        y0, x0 = spatial_crop_offsets(rh, rw, crop, cfg.num_crops)[crop_index]
    return x0 / rw, y0 / rh, (x0 + crop) / rw, (y0 + crop) / rh


class ObjectClipDataset(torch.utils.data.Dataset):
    """A clip dataset whose items also carry the objects of their clip (:meth:`ObjectFile.window`
    around the clip's centre frame): ``object_features`` (N, C1), ``object_boxes`` (N, 4, pixels of
    the view), ``object_mask`` (N,), ``object_times`` (N,). Videos listed in ``empty`` (absent
    from the file, allowed by the DataModule's ``objects_missing="empty"``) get no objects."""

    def __init__(self, inner, objects: ObjectFile, empty: Iterable[str] = (), zero_based: bool = False) -> None:
        self.inner, self.objects, self.empty, self.zero_based = inner, objects, set(empty), zero_based

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, i: int) -> dict[str, Any]:
        out = self.inner[i]
        meta = out["meta"]
        vid = meta["video_id"]
        idx = [int(x) for x in meta["frame_indices"]]
        # frame folders give 1-based frame numbers; decoded videos 0-based stream indices
        centre = (min(idx) + max(idx)) / 2 + (1 if self.zero_based else 0)
        o = self.objects
        if vid in self.empty:
            n = o.num_objects
            win = {"features": torch.zeros(n, o.feature_dim), "boxes": torch.zeros(n, 4),
                   "mask": torch.zeros(n, dtype=torch.bool), "times": torch.zeros(n)}
            frame_hw = (1, 1)
        else:
            win = o.window(vid, centre)
            attrs = o.video(vid)["attrs"]
            frame_hw = (int(attrs["height"]), int(attrs["width"]))
        video = out["video"][-1] if isinstance(out["video"], (list, tuple)) else out["video"]
        size = (int(video.shape[-2]), int(video.shape[-1]))
        window = view_window(self.inner.cfg, int(meta.get("crop_index", 0)), frame_hw)
        out["object_features"] = win["features"]
        out["object_boxes"] = view_boxes(win["boxes"], window, size, bool(meta.get("flipped", False)))
        out["object_mask"] = win["mask"]
        out["object_times"] = win["times"]
        return out


def _full_view(ds, eval_cfg):
    """A copy of a training clip dataset that yields the evaluation view (one centre clip, short
    side ``test_scale``, centre crop ``test_crop_size``, no flip): SAOA stage 2 trains on the
    un-cropped clip (section 3.3), and its boxes are then exact."""
    import copy
    import dataclasses

    out = copy.copy(ds)
    out.cfg = dataclasses.replace(ds.cfg, train=False, num_clips=1, num_crops=1, test_scale=eval_cfg.test_scale,
                                  test_crop_size=eval_cfg.test_crop_size)
    out.views = 1
    out._last = None
    return out


def attach_objects(dm) -> None:
    """Wrap each clip dataset of an EPIC DataModule so that its items carry their clip's objects
    (``dm.objects``; videos absent from the file per ``dm.objects_missing``)."""
    import logging
    import warnings

    from mmzoo.data.paths import find_path, flag

    path = find_path("objects", dm.objects, dm.root, what="EPIC objects file (mmzoo objects)")
    if getattr(dm, "_object_file", None) is None:
        dm._object_file = ObjectFile(path, dm.objects_frames)
    objects = dm._object_file
    for name, ds in list(dm.datasets.items()):
        if isinstance(ds, ObjectClipDataset):
            continue
        if name == "train" and getattr(dm, "objects_train_view", "random") == "full":
            ds = _full_view(ds, dm.eval_cfg)
        vids = sorted({r.meta["video_id"] for r in ds.records})
        absent = [v for v in vids if v not in objects.video_ids]
        if absent and dm.objects_missing == "error":
            raise LayoutError(f"{len(absent)} video(s) of the {name} split have no detections in {path}, e.g. "
                              f"{absent[:5]} ({flag('objects_missing')} empty gives their clips no objects)")
        if absent:
            msg = f"[{dm.datamodule_name}] {name}: {len(absent)} video(s) without detections in {path}: {absent[:5]}"
            logging.getLogger(__name__).warning(msg)
            warnings.warn(msg, stacklevel=2)
            dm.objects_missing_videos.extend(absent)
        dm.datasets[name] = ObjectClipDataset(ds, objects, absent, zero_based=dm.source == "video" and dm.modality == "rgb")


def grid_frames(first: int, last: int, video_fps: float, fps: float = 2.0) -> list[int]:
    """Detection-grid frame numbers (``1 + round(k video_fps / fps)``, halves rounded up) within
    ``[first, last]``."""
    step = video_fps / fps
    k0, k1 = max(math.ceil((first - 1) / step - 1e-9), 0), math.floor((last - 1) / step + 1e-9)
    return sorted({1 + math.floor(k * step + 0.5) for k in range(k0, k1 + 1)} & set(range(first, last + 1)))


# ----------------------------------------------------------------------- object annotations
class EpicObjectLabels:
    """EPIC-55's ``EPIC_train_object_labels.csv`` as released (``noun_class, noun, participant_id,
    video_id, frame, bounding_boxes``; boxes a list of ``(top, left, height, width)`` tuples in
    pixels of the 1920 x 1080 ``object_detection_images/train/P01/P01_01/0000000001.jpg``; an
    empty list marks an annotated frame where the object is not visible).

    ``images[(video_id, frame)]`` -> list of (x0, y0, x1, y1, noun_class) in pixels.
    """

    def __init__(self, path: str | Path, num_nouns: int | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise LayoutError(f"EPIC object annotation file not found: {self.path}")
        self.images: dict[tuple[str, int], list[tuple[float, float, float, float, int]]] = {}
        self.participants: dict[str, str] = {}
        for line, row in read_csv_rows(self.path, _LABEL_COLUMNS):
            noun = parse_number(str(self.path), line, "noun_class", row["noun_class"])
            if noun < 0 or (num_nouns is not None and noun >= num_nouns):
                raise AnnotationError(self.path, line, f"noun_class {noun} outside [0, {num_nouns})")
            frame = parse_number(str(self.path), line, "frame", row["frame"])
            try:
                tuples = ast.literal_eval(row["bounding_boxes"].strip() or "[]")
                tuples = [tuple(float(x) for x in t) for t in tuples]
            except (ValueError, SyntaxError, TypeError):
                raise AnnotationError(self.path, line, f"bounding_boxes is not a list of (top, left, height, width) "
                                                       f"tuples: {row['bounding_boxes']!r}") from None
            key = (row["video_id"], frame)
            entry = self.images.setdefault(key, [])
            self.participants[row["video_id"]] = row["participant_id"]
            for t in tuples:
                if len(t) != 4 or t[2] <= 0 or t[3] <= 0:
                    raise AnnotationError(self.path, line, f"box {t} is not (top, left, height > 0, width > 0)")
                top, left, h, w = t
                entry.append((left, top, left + w, top + h, noun))

    def image_path(self, root: str | Path, video_id: str, frame: int, split: str = "train") -> Path:
        """``root/object_detection_images/<split>/<participant>/<video_id>/%010d.jpg``."""
        return Path(root) / "object_detection_images" / split / self.participants[video_id] / video_id / f"{frame:010d}.jpg"

    def dataset(self, root: str | Path, split: str = "train", with_empty: bool = False) -> _DetectionImages:
        """Images with boxes as a torchvision detection dataset (``image`` float CHW in [0, 1],
        ``{"boxes", "labels"}`` with labels ``noun_class + 1``: 0 is the background)."""
        keys = sorted(k for k, v in self.images.items() if v or with_empty)
        missing = [str(self.image_path(root, v, f, split)) for v, f in keys if not self.image_path(root, v, f, split).is_file()]
        if missing:
            raise LayoutError(f"{len(missing)} annotated object image(s) missing under {root}, e.g. {missing[:3]}")
        return _DetectionImages([(self.image_path(root, v, f, split), self.images[(v, f)]) for v, f in keys])


def read_object_labels(path: str | Path, num_nouns: int | None = None) -> EpicObjectLabels:
    return EpicObjectLabels(path, num_nouns)


class _DetectionImages(torch.utils.data.Dataset):
    def __init__(self, items: list[tuple[Path, list]]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        from PIL import Image

        path, objs = self.items[i]
        img = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1).float() / 255
        boxes = torch.tensor([o[:4] for o in objs], dtype=torch.float32).view(-1, 4)
        labels = torch.tensor([o[4] + 1 for o in objs], dtype=torch.int64)
        return img, {"boxes": boxes, "labels": labels}


# ------------------------------------------------------------------------------- detector
def build_detector(num_classes: int = 353, backbone: str = "resnext101_32x8d",
                   backbone_weights: str | None = None, checkpoint: str | None = None,
                   min_size: int = 800, max_size: int = 1333, box_detections_per_img: int = 100,
                   box_score_thresh: float = 0.05):
    """torchvision Faster R-CNN with a ``backbone``-FPN (the thesis's ResNeXt-101-FPN).

    Args:
        num_classes: 352 EPIC-55 nouns + background (the detector is fine-tuned on EPIC's object
            annotations; the thesis's Visual Genome pre-training is not available in torchvision).
        backbone: a torchvision ResNet name (``resnext101_32x8d`` as the thesis; smaller ones build
            small detectors for tests).
        backbone_weights: torchvision weights enum name for the backbone (e.g. ``"IMAGENET1K_V2"``,
            downloaded by torchvision), None: random init.
        checkpoint: a state dict of this detector (``torch.save(model.state_dict())`` after
            :func:`train_detector`), loaded strictly with the weights-only loader.
        min_size / max_size / box_detections_per_img / box_score_thresh: torchvision's defaults
            (Detectron's test scale 800 / 1333).
    """
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

    bb = resnet_fpn_backbone(backbone_name=backbone, weights=backbone_weights, trainable_layers=3)
    model = FasterRCNN(bb, num_classes=num_classes, min_size=min_size, max_size=max_size,
                       box_detections_per_img=box_detections_per_img, box_score_thresh=box_score_thresh)
    if checkpoint:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        model.load_state_dict(state.get("state_dict", state) if isinstance(state, dict) else state, strict=True)
    return model


def train_detector(model, dataset, iterations: int = 150_000, lr_steps: tuple[int, ...] = (116_000, 133_000),
                   batch_size: int = 12, base_lr: float = 0.005, momentum: float = 0.9, weight_decay: float = 1e-4,
                   device: str = "cpu", progress: bool = True):
    """Fine-tune the detector on EPIC object annotations (:meth:`EpicObjectLabels.dataset`) with the
    thesis's recipe (section 3.3.1: batch 12, lr 0.005; train/val split 150k iterations with the lr
    divided by 10 at 116k and 133k; trainval/test 180k with steps at 140k and 160k). SGD momentum
    and weight decay are [SILENT] (Detectron's 0.9 / 1e-4). Returns the model."""
    from tqdm import tqdm

    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, collate_fn=lambda b: tuple(zip(*b)))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=base_lr, momentum=momentum, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, list(lr_steps), 0.1)
    model.to(device).train()
    step = 0
    bar = tqdm(total=iterations, desc="training the detector", disable=not progress)
    while step < iterations:
        for images, targets in loader:
            losses = model([im.to(device) for im in images], [{k: v.to(device) for k, v in t.items()} for t in targets])
            loss = sum(losses.values())
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            bar.update(1)
            bar.set_postfix(loss=float(loss.detach()))
            if step >= iterations:
                break
    bar.close()
    return model


@torch.no_grad()
def detect_frames(model, images: list[torch.Tensor], top_k: int = 5,
                  feature: Literal["roi_max"] = "roi_max") -> list[dict[str, torch.Tensor]]:
    """Run the detector on float CHW images in [0, 1]; per image the ``top_k`` best boxes (class
    agnostic, after the detector's per-class NMS) in pixels, scores and their RoIAlign features
    over the FPN levels max-pooled to ``C1 = out_channels`` vectors (section 3.2: "max-pooling in
    RoIAlign")."""
    if feature != "roi_max":
        raise ValueError(f"feature must be 'roi_max', got {feature!r}")
    model.eval()
    dets = model(images)
    sizes = [tuple(im.shape[-2:]) for im in images]
    trans, _ = model.transform(images)
    feats = model.backbone(trans.tensors)
    out = []
    for i, d in enumerate(dets):
        keep = d["scores"].argsort(descending=True)[:top_k]
        boxes, scores = d["boxes"][keep], d["scores"][keep]
        # boxes in the transformed image's pixels for the RoI pooler
        sy, sx = trans.image_sizes[i][0] / sizes[i][0], trans.image_sizes[i][1] / sizes[i][1]
        tboxes = boxes * boxes.new_tensor([sx, sy, sx, sy])
        level = {k: v[i : i + 1] for k, v in feats.items()}
        pooled = model.roi_heads.box_roi_pool(level, [tboxes], [trans.image_sizes[i]])
        out.append({"boxes": boxes, "scores": scores, "features": pooled.amax(dim=(2, 3))})
    return out


def extract_objects(dm, output: str | Path, detector=None, splits: Iterable[str] = ("train", "val"),
                    fps: float = 2.0, window_sec: float = 6.0, top_k: int = 5, batch_size: int = 4,
                    video_fps: float | None = None, half: bool = False, progress: bool = True) -> Path:
    """Detect objects on the grid frames that the clips of ``splits`` of an
    :class:`~mmzoo.data.epic_kitchens.EpicKitchensDataModule` (frames source) can need (each
    segment's span widened by ``window_sec / 2`` on both sides) and write the objects file.

    ``video_fps``: frame rate of the released frames (EPIC-55: 60 for most videos); None reads it
    from the video file when the DataModule has one, else 60.
    """
    from PIL import Image
    from tqdm import tqdm

    if detector is None:
        detector = build_detector(num_classes=dm.num_nouns + 1)
    dm._validate_layout()
    need: dict[str, set[int]] = {}
    dirs: dict[str, Path] = {}
    rates: dict[str, float] = {}
    for split in splits:
        for rec in dm._records(dm.test_split if split == "test" else split):
            vid = rec.meta["video_id"]
            if rec.frames_dir is None:
                raise LayoutError("extract_objects reads JPEG frames: use the DataModule with source='frames'")
            dirs[vid] = Path(rec.frames_dir)
            if vid not in rates:
                rates[vid] = float(video_fps) if video_fps else _video_rate(rec)
            pad = window_sec / 2 * rates[vid]
            last = _last_frame(dirs[vid])
            lo, hi = max(1, int(rec.first_frame - pad)), min(last, math.ceil(rec.last_frame + pad))
            need.setdefault(vid, set()).update(grid_frames(lo, hi, rates[vid], fps))
    videos: dict[str, dict[str, Any]] = {}
    total = sum(len(v) for v in need.values())
    dim = detector.backbone.out_channels
    bar = tqdm(total=total, desc="detecting objects", unit="frame", disable=not progress)
    for vid, frames in sorted(need.items()):
        frames_l = sorted(frames)
        boxes = np.zeros((len(frames_l), top_k, 4), np.float32)
        scores = np.zeros((len(frames_l), top_k), np.float32)
        feats = np.zeros((len(frames_l), top_k, dim), np.float32)
        counts = np.zeros(len(frames_l), np.int64)
        size = None
        for a in range(0, len(frames_l), batch_size):
            imgs = []
            for fr in frames_l[a : a + batch_size]:
                p = dirs[vid] / f"frame_{fr:010d}.jpg"
                if not p.is_file():
                    raise LayoutError(f"frame {p} not found while detecting objects of {vid}")
                imgs.append(torch.from_numpy(np.array(Image.open(p).convert("RGB"))).permute(2, 0, 1).float() / 255)
            size = tuple(imgs[0].shape[-2:])
            for j, d in enumerate(detect_frames(detector, imgs, top_k)):
                c = len(d["scores"])
                boxes[a + j, :c], scores[a + j, :c] = d["boxes"].numpy(), d["scores"].numpy()
                feats[a + j, :c], counts[a + j] = d["features"].numpy(), c
            bar.update(len(imgs))
        videos[vid] = {"frames": np.array(frames_l, np.int64), "boxes": boxes, "scores": scores, "counts": counts,
                       "features": feats, "width": size[1], "height": size[0], "fps": rates[vid]}
    bar.close()
    return write_objects(output, videos, dim, top_k, fps, detector=f"torchvision FasterRCNN {type(detector.backbone.body).__name__}-FPN",
                         half=half)


def _last_frame(folder: Path) -> int:
    nums = [int(p.stem.split("_")[-1]) for p in folder.glob("frame_*.jpg")]
    if not nums:
        raise LayoutError(f"no frame_*.jpg in {folder}")
    return max(nums)


def _video_rate(rec) -> float:
    if getattr(rec, "audio_video", None):
        from mmzoo.data.decode import VideoReader

        with VideoReader(rec.audio_video) as r:
            return float(r.fps)
    return 60.0
