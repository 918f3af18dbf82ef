"""Speed of the egocentric backbones (I3D, R(2+1)D-34) and of the IPL head, beside peers.

In the same run, on the same clips (eval mode, no grad, one view):

* inference throughput (clips/s) of mmzoo's I3D (`InceptionI3d`, RGB) and R(2+1)D-34
  (`R2Plus1dResNet`) beside torchvision's `r2plus1d_18` and PyTorchVideo's `create_r2plus1d`
  (its R(2+1)D-50, the nearest backbone it builds);
* the IPL head's overhead: `ipl-i3d-rgb` / `ipl-r2plus1d-34` against the same backbone's features
  alone, and against the linear-head baselines `i3d-epic` / `r2plus1d-34-epic`.

    python benchmarks/egocentric_speed.py                       # small CPU run (16 x 112^2, batch 1)
    python benchmarks/egocentric_speed.py --device cuda --frames 64 --size 224 --batch 8 --iters 20

Results are written as a Markdown table (default `benchmarks/results/egocentric_speed.md`).
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn, x, iters: int, warmup: int, device: str) -> list[float]:
    with torch.no_grad():
        for _ in range(warmup):
            fn(x)
        _sync(device)
        out = []
        for _ in range(iters):
            t0 = time.perf_counter()
            fn(x)
            _sync(device)
            out.append(time.perf_counter() - t0)
    return out


def entries(frames: int, size: int):
    import torchvision
    from pytorchvideo.models.r2plus1d import create_r2plus1d

    import mmzoo
    from mmzoo.nn.i3d_inception import InceptionI3d
    from mmzoo.nn.r2plus1d import R2Plus1dResNet

    def model(name, **kw):
        return mmzoo.create(name, **kw)

    ipl_i3d = model("ipl-i3d-rgb")
    ipl_r = model("ipl-r2plus1d-34")
    return [
        ("mmzoo I3D (InceptionI3d, 400 classes)", InceptionI3d(3, 400), None),
        ("mmzoo R(2+1)D-34 (R2Plus1dResNet, 400 classes)", R2Plus1dResNet(34, 400), None),
        ("torchvision r2plus1d_18 (400 classes)", torchvision.models.video.r2plus1d_18(), None),
        ("pytorchvideo create_r2plus1d (R(2+1)D-50, 400 classes)", create_r2plus1d(head_pool_kernel_size=(max(frames // 4, 1), size // 32, size // 32)), None),
        ("I3D features only (ipl-i3d-rgb backbone)", ipl_i3d.backbone, "features"),
        ("ipl-i3d-rgb (I3D + IPL head)", ipl_i3d, None),
        ("i3d-epic (I3D + linear heads)", model("i3d-epic"), None),
        ("R(2+1)D-34 features only (ipl-r2plus1d-34 backbone)", ipl_r.backbone, "features"),
        ("ipl-r2plus1d-34 (R(2+1)D-34 + IPL head)", ipl_r, None),
        ("r2plus1d-34-epic (R(2+1)D-34 + linear heads)", model("r2plus1d-34-epic"), None),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "egocentric_speed.md"))
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, args.frames, args.size, args.size, device=args.device)
    models = []
    for name, net, method in entries(args.frames, args.size):
        net = net.to(args.device).eval()
        models.append((name, net, getattr(net, method) if method else net))
    # rounds: every model once per round, so that load changes on a shared machine hit all of them
    times: dict[str, list[float]] = {n: [] for n, _, _ in models}
    for r in range(args.warmup + args.iters):
        for name, _, fn in models:
            t = timed(fn, x, 1, 0, args.device)[0]
            if r >= args.warmup:
                times[name].append(t)
    rows = []
    for name, net, _ in models:
        med = statistics.median(times[name])
        params = sum(p.numel() for p in net.parameters()) / 1e6
        rows.append((name, params, med * 1000, args.batch / med))
        print(f"{name}: {params:.2f} M params, {med * 1000:.1f} ms/batch, {args.batch / med:.2f} clips/s", flush=True)
    # the IPL head alone, on the backbone's feature map (what the head adds to a forward pass)
    head_rows = []
    for name, net, _ in models:
        if name.startswith("ipl-"):
            with torch.no_grad():
                fmap = net.backbone.features(x)
            t = statistics.median(timed(net.head, fmap, max(args.iters, 5), 1, args.device))
            head_rows.append((name.split()[0], tuple(fmap.shape), t * 1000))
    lines = [
        "# Egocentric backbones and the IPL head: inference speed",
        "",
        (f"`python benchmarks/egocentric_speed.py --device {args.device} --frames {args.frames} --size {args.size} "
         f"--batch {args.batch} --iters {args.iters}`; {platform.processor() or platform.machine()}, "
         f"torch {torch.__version__}, {torch.get_num_threads()} threads; median of {args.iters} rounds (every model "
         f"once per round) after {args.warmup} warm-up round(s); eval mode, no grad. The CPU is shared with other "
         "jobs, so absolute numbers are noisy; compare within one run."),
        "",
        "| model | params (M) | ms / batch | clips / s |",
        "|---|---|---|---|",
        *[f"| {n} | {p:.2f} | {ms:.1f} | {cps:.2f} |" for n, p, ms, cps in rows],
        "",
        "IPL head alone (assignment, grouping, top-K selection, f_w, both cosine classifiers) on the backbone's map:",
        "",
        "| id | feature map | head ms / batch | share of the backbone's time |",
        "|---|---|---|---|",
    ]
    feats = {"ipl-i3d-rgb": "I3D", "ipl-r2plus1d-34": "R(2+1)D-34"}
    for ident, shape, ms in head_rows:
        backbone = next(r for r in rows if r[0].startswith(feats[ident] + " features only"))
        lines.append(f"| {ident} | {shape} | {ms:.2f} | {100 * ms / backbone[2]:.2f} % |")
    lines.append("")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
