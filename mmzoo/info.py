"""`mmzoo.model_info` / `mmzoo info`: what a model is, how big, and what the paper reports."""
from __future__ import annotations

from typing import Any

import torch

from mmzoo.registry import get_spec


def measure(name: str, **overrides: Any) -> dict[str, Any]:
    """Parameter count and GFLOPs (multiply-adds, one example input) of the full-size model.

    The model is built on the meta device, so nothing is allocated; operators the meta device
    cannot run leave GFLOPs as None rather than failing `info`.
    """
    spec = get_spec(name)
    with torch.device("meta"):
        model = spec.build(**overrides)
    params = sum(p.numel() for p in model.parameters())
    try:
        with torch.device("meta"):
            gflops = model.count_flops() / 1e9
    except Exception:  # noqa: BLE001 - an operator without a meta kernel; report as unknown
        gflops = None
    return {"params": params, "gflops": gflops}


def model_info(name: str, measured: dict[str, Any] | None = None) -> dict[str, Any]:
    """What `mmzoo info` prints: the registry record of an id plus its measured size (`measured`
    reuses a {"params", "gflops"} already computed by `measure`)."""
    spec = get_spec(name)
    info: dict[str, Any] = {
        "id": spec.id,
        "family": spec.family,
        "task": spec.task,
        "paper": spec.paper,
        "class": f"{spec.cls.__module__}.{spec.cls.__qualname__}",
        "input": spec.input.to_dict(),
        "defaults": dict(spec.defaults),
        "tags": {
            w.tag: {
                "published": w.available,
                "hub_repo": w.hub_repo,
                "dataset": w.dataset,
                "original_url": w.original_url,
                "converter": w.converter,
                "metrics": dict(w.metrics),
                "notes": w.notes,
            }
            for w in spec.weights
        },
        "default_tag": spec.default_tag,
        "reported": dict(spec.reported),
    }
    info.update(measured if measured is not None else measure(name))
    return info
