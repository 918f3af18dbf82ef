"""AVE (Audio-Visual Event) localisation data, read as its authors distribute it: ``--data ave``.

Files looked for under ``root`` (at any depth up to 3 folders; see ``docs/ave-data.md``):

- dataset release (``AVE_Dataset.zip``): ``Annotations.txt`` (``Category&VideoID&Quality&
  StartTime&EndTime``, with or without that header line), ``trainSet.txt`` / ``valSet.txt`` /
  ``testSet.txt`` (same format) and the videos ``AVE/<VideoID>.mp4``;
- authors' code release (AVE-ECCV18 ``data/``): ``train_order.h5`` / ``val_order.h5`` /
  ``test_order.h5`` (key ``order``: row indices into Annotations.txt) and the features, HDF5
  key ``avadataset``: ``visual_feature.h5`` ``[N,10,7,7,512]``, ``audio_feature.h5``
  ``[N,10,128]``, ``labels.h5`` ``[N,10,29]``; for the weak setting ``visual_feature_noisy.h5``,
  ``audio_feature_noisy.h5``, ``labels_noisy.h5`` (background-only videos).

Labels: 28 event classes (index = order of first appearance in the real Annotations.txt, which is
the fixed list :data:`AVE_CLASSES`) and background = 28, so 29 outputs. Each video has 10
one-second segments; segments ``Start .. End-1`` are the event (end exclusive) and the others
background (the line ``...&0&0`` is all background). Samples are keyed by annotation ROW, not by
video id: 45 AVE ids appear on two or three rows under different categories.

Input modes (``input_mode``): ``"features"`` reads the released feature files; ``"video"``
decodes ``AVE/<VideoID>.mp4`` and extracts per-segment features once (one frame per second
through a timm backbone, ``7x7xC``; VGGish audio, 128-d; see :mod:`mmzoo.data.ave_features`),
caches them in the released format and then reads them the same way; ``"auto"`` picks
``features`` when both feature files are present, else ``video``. ``"segments"`` gives each
video's ten 1-s segments as raw inputs of any zoo model (``video`` clips and / or ``audio``
windows, 10 items per video; ``mmzoo extract --data ave`` selects it from the model's input
contract), so that `mmzoo extract` writes one feature per segment; see
:mod:`mmzoo.data.ave_segments` for the window.

Features extracted by mmzoo: ``visual_features`` / ``audio_features`` name an ``mmzoo extract
--data ave`` output (folder or ``features.h5`` with its ``manifest.json``); that stream is read
from it by video id (a ``[D]`` row is a ``1 x 1`` grid, a ``[C, H, W]`` map an ``H x W`` grid),
the other from the authors' files. ``visual_dim`` and ``audio_dim`` then come from the file.

Batch fields (dict):

- ``visual``: float ``[B, 10, 7, 7, Cv]`` (``Cv`` = :attr:`AVEDataModule.visual_dim`: 512 for the
  released features, 2048 for ResNet-152);
- ``audio``: float ``[B, 10, 128]``;
- ``label``: long ``[B, 10]`` segment classes (28 = background);
- ``video_label``: float ``[B, 29]`` video-level target by ``weak_label`` (``"average"``: mean of
  the segment one-hots, background included, thesis Eq.; ``"one_hot"``: the row's category, as in
  the authors' ``mil_labels.h5``; background for the background-only videos);
- ``meta``: list of ``B`` dicts: ``row`` (annotation row; -1 for background-only extras),
  ``video_id``, ``category``, ``start``, ``end``, ``split``, ``source`` (``"annotations"`` or
  ``"noisy"``).

In the weak setting the train batches still carry ``label`` (for monitoring only); a weakly
supervised model must train on ``video_label``.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any, Literal, Optional

import numpy as np

from mmzoo.data.ave_files import (
    AVE_CLASSES,
    BACKGROUND,
    FEATURE_FILES,
    H5_KEY,
    NOISY_FILES,
    NUM_SEGMENTS,
    ORDER_H5,
    SPLIT_TXT,
    SPLITS,
    AnnotationRow,
    AVEDataError,
    AVEFeatureDataset,
    AVELayout,
    _check_shape,
    _h5_read,
    _h5_shape,
    _read_order,
    _rows_from_split_txt,
    _video_label,
    find_layout,
    parse_annotations,
)
from mmzoo.data.ave_segments import AVESegmentDataset, SegmentConfig, SegmentVideo, ZooFeatureStream, segment_videos
from mmzoo.data.base import ZooDataModule
from mmzoo.data.constants import IMAGENET_MEAN, IMAGENET_STD
from mmzoo.data.registry import register_datamodule
from mmzoo.registry import InputConfig

__all__ = [
    "AVE_CLASSES",
    "BACKGROUND",
    "NUM_SEGMENTS",
    "AVEDataError",
    "AnnotationRow",
    "AVELayout",
    "AVEDataModule",
    "AVEFeatureDataset",
    "parse_annotations",
    "find_layout",
]


def _cache_root() -> Path:
    return Path(os.environ.get("MMZOO_CACHE", Path.home() / ".cache" / "mmzoo")).expanduser()


# --------------------------------------------------------------------------- DataModule
@register_datamodule("ave")
class AVEDataModule(ZooDataModule):
    """AVE audio-visual event localisation (28 events + background, 10 one-second segments).

    Args:
        root: folder holding the AVE release(s) (see the module docstring / docs/ave-data.md).
        input_mode: ``"auto"`` (released features when present, else videos), ``"features"``,
            ``"video"`` (extract from ``AVE/<VideoID>.mp4`` once, cached) or ``"segments"``
            (each 1-s segment as a raw model input, for `mmzoo extract`).
        supervision: ``"full"`` (segment labels) or ``"weak"`` (video-level labels; adds the
            background-only videos to training when ``weak_background_videos`` allows).
        weak_label: video-level target rule [AMBIG]: ``"average"`` (thesis, Y = mean of the
            segment one-hots incl. background) or ``"one_hot"`` (the authors' ``mil_labels.h5``).
        weak_background_videos: add the ``*_noisy.h5`` background-only videos to the weak training
            set: ``None`` = when the files are present (as the authors' weak training does),
            ``True`` = required, ``False`` = never. Ignored for ``supervision="full"``.
        split_source: ``"auto"`` (``*_order.h5`` when all three exist, else the ``*Set.txt``
            lists), ``"order_h5"`` or ``"txt"``.
        class_order: ``"ave"`` (the 28 AVE classes in their official order) or
            ``"first_appearance"`` (number this file's categories in order of first appearance).
        num_events: event classes (background = ``num_events``, so the model has
            ``num_events + 1`` outputs); 28 for AVE.
        annotations_file, features_dir, video_dir: explicit locations overriding discovery.
        visual_backbone: timm model for video mode (last stage at 224x224 must be 7x7). Default
            ``resnet152.tv_in1k``: ResNet-152 with the original ImageNet weights (thesis "ResNet-151").
        pretrained_backbone: load timm's pretrained weights (random init with a warning when
            they cannot be fetched).
        vggish_weights: safetensors VGGish weights (see mmzoo.nn.vggish); ``None`` = random init
            with a warning.
        frame_position: where in each 1-s segment the frame is taken [SILENT]; 0.5 = centre.
        frame_resize: ``"squash"`` (whole frame to 224x224) or ``"center_crop"`` [SILENT].
        feature_dtype: storage dtype of extracted features (``float16`` halves the cache).
        cache_dir: where extracted features go (default ``$MMZOO_CACHE`` or ``~/.cache/mmzoo``,
            under ``ave-features/<key>``).
        extract_device: device for extraction (default CUDA when available).
        extract_batch_videos: videos per extraction forward pass.
        skip_corrupt: in video mode, count, report and drop rows whose video is missing or
            unreadable instead of raising.
        batch_size: training batch size (64 in the authors' code); ``eval_batch_size`` for
            val/test/predict (default: ``batch_size``).
        num_workers: DataLoader workers (also used to decode videos during extraction); ``None``:
            ``min(4, CPUs - 1)``.
        pin_memory: pin host memory (default: when CUDA is available).
        progress: show a progress bar during extraction.
        visual_features / audio_features: an ``mmzoo extract --data ave`` output (folder or
            ``features.h5``) to read that stream from, instead of the authors' file.
        segment_*: the ``"segments"`` window (frames per segment, ``"uniform"`` / ``"stride"``
            sampling, stride, short side, crop, mean / std, audio ``"none"`` / ``"waveform"`` /
            ``"logmel"`` and its front-end args): :class:`~mmzoo.data.ave_segments.SegmentConfig`;
            ``mmzoo extract`` sets them from the model's input contract.

    ``visual_dim``, ``audio_dim`` and ``supervision`` are linked to the model's arguments of the
    same names by ``mmzoo fit`` (``model_links``).
    """

    model_links = ("visual_dim", "audio_dim", "supervision")

    def __init__(
        self,
        root: str = "data/ave",
        input_mode: Literal["auto", "features", "video", "segments"] = "auto",
        supervision: Literal["full", "weak"] = "full",
        weak_label: Literal["average", "one_hot"] = "average",
        weak_background_videos: Optional[bool] = None,
        split_source: Literal["auto", "order_h5", "txt"] = "auto",
        class_order: Literal["ave", "first_appearance"] = "ave",
        num_events: int = 28,
        annotations_file: Optional[str] = None,
        features_dir: Optional[str] = None,
        video_dir: Optional[str] = None,
        visual_backbone: str = "resnet152.tv_in1k",
        pretrained_backbone: bool = True,
        vggish_weights: Optional[str] = None,
        frame_position: float = 0.5,
        frame_resize: Literal["squash", "center_crop"] = "squash",
        feature_dtype: Literal["float32", "float16"] = "float32",
        cache_dir: Optional[str] = None,
        extract_device: Optional[str] = None,
        extract_batch_videos: int = 4,
        skip_corrupt: bool = False,
        batch_size: int = 64,
        eval_batch_size: Optional[int] = None,
        num_workers: Optional[int] = None,
        pin_memory: Optional[bool] = None,
        progress: bool = True,
        visual_features: Optional[str] = None,
        audio_features: Optional[str] = None,
        segment_video: bool = True,
        segment_frames: int = 8,
        segment_sampling: Literal["uniform", "stride"] = "uniform",
        segment_stride: int = 2,
        segment_short_side: int = 256,
        segment_crop: int = 224,
        segment_mean: tuple[float, float, float] = IMAGENET_MEAN,
        segment_std: tuple[float, float, float] = IMAGENET_STD,
        segment_audio: Literal["none", "waveform", "logmel"] = "none",
        segment_audio_args: Optional[dict[str, Any]] = None,
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers, pin_memory=pin_memory,
                         eval_batch_size=eval_batch_size)
        for name, val, allowed in (
            ("input_mode", input_mode, ("auto", "features", "video", "segments")),
            ("supervision", supervision, ("full", "weak")),
            ("weak_label", weak_label, ("average", "one_hot")),
            ("split_source", split_source, ("auto", "order_h5", "txt")),
            ("class_order", class_order, ("ave", "first_appearance")),
        ):
            if val not in allowed:
                raise ValueError(f"{name} must be one of {allowed}; got {val!r}")
        self.root = Path(root)
        self.input_mode, self.supervision, self.weak_label = input_mode, supervision, weak_label
        self.weak_background_videos, self.split_source = weak_background_videos, split_source
        self.class_order, self.num_events = class_order, num_events
        self.background_index = num_events
        self.num_outputs = num_events + 1
        self.num_segments = NUM_SEGMENTS
        self.annotations_file = annotations_file
        self.features_dir = features_dir
        self.video_dir = video_dir
        from mmzoo.data.ave_features import ExtractionConfig

        self.extraction = ExtractionConfig(
            visual_backbone=visual_backbone,
            pretrained_backbone=pretrained_backbone,
            frame_position=frame_position,
            frame_resize=frame_resize,
            vggish_weights=vggish_weights,
            num_segments=NUM_SEGMENTS,
            feature_dtype=feature_dtype,
        )
        self.cache_dir = cache_dir
        self.extract_device = extract_device
        self.extract_batch_videos = extract_batch_videos
        self.skip_corrupt = skip_corrupt
        self.progress = progress
        self.segments = SegmentConfig(
            video=segment_video, frames=segment_frames, sampling=segment_sampling, stride=segment_stride,
            short_side=segment_short_side, crop=segment_crop, mean=tuple(segment_mean), std=tuple(segment_std),
            audio=segment_audio, audio_args=dict(segment_audio_args or {}),
        )
        self.zoo_streams = {s: ZooFeatureStream(p, s) for s, p in (("visual", visual_features),
                                                                    ("audio", audio_features)) if p}
        if self.zoo_streams and input_mode in ("video", "segments"):
            raise ValueError(f"--data.visual_features / --data.audio_features are read in input_mode='features', "
                             f"not input_mode={input_mode!r}")
        self._zoo_shapes: Optional[dict[str, tuple[int, ...]]] = None
        self._audio_dim: Optional[int] = None

        self.layout: Optional[AVELayout] = None
        self.rows: list[AnnotationRow] = []
        self.classes: list[str] = []
        self.splits: dict[str, list[int]] = {}
        self.resolved_mode: Optional[str] = None
        self.feature_files: dict[str, Path] = {}
        self.skipped: dict[str, str] = {}
        self.skipped_rows: list[int] = []
        self.uses_background_videos = False
        self._visual_dim: Optional[int] = None
        self._prepared = False

    @classmethod
    def defaults_from_input(cls, cfg: InputConfig) -> dict[str, Any]:
        """``input_mode="features"`` for a model whose contract names released feature sets
        (``cfg.features``); ``input_mode="segments"`` and the segment window in the model's own
        input format for a model that reads raw video and / or audio (any zoo video or audio
        model, for ``mmzoo extract --data ave``); otherwise nothing (``"auto"`` picks features
        or videos from what is on disk, and the extracted features have the released format
        either way)."""
        if cfg.features:
            return {"input_mode": "features"}
        from mmzoo.data.ave_segments import segment_defaults_from_input

        return segment_defaults_from_input(cfg)

    # ------------------------------------------------------------------ discovery
    def _discover(self) -> AVELayout:
        if self.layout is None:
            self.layout = find_layout(self.root, self.annotations_file, self.features_dir, self.video_dir)
        return self.layout

    def _resolve_mode(self, lay: AVELayout) -> str:
        if self.input_mode == "segments":
            if lay.video_dir is None:
                raise FileNotFoundError(f"input_mode='segments' but no AVE/ folder with .mp4 files under {lay.root} "
                                        f"(pass video_dir=...).\n{lay.describe()}")
            return "segments"
        if self.zoo_streams:
            need = [f"{s}_feature.h5" for s in ("visual", "audio") if s not in self.zoo_streams]
            missing = [n for n in need if lay.features.get(n) is None]
            if missing:
                raise FileNotFoundError(
                    f"{', '.join(missing)} not found under {lay.root}: give the other stream too "
                    f"(--data.{missing[0].split('_')[0]}_features <mmzoo extract output>) or add the authors' file")
            return "features"
        if self.input_mode == "features":
            missing = [n for n in ("visual_feature.h5", "audio_feature.h5") if lay.features.get(n) is None]
            if missing:
                raise FileNotFoundError(
                    f"input_mode='features' but {', '.join(missing)} not found under {lay.root} "
                    f"(or features_dir).\n{lay.describe()}"
                )
            return "features"
        if self.input_mode == "video":
            if lay.video_dir is None:
                raise FileNotFoundError(
                    f"input_mode='video' but no AVE/ folder with .mp4 files under {lay.root} (pass video_dir=...).\n{lay.describe()}"
                )
            return "video"
        if lay.has_features:
            return "features"
        if lay.video_dir is not None:
            return "video"
        raise FileNotFoundError(
            f"No AVE inputs under {lay.root}: need visual_feature.h5 + audio_feature.h5 (authors' code release) "
            f"or an AVE/ folder of <VideoID>.mp4 files (dataset release).\n{lay.describe()}"
        )

    def _cache_path(self, lay: AVELayout, rows: list[AnnotationRow]) -> Path:
        h = hashlib.sha1()
        h.update(str(lay.video_dir.resolve()).encode())
        for r in rows:
            p = lay.video_dir / f"{r.video_id}.mp4"
            st = p.stat() if p.is_file() else None
            h.update(f"{r.row}|{r.video_id}|{st.st_size if st else -1}|{int(st.st_mtime) if st else -1}\n".encode())
        key = self.extraction.key(extra=h.hexdigest())
        base = Path(self.cache_dir).expanduser() if self.cache_dir else _cache_root() / "ave-features"
        return base / f"{self.extraction.visual_backbone.replace('/', '_')}-{key}"

    def _check_zoo_streams(self) -> dict[str, tuple[int, ...]]:
        """Check the `mmzoo extract` streams against the split lists (once); their AVE shapes."""
        if self._zoo_shapes is None:
            lay = self._discover()
            rows, _ = parse_annotations(lay.annotations, self.class_order, self.num_events)
            splits = self._read_splits(lay, rows)
            ids = [rows[i].video_id for s in SPLITS for i in splits[s]]
            self._zoo_shapes = {s: z.check(ids) for s, z in self.zoo_streams.items()}
        return self._zoo_shapes

    @property
    def audio_dim(self) -> int:
        """Width of the ``audio`` field (128 for VGGish; an `mmzoo extract` stream's ``D``)."""
        if self._audio_dim is None:
            if "audio" in self.zoo_streams:
                self._audio_dim = int(self._check_zoo_streams()["audio"][-1])
            elif (self.resolved_mode or self._resolve_mode(self._discover())) == "features":
                self._audio_dim = int(_h5_shape(self._discover().features["audio_feature.h5"], H5_KEY)[-1])
            else:
                self._audio_dim = 128
        return self._audio_dim

    @property
    def visual_grid(self) -> tuple[int, int]:
        """``(H, W)`` of the ``visual`` regions (7 x 7 for the authors' maps, 1 x 1 for vectors)."""
        if "visual" in self.zoo_streams:
            return tuple(self._check_zoo_streams()["visual"][:2])
        return (7, 7)

    @property
    def visual_dim(self) -> int:
        """Channels ``Cv`` of the ``visual`` field (for linking to a model's ``visual_dim``)."""
        if self._visual_dim is None:
            lay = self._discover()
            mode = self.resolved_mode or self._resolve_mode(lay)
            if mode == "segments":
                raise AVEDataError("input_mode='segments' gives raw segment inputs (for `mmzoo extract`), not "
                                   "visual features; an AVE model needs input_mode features|video|auto")
            if "visual" in self.zoo_streams:
                self._visual_dim = int(self._check_zoo_streams()["visual"][-1])
            elif mode == "features":
                path = lay.features["visual_feature.h5"]
                self._visual_dim = int(_h5_shape(path, H5_KEY)[-1])
            else:
                from mmzoo.data.ave_features import visual_dim_of

                self._visual_dim = visual_dim_of(self.extraction.visual_backbone)
        return self._visual_dim

    # ------------------------------------------------------------------ Lightning hooks
    def prepare_data(self) -> None:
        """Video mode: extract and cache the features once (rank 0)."""
        lay = self._discover()
        rows, _ = parse_annotations(lay.annotations, self.class_order, self.num_events)
        if self._resolve_mode(lay) == "video" and not self.zoo_streams:
            self._ensure_extracted(lay, rows)

    def _ensure_extracted(self, lay: AVELayout, rows: list[AnnotationRow]) -> Path:
        from mmzoo.data.ave_features import MANIFEST, extract_ave_features

        out = self._cache_path(lay, rows)
        if (out / MANIFEST).is_file():
            return out
        paths = [lay.video_dir / f"{r.video_id}.mp4" for r in rows]
        missing = [p for p in dict.fromkeys(paths) if not p.is_file()]
        if missing and not self.skip_corrupt:
            raise FileNotFoundError(
                f"{len(missing)} video(s) listed in {lay.annotations} are missing, e.g. {missing[0]} "
                "(set skip_corrupt=True to count and skip them)"
            )
        labels = np.stack([r.segment_labels(NUM_SEGMENTS, self.background_index) for r in rows])
        extract_ave_features(
            paths,
            out,
            self.extraction,
            labels=labels,
            num_outputs=self.num_outputs,
            device=self.extract_device,
            num_workers=self.num_workers,
            batch_videos=self.extract_batch_videos,
            skip_corrupt=self.skip_corrupt,
            progress=self.progress,
            extra_manifest={"annotations": str(lay.annotations), "video_dir": str(lay.video_dir)},
        )
        return out

    def _read_splits(self, lay: AVELayout, rows: list[AnnotationRow]) -> dict[str, list[int]]:
        have_h5 = all(lay.order_h5.get(s) for s in SPLITS)
        have_txt = all(lay.split_txt.get(s) for s in SPLITS)
        source = self.split_source
        if source == "auto":
            source = "order_h5" if have_h5 else "txt" if have_txt else None
        if source is None:
            raise FileNotFoundError(
                f"No complete AVE split under {lay.root}: need train_order.h5/val_order.h5/test_order.h5 "
                f"or trainSet.txt/valSet.txt/testSet.txt.\n{lay.describe()}"
            )
        need = lay.order_h5 if source == "order_h5" else lay.split_txt
        names = ORDER_H5 if source == "order_h5" else SPLIT_TXT
        for s in SPLITS:
            if need.get(s) is None:
                raise FileNotFoundError(f"split_source='{source}' but {names[s]} not found under {lay.root}.\n{lay.describe()}")
        if source == "order_h5":
            splits = {s: _read_order(lay.order_h5[s], len(rows)) for s in SPLITS}
        else:
            splits = {s: _rows_from_split_txt(lay.split_txt[s], rows) for s in SPLITS}
        lay.notes.append(f"splits from {'*_order.h5' if source == 'order_h5' else '*Set.txt'}")
        if source == "order_h5" and have_txt:
            other = {s: _rows_from_split_txt(lay.split_txt[s], rows) for s in SPLITS}
            diff = [s for s in SPLITS if sorted(other[s]) != sorted(splits[s])]
            if diff:
                warnings.warn(
                    f"AVE split lists disagree for {diff}: using *_order.h5, ignoring {[SPLIT_TXT[s] for s in diff]}",
                    stacklevel=3,
                )
        for a in SPLITS:
            for b in SPLITS:
                if a < b:
                    both = set(splits[a]) & set(splits[b])
                    if both:
                        warnings.warn(
                            f"AVE splits '{a}' and '{b}' share {len(both)} annotation row(s), e.g. row {min(both)}",
                            stacklevel=3,
                        )
        return splits

    def _check_feature_files(self, visual: Any, audio: Any, labels: Optional[Path], n: int, what: str) -> Optional[int]:
        """Check the authors'-format files among ``visual`` / ``audio`` (an `mmzoo extract`
        stream is checked by its own reader); the visual channels, or None."""
        vdim = None
        if isinstance(visual, Path):
            vshape = _h5_shape(visual, H5_KEY)
            _check_shape(visual, H5_KEY, vshape, (n, NUM_SEGMENTS, 7, 7, None), f"{what}: one row per annotation line")
            vdim = int(vshape[-1])
        if isinstance(audio, Path):
            ashape = _h5_shape(audio, H5_KEY)
            _check_shape(audio, H5_KEY, ashape, (n, NUM_SEGMENTS, 128), what)
        if labels is not None and (isinstance(visual, Path) or isinstance(audio, Path)):
            lshape = _h5_shape(labels, H5_KEY)
            _check_shape(labels, H5_KEY, lshape, (n, NUM_SEGMENTS, self.num_outputs), what)
        return vdim

    def setup(self, stage: Optional[str] = None) -> None:
        if self.datasets:
            return
        lay = self._discover()
        rows, classes = parse_annotations(lay.annotations, self.class_order, self.num_events)
        splits = self._read_splits(lay, rows)
        mode = self._resolve_mode(lay)
        n = len(rows)
        skipped_rows: set[int] = set()
        if mode == "segments":
            self.rows, self.classes, self.resolved_mode, self.splits = rows, classes, mode, splits
            self.datasets = {s: AVESegmentDataset(self._segment_videos(s, lay), self.segments) for s in SPLITS}
            return
        if mode == "features":
            visual, audio, labels = (lay.features[f] for f in FEATURE_FILES)
            zoo = self._check_zoo_streams()
            visual, audio = self.zoo_streams.get("visual", visual), self.zoo_streams.get("audio", audio)
            vdim = self._check_feature_files(visual, audio, labels, n, "AVE features")
            self._visual_dim = vdim if vdim is not None else int(zoo["visual"][-1])
            if zoo:
                lay.notes += [f"{z.describe()}" for z in self.zoo_streams.values()]
            if labels is not None and len(self.zoo_streams) < 2:
                lab = _h5_read(labels, H5_KEY)
                got = lab.argmax(-1)
                want = np.stack([r.segment_labels(NUM_SEGMENTS, self.background_index) for r in rows])
                bad = np.nonzero((got != want).any(1))[0]
                if bad.size:
                    r = rows[int(bad[0])]
                    raise AVEDataError(
                        f"{labels}: row {r.row} ({r.category}&{r.video_id}&{r.start}&{r.end}, line {r.line} of "
                        f"{lay.annotations}) has segment labels {got[bad[0]].tolist()}, but the annotation gives "
                        f"{want[bad[0]].tolist()} ({bad.size} row(s) disagree): the feature files do not belong to "
                        "this Annotations.txt"
                    )
        else:
            out = self._ensure_extracted(lay, rows)
            from mmzoo.data.ave_features import MANIFEST

            manifest = json.loads((out / MANIFEST).read_text())
            visual, audio = out / "visual_feature.h5", out / "audio_feature.h5"
            self._visual_dim = self._check_feature_files(visual, audio, None, n, f"feature cache {out}")
            self.skipped = dict(manifest.get("skipped", {}))
            skipped_rows = set(manifest.get("skipped_rows", []))
            if skipped_rows:
                warnings.warn(
                    f"AVE video mode: {len(self.skipped)} unreadable/missing video(s) skipped, dropping "
                    f"{len(skipped_rows)} annotation row(s) (skip_corrupt=True); details in {out / MANIFEST}",
                    stacklevel=2,
                )
            if self.extraction.pretrained_backbone and not manifest.get("visual_pretrained_loaded", False):
                warnings.warn(
                    f"The cached features in {out} were extracted with a RANDOMLY initialised "
                    f"{self.extraction.visual_backbone} (pretrained weights were unreachable); delete that folder "
                    "to re-extract with pretrained weights.",
                    stacklevel=2,
                )
            lay.notes.append(f"features extracted from videos, cached in {out}")
        self.feature_files = {"visual": visual, "audio": audio}
        self.rows, self.classes, self.resolved_mode = rows, classes, mode
        self.skipped_rows = sorted(skipped_rows)
        self.splits = {s: [i for i in splits[s] if i not in skipped_rows] for s in SPLITS}

        sources = {"annotations": (visual, audio)}
        self.datasets = {s: AVEFeatureDataset(self._entries(s, rows), sources) for s in SPLITS}

        use_bg = False
        if self.zoo_streams and self.supervision == "weak" and self.weak_background_videos:
            raise ValueError("weak_background_videos=True: the background-only videos exist only as the authors' "
                             "features, not in --data.visual_features / --data.audio_features")
        if self.supervision == "weak" and self.weak_background_videos is not False and not self.zoo_streams:
            nv, na, nl = (lay.noisy[f] for f in NOISY_FILES)
            present = nv is not None and na is not None
            if self.weak_background_videos and not present:
                raise FileNotFoundError(
                    "weak_background_videos=True but "
                    + ", ".join(f for f, p in zip(NOISY_FILES[:2], (nv, na)) if p is None)
                    + f" not found under {lay.root}"
                )
            if present:
                m = _h5_shape(nv, H5_KEY)[0]
                cv = self._check_feature_files(nv, na, nl, m, "background-only videos")
                if cv != self._visual_dim:
                    raise AVEDataError(f"{nv}: key '{H5_KEY}' has {cv} channels but the main visual features have {self._visual_dim}")
                if nl is not None:
                    lab = _h5_read(nl, H5_KEY).argmax(-1)
                    if (lab != self.background_index).any():
                        i = int(np.nonzero((lab != self.background_index).any(1))[0][0])
                        raise AVEDataError(f"{nl}: row {i} has non-background segment labels; expected background only")
                seg = np.full(NUM_SEGMENTS, self.background_index, np.int64)
                vl = _video_label(seg, self.background_index, self.weak_label, self.num_outputs)
                extra = [
                    {
                        "source": "noisy",
                        "index": i,
                        "label": seg,
                        "video_label": vl,
                        "meta": dict(row=-1, video_id=f"noisy-{i}", category="background", start=0, end=0,
                                     split="train", source="noisy"),
                    }
                    for i in range(m)
                ]
                sources = {"annotations": (visual, audio), "noisy": (nv, na)}
                self.datasets["train"] = AVEFeatureDataset(self.datasets["train"].entries + extra, sources)
                use_bg = True
                lay.notes.append(f"weak training adds {m} background-only videos from {nv.name}")
        self.uses_background_videos = use_bg

    def _segment_videos(self, split: str, lay: AVELayout) -> list[SegmentVideo]:
        videos, missing = segment_videos([self.rows[i] for i in self.splits[split]], lay.video_dir, self.background_index)
        if missing and not self.skip_corrupt:
            raise FileNotFoundError(f"{len(missing)} video(s) of the '{split}' split are missing, e.g. {missing[0]} "
                                    "(set skip_corrupt=True to count and skip them)")
        self.skipped.update({str(p): "missing" for p in missing})
        return videos

    def _entries(self, split: str, rows: list[AnnotationRow]) -> list[dict[str, Any]]:
        out = []
        for i in self.splits[split]:
            r = rows[i]
            seg = r.segment_labels(NUM_SEGMENTS, self.background_index)
            out.append(
                {
                    "source": "annotations",
                    "index": r.row,
                    "label": seg,
                    "video_label": _video_label(seg, r.class_index, self.weak_label, self.num_outputs),
                    "meta": dict(row=r.row, video_id=r.video_id, category=r.category, start=r.start, end=r.end,
                                 split=split, source="annotations"),
                }
            )
        return out

    def describe(self) -> str:
        """Human-readable summary of what was found and how it is used (after ``setup``)."""
        lay = self._discover()
        lines = [lay.describe()]
        if self.datasets:
            lines.append(
                f"  mode: {self.resolved_mode}; visual_dim={self._visual_dim}; supervision={self.supervision} "
                f"(weak_label={self.weak_label}); rows={len(self.rows)}; "
                + ", ".join(f"{s}={len(self.datasets[s])}" for s in SPLITS)
            )
            if self.skipped_rows:
                lines.append(f"  skipped rows (unreadable videos): {len(self.skipped_rows)}")
        return "\n".join(lines)

    # ------------------------------------------------------------------ loaders
    def dataset(self, split: str) -> AVEFeatureDataset:
        ds = super().dataset(split)
        if len(ds) == 0:
            raise AVEDataError(f"AVE split '{split}' is empty")
        return ds
