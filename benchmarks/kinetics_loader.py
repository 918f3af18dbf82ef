"""Kinetics AVSlowFast training loader against raw PyAV decoding of exactly the frames it needs.

Issue 14's data target: the training loader should deliver >= 0.9x the clips/s of bare PyAV
decoding of the same work. In one run, on a synthetic Kinetics in the official layout (mp4 with
H.264 video + AAC audio, written on the fly), interleaved clip by clip (medians):

* **loader**: `KineticsDataModule`'s training dataset, one sample = 32 frames at stride 2 from a
  random start, random short side in [256, 320], 224 crop, flip, normalisation, [slow, fast]
  packing, a 128x80 log-mel of the clip's audio read from the same container;
* **raw PyAV**: `av.open`, seek to the keyframe before the first needed frame, decode up to
  the last needed one, convert exactly the 32 needed frames to RGB arrays (no resize), then seek
  to and decode the clip's audio window to float arrays; no transform, no log-mel;
* **DataLoader workers 1 and 2** (batch 4, `persistent_workers`), clips/s of the loader after
  the first batch, and the torch / OpenMP thread count seen inside each worker.

    python benchmarks/kinetics_loader.py [--clips 40] [--out benchmarks/results/kinetics_loader.md]
"""
from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path

import torch


def raw_pyav(path: str, first: int, num_frames: int, stride: int, fps: float, audio_sec: float) -> tuple[int, int]:
    """Decode exactly the frames of one clip and its audio window with bare PyAV."""
    import av

    wanted = set(range(first, first + num_frames * stride, stride))
    last = max(wanted)
    got = 0
    with av.open(path) as c:
        vs = c.streams.video[0]
        tb = float(vs.time_base)
        c.seek(int(first / fps / tb), stream=vs, backward=True, any_frame=False)
        for frame in c.decode(vs):
            idx = int(round(frame.pts * tb * fps))
            if idx in wanted:
                frame.to_ndarray(format="rgb24")
                got += 1
            if idx >= last:
                break
        samples = 0
        if c.streams.audio:
            a = c.streams.audio[0]
            t0 = first / fps
            c.seek(int(max(t0 - 0.1, 0) / float(a.time_base)), stream=a, backward=True, any_frame=False)
            for frame in c.decode(a):
                samples += frame.to_ndarray().shape[-1]
                if frame.pts * float(a.time_base) >= t0 + audio_sec:
                    break
    return got, samples


