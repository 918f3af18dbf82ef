"""Wall-clock timing shared by the benchmark scripts: the median of repeated calls, with the
device synchronised around each one so that CUDA's asynchronous launches are counted."""
from __future__ import annotations

import contextlib
import statistics
import time

import torch


def sync(device: str) -> None:
    """Wait for the device's queued work (no-op on the CPU)."""
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def median_seconds(fn, iters: int, warmup: int, device: str, grad: bool | None = None) -> float:
    """Median seconds of one call of `fn` after `warmup` untimed calls; `grad` sets autograd on or
    off for the calls (None leaves the caller's mode)."""
    mode = contextlib.nullcontext() if grad is None else torch.set_grad_enabled(grad)
    with mode:
        for _ in range(warmup):
            fn()
        sync(device)
        out = []
        for _ in range(iters):
            t0 = time.perf_counter()
            fn()
            sync(device)
            out.append(time.perf_counter() - t0)
    return statistics.median(out)
