"""Label-propagation throughput of timecycle-r50 beside a timm ResNet-50, the affinity memory
at 320 vs 480, and one TimeCycle training step, in one run.

The thesis reports no speed. Propagation: one DAVIS-size sequence (``--frames`` frames of
480 x 854, resized to ``--size`` squared) -> features -> top-5 propagation from the first frame
+ 7 previous frames -> upsampled argmax, as `mmzoo test --data davis2017` does. The peer is
timm's ``resnet50`` (``features_only``, ``output_stride=8``, its stride-8 res4 features) run
through the same propagation. All weights are random (nothing is downloaded).

    python benchmarks/timecycle_speed.py [--device cuda] [--threads 1] [--out benchmarks/results/timecycle_speed.md]
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
    import timm
    import torch.nn.functional as F

    import mmzoo
    from mmzoo.nn.label_propagation import (
        labels_to_onehot,
        propagate_labels,
        upsample_labels,
    )

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--train-batch", type=int, default=1)
    ap.add_argument("--train-size", type=int, default=240, help="training-step crop (240, the paper's; multiple of 24)")
    ap.add_argument("--out", type=str, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    torch.manual_seed(0)
    video = torch.randn(3, args.frames, args.size, args.size, device=dev)
    mask = torch.zeros(480, 854, dtype=torch.long, device=dev)
    mask[100:300, 200:500] = 1
    mask[320:420, 600:800] = 2

    tc = mmzoo.create("timecycle-r50").to(dev).eval()
    peer = timm.create_model("resnet50", pretrained=False, features_only=True, out_indices=(3,), output_stride=8).to(dev).eval()

    def propagate(encode):
        with torch.no_grad():
            feats = F.normalize(torch.cat([encode(video[:, i : i + 4].transpose(0, 1)) for i in range(0, args.frames, 4)]), dim=1)
            first = labels_to_onehot(mask, 3, tuple(feats.shape[-2:]))
            soft = propagate_labels(feats, first, topk=5, context=7, normalized=True)
            return upsample_labels(soft, (480, 854)).argmax(1)

    rows = []
    for name, enc in (("timecycle-r50 (mmzoo)", tc.dense_features), ("timm resnet50, output_stride 8 (peer)", lambda x: peer(x)[0])):
        ts = _time(lambda enc=enc: propagate(enc), dev, args.repeats)
        med = statistics.median(ts)
        rows.append((name, med / args.frames * 1000, args.frames / med, f"{args.frames} frames at {args.size}^2"))

    with torch.no_grad():
        feats = F.normalize(tc.dense_features(video[:, :1].transpose(0, 1)), dim=1)
        ts = _time(lambda: propagate_labels(feats.repeat(args.frames, 1, 1, 1), labels_to_onehot(mask, 3, tuple(feats.shape[-2:])),
                                            normalized=True), dev, args.repeats)
    rows.append(("propagation only (top-5, 8 references)", statistics.median(ts) / args.frames * 1000,
                 args.frames / statistics.median(ts), "features precomputed"))

    mem = []
    for s in (320, 400, 480):
        hw = (s // 8) ** 2
        mem.append((s, hw, hw * hw * 4 / 2 ** 20, 8 * hw * hw * 4 / 2 ** 20))

    # crop_size 240 / patch 80 are the paper's; a smaller --train-size keeps the 1/3 patch ratio
    patch = max(8, args.train_size // 3 // 8 * 8)
    tiny = mmzoo.create("timecycle-r50", crop_size=args.train_size, patch_size=patch).to(dev).train()
    clip = torch.randn(args.train_batch, 3, 5, args.train_size, args.train_size, device=dev)
    opt = tiny.configure_optimizers()

    def step():
        opt.zero_grad()
        losses = tiny.cycle_losses(clip, tiny.sample_theta(clip))
        (losses["sim"] + 0.1 * losses["skip"] + 0.1 * losses["long"]).backward()
        opt.step()

    train_s = statistics.median(_time(step, dev, 1, warmup=1))

    dev_name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU, {torch.get_num_threads()} thread(s)"
    lines = ["# TimeCycle speed (benchmarks/timecycle_speed.py)", "",
             f"Device: {dev_name}; torch {torch.__version__}; random weights, no download; median of {args.repeats} runs.", "",
             "| what | ms / frame | frames / s | notes |", "|---|---:|---:|---|"]
    lines += [f"| {n} | {ms:.1f} | {fps:.2f} | {note} |" for n, ms, fps, note in rows]
    lines += ["", "Affinity memory (one float32 `hw x hw` matrix per reference; 8 references per target frame):", "",
              "| frame size | positions hw | MiB per reference | MiB per target frame |", "|---:|---:|---:|---:|"]
    lines += [f"| {s} | {hw} | {a:.1f} | {b:.1f} |" for s, hw, a, b in mem]
    lines += ["", (f"Training step (timecycle-r50, batch {args.train_batch}, 5 frames at {args.train_size}^2, 4 cycles, Adam): "
              f"**{train_s:.2f} s**."), "",
              (f"Command: `python benchmarks/timecycle_speed.py --device {args.device} --frames {args.frames} --size {args.size} "
              f"--repeats {args.repeats} --threads {args.threads} --train-batch {args.train_batch} --train-size {args.train_size}`")]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
