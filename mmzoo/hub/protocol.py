"""Protocol records: how a number was obtained, stored next to it.

``mmzoo test`` / ``mmzoo validate`` write :func:`evaluation_protocol` of the DataModule they ran
into their results JSON (``"protocol"``); ``mmzoo push --results results_test.json`` copies the
results (metrics and protocol) into ``config.json`` (``"evaluation"``), and the model card
renders them with :func:`protocol_section`, the paper's reported numbers beside the reproduced
ones. The record holds:

* ``data`` (DataModule name), ``version`` (dataset version where the DataModule has one),
  ``split``, ``root``;
* ``views``: ``clips x crops`` of the test sampling, ``resolution`` (``test_scale`` short side /
  ``test_crop_size``), ``frames`` and ``stride`` of a clip (the DataModule's own argument names,
  kept only when it has them);
* ``num_samples`` (items evaluated: views) and ``num_videos``;
* ``missing``: videos of the annotations that were not found on disk and skipped (the
  DataModule's ``missing_videos``, :func:`mmzoo.data.paths.report_missing`), ``skipped``:
  videos replaced or dropped because they could not be decoded (``skipped`` of the
  DataModule, per stage where it keeps them so);
* ``data_args``: every JSON-serialisable constructor argument of the DataModule.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["evaluation_protocol", "protocol_section"]

#: DataModule arguments copied into the record under the same name (when present).
_SAMPLING = ("num_frames", "stride", "sampling_rate", "alpha", "fps", "eval_window", "eval_stride", "frame_size",
             "input_mode", "supervision", "with_audio")


def _json_safe(d: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        try:
            json.dumps(v)
        except (TypeError, ValueError):
            continue
        out[k] = v
    return out


def evaluation_protocol(datamodule: Any, split: str) -> dict[str, Any]:
    """The protocol record of evaluating on ``split`` of ``datamodule`` (module docstring)."""
    hp = dict(getattr(datamodule, "hparams", {}) or {})
    rec: dict[str, Any] = {"data": getattr(datamodule, "datamodule_name", type(datamodule).__name__), "split": split}
    for key in ("version", "root", "test_split", "split"):
        if hp.get(key) is not None and key not in rec:
            rec[key if key != "test_split" else "split_name"] = hp[key]
    clips, crops = hp.get("num_clips"), hp.get("num_crops")
    if clips is not None or crops is not None:
        rec["views"] = {"clips": clips or 1, "crops": crops or 1}
    if hp.get("test_scale") is not None or hp.get("test_crop_size") is not None:
        rec["resolution"] = {"short_side": hp.get("test_scale"), "crop": hp.get("test_crop_size")}
    rec.update({k: hp[k] for k in _SAMPLING if hp.get(k) is not None})
    ds = getattr(datamodule, "datasets", {}).get(split)
    if ds is not None:
        rec["num_samples"] = len(ds)
        records = getattr(ds, "records", None)
        if records is not None:
            rec["num_videos"] = len(records)
    rec["missing"] = [str(m) for m in getattr(datamodule, "missing_videos", []) or []]
    skipped = getattr(datamodule, "skipped", None)
    if isinstance(skipped, Mapping):
        rec["skipped"] = _json_safe({str(k): v for k, v in skipped.items()})
    elif skipped:
        rec["skipped"] = [str(s) for s in skipped]
    else:
        rec["skipped"] = []
    rec["data_args"] = _json_safe(hp)
    return rec


def _fmt(v: Any) -> str:
    return f"{v:.2f}" if isinstance(v, float) else str(v)


def protocol_section(evaluation: Mapping[str, Any], reported: Mapping[str, Any] | None = None) -> str:
    """Markdown for a model card: the evaluation protocol and the reproduced metrics beside the
    paper's (``reported``: the registry's numbers, matched by metric name without the
    ``test/`` / ``val/`` prefix)."""
    proto = dict(evaluation.get("protocol") or {})
    metrics = dict(evaluation.get("metrics") or {})
    rows = []
    for key in ("data", "version", "split", "views", "resolution", "num_frames", "stride", "sampling_rate",
                "num_videos", "num_samples"):
        if key in proto:
            value = proto[key]
            if key == "views":
                value = f"{value['clips']} clips x {value['crops']} crops"
            elif key == "resolution":
                value = f"short side {value['short_side']}, crop {value['crop']}"
            rows.append(f"| {key} | {value} |")
    missing, skipped = proto.get("missing") or [], proto.get("skipped") or []
    rows.append(f"| missing videos | {len(missing)} |")
    rows.append(f"| skipped videos | {len(skipped)} |")
    lines = ["## Evaluation protocol", "", "How the reproduced numbers below were obtained (`mmzoo test`).", "",
             "| setting | value |", "|---|---|", *rows, ""]
    if missing or skipped:
        lines += ["Missing / skipped videos:", ""] + [f"- {m}" for m in list(missing) + list(skipped)] + [""]
    reported = dict(reported or {})
    lines += ["## Results: reported vs reproduced", "", "| metric | reported (paper) | reproduced |", "|---|---|---|"]
    names = {k.split("/", 1)[1] if "/" in k else k: k for k in metrics}
    for name in sorted(set(names) | set(reported)):
        mine = metrics.get(names[name]) if name in names else None
        lines.append(f"| {name} | {_fmt(reported[name]) if name in reported else '-'} | "
                     f"{_fmt(mine) if mine is not None else '-'} |")
    return "\n".join(lines) + "\n"
