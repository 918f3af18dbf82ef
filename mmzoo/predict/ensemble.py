"""Two-stream (RGB + flow) late fusion on a video file: ``mmzoo predict --model ipl-i3d-2stream --input video.mp4``.

The two-stream rows of IPL (Wang thesis ch. 4, Tables 4.1 and 4.4) and SAOA (ch. 3, Tables
3.5-3.6) fuse an RGB and an optical-flow model by a weighted mean of their softmax probabilities
(:func:`mmzoo.models.ensemble.fuse_scores`, per verb and noun for EPIC heads; the weights are the
ensemble's, equal by default, [SILENT] in the thesis). On a file, the video is cut into the windows
of the RGB member's clip (``T`` frames at the id's stride, consecutive or every
``window_stride`` frames), and for each window

* members reading ``video`` get the RGB window's centre test view
  (:func:`mmzoo.predict.classify.centre_view`, the pixels of the clip DataModules' evaluation views);
* members reading ``flow`` get the flow clip of the same RGB frame numbers
  (:func:`mmzoo.predict.flow.flow_window_inputs`: TV-L1 flow computed as the EPIC-Kitchens release,
  ``flow_stride`` frames apart, clipped to ``+-bound``, 8-bit JPEGs, read back by the EPIC
  DataModule's flow reader, which maps each RGB frame number to its flow frame);

and the ensemble's own ``forward`` fuses the members' scores, so a window's probabilities are
``sum_i w_i softmax(member_i(x_i)) / sum_i w_i``. The video's scores are the mean over windows
(verb x noun actions from the mean verb and noun scores, as :mod:`mmzoo.predict.classify`).

Outputs are those of the single-stream predictors: ``predictions.json`` (``"members"``: id, input
and weight of each; ``"flow"``: how the flow was computed; per-window ``start`` / ``end`` /
``flow_frames`` / ``top_k``; the video's ``top_k``) and ``predictions.mp4`` (the RGB frames with
their window's fused top-k).

Every member must read a clip of the same span (frames x stride) so that the windows are shared;
members that need more than the clip are refused in one line: SAOA's object-aware stage 2 reads
object detections (``--data.objects`` of the EPIC DataModule), audio models read sound, and
families without clip-window prediction (TSN, PSN, ...) follow other test protocols.
"""
from __future__ import annotations

import math
import tempfile
from typing import Any, Optional

import torch

from mmzoo.errors import DataError, NotSupportedError

__all__ = ["predict_input"]

#: Member families whose file prediction is clip windows (RGB or flow), as this predictor's.
_WINDOW_FAMILIES = ("ipl", "nonlocal_net", "saoa", "slowfast")


def _check_members(model: Any) -> None:
    """One line for a member this predictor cannot feed from a video file."""
    from mmzoo.predict.flow import is_flow_model, reads_objects
    from mmzoo.registry import get_spec

    for member, field in zip(model.members, model.inputs):
        family = get_spec(member.zoo_id).family
        if family == "saoa" and reads_objects(member):
            raise NotSupportedError(
                f"ensemble member {member.zoo_id} reads object detections beside the video, which mmzoo predict "
                "--input does not compute: predict the ensemble with `mmzoo predict --model <id> --data epic-kitchens "
                "--data.modality rgb+flow --data.objects FILE` (`mmzoo objects`)")
        if family not in _WINDOW_FAMILIES or getattr(member, "uses_audio", False):
            raise NotSupportedError(
                f"ensemble member {member.zoo_id} ({family}) is not a clip classifier of RGB or flow windows; "
                f"a two-stream file prediction fuses members of {', '.join(_WINDOW_FAMILIES)}")
        if field not in ("video", "flow") or (field == "flow") != is_flow_model(member):
            kind = "2-channel flow" if is_flow_model(member) else "RGB"
            raise NotSupportedError(f"ensemble member {member.zoo_id} reads {kind} but is fed the {field!r} input; "
                                    "inputs must be 'video' for RGB members and 'flow' for flow members")


def _clip(member: Any) -> tuple[int, int]:
    """(frames, stride) of a member's clip: ``T`` from its example input, the stride from its id."""
    from mmzoo.predict.classify import _clip_shape
    from mmzoo.registry import get_spec

    return _clip_shape(member)[0], int(get_spec(member.zoo_id).input.sampling_rate or 1)


