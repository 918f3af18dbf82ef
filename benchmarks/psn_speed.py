"""PSN speed: videos/s of PSN (ShuffleNet sampler on 25 frames + the recogniser on the M
selected) beside the uniform 25-frame TSN baseline with the same recogniser, in the same run, and
where the time goes (decode of the 25 frames, sampler, recogniser).

Both models are full size (ShuffleNet-V2 1.0x + ED-TCN, ResNet-101 / ResNet-50; random weights,
nothing downloaded). Decoding reads a synthetic ActivityNet release (real mp4, 1-fps grid, 25
segments) through the real `ActivityNetDataModule`. GFLOPs per video are counted beside the
times, so the measured speed-up can be compared with the FLOP ratio (82.3 / 195.8 in the thesis).

Usage::

    python benchmarks/psn_speed.py                       # CPU, 112^2 frames (what the results file holds)
    python benchmarks/psn_speed.py --crop 224 --device cuda --reps 20

Writes a markdown table to benchmarks/results/psn_speed.md (``--out``).
"""
from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from mmzoo.data.activitynet import ActivityNetDataModule
from mmzoo.data.synthetic.activitynet import write_activitynet
from mmzoo.models.psn import PSN
from mmzoo.models.tsn import TSNRecognizer, count_macs


def _median_time(fn, reps: int, sync) -> float:
    fn()
    sync()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _interleaved(fns, reps: int, sync) -> list[float]:
    """Median time of each function, running them in turn `reps` times (after one warm-up)."""
    times: list[list[float]] = [[] for _ in fns]
    for fn in fns:
        fn()
    sync()
    for _ in range(reps):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            fn()
            sync()
            times[i].append(time.perf_counter() - t)
    return [statistics.median(t) for t in times]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--crop", type=int, default=112)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=int, default=60, help="length of the synthetic videos")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "psn_speed.md"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    s = args.crop

    with tempfile.TemporaryDirectory() as tmp:
        truth = write_activitynet(tmp, per_class={"validation": 2}, num_seconds=args.seconds, fps=2,
                                  size=(s, s * 4 // 3 // 2 * 2), seed=0)
        dm = ActivityNetDataModule(root=tmp, batch_size=1, num_workers=0, test_scale=s, test_crop_size=s)
        dm.setup("test")
        ds = dm.datasets["test"]
        n_videos = len(ds)
        decode = _median_time(lambda: [ds[i] for i in range(n_videos)], args.reps, lambda: None) / n_videos
        video = torch.stack([ds[0]["video"]]).to(dev)
        del truth

    rows = []
    for backbone, m in (("resnet101", 10), ("resnet50", 6)):
        torch.manual_seed(0)
        psn = PSN(recognizer_backbone=backbone, num_selected=m, sampler_pretrained=False, crop_size=s).to(dev).eval()
        tsn = TSNRecognizer(backbone=backbone, pretrained_backbone=False, crop_size=s).to(dev).eval()
        with torch.no_grad():
            idx, _ = psn.select(video)
            chosen = video[:, :, idx[0]]
            # interleaved, so that load from other processes hits every measurement alike
            fns = [lambda p=psn: p.sampler(video), lambda p=psn, c=chosen: p.recognizer.video_logits(c),
                   lambda p=psn: p(video), lambda t=tsn: t(video)]
            t_sampler, t_rec_m, t_psn, t_tsn = _interleaved(fns, args.reps, sync)
            g_psn = count_macs(psn, video) / 1e9
            g_tsn = count_macs(tsn, video) / 1e9
        rows.append((backbone, m, decode, t_sampler, t_rec_m, t_psn, t_tsn, g_psn, g_tsn))

    lines = [
        "# PSN speed (`benchmarks/psn_speed.py`)",
        "",
        (f"Device: {args.device} ({platform.processor() or platform.machine()}), {args.threads} threads, frames "
         f"{s}x{s}, 25 pre-sampled frames per video, batch 1, median of {args.reps} interleaved runs; random "
         "weights. Decode: 25 frames of a 1-fps grid of a synthetic mp4 through `ActivityNetDataModule` (shared "
         "by both)."),
        "",
        ("| recogniser | M | decode (ms) | sampler (ms) | recogniser on M (ms) | PSN model (ms) | TSN 25 frames (ms) "
         "| PSN videos/s (with decode) | TSN videos/s (with decode) | speed-up | GFLOPs PSN / TSN | FLOP ratio |"),
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for backbone, m, dec, ts, tr, tp, tt, gp, gt in rows:
        lines.append(
            f"| {backbone} | {m} | {dec * 1e3:.1f} | {ts * 1e3:.1f} | {tr * 1e3:.1f} | {tp * 1e3:.1f} | {tt * 1e3:.1f} "
            f"| {1 / (dec + tp):.2f} | {1 / (dec + tt):.2f} | {(dec + tt) / (dec + tp):.2f}x | {gp:.2f} / {gt:.2f} "
            f"| {gt / gp:.2f}x |"
        )
    lines += ["", ("GFLOPs at this frame size (multiply-adds, `torch.utils.flop_counter`); at 224^2 they are "
                   "81.6 / 195.0 (R-101, M = 10) and 28.1 / 102.2 (R-50, M = 6)."), ""]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
