"""Speed of Arrow of Time's T-CAM and of its optical flow, beside peers, in the same run.

* T-CAM inference (flow clips/s, eval mode, no grad): mmzoo's `aot-tcam-vgg16` beside its peer,
  torchvision's `vgg16_bn` convolutional trunk (20-channel conv1, pool5 removed) run on the same
  T segments plus a plain PyTorch fusion of the same shape, i.e. the same network built from
  torchvision parts;
* flow (frame pairs/s): OpenCV Dual TV-L1 (the paper's flow) beside Farneback, on the same frames,
  and the 8-bit PNG flow cache (write + read back) per pair.

    python benchmarks/aot_speed.py                         # small CPU run (112 x 112, batch 2)
    python benchmarks/aot_speed.py --device cuda --size 224 --batch 16 --iters 20

Writes a Markdown table (default `benchmarks/results/aot_speed.md`).
"""
from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from _timing import median_seconds


def timed(fn, iters: int, warmup: int, device: str) -> float:
    """Median seconds of one call, without autograd."""
    return median_seconds(fn, iters, warmup, device, grad=False)


class TorchvisionTCAM(nn.Module):
    """The peer: torchvision's VGG-16-BN trunk and a fusion of the same shape."""

    def __init__(self, segments: int = 2, flow_frames: int = 10) -> None:
        import torchvision

        super().__init__()
        f = torchvision.models.vgg16_bn(weights=None).features
        f[0] = nn.Conv2d(2 * flow_frames, 64, 3, padding=1)
        self.trunk = nn.Sequential(*list(f)[:-1])
        c = segments * 512
        self.fusion = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(c),
                                    nn.Conv2d(c, c, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(c))
        self.fc = nn.Linear(c, 1)
        self.segments, self.per = segments, 2 * flow_frames

    def forward(self, flow: torch.Tensor) -> torch.Tensor:
        b, _, h, w = flow.shape
        x = self.trunk(flow.reshape(b * self.segments, self.per, h, w))
        x = x.reshape(b, -1, *x.shape[-2:])
        return self.fc(self.fusion(x).mean(dim=(2, 3)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--size", type=int, default=112)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--flow-size", type=int, default=128)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "aot_speed.md"))
    a = p.parse_args()

    import mmzoo
    from mmzoo.data.flow import compute_flow, read_flow, write_flow

    torch.manual_seed(0)
    rows = []
    x = torch.randn(a.batch, 40, a.size, a.size, device=a.device)
    ours = mmzoo.create("aot-tcam-vgg16", crop_size=a.size).to(a.device).eval()
    peer = TorchvisionTCAM().to(a.device).eval()
    models = {"mmzoo aot-tcam-vgg16": ours, "torchvision vgg16_bn trunk + fusion (peer)": peer}
    times: dict[str, list[float]] = {n: [] for n in models}
    for _ in range(a.iters):  # interleaved rounds: a shared machine's load hits both alike
        for name, model in models.items():
            times[name].append(timed(lambda m=model: m(x), 1, a.warmup, a.device))
    for name, ts in times.items():
        s = statistics.median(ts)
        rows.append((f"T-CAM forward, {a.batch} x 2 segments x 10 flows, {a.size}^2", name, f"{a.batch / s:.2f} clips/s"))

    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (a.flow_size + 8, a.flow_size + 8, 3), dtype=np.uint8)
    frames = np.stack([base[t:t + a.flow_size, 2 * t:2 * t + a.flow_size] for t in range(4)])
    for method in ("tvl1", "farneback"):
        t0 = time.perf_counter()
        flow = compute_flow(frames, method)
        dt = time.perf_counter() - t0
        rows.append((f"optical flow, {a.flow_size}^2 grey pairs", f"OpenCV {method}", f"{len(flow) / dt:.1f} pairs/s"))
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        read_flow(write_flow(Path(d) / "v", flow, "png"))
        dt = time.perf_counter() - t0
    rows.append((f"flow cache, {a.flow_size}^2", "mmzoo PNG write + read back", f"{len(flow) / dt:.1f} pairs/s"))

    lines = ["# Arrow of Time speed", "",
             (f"`python benchmarks/aot_speed.py --device {a.device} --size {a.size} --batch {a.batch}` on "
             f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
             f"{torch.get_num_threads()} threads."), "",
             "| what | implementation | throughput |", "|---|---|---|"]
    lines += [f"| {w} | {n} | {v} |" for w, n, v in rows]
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
