"""Audio and audio-visual classifiers on a media file: AVSlowFast and AudioNet (Xiao thesis ch. 4).

Same outputs as :mod:`mmzoo.predict.classify` (``predictions.json`` with per-window and per-video
top-k, ``predictions.mp4`` with the labels drawn; here it keeps the file's sound track, at the
front end's sample rate).

AVSlowFast: the visual windows of :func:`mmzoo.predict.classify.classify_windows`; each window's
log-mel is the one the clip DataModules (Kinetics, EPIC-Kitchens) give a clip of the same frames:
the same :class:`~mmzoo.data.video_dataset.ClipDataset` audio path (``clip_time_span`` of the
window's frame indices, ``aligned_audio_window`` centred on it, exactly the samples of the
front end's frame count, :class:`~mmzoo.data.audio.LogMel`), built by
:class:`~mmzoo.data.clips.ClipDataModule` from the model's input contract
(``defaults_from_input``) with the model's own ``audio_frames`` / ``mel_bins`` (so narrowed
models work) and no DataModule normalisation when the model normalises itself
(``logmel_normalize``). Each window records its audio span (``audio_start_sec`` /
``audio_end_sec``, on the video's timeline). A video without an audio stream follows the
DataModules' default ``missing_audio="zeros"`` policy: every window gets an all-zero log-mel, the
JSON says ``"has_audio": false, "missing_audio": "zeros"`` and one line on stderr says so.

AudioNet (audio only, Table 4.7): the sound track is cut into consecutive windows of the front
end's length (128 log-mel frames = 2.064 s for the full model), each the same DataModule audio
window as above; a track shorter than one window gives one zero-padded window. The video's scores
are the mean of the windows' (softmax; sigmoid for a multi-label head). Windows give
``start_sec`` / ``end_sec``, and, when the file has a video stream, the frames they cover
(``start`` / ``end``); every frame is drawn with the window its time falls in (the last window's
for frames past the last full window). An audio-only file (e.g. ``.wav``) gets
``predictions.json`` only; a file without audio is an error naming it.
"""
from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np
import torch

from mmzoo.errors import NotSupportedError
from mmzoo.predict.classify import (
    _aggregation,
    _input_config,
    aggregate,
    classify_windows,
    probabilities,
    top_k_entries,
    write_outputs,
)

__all__ = ["audio_clip_dataset", "predict_input"]


def audio_clip_dataset(model: Any, path: str):
    """The clip dataset (one record: ``path``) whose audio settings a clip DataModule derives from
    ``model``'s input contract, narrowed to the model's log-mel size."""
    from mmzoo.data.clips import ClipDataModule
    from mmzoo.data.video_dataset import VideoRecord

    class _OneFile(ClipDataModule):
        datamodule_name = "predict --input"

        def _validate_layout(self) -> None:
            pass

        def _records(self, split: str) -> list[VideoRecord]:
            return [VideoRecord(targets={}, video=str(path))]

    inp = _input_config(model)
    if inp.audio is None or inp.audio.kind != "logmel":
        raise NotSupportedError(f"{model.zoo_id}: file prediction needs a log-mel audio input")
    hp = model.hparams
    args = {**ClipDataModule.defaults_from_input(inp), "with_audio": True, "num_workers": 0,
            "audio_num_frames": int(hp.audio_frames), "audio_n_mels": int(hp.mel_bins)}
    args.pop("alpha", None)  # pathway packing is not used here; a narrowed model's alpha may differ
    if getattr(hp, "logmel_normalize", False):
        args["audio_normalization"] = "none"  # the model normalises its input itself
    dm = _OneFile(**args)
    dm.train_split, dm.val_split, dm.test_split = None, None, "test"
    dm.setup("test")
    return dm.datasets["test"]


class _AudioWindows:
    """Log-mel of a window of frames, from one open reader (see the module docstring)."""

    def __init__(self, ds: Any, path: str):
        from mmzoo.data.decode import VideoReader

        self.ds, self.reader = ds, VideoReader(path)
        self.has_audio = self.reader.has_audio

    def span(self, t0: float, t1: float) -> tuple[float, float]:
        """The audio window (s) the dataset reads for the visual span ``[t0, t1)``."""
        from mmzoo.data.samplers import aligned_audio_window

        lm, cfg = self.ds.logmel, self.ds.cfg
        a0, _ = aligned_audio_window(t0, t1, window_sec=lm.window_seconds, align=cfg.audio_align)
        return a0, a0 + lm.num_samples() / cfg.audio_sample_rate

    def for_span(self, t0: float, t1: float) -> tuple[torch.Tensor, dict]:
        a0, a1 = self.span(t0, t1)
        fields = {"audio_start_sec": round(a0, 6), "audio_end_sec": round(a1, 6)}
        if not self.has_audio:
            return self.ds._zero_audio(), fields
        return self.ds._audio(self.reader, t0, t1)[0], fields

    def __call__(self, frame_indices: np.ndarray, fps: float, stride: int) -> tuple[torch.Tensor, dict]:
        from mmzoo.data.samplers import clip_time_span

        return self.for_span(*clip_time_span(torch.as_tensor(frame_indices), fps, stride))

    def close(self) -> None:
        self.reader.close()


