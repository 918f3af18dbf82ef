"""PSN on an untrimmed video file: its test protocol, the frames its sampler picked, its cost.

``mmzoo predict --model psn-r101-anet --input video.mp4 --output_dir out`` follows the PSN test
protocol (Wang thesis ch. 5, Secs. 5.2.1 and 5.2.4):

1. pre-sampling: the candidate frames are the video's frames at 1 fps (ActivityNet and FCVID are
   decoded at 1 fps in the thesis; the Mini-Kinetics id uses every frame), cut into ``N`` (25)
   equal segments whose centre frames are taken; the view of each is the centre 224 crop of the
   frame at short side 256 (scaled with the crop for narrowed models). These are built by
   :class:`mmzoo.data.untrimmed.UntrimmedDataset`, the ActivityNet / FCVID DataModules' reader,
   so the input is the one ``mmzoo test --data activitynet`` evaluates;
2. the sampler (ShuffleNet-V2 + CRM + score layer, Eq. 5.3) scores the ``N`` frames (``q``);
3. the recogniser sees the top-``M`` frames only and the video's scores are the softmax of the
   q-weighted sum of their logits (the model's ``forward``, Eq. 5.4; its ``inference`` setting
   selects the Table 5.3 variants).

Outputs under ``output_dir``:

* ``predictions.json``: ``{"video", "model", "num_segments", "num_selected", "inference",
  "candidates": [{"position", "frame", "time", "q", "selected"}]`` (the ``N`` pre-sampled frames:
  stream frame index, seconds, sampler score, whether the recogniser saw it; ``q`` is null for
  ``inference="uniform"``, which runs no sampler), ``"selected": [{"position", "frame", "time",
  "weight", "top_k"}]`` (each recognised frame's weight in Eq. 5.4 and its own softmax top-k),
  ``"top_k": {"class": [{"index", "label", "score"}]}`` (the video's), ``"gflops"``: the
  per-video cost of :meth:`mmzoo.models.psn.PSN.cost_breakdown` at the model's crop (sampler on
  ``N`` frames + recogniser on ``M``: the thesis's GFLOPs column, 82.3 for R-101 at M = 10)};
* ``predictions.png``: the ``N`` pre-sampled views side by side, each captioned with its
  position and ``q``, the selected ones framed in green.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from mmzoo.errors import DataError
from mmzoo.predict.classify import annotate, top_k_entries, write_outputs

__all__ = ["candidate_views", "frame_strip", "predict_input"]

_TILE = 160  # largest tile side of the PNG strip


def _decode_fps(inp: Any) -> Optional[float]:
    """1 fps for the ActivityNet / FCVID ids (thesis Sec. 5.3.1), every frame otherwise."""
    return 1.0 if set(inp.datamodules or ()) & {"activitynet", "fcvid"} else None


def candidate_views(model: Any, path: str, decode_fps: Optional[float]) -> tuple[torch.Tensor, list[int], float]:
    """The ``3, N, crop, crop`` test view of the ``N`` pre-sampled frames of ``path`` (read by the
    ActivityNet / FCVID DataModules' :class:`~mmzoo.data.untrimmed.UntrimmedDataset`), their
    stream frame indices and the stream's frame rate."""
    from mmzoo.data.decode import VideoReader
    from mmzoo.data.untrimmed import UntrimmedDataset
    from mmzoo.data.video_dataset import ClipConfig, VideoRecord
    from mmzoo.registry import get_spec

    inp = get_spec(model.zoo_id).input
    hp = model.hparams
    crop = int(hp.crop_size)
    short = max(crop, int(round(crop * (inp.short_side or crop) / (inp.test_crop or crop))))
    cfg = ClipConfig(train=False, num_frames=int(hp.num_segments), stride=1, temporal="tsn", num_clips=1, num_crops=1,
                     test_scale=short, test_crop_size=crop, mean=tuple(inp.mean), std=tuple(inp.std))
    data = UntrimmedDataset([VideoRecord(targets={}, meta={"classes": [], "video_id": Path(path).stem}, video=str(path))],
                            cfg, int(hp.num_classes), decode_fps)
    item = data[0]
    with VideoReader(path) as r:
        fps = float(r.fps)
    return item["video"], [int(i) for i in item["meta"]["frame_indices"]], fps


def frame_strip(video: torch.Tensor, mean, std, q: Optional[list[float]], selected: set[int]) -> np.ndarray:
    """RGB ``H, N * W, 3`` strip of the normalised ``3, N, H, W`` views: each captioned with its
    position (and ``q``), the ``selected`` positions framed in green."""
    import cv2

    m, s = torch.tensor(mean).view(3, 1, 1, 1), torch.tensor(std).view(3, 1, 1, 1)
    pix = ((video.cpu() * s + m).clamp(0, 1) * 255).round().byte().permute(1, 2, 3, 0).numpy()  # N, H, W, 3
    tiles = []
    for i, img in enumerate(pix):
        if max(img.shape[:2]) > _TILE:
            img = cv2.resize(img, (_TILE, _TILE), interpolation=cv2.INTER_AREA)
        img = annotate(img, [f"{i}" + ("" if q is None else f" q={q[i]:.2f}")])
        if i in selected:
            b = max(2, img.shape[0] // 32)
            img[:b], img[-b:], img[:, :b], img[:, -b:] = (0, 255, 0), (0, 255, 0), (0, 255, 0), (0, 255, 0)
        tiles.append(img)
    return np.concatenate(tiles, axis=1)


@torch.no_grad()
def predict_input(model: Any, path: str, output_dir: str, query: str | None = None, top_k: int = 5,
                  decode_fps: Optional[float] = -1.0) -> dict[str, Any]:
    """The PSN test protocol on ``path`` (module docstring); ``decode_fps=-1`` takes the id's rate."""
    import cv2

    from mmzoo.registry import get_spec

    inp = get_spec(model.zoo_id).input
    hp = model.hparams
    rate = _decode_fps(inp) if decode_fps is not None and decode_fps < 0 else decode_fps
    try:
        views, frames, fps = candidate_views(model, path, rate)
    except ValueError as err:
        raise DataError(f"{path}: {err}") from None
    model.eval()
    video = views[None].to(next(model.parameters()).device)
    idx, weights = model.select(video)
    q = None if hp.inference == "uniform" else model.sampler(video)[0].cpu().tolist()
    chosen = video[:, :, idx[0]]
    frame_p = model.recognizer.video_logits(chosen)[0].softmax(-1).cpu()  # M, K: each selected frame alone
    video_p = model(video)[0].softmax(-1).cpu()
    names = getattr(hp, "class_names", None)
    picked = [int(i) for i in idx[0].tolist()]
    w = [1.0] * len(picked) if weights is None or hp.inference == "sample" else weights[0].cpu().tolist()
    candidates = [{"position": i, "frame": f, "time": f / fps, "q": None if q is None else q[i], "selected": i in picked}
                  for i, f in enumerate(frames)]
    selected = [{"position": i, "frame": frames[i], "time": frames[i] / fps, "weight": float(wi),
                 "top_k": top_k_entries({"class": p}, top_k, names)["class"]}
                for i, wi, p in zip(picked, w, frame_p)]
    cost = model.cost_breakdown(int(hp.crop_size))
    result = {"video": str(path), "model": model.zoo_id, "num_segments": int(hp.num_segments),
              "num_selected": int(hp.num_selected), "inference": hp.inference, "decode_fps": rate,
              "candidates": candidates, "selected": selected,
              "top_k": top_k_entries({"class": video_p}, top_k, names),
              "gflops": {"total": cost["total"], "sampler": cost["sampler"], "recognizer": cost["recognizer"]}}
    write_outputs(output_dir, result, None, fps, [])
    strip = frame_strip(views, inp.mean, inp.std, q, set(picked))
    out = Path(output_dir) / "predictions.png"
    if not cv2.imwrite(str(out), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR)):
        raise DataError(f"could not write {out}")
    return result
