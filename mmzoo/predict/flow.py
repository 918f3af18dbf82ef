"""Optical-flow classifiers on a video file: the flow the model trained on, computed here.

``mmzoo predict --model ipl-i3d-flow --input video.mp4 --output_dir out`` (IPL's flow stream,
Wang thesis ch. 4; trained on EPIC-Kitchens' released TV-L1 flow frames) computes that flow from
the video and classifies it window by window, as :mod:`mmzoo.predict.classify` does for RGB:

1. the video is decoded at the model's test short side (the EPIC-Kitchens release ships its
   frames and flow at a 256-pixel short side, the ids' ``short_side``; narrowed models scale it
   with their crop, as the RGB predictor does);
2. TV-L1 flow (:func:`mmzoo.data.flow.compute_flow`, OpenCV's Dual TV-L1 on grey frames) between
   frames ``flow_stride`` apart (2 by default: the 2018 EPIC recordings, all of EPIC-55, have flow
   at a temporal stride of 2; ``flow_stride=1`` is the 2020 recordings' rate), clipped to
   ``+-bound`` (20 px) and quantised to 8 bits (:func:`mmzoo.data.flow.quantise`), written as the
   release's ``u`` / ``v`` JPEG folders (``frame_%010d.jpg``, quality 95) in a temporary folder;
3. each window of ``T`` RGB frame numbers at the id's stride is read back by
   :class:`mmzoo.data.flow_clips.FlowClipDataset`, the EPIC DataModule's flow reader (RGB frame
   number -> flow frame :func:`~mmzoo.data.flow_clips.rgb_to_flow_index`, short-side resize,
   centre crop, ``flow_mean`` / ``flow_std`` = 0.5 / 0.5 of the id's input config), so its input
   is the one ``mmzoo test --data epic-kitchens --data.modality flow`` builds from released flow.

Windows, scores and outputs are those of :func:`mmzoo.predict.classify.classify_windows`
(``predictions.json`` with per-window and video top-k per head, verb x noun actions;
``predictions.mp4``: the decoded RGB frames with their window's top-k); ``predictions.json`` also
records ``"flow"``: method, bound, stride, image format and the size the flow was computed at.
The JPEG quality of the EPIC release is not documented ([SILENT]; 95 here, as
:func:`mmzoo.data.flow.write_flow`).

SAOA (Wang thesis ch. 3) reads object detections beside the video in its second stage: its
predictor refuses such a model in one line (its objects come from ``--data.objects`` of the EPIC
DataModule, which ``--input`` has no counterpart for); a stage-1 SAOA model (no objects) runs
like IPL, on flow or RGB.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmzoo.errors import DataError, NotSupportedError
from mmzoo.predict.classify import (_input_config, aggregate, classify_windows, probabilities, top_k_entries,
                                    write_outputs)

__all__ = ["EPIC_FLOW_BOUND", "EPIC_FLOW_STRIDE", "flow_geometry", "flow_window_inputs", "is_flow_model",
           "predict_flow_windows", "predict_input", "predict_saoa", "reads_objects", "write_flow_frames"]

#: The EPIC-Kitchens release's flow: values clipped to +-20 px, 8-bit JPEG u / v images.
EPIC_FLOW_BOUND = 20.0
#: Temporal stride of the flow of the 2018 EPIC recordings (all of EPIC-55).
EPIC_FLOW_STRIDE = 2


def is_flow_model(model: Any) -> bool:
    """Whether ``model`` reads 2-channel optical flow (its input config's normalisation)."""
    inp = _input_config(model)
    return inp.mean is not None and len(inp.mean) == 2


def write_flow_frames(frames: np.ndarray, folder: str | Path, stride: int = EPIC_FLOW_STRIDE, method: str = "tvl1",
                      bound: float = EPIC_FLOW_BOUND, quality: int = 95) -> int:
    """TV-L1 flow of RGB ``frames`` (``T, H, W, 3`` uint8) between frames ``stride`` apart, written
    as the EPIC release's ``folder/u`` / ``folder/v`` 8-bit JPEGs (``frame_%010d.jpg`` from 1);
    returns the number of flow frames."""
    import cv2

    from mmzoo.data.flow import compute_flow, quantise

    q = quantise(compute_flow(frames[::stride], method), bound)  # F, 2, H, W uint8
    folder = Path(folder)
    for c, axis in enumerate("uv"):
        (folder / axis).mkdir(parents=True, exist_ok=True)
        for i in range(len(q)):
            path = folder / axis / f"frame_{i + 1:010d}.jpg"
            if not cv2.imwrite(str(path), q[i, c], [cv2.IMWRITE_JPEG_QUALITY, int(quality)]):
                raise DataError(f"could not write the flow image {path}")
    return len(q)


def _aggregation(model: Any) -> str:
    hp = model.hparams
    return "max" if getattr(hp, "head", "single") == "multilabel" else getattr(hp, "view_aggregation", "mean")


def flow_geometry(model: Any) -> tuple[int, int, int, int, Any]:
    """(frames, stride, crop, short side, input config) of a flow model's windows: ``T`` and the crop
    from its example input, the stride from its id's input config, the short side the video is
    decoded (and its flow computed) at: ``short_side`` scaled by ``crop / test_crop``, never below
    the crop (as the RGB predictor's)."""
    inp = _input_config(model)
    clip_shape = model.example_input(1)["video"].shape
    frames_needed, crop = int(clip_shape[2]), int(clip_shape[-1])
    short = max(crop, int(round(crop * (inp.short_side or crop) / (inp.test_crop or crop))))
    return frames_needed, int(inp.sampling_rate or 1), crop, short, inp


def flow_window_inputs(model: Any, frames: np.ndarray, starts: list[int], folder: str | Path,
                       flow_stride: int = EPIC_FLOW_STRIDE, method: str = "tvl1",
                       bound: float = EPIC_FLOW_BOUND) -> tuple[Any, dict[str, Any]]:
    """The flow model's inputs for the windows of RGB ``frames`` (``T, H, W, 3`` uint8, decoded at
    :func:`flow_geometry`'s short side) starting at ``starts`` (0-based frame indices): their flow
    written under ``folder`` as the release's u / v JPEGs (steps 2-3 of the module docstring) and a
    :class:`~mmzoo.data.flow_clips.FlowClipDataset` whose item ``i`` reads window ``i`` (RGB frame
    numbers ``starts[i] + 1 ..``, each mapped to its flow frame); and the ``"flow"`` record of
    ``predictions.json``."""
    from mmzoo.data.flow_clips import FlowClipDataset, FlowRecord
    from mmzoo.data.video_dataset import ClipConfig

    frames_needed, stride, crop, short, inp = flow_geometry(model)
    span = frames_needed * stride
    # the flow of the frames the windows cover (and the pair partner of their last frame) only
    last = write_flow_frames(frames[:starts[-1] + span + flow_stride], folder, flow_stride, method, bound)
    records = [FlowRecord(targets={}, frames_dir=str(folder), first_frame=s + 1, last_frame=s + span,
                          flow_dir=str(folder), flow_stride=flow_stride, flow_last=last) for s in starts]
    cfg = ClipConfig(train=False, num_frames=frames_needed, stride=stride, temporal="clip", num_clips=1, num_crops=1,
                     test_scale=short, test_crop_size=crop)
    info = {"method": method, "bound": bound, "stride": flow_stride, "format": "jpg", "quality": 95,
            "short_side": short, "num_flows": last}
    return FlowClipDataset(records, cfg, "flow", tuple(inp.mean), tuple(inp.std)), info


@torch.no_grad()
def predict_flow_windows(model: Any, path: str, output_dir: str, top_k: int = 5, flow_stride: int = EPIC_FLOW_STRIDE,
                         method: str = "tvl1", bound: float = EPIC_FLOW_BOUND,
                         window_stride: int | None = None) -> dict[str, Any]:
    """Classify windows of the flow of ``path`` (module docstring; every ``window_stride`` frames,
    default: consecutive) and write the outputs."""
    from mmzoo.data.decode import read_video_clip
    from mmzoo.predict.classify import check_window_stride, window_starts

    frames_needed, stride, crop, short, inp = flow_geometry(model)
    span = frames_needed * stride
    step = check_window_stride(window_stride, span)
    check_flow_options(flow_stride, bound, method)
    clip = read_video_clip(path, short_side=short)
    frames = clip.frames.numpy()
    fps = float(clip.fps) if getattr(clip, "fps", None) else 30.0
    if len(frames) < max(span, flow_stride + 1):
        raise DataError(f"{path}: {len(frames)} frames; one {model.zoo_id} window needs {span} "
                        f"({frames_needed} frames at stride {stride}) and flow needs {flow_stride + 1}")
    device = next(model.parameters()).device
    head = getattr(model.hparams, "head", "single")
    names = getattr(model.hparams, "class_names", None)
    starts = window_starts(len(frames), span, step)
    windows, probs = [], []
    model.eval()
    with tempfile.TemporaryDirectory(prefix="mmzoo-flow-") as tmp:
        data, flow_info = flow_window_inputs(model, frames, starts, tmp, flow_stride, method, bound)
        for i, s in enumerate(starts):
            item = data[i]
            out = model(item["video"][None].to(device))
            p = {k: v[0].cpu() for k, v in probabilities(out, head).items()}
            probs.append(p)
            flow_idx = item["meta"]["flow_frame_indices"]
            windows.append({"start": s, "end": s + span, "flow_frames": [int(flow_idx[0]), int(flow_idx[-1])],
                            "top_k": top_k_entries(p, top_k, names)})
    result = {"video": str(path), "model": model.zoo_id, "flow": flow_info, "windows": windows,
              "top_k": top_k_entries(aggregate(probs, _aggregation(model)), top_k, names)}
    which = [min(t // step, len(windows) - 1) for t in range(len(frames))]
    write_outputs(output_dir, result, frames, fps, which)
    return result


def check_flow_options(flow_stride: Any, bound: Any, method: Any = "tvl1") -> None:
    """One-line errors for a flow stride that is not a positive integer, a bound that is not
    positive or a method :func:`mmzoo.data.flow.compute_flow` does not have."""
    from mmzoo.predict import PredictorOptionError

    if method not in ("tvl1", "farneback"):
        raise PredictorOptionError(f"--predictor.method must be tvl1 or farneback, got {method!r}")
    if isinstance(flow_stride, bool) or not isinstance(flow_stride, int) or flow_stride < 1:
        raise PredictorOptionError(f"--predictor.flow_stride must be a positive integer, got {flow_stride!r}")
    if isinstance(bound, bool) or not isinstance(bound, (int, float)) or bound <= 0:
        raise PredictorOptionError(f"--predictor.bound must be a positive number of pixels, got {bound!r}")


def _rgb_only(model: Any, flow_options: dict[str, Any]) -> None:
    """An RGB model given flow options: one line saying they apply to flow models only."""
    given = sorted(k for k, v in flow_options.items() if v is not None)
    if given:
        raise NotSupportedError(f"{model.zoo_id} reads RGB frames: --predictor.{given[0]} applies to flow models "
                                "(ids whose input is 2-channel optical flow) only")


def reads_objects(model: Any) -> bool:
    """Whether a SAOA model reads object detections beside the clip (stage 2 with an object-aware
    verb or noun branch)."""
    hp = model.hparams
    return getattr(hp, "stage", 2) == 2 and (hp.verb_mode == "sa" or hp.noun_mode != "baseline")


def predict_input(model: Any, path: str, output_dir: str, query: str | None = None, top_k: int = 5,
                  window_stride: int | None = None, flow_stride: int | None = None, method: str | None = None,
                  bound: float | None = None) -> dict[str, Any]:
    """IPL family: flow ids (``ipl-i3d-flow``) on the TV-L1 flow of ``path`` (``flow_stride``,
    ``method``, ``bound``: step 2 of the module docstring; None: the EPIC release's 2, TV-L1, 20 px),
    RGB ids as :func:`mmzoo.predict.classify.predict_input`; ``window_stride``: frames between window
    starts (None: one window span, consecutive windows)."""
    if is_flow_model(model):
        return predict_flow_windows(model, path, output_dir, top_k, *_flow_defaults(flow_stride, method, bound),
                                    window_stride=window_stride)
    _rgb_only(model, {"flow_stride": flow_stride, "method": method, "bound": bound})
    from mmzoo.predict.classify import predict_input as predict_rgb

    return predict_rgb(model, path, output_dir, query=query, top_k=top_k, window_stride=window_stride)


def _flow_defaults(flow_stride: int | None, method: str | None, bound: float | None) -> tuple[int, str, float]:
    return (EPIC_FLOW_STRIDE if flow_stride is None else flow_stride, method or "tvl1",
            EPIC_FLOW_BOUND if bound is None else bound)


def predict_saoa(model: Any, path: str, output_dir: str, query: str | None = None, top_k: int = 5,
                 window_stride: int | None = None, flow_stride: int | None = None, method: str | None = None,
                 bound: float | None = None) -> dict[str, Any]:
    """SAOA: refused in one line when the model reads object detections (:func:`reads_objects`);
    otherwise as IPL (flow or RGB windows, the same options)."""
    if reads_objects(model):
        raise NotSupportedError(
            f"{model.zoo_id} reads object detections beside the video, which mmzoo predict --input does not compute: "
            "predict it with `mmzoo predict --model <id> --data epic-kitchens --data.objects FILE` (`mmzoo objects`)")
    if is_flow_model(model):
        return predict_flow_windows(model, path, output_dir, top_k, *_flow_defaults(flow_stride, method, bound),
                                    window_stride=window_stride)
    _rgb_only(model, {"flow_stride": flow_stride, "method": method, "bound": bound})
    return classify_windows(model, path, output_dir, top_k, window_stride=window_stride)
