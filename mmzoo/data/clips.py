"""The clip DataModule base shared by Kinetics and EPIC-Kitchens: every clip setting, once.

:class:`ClipDataModule` declares the clip sampling, transform, view and audio front-end settings
(typed, documented, with the thesis defaults of AVSlowFast, ch. 4), builds the
:class:`~mmzoo.data.video_dataset.ClipDataset` s from ``self._records(split)`` and counts the
skipped files and audio-less clips. Its subclasses declare only their dataset's own arguments
and pass ``**kwargs`` on, so that ``mmzoo fit --data kinetics`` (jsonargparse follows the
``**kwargs``) still lists every clip flag with its default.

:meth:`ClipDataModule.defaults_from_input` turns a model's
:class:`~mmzoo.registry.InputConfig` into these arguments: frames, frame stride, SlowFast
``alpha``, crops, short side, training scale range, normalisation, test views and the log-mel
front end, the number of log-mel frames included (AVSlowFast-R101-NL 16x8 takes 256, the
others 128), so that a model and its data cannot disagree on them.
"""
from __future__ import annotations

import abc
import functools
from typing import Any, ClassVar, Literal, Optional

from mmzoo.data.audio import LogMel
from mmzoo.data.base import ZooDataModule
from mmzoo.data.constants import (
    AVSLOWFAST_AUDIO,
    AVSLOWFAST_LOGMEL_MEAN,
    AVSLOWFAST_LOGMEL_STD,
    KINETICS_MEAN,
    KINETICS_STD,
)
from mmzoo.data.video_dataset import (
    ClipConfig,
    ClipDataset,
    DataReportCallback,
    VideoRecord,
    collate_clips,
    finish_deferred_clips,
    make_report_callback,
)
from mmzoo.registry import InputConfig

__all__ = ["ClipDataModule", "finish_deferred_clips"]

#: InputConfig field -> ClipDataModule argument (copied as is when set).
_INPUT_FIELDS = {
    "frames": "num_frames",
    "sampling_rate": "stride",
    "alpha": "alpha",
    "train_crop": "crop_size",
    "test_crop": "test_crop_size",
    "short_side": "test_scale",
    "train_scale": "train_scale",
    "mean": "mean",
    "std": "std",
}
#: AudioInput field -> ClipDataModule argument, for log-mel inputs.
_AUDIO_FIELDS = {
    "sample_rate": "audio_sample_rate",
    "window_ms": "audio_window_ms",
    "hop_ms": "audio_hop_ms",
    "n_fft": "audio_n_fft",
    "n_mels": "audio_n_mels",
    "num_frames": "audio_num_frames",
    "mel_scale": "audio_mel_scale",
    "log_offset": "audio_log_offset",
    "mean": "audio_mean",
    "std": "audio_std",
}


