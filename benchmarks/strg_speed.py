"""Speed of STRG's region-graph part beside its I3D backbone, and of proposal extraction.

Part 1 (one run, same clip): the I3D R50 backbone of Table 6.1 (the baseline, `stage="backbone"`)
and, on its res5 map, everything STRG adds (`STRG.region_features`: 1x1x1 conv, RoIAlign, the
graphs, the two 3-layer GCN branches, pooling); inside it, graph construction (G^sim, G^front,
G^back) and the GCN layers timed apart; and our block-wise front / back graph product beside the
dense N x N product (the naive implementation). Inference, fp32, medians.

Part 2: proposal extraction throughput (frames / s) of the RPN of `mmzoo propose`
(torchvision Faster R-CNN R50-FPN; random weights: the cost is the same as COCO's) at its input
scale (short side `--rpn-size`).

    python benchmarks/strg_speed.py                              # CPU: 16 x 112^2 clips, quick
    python benchmarks/strg_speed.py --device cuda --frames 32 --size 224 --iters 20 --rpn-size 800

Results go to a Markdown file (default `benchmarks/results/strg_speed.md`).
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch


def _timed(fn, device: str, warmup: int, iters: int) -> float:
    """Median seconds of `fn()` over `iters` calls after `warmup` calls."""
    out = []
    for i in range(warmup + iters):
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            out.append(time.perf_counter() - t)
    return statistics.median(out)


def part1(args) -> list[tuple[str, float]]:
    import mmzoo
    from mmzoo.nn.region_graph import temporal_iou_graphs

    dev = args.device
    model = mmzoo.create("strg-i3d-r50-charades", crop_size=args.size, frames=args.frames,
                         proposals_per_frame=args.proposals, pretrained_backbone=False).to(dev).eval()
    ex = model.example_input(args.batch)
    video, boxes = ex["video"].to(dev), ex["boxes"].to(dev)
    rows = []
    with torch.no_grad():
        res5 = model.backbone(video)
        rows.append(("I3D R50 backbone (baseline)", _timed(lambda: model.backbone(video), dev, args.warmup, args.iters)))
        rows.append(("STRG region part (conv, RoIAlign, graphs, GCN, pool)",
                     _timed(lambda: model.region_features(res5, boxes, args.size), dev, args.warmup, args.iters)))
        f = model.region_features(res5, boxes, args.size)
        nodes, valid = f["nodes"], f["node_valid"]
        bvalid = valid.view(boxes.shape[:3])

        def graphs():
            model.sim_graph(nodes, valid)
            temporal_iou_graphs(boxes, bvalid)

        rows.append(("  graph construction (G^sim, G^front, G^back)", _timed(graphs, dev, args.warmup, args.iters)))
        sim = [model.sim_graph(nodes, valid)]
        st = list(temporal_iou_graphs(boxes, bvalid))
        rows.append(("  GCN, 2 branches x 3 layers", _timed(lambda: (model.sim_gcn(nodes, sim), model.st_gcn(nodes, st)),
                                                             dev, args.warmup, args.iters)))
        x = torch.randn_like(nodes)
        dense = [g.dense() for g in st]
        rows.append(("  front + back product, blocks (ours)",
                     _timed(lambda: [g.matmul(x) for g in st], dev, args.warmup, args.iters)))
        rows.append(("  front + back product, dense N x N (peer)",
                     _timed(lambda: [torch.bmm(g, x) for g in dense], dev, args.warmup, args.iters)))
    return rows


def part3(args) -> list[tuple[str, float, float]]:
    """Training step (forward, loss, backward) of the I3D baseline and of STRG: seconds and, on
    CUDA, peak memory in GiB."""
    import mmzoo

    dev = args.device
    rows = []
    for name, kw in (("I3D R50 baseline (stage backbone)", {"stage": "backbone"}), ("STRG I3D R50 joint GCN", {})):
        model = mmzoo.create("strg-i3d-r50-charades", crop_size=args.size, frames=args.frames, freeze_bn=False,
                             proposals_per_frame=args.proposals, pretrained_backbone=False, **kw).to(dev).train()
        ex = {k: v.to(dev) for k, v in model.example_input(args.batch).items()}
        rows.append((name, *_train_time(model, ex, args)))
    return rows


def _train_time(model, ex: dict, args) -> tuple[float, float]:
    def step():
        model.zero_grad(set_to_none=True)
        model(**ex).sigmoid().mean().backward()

    if args.device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    t = _timed(step, args.device, args.warmup, args.iters)
    peak = torch.cuda.max_memory_allocated() / 2**30 if args.device == "cuda" else float("nan")
    return t, peak


def part2(args) -> list[tuple[str, float]]:
    from mmzoo.nn.region_proposals import RegionProposer

    dev = args.device
    rpn = RegionProposer(args.proposals, pretrained=False, min_size=args.rpn_size, max_size=args.rpn_size * 5 // 3)
    rpn = rpn.to(dev)
    frames = torch.rand(args.rpn_batch, 3, args.rpn_size, args.rpn_size * 4 // 3, device=dev)
    t = _timed(lambda: rpn(frames), dev, 1, max(1, args.iters // 2))
    return [(f"RPN proposals, {args.rpn_batch} frames of {args.rpn_size}x{args.rpn_size * 4 // 3}", t)]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=112)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--proposals", type=int, default=50)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--rpn-size", type=int, default=240)
    p.add_argument("--rpn-batch", type=int, default=4)
    p.add_argument("--train", action="store_true", help="also time a training step (forward + backward)")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "strg_speed.md"))
    args = p.parse_args(argv)
    torch.manual_seed(0)
    rows1, rows2 = part1(args), part2(args)
    rows3 = part3(args) if args.train else []
    dev = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or platform.machine()
    lines = [
        "# STRG speed (benchmarks/strg_speed.py)", "",
        f"Device: {args.device} ({dev}); torch {torch.__version__}; python {sys.version.split()[0]}.", "",
        (f"Part 1: batch {args.batch}, {args.frames} x {args.size}^2 clips, {args.proposals} proposals per feature "
         f"frame ({args.frames // 2 * args.proposals} nodes), fp32 inference, median of {args.iters}."), "",
        "| part | ms / batch |", "|---|---|",
        *[f"| {n} | {t * 1e3:.2f} |" for n, t in rows1], "",
        "Part 2: proposal extraction.", "", "| part | ms / batch | frames / s |", "|---|---|---|",
        *[f"| {n} | {t * 1e3:.1f} | {args.rpn_batch / t:.1f} |" for n, t in rows2], "",
    ]
    if rows3:
        lines += [f"Part 3: training step (forward, loss, backward; BN trained), batch {args.batch}.", "",
                  "| model | ms / step | peak GiB |", "|---|---|---|",
                  *[f"| {n} | {t * 1e3:.1f} | {m:.2f} |" for n, t, m in rows3], ""]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