@torch.no_grad()
def predict_input(model: Any, path: str, output_dir: str, query: Optional[str] = None, top_k: int = 5,
                  window_stride: Optional[int] = None, flow_stride: int = 2, method: str = "tvl1",
                  bound: float = 20.0) -> dict[str, Any]:
    """Fuse the members' per-window probabilities on ``path`` and write the outputs (module
    docstring); ``window_stride``: frames between window starts (None: consecutive windows);
    ``flow_stride`` / ``method`` / ``bound``: the flow of the flow members (default: the EPIC
    release's, as :mod:`mmzoo.predict.flow`)."""
    from mmzoo.data.decode import VideoReader, read_video_clip
    from mmzoo.predict.classify import (aggregate, centre_view, check_window_stride, decode_for_model, top_k_entries,
                                        window_starts, with_actions, write_outputs)
    from mmzoo.predict.flow import check_flow_options, flow_geometry, flow_window_inputs

    _check_members(model)
    spans = {f"{m.zoo_id}[{i}]": math.prod(_clip(m)) for i, m in enumerate(model.members)}
    if len(set(spans.values())) != 1:
        raise NotSupportedError(f"ensemble members read clips of different spans (frames x stride: {spans}); "
                                "file prediction shares one window between them")
    first = {f: model.members[model.inputs.index(f)] for f in ("video", "flow") if f in model.inputs}
    if "video" not in first:
        raise NotSupportedError("an ensemble without an RGB ('video') member: predict its flow members alone "
                                "(mmzoo predict --model ipl-i3d-flow --input ...)")
    check_flow_options(flow_stride, bound, method)
    span = next(iter(spans.values()))
    step = check_window_stride(window_stride, span)
    rgb = first["video"]
    frames, indices, fps, crop, inp, short = decode_for_model(rgb, path)
    if len(frames) < max(span, flow_stride + 1 if "flow" in first else 1):
        raise DataError(f"{path}: {len(frames)} frames; one {model.zoo_id} window needs {span}"
                        + (f" and flow needs {flow_stride + 1}" if "flow" in first else ""))
    starts = window_starts(len(frames), span, step)
    rgb_stride = _clip(rgb)[1]
    device = next(model.parameters()).device
    names = next((getattr(m.hparams, "class_names", None) for m in model.members
                  if getattr(m.hparams, "class_names", None)), None)
    model.eval()
    windows, probs, flow_info = [], [], None
    with VideoReader(path) as reader, tempfile.TemporaryDirectory(prefix="mmzoo-flow-") as tmp:
        flow_data = None
        if "flow" in first:
            flow_short = flow_geometry(first["flow"])[3]
            flow_frames = frames if flow_short == short else read_video_clip(path, short_side=flow_short).frames.numpy()
            flow_data, flow_info = flow_window_inputs(first["flow"], flow_frames, starts, tmp, flow_stride, method, bound)
        for i, s in enumerate(starts):
            inputs = {"video": centre_view(reader, indices[s:s + span:rgb_stride], short, crop, inp).to(device)}
            entry: dict[str, Any] = {"start": s, "end": s + span}
            if flow_data is not None:
                item = flow_data[i]
                inputs["flow"] = item["video"][None].to(device)
                idx = item["meta"]["flow_frame_indices"]
                entry["flow_frames"] = [int(idx[0]), int(idx[-1])]
            fused = model(**inputs)  # the ensemble's weighted mean of the members' softmaxes
            p = with_actions({k: v[0].cpu() for k, v in fused.items()}) if isinstance(fused, dict) \
                else {"class": fused[0].cpu()}
            probs.append(p)
            windows.append({**entry, "top_k": top_k_entries(p, top_k, names)})
    members = [{"id": m.zoo_id, "input": f, "weight": w} for m, f, w in zip(model.members, model.inputs, model.weights)]
    result = {"video": str(path), "model": model.zoo_id, "members": members,
              **({"flow": flow_info} if flow_info else {}), "windows": windows,
              "top_k": top_k_entries(aggregate(probs, "mean"), top_k, names)}
    which = [min(t // step, len(windows) - 1) for t in range(len(frames))]
    write_outputs(output_dir, result, frames, fps, which)
    return result
