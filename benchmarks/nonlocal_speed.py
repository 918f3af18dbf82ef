"""Speed of mmzoo's NL I3D R50 beside PyTorchVideo's I3D R50, and of the non-local block beside
naive attention implementations.

Part 1, in one run on the same inputs (8 x 8 clips, the configuration PyTorchVideo's `i3d_r50`
ships): mmzoo `i3d-r50-8x8` (identical architecture to PyTorchVideo's), mmzoo `nl-i3d-r50-8x8`
(+ 5 non-local blocks) and PyTorchVideo `create_resnet` I3D R50: fp32 inference time per batch
(all models timed round-robin, medians), training-step time (forward + cross-entropy + backward
+ SGD step) and, on CUDA, peak memory per clip.

Part 2, one non-local block at the res3 input of the 32-frame NL I3D (512 channels, 4 x 28 x 28
at 224^2) and at res4 (1024, 4 x 14 x 14): `NonLocal3d` with its 1x2x2 subsampling of phi / g
(the thesis / authors' block), the same without subsampling, a naive attention written with
explicit matmuls over all positions (the full N x N affinity), and torch's fused
`scaled_dot_product_attention` on the same projections. Memory: the affinity matrix's size, and
on CUDA the measured peak of a forward + backward.

    python benchmarks/nonlocal_speed.py                        # CPU: 112^2 crops, batch 1
    python benchmarks/nonlocal_speed.py --device cuda --size 224 --batch 8 --iters 20

Results go to a Markdown file (default `benchmarks/results/nonlocal_speed.md`).
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

MODELS = ("mmzoo i3d-r50-8x8", "mmzoo nl-i3d-r50-8x8", "pytorchvideo create_resnet i3d_r50")


def build(name: str, size: int) -> nn.Module:
    if name.startswith("mmzoo"):
        import mmzoo

        return mmzoo.create(name.split()[1], crop_size=size, pretrained_backbone=False)
    from pytorchvideo.models.resnet import create_resnet

    k = size // 32
    return create_resnet(stem_conv_kernel_size=(5, 7, 7), stage1_pool=nn.MaxPool3d, head_pool_kernel_size=(4, k, k),
                         stage_conv_a_kernel_size=((3, 1, 1), [(3, 1, 1), (1, 1, 1)], [(3, 1, 1), (1, 1, 1)],
                                                   [(1, 1, 1), (3, 1, 1)]))  # fmt: skip


def forward(model: nn.Module, name: str, video: torch.Tensor) -> torch.Tensor:
    return model(video=video) if name.startswith("mmzoo") else model(video)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _timed(fn, device: str) -> float:
    _sync(device)
    t = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t


def networks(args) -> list[dict]:
    dev = args.device
    models = {n: build(n, args.size).to(dev) for n in MODELS}
    video = torch.randn(args.batch, 3, 8, args.size, args.size, device=dev)
    label = torch.zeros(args.batch, dtype=torch.long, device=dev)
    infer: dict[str, list[float]] = {n: [] for n in MODELS}
    with torch.no_grad():
        for m in models.values():
            m.eval()
        for rnd in range(args.warmup + args.iters):
            for n in MODELS if rnd % 2 == 0 else MODELS[::-1]:
                dt = _timed(lambda: forward(models[n], n, video), dev)  # noqa: B023 - called at once
                if rnd >= args.warmup:
                    infer[n].append(dt)
    rows = []
    for n, m in models.items():
        row = {"model": n, "params_M": sum(p.numel() for p in m.parameters()) / 1e6,
               "infer_ms_per_batch": statistics.median(infer[n]) * 1e3}
        m.train()
        opt = torch.optim.SGD(m.parameters(), lr=1e-4, momentum=0.9)

        def step():
            opt.zero_grad(set_to_none=True)  # noqa: B023 - called at once
            F.cross_entropy(forward(m, n, video), label).backward()  # noqa: B023
            opt.step()  # noqa: B023

        if dev == "cuda":
            torch.cuda.reset_peak_memory_stats()
        ts = [_timed(step, dev) for _ in range(1 + max(2, args.iters // 2))][1:]
        row["train_ms_per_step"] = statistics.median(ts) * 1e3
        if dev == "cuda":
            row["train_peak_MiB_per_clip"] = torch.cuda.max_memory_allocated() / 2**20 / args.batch
            m.eval()
            torch.cuda.reset_peak_memory_stats()
            with torch.no_grad():
                forward(m, n, video)
            row["infer_peak_MiB_per_clip"] = torch.cuda.max_memory_allocated() / 2**20 / args.batch
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    return rows


class NaiveAttention(nn.Module):
    """softmax(theta^T phi / sqrt(d)) g over all N positions, with explicit matmuls (N x N affinity)."""

    def __init__(self, blk: nn.Module, fused: bool = False) -> None:
        super().__init__()
        self.blk, self.fused = blk, fused

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        q = self.blk.theta(x).flatten(2).transpose(1, 2)  # B, N, C'
        k = self.blk.phi(x).flatten(2).transpose(1, 2)
        v = self.blk.g(x).flatten(2).transpose(1, 2)
        if self.fused:
            y = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]
        else:
            y = torch.softmax(q @ k.transpose(1, 2) / q.shape[-1] ** 0.5, dim=-1) @ v
        y = y.transpose(1, 2).reshape(b, -1, t, h, w)
        return x + self.blk.bn(self.blk.out(y))


def blocks(args) -> list[dict]:
    from mmzoo.nn.nonlocal_block import NonLocal3d

    dev, rows = args.device, []
    s = args.block_size // 8  # res3 spatial size (28 at 224)
    for stage, dim, hw in (("res3", 512, s), ("res4", 1024, s // 2)):
        x = torch.randn(args.batch, dim, 4, hw, hw, device=dev, requires_grad=True)
        pooled = NonLocal3d(dim, dim // 2, (1, 2, 2)).to(dev)
        full = NonLocal3d(dim, dim // 2, (1, 1, 1)).to(dev)
        variants = {"NonLocal3d, phi/g pooled 1x2x2 (thesis)": (pooled, 4 * hw * hw * (4 * (hw // 2) ** 2)),
                    "NonLocal3d, no pooling": (full, (4 * hw * hw) ** 2),
                    "naive attention (explicit matmuls, N x N)": (NaiveAttention(full), (4 * hw * hw) ** 2),
                    "torch scaled_dot_product_attention": (NaiveAttention(full, fused=True), None)}
        for name, (mod, affinity) in variants.items():
            mod.train()

            def fwd_bwd():
                mod(x).sum().backward()  # noqa: B023

            with torch.no_grad():
                fwd = [_timed(lambda: mod(x), dev) for _ in range(args.warmup + args.iters)][args.warmup:]  # noqa: B023
            if dev == "cuda":
                torch.cuda.reset_peak_memory_stats()
            fb = [_timed(fwd_bwd, dev) for _ in range(args.warmup + args.iters)][args.warmup:]
            row = {"stage": stage, "input": f"{args.batch}x{dim}x4x{hw}x{hw}", "block": name,
                   "forward_ms": statistics.median(fwd) * 1e3, "fwd_bwd_ms": statistics.median(fb) * 1e3,
                   "affinity_MiB": None if affinity is None else affinity * args.batch * 4 / 2**20}
            if dev == "cuda":
                row["peak_MiB"] = torch.cuda.max_memory_allocated() / 2**20
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    return rows


def _table(rows: list[dict], cols: list[str]) -> list[str]:
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join(f"{r[c]:.2f}" if isinstance(r.get(c), float) else str(r.get(c, "")) for c in cols) + " |")
    return out


def to_markdown(nets: list[dict], blks: list[dict], args) -> str:
    dev = torch.cuda.get_device_name() if args.device == "cuda" else (platform.processor() or platform.machine())
    peer = next(r for r in nets if r["model"].startswith("pytorchvideo"))
    for r in nets:
        r["infer_vs_pytorchvideo"] = f"{peer['infer_ms_per_batch'] / r['infer_ms_per_batch']:.2f}x"
    cols = ["model", "params_M", "infer_ms_per_batch", "train_ms_per_step", "infer_vs_pytorchvideo"]
    if args.device == "cuda":
        cols += ["infer_peak_MiB_per_clip", "train_peak_MiB_per_clip"]
    bcols = ["stage", "input", "block", "forward_ms", "fwd_bwd_ms", "affinity_MiB"] + (["peak_MiB"] if args.device == "cuda" else [])
    lines = ["# Non-local family speed (`benchmarks/nonlocal_speed.py`)", "",
             f"device: {args.device} ({dev}), torch {torch.__version__}, threads {args.threads}, batch {args.batch}, "
             f"8 x 8 clips at {args.size}^2, median of {args.iters} iterations after {args.warmup} warm-up "
             "(inference: the three networks timed round-robin in one loop).", "",
             "## Networks", "", *_table(nets, cols), "",
             f"## One non-local block at the res3 / res4 maps of a {args.block_size}^2 crop "
             "(forward, and forward + backward, train mode)", "", *_table(blks, bcols), "",
             "`affinity_MiB`: size of the f(x_i, x_j) matrix one forward materialises (fp32); the fused kernel "
             "never stores it.", "",
             "On a CPU shared with other jobs (this repository's build machine), timings drift by up to ~2x "
             "between runs; compare rows of one run only, and prefer a GPU run for absolute numbers.", "", "Raw rows:", "", "```json", json.dumps({"networks": nets, "blocks": blks}, indent=1),
             "```", ""]  # fmt: skip
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    p.add_argument("--size", type=int, default=112, help="crop size (224 in the paper)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--block-size", type=int, default=224, help="crop size whose res3 / res4 maps the block runs on")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "nonlocal_speed.md"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    nets = networks(args)
    blks = blocks(args)
    text = to_markdown(nets, blks, args)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