def _sound_track(path: str, sample_rate: int) -> torch.Tensor | None:
    from mmzoo.data.decode import NoAudioStreamError, read_audio

    try:
        return read_audio(path, sample_rate=sample_rate)
    except NoAudioStreamError:
        return None


def predict_input(model: Any, path: str, output_dir: str, query: str | None = None, top_k: int = 5,
                  window_stride: int | None = None) -> dict[str, Any]:
    """AVSlowFast or AudioNet on ``path`` (module docstring); AVSlowFast's clip windows start every
    ``window_stride`` frames (None: consecutive windows), each with its own aligned audio."""
    if not getattr(model, "uses_video", True):
        if window_stride is not None:
            from mmzoo.predict import PredictorOptionError

            raise PredictorOptionError(f"--predictor.window_stride sets clip windows; {model.zoo_id} classifies "
                                       "consecutive audio windows of its sound track")
        return _predict_audio_only(model, path, output_dir, top_k)
    ds = audio_clip_dataset(model, path)
    windows = _AudioWindows(ds, path)
    sr = ds.cfg.audio_sample_rate
    try:
        extra = {"has_audio": windows.has_audio}
        if not windows.has_audio:
            if ds.cfg.missing_audio != "zeros":  # pragma: no cover - the DataModules' default is zeros
                from mmzoo.data.decode import NoAudioStreamError

                raise NoAudioStreamError(path, "no audio stream in container")
            extra["missing_audio"] = "zeros"
            print(f"mmzoo predict: {path} has no audio stream: {model.zoo_id} gets all-zero log-mel audio "
                  "(missing_audio='zeros', the clip DataModules' policy)", file=sys.stderr)
        track = _sound_track(path, sr) if windows.has_audio else None
        return classify_windows(model, path, output_dir, top_k, audio_for=windows, extra=extra,
                                audio_track=track, sample_rate=sr, window_stride=window_stride)
    finally:
        windows.close()


@torch.no_grad()
def _predict_audio_only(model: Any, path: str, output_dir: str, top_k: int) -> dict[str, Any]:
    from mmzoo.data.decode import NoAudioStreamError, VideoReader, read_video_clip

    ds = audio_clip_dataset(model, path)
    sr = ds.cfg.audio_sample_rate
    with VideoReader(path) as r:
        if not r.has_audio:
            raise NoAudioStreamError(path, f"no audio stream in container ({model.zoo_id} classifies the sound track)")
        has_video = r.has_video
        short = min(256, r.info.height, r.info.width) if has_video else None
    track = _sound_track(path, sr)
    width = ds.logmel.window_seconds
    count = max(1, math.floor(len(track) / sr / width + 1e-9))
    frames, fps = None, 0.0
    if has_video:
        clip = read_video_clip(path, short_side=short)
        frames, fps = clip.frames.numpy(), float(clip.fps)
    device = next(model.parameters()).device
    head = getattr(model.hparams, "head", "single")
    names = getattr(model.hparams, "class_names", None)
    model.eval()
    audio = _AudioWindows(ds, path)
    windows, probs = [], []
    try:
        for k in range(count):
            t0, t1 = k * width, (k + 1) * width
            logmel, _ = audio.for_span(t0, t1)
            p = {h: v[0].cpu() for h, v in probabilities(model(logmel[None].to(device)), head).items()}
            probs.append(p)
            entry: dict[str, Any] = {"start_sec": round(t0, 6), "end_sec": round(t1, 6)}
            if has_video:
                entry.update(start=math.ceil(t0 * fps - 1e-6), end=min(math.ceil(t1 * fps - 1e-6), len(frames)))
            windows.append({**entry, "top_k": top_k_entries(p, top_k, names)})
    finally:
        audio.close()
    result = {"video": str(path), "model": model.zoo_id, "window_sec": round(width, 6), "windows": windows,
              "top_k": top_k_entries(aggregate(probs, _aggregation(model)), top_k, names)}
    which = [min(int(t / fps / width + 1e-9), count - 1) for t in range(len(frames))] if has_video else []
    write_outputs(output_dir, result, frames, fps, which, audio=track, sample_rate=sr)
    return result
