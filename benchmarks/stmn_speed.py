"""Per-frame speed of rfcn-r101 vs stmn-r101, MatchTrans vs a per-position loop, beside
torchvision's Faster R-CNN, in one run.

The thesis (Sec. 3.5) reports, on a Titan X for 11 frames at 337x600: R-FCN 0.52 s, STMN 0.83 s,
i.e. +0.028 s per frame for the STMM with MatchTrans; MatchTrans 2.9 ms per frame.

All models are full size with random weights (nothing is downloaded). Every detector processes
one window of ``--frames`` frames (the STMN test window, 11) with its RPN; the reported per-frame
time is the window time divided by the number of frames. On CPU use small frames (default
112x200, a third of 337x600) so that one run takes about a minute; on a GPU pass
``--height 337 --width 600``.

    python benchmarks/stmn_speed.py [--device cuda] [--threads 1] [--out benchmarks/results/stmn_speed.md]
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def _time(fn, dev, repeats: int, warmup: int = 1) -> list[float]:
    with torch.no_grad():
        for _ in range(warmup):
            fn()
        _sync(dev)
        out = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            _sync(dev)
            out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--frames", type=int, default=11)
    ap.add_argument("--height", type=int, default=112)
    ap.add_argument("--width", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/results/stmn_speed.md")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = torch.device(args.device)

    import torchvision

    import mmzoo
    from mmzoo.nn.matchtrans import MatchTrans, matchtrans_naive

    t, h, w = args.frames, args.height, args.width
    video = torch.randn(1, 3, t, h, w, device=dev)
    rows = []

    def add(name, times, frames, note=""):
        med = statistics.median(times)
        rows.append((name, med / frames * 1000, frames / med, note))
        print(f"{name:38s} {med / frames * 1000:9.1f} ms/frame  {frames / med:7.2f} frames/s  {note}")

    models = {}
    for mid, kw in (("rfcn-r101", {}), ("stmn-r101", {"ensemble": "none"}), ("stmn-r101", {})):
        m = mmzoo.create(mid, pretrained_backbone=False, seq_nms=False, **kw).eval().to(dev)
        name = mid + (" (+R-FCN ensemble branch)" if mid == "stmn-r101" and not kw else "")
        models[name] = m
        add(name, _time(lambda m=m: m(video), dev, args.repeats), t, f"{t}-frame window, RPN, {h}x{w}")
    tv = torchvision.models.detection.fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=31,
                                                              min_size=min(h, w), max_size=max(h, w)).eval().to(dev)
    frames = [video[0, :, i] for i in range(t)]
    add("torchvision fasterrcnn_resnet50_fpn", _time(lambda: tv(frames), dev, args.repeats), t,
        f"{t} frames as a batch, {h}x{w}, peer")

    # MatchTrans on the STMM input of a 337x600 frame: 1024 channels at stride 16 (22 x 38)
    fh, fw = (337 + 15) // 16, (600 + 15) // 16
    cur, prev = torch.randn(1, 1024, fh, fw, device=dev), torch.randn(1, 1024, fh, fw, device=dev)
    mem = torch.randn(1, 512, fh, fw, device=dev)
    mt = MatchTrans(k=2)
    add(f"MatchTrans shift (1024ch, {fh}x{fw})", _time(lambda: mt(cur, prev, mem), dev, 5), 1, "one frame step")
    mtu = MatchTrans(k=2, impl="unfold")
    add(f"MatchTrans unfold (1024ch, {fh}x{fw})", _time(lambda: mtu(cur, prev, mem), dev, 5), 1, "one frame step")
    small = [x[:, :, :8, :8].cpu() for x in (cur, prev, mem)]
    add("MatchTrans per-position loop (8x8 crop)", _time(lambda: matchtrans_naive(*small), torch.device("cpu"), 1, 0), 1,
        f"reference; full {fh}x{fw} map would be ~{fh * fw / 64:.0f}x slower")
    mt_small = _time(lambda: mt(*small), torch.device("cpu"), 5)
    add("MatchTrans shift (8x8 crop)", mt_small, 1, "same crop as the loop")

    r = {n: ms for n, ms, _, _ in rows}
    delta = r["stmn-r101"] - r["rfcn-r101"]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    dev_name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU, {args.threads} thread(s)"
    import os

    dev_name += f"; load average {os.getloadavg()[0]:.1f} when the run ended"
    lines = [
        "# STMN speed (benchmarks/stmn_speed.py)", "",
        f"Device: {dev_name}; torch {torch.__version__}; window of {t} frames at {h}x{w}; median of {args.repeats} runs; "
        "random weights, no download.", "",
        "| what | ms / frame | frames / s | notes |", "|---|---:|---:|---|",
        *[f"| {n} | {ms:.1f} | {fps:.2f} | {note} |" for n, ms, fps, note in rows], "",
        f"STMM + MatchTrans overhead (stmn-r101 - rfcn-r101): **{delta:.1f} ms/frame** "
        f"({r['stmn-r101'] / r['rfcn-r101']:.2f}x); the thesis reports +28 ms/frame on a Titan X at 337x600 "
        "(0.83 s vs 0.52 s per 11 frames, 1.60x).", "",
        "Command: `python benchmarks/stmn_speed.py " + " ".join(
            f"--{k} {v}" for k, v in vars(args).items() if k != "out") + "`", "",
    ]
    out.write_text("\n".join(lines))
    print(f"written {out}")


if __name__ == "__main__":
    main()
