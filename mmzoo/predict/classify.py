"""Video classifiers on a video file: top-k labels over time.

``mmzoo predict --model <id> --input video.mp4 --output_dir out`` runs a classifier over a whole
video and writes

* ``predictions.json``: ``{"video", "model", "windows": [{"start", "end", "top_k": {head:
  [{"index", "label", "score"}]}}], "top_k": {head: [...]}}`` (frame indices, ``end``
  exclusive; ``label`` is the class name when the model has ``class_names``, else the index as
  text);
* ``predictions.mp4``: every decoded frame with the top-k of its window drawn in a band at the
  top (an odd height or width loses its last row or column: H.264 needs even sizes).

Clip models (SlowFast, Non-local C2D / I3D, and IPL and its shared-backbone baselines): the video
is cut into consecutive windows of the model's clip (``T`` frames at the id's sampling stride;
``T`` and the crop read from ``example_input``, so narrowed models work too; ``--predictor.window_stride N``
starts one every ``N`` frames instead, overlapping when ``N`` is below the span); each window's
centre test view is classified, with the pixels of the clip DataModules' evaluation views
(:func:`centre_view`: the window's frames decoded at native size, PySlowFast's ``F.interpolate``
bilinear to the model's test short side, ``uniform_crop`` centre, normalisation; the annotated
video is decoded once more at that short side). Window scores are softmax
probabilities (sigmoid for multi-label heads; verbs and nouns separately for EPIC heads) and the
video's are their mean (their maximum for multi-label heads: Charades scores are max-pooled over
time, Wang thesis ch. 5 / Xiao thesis ch. 4; a model's ``view_aggregation`` otherwise). Models
with verb and noun heads also get ``"action"`` entries: (verb, noun) pairs scored by the product
of the two probabilities, the EPIC-Kitchens toolkit's rule (the IPL chapter leaves the rule
[SILENT]; :class:`~mmzoo.metrics.classification.EpicActionAccuracy` uses the same one), each with
``"verb"`` and ``"noun"`` indices; the video's action scores are the products of its verb and noun
scores. IPL's test view (Wang thesis ch. 4: "resize to 256 x 256 with no crop") is read as the
EPIC-Kitchens DataModule reads it: short side 256, then the centre 256 x 256 (the aspect ratio is
kept, so a wide frame loses its sides rather than being squeezed). The optical-flow model
(``ipl-i3d-flow``) is predicted by :mod:`mmzoo.predict.flow`, which computes the flow first.

TSN recognisers (``tsn-r50/r101/r152``, ``frame-r101``; Wang thesis ch. 5, Sec. 5.3.2) follow
their test protocol instead of windows (:func:`predict_segments`): the video's frames are cut
into ``T`` equal segments (25 for the full model) and the centre frame of each is classified
(:func:`mmzoo.data.samplers.segment_indices`, as the DataModules' ``temporal="tsn"``; its centre
test view by :func:`centre_view`, as for clip models); the
video's scores are the softmax of the averaged frame logits (the segmental consensus, the model's
``forward``). The windows are the segments (``start``/``end``) with the sampled ``frame`` and that
frame's own softmax top-k.

The audio models (AVSlowFast, AudioNet) are in :mod:`mmzoo.predict.classify_av`, which reuses
these helpers.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from mmzoo.errors import DataError, NotSupportedError

__all__ = ["annotate", "centre_view", "check_window_stride", "classify_windows", "predict_input", "predict_segments", "probabilities",
           "top_k_entries", "window_starts", "write_outputs"]


def _clip_shape(model: Any) -> tuple[int, int]:
    """(frames, crop) of the model's full-rate clip, from its example input."""
    video = model.example_input(1)["video"]
    clip = video[-1] if isinstance(video, (list, tuple)) else video
    return int(clip.shape[2]), int(clip.shape[-1])


def window_starts(num_frames: int, span: int, step: int | None = None) -> list[int]:
    """First frames of the windows of ``span`` frames every ``step`` frames (default ``span``:
    consecutive, non-overlapping) that fit in ``num_frames`` frames; none when the video is
    shorter than one window. The windows of :func:`classify_windows` and of ``mmzoo extract
    --dense``."""
    if span < 1 or (step is not None and step < 1):
        raise ValueError(f"window span and step must be positive, got span={span}, step={step}")
    return list(range(0, num_frames - span + 1, step or span))