def _worker_threads(_):
    return torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clips", type=int, default=40, help="timed clips per method")
    p.add_argument("--videos", type=int, default=8)
    p.add_argument("--seconds", type=float, default=10.0, help="length of each synthetic video")
    p.add_argument("--workers", type=int, nargs="*", default=[1, 2])
    p.add_argument("--worker-batches", type=int, default=4)
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--out", default=None, help="default results/kinetics_loader.md (smoke runs: nothing written unless given)")
    args = p.parse_args(argv)
    if args.smoke:
        args.clips, args.videos, args.seconds, args.workers, args.worker_batches = 3, 8, 3.0, [1], 1
    if args.out is None and not args.smoke:
        args.out = str(Path(__file__).parent / "results" / "kinetics_loader.md")
    torch.set_num_threads(1)
    from mmzoo.data.kinetics import KineticsDataModule
    from mmzoo.data.synthetic.kinetics import write_kinetics

    fps, nf, stride = 30.0, 32, 2
    rows: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        classes = ("abseiling", "zumba")
        write_kinetics(tmp, classes=classes, per_class={"train": max(1, args.videos // 2), "val": 1},
                       num_frames=int(args.seconds * fps), fps=fps, size=(240, 320))  # fmt: skip
        dm = KineticsDataModule(root=tmp, version="any", num_frames=nf, stride=stride, alpha=8, with_audio=True,
                                batch_size=4, num_workers=0)  # fmt: skip
        dm.setup("fit")
        ds = dm.datasets["train"] if hasattr(dm, "datasets") else dm.train_dataloader().dataset
        paths = [str(r.video) for r in ds.records]
        n_total = int(args.seconds * fps)
        audio_sec = 128 * 0.010 + 0.025  # 128 log-mel frames at a 10 ms hop + one 25 ms window
        rng = random.Random(0)
        from mmzoo.data.decode import VideoReader

        def reader(path, start, short):
            with VideoReader(path) as r:
                r.frames_by_index(list(range(start, start + nf * stride, stride)), short_side=short)

        times: dict[str, list[float]] = {"loader": [], "raw": [], "reader": [], "reader_resize": []}
        ds[0]  # warm-up (imports, mel filterbank)
        for i in range(args.clips):
            k = i % len(ds)
            start = rng.randint(0, n_total - nf * stride)
            short = rng.randint(256, 320)
            path = paths[k]
            calls = {"loader": lambda k=k: ds[k], "raw": lambda p=path, s=start: raw_pyav(p, s, nf, stride, fps, audio_sec),
                     "reader": lambda p=path, s=start: reader(p, s, None),
                     "reader_resize": lambda p=path, s=start, sh=short: reader(p, s, sh)}
            names = list(calls) if i % 2 == 0 else list(calls)[::-1]
            for name in names:
                c0 = time.process_time()
                res = calls[name]()
                times[name].append(time.process_time() - c0)
                if name == "raw":
                    assert res[0] == nf, f"raw decode got {res[0]} frames"
        med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        loader_ms, raw_ms = med["loader"], med["raw"]
        rows["per_clip"] = {**{f"{k}_cpu_ms": v for k, v in med.items()}, "ratio": raw_ms / loader_ms}
        for w in args.workers:
            dmw = KineticsDataModule(root=tmp, version="any", num_frames=nf, stride=stride, alpha=8, with_audio=True,
                                     batch_size=4, num_workers=w)  # fmt: skip
            dmw.setup("fit")
            loader = dmw.train_dataloader()
            it = iter(loader)
            next(it)  # workers started
            t0 = time.perf_counter()
            n = 0
            for _ in range(args.worker_batches):
                try:
                    b = next(it)
                except StopIteration:
                    it = iter(loader)
                    b = next(it)
                n += b["label"].shape[0]
            dt = time.perf_counter() - t0
            pool = torch.utils.data.DataLoader(range(w), num_workers=w, batch_size=1,
                                               worker_init_fn=getattr(loader, "worker_init_fn", None), collate_fn=_worker_threads)
            threads = sorted({tuple(map(str, x)) for x in pool})
            rows[f"workers_{w}"] = {"clips_per_s": n / dt, "threads_in_workers": threads}
            del it, loader
    lines = [
        "# Kinetics AVSlowFast training loader vs raw PyAV (`benchmarks/kinetics_loader.py`)",
        "",
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, torch threads 1 in the main process; "
        f"synthetic Kinetics (320x240 H.264 at 30 fps + AAC 16 kHz, {args.seconds:g} s videos); 32 frames at stride 2; "
        f"{args.clips} clips per method, interleaved, CPU time (`time.process_time`) medians.",
        "",
        "| method | CPU ms / clip | clips/s per core |",
        "|---|---:|---:|",
        f"| training loader (decode + resize + crop + flip + normalise + pack + log-mel) | {loader_ms:.1f} | {1e3 / loader_ms:.1f} |",
        f"| raw PyAV, exactly the 32 frames (rgb24, native size) + the audio window | {raw_ms:.1f} | {1e3 / raw_ms:.1f} |",
        f"| `VideoReader.frames_by_index`, the 32 frames at native size (no audio) | {med['reader']:.1f} | {1e3 / med['reader']:.1f} |",
        f"| `VideoReader.frames_by_index`, the 32 frames scaled to short side 256-320 in swscale (no audio) "
        f"| {med['reader_resize']:.1f} | {1e3 / med['reader_resize']:.1f} |",
        "",
        f"Loader speed / raw PyAV speed: **{raw_ms / loader_ms:.2f}x** (target >= 0.9x).",
        "",
        "| DataLoader workers | clips/s (wall) | (torch threads, OMP_NUM_THREADS) in the workers |",
        "|---:|---:|---|",
    ]
    for w in args.workers:
        r = rows[f"workers_{w}"]
        lines.append(f"| {w} | {r['clips_per_s']:.1f} | {r['threads_in_workers']} |")
    text = "\n".join(lines) + "\n"
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    print(text)
    return rows


if __name__ == "__main__":
    main()
