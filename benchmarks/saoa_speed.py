"""Speed and memory of SAOA (thesis ch. 3) beside its backbones and a torchvision peer.

In one run, on the same clips and objects (60 = 12 frames x top-5, C1 = 256):

* inference (eval, no grad): torchvision's ``r3d_18`` (peer), one ResNet-50-3D
  (``HaraResNet3d``), the stage-1 model (VerbNet + NounNet + linear heads), ``saoa-r50-rgb`` and
  ``sap-r50-rgb`` (stage 2), ``saoa-i3d-rgb``;
* a stage-2 training step (frozen backbones, SA blocks trained: forward, backward, SGD) of
  ``saoa-r50-rgb`` and ``saoa-i3d-rgb`` beside a stage-1 step of ``saoa-r50-rgb`` (both backbones
  trained), with peak GPU memory;
* the SA blocks alone (alignment, gating, ARM, classifiers) on the backbones' maps.

    python benchmarks/saoa_speed.py                                  # CPU, 16 x 112^2, batch 1
    python benchmarks/saoa_speed.py --device cuda --frames 64 --size 256 --batch 8 --iters 10 [--bf16]

Writes a Markdown table (default ``benchmarks/results/saoa_speed.md``).
"""
from __future__ import annotations

import argparse
import contextlib
import platform
from pathlib import Path

import torch

from _timing import median_seconds


def _time(fn, iters: int, warmup: int, device: str) -> float:
    return median_seconds(fn, iters, warmup, device)


def _inputs(b: int, frames: int, size: int, device: str) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    n = 60
    xy = torch.rand(b, n, 2, generator=g) * size / 2
    x = {"video": torch.randn(b, 3, frames, size, size, generator=g),
         "object_features": torch.randn(b, n, 256, generator=g),
         "object_boxes": torch.cat([xy, xy + size / 2], -1),
         "object_mask": torch.ones(b, n, dtype=torch.bool),
         "object_times": ((torch.arange(n) // 5 - 5.5) / 2).expand(b, n).clone(),
         "verb": torch.randint(0, 125, (b,), generator=g), "noun": torch.randint(0, 352, (b,), generator=g)}
    return {k: v.to(device) for k, v in x.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "saoa_speed.md"))
    args = ap.parse_args()
    import torchvision

    import mmzoo
    from mmzoo.nn.resnet3d_hara import HaraResNet3d

    dev = args.device
    torch.manual_seed(0)
    x = _inputs(args.batch, args.frames, args.size, dev)
    video = x["video"]
    objs = {k: x[k] for k in ("video", "object_features", "object_boxes", "object_mask", "object_times")}
    amp = torch.autocast(dev.split(":")[0], dtype=torch.bfloat16) if args.bf16 else contextlib.nullcontext()
    rows, train_rows = [], []

    def infer(name, net, call):
        net = net.to(dev).eval()
        with torch.no_grad(), amp:
            t = _time(lambda: call(net), args.iters, args.warmup, dev)
        params = sum(p.numel() for p in net.parameters()) / 1e6
        rows.append((name, params, t * 1000, args.batch / t))
        print(f"{name}: {params:.2f} M, {t * 1000:.1f} ms, {args.batch / t:.2f} clips/s", flush=True)
        return net

    infer("torchvision r3d_18 (peer)", torchvision.models.video.r3d_18(), lambda m: m(video))
    infer("ResNet-50-3D (HaraResNet3d) features", HaraResNet3d(50, num_classes=0), lambda m: m.features(video))
    s1 = infer("saoa-r50-rgb stage 1 (2 backbones + linear heads)", mmzoo.create("saoa-r50-rgb", stage=1),
               lambda m: m(video))
    saoa = infer("saoa-r50-rgb (stage 2)", mmzoo.create("saoa-r50-rgb"), lambda m: m(**objs))
    infer("sap-r50-rgb (stage 2)", mmzoo.create("sap-r50-rgb"), lambda m: m(**objs))
    i3d = infer("saoa-i3d-rgb (stage 2)", mmzoo.create("saoa-i3d-rgb"), lambda m: m(**objs))

    # the SA blocks alone on the backbones' maps
    with torch.no_grad():
        f_v, f_n = saoa.verb_net.features(video), saoa.noun_net.features(video)

    def head():
        g_v, g_n = f_v.mean(dim=(2, 3, 4)), f_n.mean(dim=(2, 3, 4))
        fs = tuple(video.shape[-2:])
        a = saoa.verb_branch.features(f_v, g_v, g_n, objs["object_features"], objs["object_boxes"], objs["object_mask"], fs)
        b = saoa.noun_branch.features(f_n, g_n, g_v, objs["object_features"], objs["object_boxes"], objs["object_mask"], fs)
        return saoa.verb_branch.fc(a["attended"]), saoa.noun_branch.fc(b["attended"])

    with torch.no_grad(), amp:
        t_head = _time(head, max(args.iters, 5), 1, dev)
    backbone_ms = next(r[2] for r in rows if r[0].startswith("ResNet-50-3D"))

    def train_step(name, m):
        m = m.to(dev).train()
        opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=1e-4, momentum=0.9)
        feed = objs if m.hparams.stage == 2 else {"video": video}

        def step():
            with amp:
                out = m(**feed)
                loss = m._loss(out, x)
            opt.zero_grad()
            loss.backward()
            opt.step()

        if dev.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        t = _time(step, args.iters, args.warmup, dev)
        mem = torch.cuda.max_memory_allocated() / 2**30 if dev.startswith("cuda") else float("nan")
        train_rows.append((name, t * 1000, args.batch / t, mem))
        print(f"train {name}: {t * 1000:.1f} ms, {args.batch / t:.2f} clips/s, peak {mem:.2f} GiB", flush=True)

    train_step("saoa-r50-rgb stage 1 (both backbones trained)", s1)
    train_step("saoa-r50-rgb stage 2 (frozen backbones)", saoa)
    train_step("saoa-i3d-rgb stage 2 (frozen backbones)", i3d)

    name = torch.cuda.get_device_name() if dev.startswith("cuda") else (platform.processor() or platform.machine())
    lines = [
        "# SAOA: inference and training speed",
        "",
        (f"`python benchmarks/saoa_speed.py --device {dev} --frames {args.frames} --size {args.size} --batch "
         f"{args.batch} --iters {args.iters}{' --bf16' if args.bf16 else ''}`; {name}, torch {torch.__version__}; "
         f"median of {args.iters} after {args.warmup} warm-up; 60 objects of 256 channels per clip."),
        "",
        "| inference | params (M) | ms / batch | clips / s |",
        "|---|---|---|---|",
        *[f"| {n} | {p:.2f} | {ms:.1f} | {cps:.2f} |" for n, p, ms, cps in rows],
        "",
        (f"SA blocks alone (both branches, on the R-50 maps): {t_head * 1000:.2f} ms / batch, "
         f"{100 * t_head * 1000 / backbone_ms:.2f} % of one ResNet-50-3D forward."),
        "",
        "| training step (forward + backward + SGD) | ms / batch | clips / s | peak GPU memory (GiB) |",
        "|---|---|---|---|",
        *[f"| {n} | {ms:.1f} | {cps:.2f} | {mem:.2f} |" for n, ms, cps, mem in train_rows],
        "",
    ]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