def check_window_stride(window_stride: Any, span: int) -> int:
    """The frames between window starts: ``window_stride`` (a positive integer; a one-line error
    otherwise), or ``span`` (consecutive windows) when it is None."""
    if window_stride is None:
        return span
    if isinstance(window_stride, bool) or not isinstance(window_stride, int) or window_stride < 1:
        from mmzoo.predict import PredictorOptionError

        raise PredictorOptionError(f"--predictor.window_stride must be a positive number of frames, got {window_stride!r}")
    return window_stride


def _input_config(model: Any) -> Any:
    from mmzoo.registry import get_spec

    return get_spec(model.zoo_id).input


def _check_rgb(model: Any, inp: Any) -> None:
    """A model whose input normalisation is not 3-channel reads optical flow, not decoded video."""
    if inp.mean is not None and len(inp.mean) != 3:
        raise NotSupportedError(
            f"{model.zoo_id} reads {len(inp.mean)}-channel optical flow, and a video file gives RGB frames: "
            "predict it from its dataset's flow frames (`mmzoo predict --model <id> --data epic-kitchens ...`)")


def decode_for_model(model: Any, path: str) -> tuple[np.ndarray, np.ndarray, float, int, Any, int]:
    """Every frame of ``path`` at the model's test short side (``short_side`` scaled by
    ``crop / test_crop``, never below the crop; swscale, for the annotated video only), with their
    stream indices, the frame rate, the crop size, the model's input config and that short side."""
    from mmzoo.data.decode import read_video_clip

    inp = _input_config(model)
    _check_rgb(model, inp)
    _, crop = _clip_shape(model)
    short = max(crop, int(round(crop * (inp.short_side or crop) / (inp.test_crop or crop))))
    clip = read_video_clip(path, short_side=short)
    fps = float(clip.fps) if getattr(clip, "fps", None) else 30.0
    return clip.frames.numpy(), clip.frame_indices.numpy(), fps, crop, inp, short


def centre_view(reader: Any, frame_indices: Sequence[int], short: int, crop: int, inp: Any) -> torch.Tensor:
    """The model's ``1, C, T, crop, crop`` input for stream frames ``frame_indices``: decoded at
    their native size from the open ``reader`` and turned into the centre test view by
    :func:`mmzoo.data.transforms.eval_view`, the function behind the clip DataModules' evaluation
    views (PySlowFast's ``F.interpolate`` bilinear to ``short``, ``uniform_crop`` centre,
    normalisation), so a window's pixels are those the DataModule evaluates."""
    from mmzoo.data.transforms import eval_view

    native = reader.frames_by_index([int(i) for i in frame_indices]).frames
    return eval_view(native, short, crop, inp.mean, inp.std)[None]


def probabilities(out: Any, head: str) -> dict[str, torch.Tensor]:
    """Class probabilities of a model output: softmax (sigmoid for ``head="multilabel"``), per
    head for ``{"verb", "noun"}`` outputs, plus their ``"action"`` products."""
    if isinstance(out, dict):  # verb / noun heads
        p = {k: v.softmax(-1) for k, v in out.items()}
        return with_actions(p)
    return {"class": out.sigmoid() if head == "multilabel" else out.softmax(-1)}