class ClipDataModule(ZooDataModule):
    """Base of the clip DataModules (Kinetics, EPIC-Kitchens).

    Subclasses implement ``_validate_layout()`` and ``_records(split) -> list[VideoRecord]`` and
    set ``self.train_split`` / ``self.val_split`` / ``self.test_split``.

    Args:
        num_frames: frames per clip (the Fast pathway's for SlowFast; AVSlowFast 4x16: 32), or
            segments with ``temporal="tsn"``.
        stride: frame stride of a clip (AVSlowFast 4x16: 2).
        temporal: ``"clip"`` (one clip of ``num_frames`` at ``stride``) or ``"tsn"`` (segment
            sampling: one frame from each of ``num_frames`` equal segments).
        num_clips / num_crops: test views per video: uniform clips x spatial crops (thesis,
            Kinetics: 10 x 3).
        val_num_clips / val_num_crops: validation views during training.
        train_scale: random short-side range in training (thesis: [256, 320]; [256, 340] for R101).
        crop_size: random training crop (224).
        test_scale / test_crop_size: short side and crop size of the test views (256 / 256).
        flip: random horizontal flips in training.
        mean / std: normalisation of [0, 1] RGB (PySlowFast: 0.45 / 0.225).
        alpha: SlowFast speed ratio for pathway packing (``[slow, fast]``; AVSlowFast: 8);
            ``None``: one tensor.
        pathway_mode: slow-frame selection (``"linspace"``: the PySlowFast / PyTorchVideo
            convention; ``"stride"``: ``frames[::alpha]``).
        with_audio: add the log-mel of the audio window centred on the clip as ``audio``
            (``B,1,audio_num_frames,audio_n_mels``).
        audio_sample_rate / audio_window_ms / audio_hop_ms / audio_n_fft / audio_n_mels: log-mel
            front end (AVSlowFast, thesis ch. 4: 16 kHz, 32 ms Hann window, 16 ms hop, 80 mel
            bins; FFT size 512 from the authors' code; ``audio_n_fft=None``: the window length).
        audio_num_frames: log-mel frames per clip (AVSlowFast: 128; R101-NL 16x8: 256); the
            waveform read is exactly the span these frames cover.
        audio_mel_scale / audio_log_offset: mel scale and the offset added before the log.
        audio_normalization: ``"fixed"`` (``(x - audio_mean) / audio_std``), ``"instance"``
            (per example) or ``"none"`` (the thesis does not specify it).
        audio_mean / audio_std: constants of ``"fixed"`` (the authors' code: -7.03 / 4.66).
        audio_align: audio window centred on the clip (``"center"``) or starting with it.
        missing_audio: videos without an audio stream: ``"zeros"`` (zero audio,
            ``has_audio=False``, counted), ``"skip"`` (replaced by the next video, counted and
            reported) or ``"error"``.
        audio_shift_sec: with ``with_audio``, also return ``audio_shifted``: the log-mel of the
            same window shifted by this many seconds (later when the track allows, else earlier;
            random direction in training when both fit): hard negatives for the audio-visual
            synchronisation loss (>= 0.5 s in the thesis). ``None``: no such field.
        skip_corrupt: replace undecodable videos by the next one, counted and reported, instead
            of raising.
        deferred_geometry: ``None`` (default, auto): training and evaluation views are scaled,
            cropped and flipped with the bilinear taps below (PySlowFast's pixels) and finished on
            the accelerator when the Trainer has one (``True``'s path), else in the DataLoader
            workers (items then carry ``video``, as before; on a CPU the workers are where the
            spare cores are). ``True``: views leave the worker as the uint8 source region of their
            crop plus per-axis bilinear taps (``video_deferred``, 4x less host-to-device traffic
            than float) and are scaled, cropped, flipped, normalised and packed in
            ``on_after_batch_transfer``, i.e. on the accelerator under a Trainer, batched. Pixels
            are PySlowFast's: ``F.interpolate(mode="bilinear", align_corners=False)`` of the
            native frames to the random training short side, then random crop and flip; for
            evaluation views to ``test_scale``, then crop ``0 / 1 / 2`` of ``uniform_crop`` (an
            odd margin's centre at ``ceil(margin / 2)``), the crops of one clip sharing one
            decode. Not the decoder's swscale bilinear, and for frame folders not torchvision's
            antialiased resize, as with ``False``. Iterating a dataloader (or a dataset) without
            a Trainer, finish each batch with :meth:`finish_batch`
            (:func:`finish_deferred_clips`). A LightningModule that overrides
            ``on_after_batch_transfer`` replaces this hook in Lightning: call
            ``self.trainer.datamodule.finish_batch(batch)`` there. Subclass datasets that edit
            pixels after sampling (proposal boxes, object boxes, label-dependent flips, flow)
            keep the float path. ``False``: the worker scales in the decoder (swscale) and
            returns the float ``video``, training and evaluation views alike (the behaviour
            before, centre offsets floored).
        **kwargs: loader settings of :class:`~mmzoo.data.base.ZooDataModule` (``batch_size``,
            ``num_workers``, ``pin_memory``, ``eval_batch_size``).
    """

    datamodule_name: ClassVar[str] = "clips"
    collate_fn = staticmethod(collate_clips)
    persistent_workers: ClassVar[bool] = False
    drop_last_train: ClassVar[bool] = True

    def __init__(
        self,
        num_frames: int = 32,
        stride: int = 2,
        temporal: Literal["clip", "tsn"] = "clip",
        num_clips: int = 10,
        num_crops: int = 3,
        val_num_clips: int = 1,
        val_num_crops: int = 1,
        train_scale: tuple[int, int] = (256, 320),
        crop_size: int = 224,
        test_scale: int = 256,
        test_crop_size: int = 256,
        flip: bool = True,
        mean: tuple[float, float, float] = KINETICS_MEAN,
        std: tuple[float, float, float] = KINETICS_STD,
        alpha: Optional[int] = None,
        pathway_mode: Literal["linspace", "stride"] = "linspace",
        with_audio: bool = False,
        audio_sample_rate: int = AVSLOWFAST_AUDIO["sample_rate"],
        audio_window_ms: float = AVSLOWFAST_AUDIO["window_ms"],
        audio_hop_ms: float = AVSLOWFAST_AUDIO["hop_ms"],
        audio_n_fft: Optional[int] = AVSLOWFAST_AUDIO["n_fft"],
        audio_n_mels: int = AVSLOWFAST_AUDIO["n_mels"],
        audio_num_frames: int = 128,
        audio_mel_scale: Literal["htk", "slaney"] = AVSLOWFAST_AUDIO["mel_scale"],
        audio_log_offset: float = AVSLOWFAST_AUDIO["log_offset"],
        audio_normalization: Literal["fixed", "instance", "none"] = "fixed",
        audio_mean: float = AVSLOWFAST_LOGMEL_MEAN,
        audio_std: float = AVSLOWFAST_LOGMEL_STD,
        audio_align: Literal["center", "start"] = "center",
        missing_audio: Literal["zeros", "skip", "error"] = "zeros",
        audio_shift_sec: Optional[float] = None,
        skip_corrupt: bool = False,
        deferred_geometry: Optional[bool] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if missing_audio not in ("zeros", "skip", "error"):
            raise ValueError(f"missing_audio must be zeros/skip/error, got {missing_audio!r}")
        if temporal not in ("clip", "tsn"):
            raise ValueError(f"temporal must be 'clip' or 'tsn', got {temporal!r}")
        if alpha is not None and alpha > num_frames:
            raise ValueError(f"alpha={alpha} is larger than num_frames={num_frames}")
        if audio_num_frames < 1 or audio_n_mels < 1:
            raise ValueError(f"audio_num_frames and audio_n_mels must be >= 1, got {audio_num_frames}, {audio_n_mels}")
        common = dict(
            num_frames=num_frames, stride=stride, temporal=temporal, num_clips=num_clips, num_crops=num_crops,
            train_scale=tuple(train_scale), crop_size=crop_size, test_scale=test_scale,
            test_crop_size=test_crop_size, flip=flip, mean=tuple(mean), std=tuple(std), alpha=alpha,
            pathway_mode=pathway_mode, with_audio=with_audio, audio_sample_rate=audio_sample_rate,
            audio_align=audio_align, missing_audio=missing_audio, audio_shift_sec=audio_shift_sec,
            skip_corrupt=skip_corrupt, deferred_geometry=deferred_geometry is not False,
        )  # fmt: skip
        self.train_cfg = ClipConfig(train=True, **common)
        self.eval_cfg = ClipConfig(train=False, **common)
        self.val_cfg = ClipConfig(train=False, **{**common, "num_clips": val_num_clips, "num_crops": val_num_crops})
        self.deferred_geometry = deferred_geometry
        self.audio_frontend = dict(
            sample_rate=audio_sample_rate, win_ms=audio_window_ms, hop_ms=audio_hop_ms, n_fft=audio_n_fft,
            n_mels=audio_n_mels, num_frames=audio_num_frames, mel_scale=audio_mel_scale,
            log_offset=audio_log_offset, normalization=audio_normalization, mean=audio_mean, std=audio_std,
        )  # fmt: skip
        self.skipped: dict[str, list[str]] = {}
        self.missing_audio_count: dict[str, int] = {}
        self._epoch: dict[str, dict[str, Any]] = {}

    def __init_subclass__(cls, **kwargs):
        # a subclass's own setup may wrap the clip datasets after ClipDataModule.setup (e.g. EPIC's
        # objects): settle who finishes the geometry after it, whatever it did
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("setup")
        if own is not None and not getattr(own, "_settles_geometry", False):

            @functools.wraps(own)
            def setup(self, stage: Optional[str] = None) -> None:
                own(self, stage)
                self._settle_deferred_geometry()

            setup._settles_geometry = True
            cls.setup = setup

    @classmethod
    def defaults_from_input(cls, cfg: InputConfig) -> dict[str, Any]:
        """Clip arguments from a model's input contract: ``frames`` -> ``num_frames``,
        ``sampling_rate`` -> ``stride``, ``alpha``, ``train_crop`` -> ``crop_size``, ``test_crop``
        -> ``test_crop_size``, ``short_side`` -> ``test_scale``, ``train_scale``, ``mean`` /
        ``std``, ``test_views`` -> ``num_clips`` / ``num_crops``; a log-mel ``audio`` input turns on
        ``with_audio`` and sets every ``audio_*`` front-end argument it specifies (the number of
        log-mel frames included)."""
        out: dict[str, Any] = {}
        for src, dst in _INPUT_FIELDS.items():
            v = getattr(cfg, src)
            if v is not None:
                out[dst] = tuple(v) if isinstance(v, (list, tuple)) else v
        if cfg.test_views is not None:
            out["num_clips"], out["num_crops"] = (int(x) for x in cfg.test_views)
        if cfg.audio is not None and cfg.audio.kind == "logmel":
            out["with_audio"] = True
            for src, dst in _AUDIO_FIELDS.items():
                v = getattr(cfg.audio, src)
                if v is not None:
                    out[dst] = v
        return out

    # ------------------------------------------------------------------ subclass API
    @abc.abstractmethod
    def _validate_layout(self) -> None:
        """Check the dataset folder and annotation files (raise naming what is wrong)."""

    @abc.abstractmethod
    def _records(self, split: str) -> list[VideoRecord]:
        """The records of ``split`` (called after :meth:`_validate_layout`)."""

    def logmel(self) -> Optional[LogMel]:
        """The audio front end of these settings (``None`` without ``with_audio``)."""
        return LogMel(**self.audio_frontend) if self.train_cfg.with_audio else None

    # ------------------------------------------------------------------ Lightning hooks
    def setup(self, stage: Optional[str] = None) -> None:
        self._validate_layout()
        logmel = self.logmel()
        wanted = {"fit": [("train", self.train_split), ("val", self.val_split)], "validate": [("val", self.val_split)],
                  "test": [("test", self.test_split)], "predict": [("test", self.test_split)]}  # fmt: skip
        cfgs = {"train": self.train_cfg, "val": self.val_cfg, "test": self.eval_cfg}
        for st in [stage] if stage else ["fit", "test"]:
            for name, split in wanted[st]:
                if split is not None and name not in self.datasets:
                    self.datasets[name] = ClipDataset(self._records(split), cfgs[name], logmel)
        self._settle_deferred_geometry()
        trainer = getattr(self, "trainer", None)
        if trainer is not None and not any(
            isinstance(cb, DataReportCallback) and cb.dm is self for cb in trainer.callbacks
        ):
            trainer.callbacks.append(make_report_callback(self))

    # ------------------------------------------------------------------ accounting
    def _stage_name(self) -> str:
        t = getattr(self, "trainer", None)
        if t is None or t.training:
            return "train"
        if t.validating or t.sanity_checking:
            return "val"
        return "test"

    def record_batch(self, batch: dict[str, Any], stage: str) -> None:
        """Count the skipped files and audio-less clips of ``batch`` (warns for each skip)."""
        import warnings

        ep = self._epoch.setdefault(stage, {"skipped": [], "missing_audio": 0})
        for s in batch.get("skipped", []):
            warnings.warn(f"[{self.datamodule_name}] skipped {s}", stacklevel=2)
            self.skipped.setdefault(stage, []).append(s)
            ep["skipped"].append(s)
        if "has_audio" in batch and self.train_cfg.with_audio:
            n = int((~batch["has_audio"]).sum())
            self.missing_audio_count[stage] = self.missing_audio_count.get(stage, 0) + n
            ep["missing_audio"] += n

    def pop_epoch_report(self, stage: str) -> dict[str, Any]:
        return self._epoch.pop(stage, {"skipped": [], "missing_audio": 0})

    def _settle_deferred_geometry(self) -> None:
        """A dataset that wraps a clip dataset (``.inner``) may read the pixels of its items, so
        the wrapped one keeps the float clip. With ``deferred_geometry=None`` (auto) the views
        (training and evaluation) are finished in the DataLoader workers unless the Trainer runs
        on an accelerator."""
        trainer = getattr(self, "trainer", None)
        device = "cpu"
        if trainer is not None:
            try:
                device = trainer.strategy.root_device.type
            except Exception:  # noqa: BLE001 - a strategy without a device yet: CPU, the safe side
                device = "cpu"
        in_worker = self.deferred_geometry is None and device == "cpu"
        for ds in self.datasets.values():
            inner = getattr(ds, "inner", None)
            if isinstance(ds, ClipDataset):
                ds.finish_in_worker = in_worker
            elif isinstance(inner, ClipDataset):
                inner.defer_geometry = False

    @staticmethod
    def finish_batch(batch: Any) -> Any:
        """The batch with ``video`` finished from ``video_deferred`` (:func:`finish_deferred_clips`;
        any other batch unchanged), on the device of its tensors."""
        return finish_deferred_clips(batch) if isinstance(batch, dict) else batch

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if isinstance(batch, dict):
            self.record_batch(batch, self._stage_name())
            batch = finish_deferred_clips(batch)
        return batch