def with_actions(p: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``p`` plus ``"action"``: every (verb, noun) pair's product ``p_verb * p_noun`` (index
    ``verb * num_nouns + noun``), when ``p`` has both heads."""
    if {"verb", "noun"} <= set(p):
        p = {**p, "action": (p["verb"][..., :, None] * p["noun"][..., None, :]).flatten(-2)}
    return p


def top_k_entries(p: dict[str, torch.Tensor], k: int, names: Optional[Sequence[str]] = None) -> dict[str, list]:
    """``{head: [{"index", "label", "score"}]}`` of 1-D probabilities (actions also carry
    ``"verb"`` and ``"noun"``, labelled ``"verb+noun"``); ``names`` label the single head."""
    num_nouns = int(p["noun"].numel()) if "noun" in p else 1
    out = {}
    for head, prob in p.items():
        scores, idx = prob.topk(min(k, prob.numel()))
        rows = []
        for s, i in zip(scores.tolist(), idx.tolist()):
            if head == "action":
                v, n = divmod(int(i), num_nouns)
                rows.append({"index": int(i), "verb": v, "noun": n, "label": f"{v}+{n}", "score": float(s)})
            else:
                label = names[int(i)] if names and head == "class" else str(int(i))
                rows.append({"index": int(i), "label": label, "score": float(s)})
        out[head] = rows
    return out


def aggregate(window_probs: list[dict[str, torch.Tensor]], how: str) -> dict[str, torch.Tensor]:
    """The video's scores from its windows': mean or max per head; actions recomputed from the
    aggregated verb and noun scores (views are combined before the product, as in the metric)."""
    heads = [h for h in window_probs[0] if h != "action"]
    stack = {h: torch.stack([p[h] for p in window_probs]) for h in heads}
    agg = {h: (s.amax(0) if how == "max" else s.mean(0)) for h, s in stack.items()}
    return with_actions(agg)


def annotate(frame: np.ndarray, lines: list[str]) -> np.ndarray:
    """RGB ``frame`` with ``lines`` written in white on a dark band along its top."""
    import cv2

    out = frame.copy()
    h, w = out.shape[:2]
    scale = max(0.3, min(w, h) / 400)
    step = int(24 * scale) + 4
    band = min(h, step * len(lines) + 4)
    out[:band] = (out[:band].astype(np.float32) * 0.35).astype(np.uint8)
    for j, text in enumerate(lines):
        cv2.putText(out, text, (4, step * (j + 1) - 3), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1,
                    cv2.LINE_AA)
    return out


def _lines(top: dict[str, list]) -> list[str]:
    """What is drawn for one window: the top 3 of a single head, the best of each of several."""
    if len(top) == 1:
        return [f"{e['label']} {e['score']:.2f}" for e in next(iter(top.values()))[:3]]
    return [f"{head}: {rows[0]['label']} {rows[0]['score']:.2f}" for head, rows in top.items() if rows]


def write_outputs(output_dir: str | Path, result: dict[str, Any], frames: Optional[np.ndarray], fps: float,
                  window_of_frame: Sequence[int], audio: Optional[torch.Tensor] = None,
                  sample_rate: int = 16000) -> None:
    """``predictions.json`` (``result``) and, with ``frames``, ``predictions.mp4``: frame ``t``
    annotated with the top-k of window ``window_of_frame[t]`` (and the ``audio`` track, if given)."""
    from mmzoo.data.media import write_mp4

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "predictions.json").write_text(json.dumps(result, indent=2))
    if frames is None:
        return
    windows = result["windows"]
    h, w = frames.shape[1:3]
    drawn = np.stack([annotate(f, _lines(windows[i]["top_k"])) for f, i in zip(frames, window_of_frame)])
    drawn = drawn[:, : h - h % 2, : w - w % 2]  # H.264 / yuv420p: even sizes (drop one row / column)
    write_mp4(out / "predictions.mp4", drawn, fps, audio=audio, sample_rate=sample_rate)


def _aggregation(model: Any) -> str:
    hp = model.hparams
    return "max" if getattr(hp, "head", "single") == "multilabel" else getattr(hp, "view_aggregation", "mean")


@torch.no_grad()
def classify_windows(model: Any, path: str, output_dir: str, top_k: int = 5,
                     audio_for: Optional[Callable[[np.ndarray, float, int], tuple[torch.Tensor, dict]]] = None,
                     extra: Optional[dict[str, Any]] = None, audio_track: Optional[torch.Tensor] = None,
                     sample_rate: int = 16000, window_stride: Optional[int] = None) -> dict[str, Any]:
    """Classify clip windows of ``path`` (module docstring) and write the outputs; windows start
    every ``window_stride`` frames (None: their span, consecutive windows).

    ``audio_for(frame_indices, fps, stride)`` gives an audio model its log-mel window for a
    window's frames and the fields it adds to the window's JSON; ``extra`` adds fields to the
    result; ``audio_track`` goes into ``predictions.mp4``."""
    from mmzoo.data.decode import VideoReader

    frames, indices, fps, crop, inp, short = decode_for_model(model, path)
    frames_needed, _ = _clip_shape(model)
    stride = int(inp.sampling_rate or 1)
    span = frames_needed * stride
    step = check_window_stride(window_stride, span)
    if len(frames) < span:
        raise DataError(f"{path}: {len(frames)} frames; one {model.zoo_id} window needs {span} "
                        f"({frames_needed} frames at stride {stride})")
    device = next(model.parameters()).device
    head = getattr(model.hparams, "head", "single")
    names = getattr(model.hparams, "class_names", None)
    model.eval()
    windows, probs = [], []
    with VideoReader(path) as reader:
        for s in window_starts(len(frames), span, step):
            video = centre_view(reader, indices[s:s + span:stride], short, crop, inp).to(device)
            entry: dict[str, Any] = {"start": s, "end": s + span}
            if audio_for is None:
                out = model(video)
            else:
                audio, fields = audio_for(indices[s:s + span:stride], fps, stride)
                entry.update(fields)
                out = model(video, audio[None].to(device))
            p = {k: v[0].cpu() for k, v in probabilities(out, head).items()}
            probs.append(p)
            windows.append({**entry, "top_k": top_k_entries(p, top_k, names)})
    result = {"video": str(path), "model": model.zoo_id, **(extra or {}), "windows": windows,
              "top_k": top_k_entries(aggregate(probs, _aggregation(model)), top_k, names)}
    which = [min(t // step, len(windows) - 1) for t in range(len(frames))]  # the last window starting at or before t
    write_outputs(output_dir, result, frames, fps, which, audio=audio_track, sample_rate=sample_rate)
    return result


def predict_input(model: Any, path: str, output_dir: str, query: str | None = None, top_k: int = 5,
                  window_stride: int | None = None) -> dict[str, Any]:
    """Classify the windows of ``path`` (every ``window_stride`` frames; None: consecutive) and
    write the JSON and annotated video (module docstring)."""
    if getattr(model, "uses_audio", False):
        raise NotSupportedError(f"{type(model).__name__} also takes audio: its file prediction is "
                                "mmzoo.predict.classify_av.predict_input")
    return classify_windows(model, path, output_dir, top_k, window_stride=window_stride)


@torch.no_grad()
def predict_segments(model: Any, path: str, output_dir: str, query: str | None = None,
                     top_k: int = 5) -> dict[str, Any]:
    """TSN test protocol on ``path``: the centre frame of each of ``T`` equal segments, the
    softmax of their averaged logits (module docstring)."""
    from mmzoo.data.decode import VideoReader
    from mmzoo.data.samplers import segment_indices

    frames, indices, fps, crop, inp, short = decode_for_model(model, path)
    segments, _ = _clip_shape(model)
    n = len(frames)
    picked = segment_indices(n, segments, train=False).tolist()
    with VideoReader(path) as reader:
        video = centre_view(reader, indices[picked], short, crop, inp).to(next(model.parameters()).device)
    names = getattr(model.hparams, "class_names", None)
    model.eval()
    frame_p = model.net.video_logits(video)[0].softmax(-1).cpu()  # T, K: each sampled frame alone
    video_p = model(video)[0].softmax(-1).cpu()  # the segmental consensus
    bounds = [((i * n) // segments, ((i + 1) * n) // segments) for i in range(segments)]
    windows = [{"start": lo, "end": hi, "frame": f, "top_k": top_k_entries({"class": p}, top_k, names)}
               for (lo, hi), f, p in zip(bounds, picked, frame_p)]
    result = {"video": str(path), "model": model.zoo_id, "segments": segments, "windows": windows,
              "top_k": top_k_entries({"class": video_p}, top_k, names)}
    # frame t is drawn with the last segment starting at or before it (segments may be empty when T > n)
    which = [max(i for i, (lo, _) in enumerate(bounds) if lo <= t) for t in range(n)]
    write_outputs(output_dir, result, frames, fps, which)
    return result
